"""What every stage shares: the text of a critique request and its reference answer, checkpoint checks."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from critic.critique import build_prompt, terminate_critique
from critic.model.checkpoint import CheckpointError, verify_checkpoint
from critic.rating import gold_critique

BOS = "<bos>"


def request(code: str) -> str:
    """The prompt a critic is trained and sampled on (the tokenizer reads <bos> as its special id)."""
    return BOS + build_prompt(code)


def reference_completion(row: dict[str, Any]) -> str:
    """The SFT target: the gold critique built from the bug description, ended like a model turn."""
    return terminate_critique(gold_critique(row["code"], row["bug_lines"], row["description"]))


def check_checkpoint(directory: str | Path) -> Path:
    """Fail early, naming the file, on a missing or corrupted checkpoint (before transformers is asked)."""
    directory = Path(directory)
    verify_checkpoint(directory)
    if not (directory / "tokenizer.json").is_file():
        raise CheckpointError(f"{directory / 'tokenizer.json'}: no such file")
    return directory


def trainer_defaults(seed: int) -> dict[str, Any]:
    """TrainingArguments every stage shares: no hub, no checkpoints mid-stage, bf16 only where supported."""
    import torch

    cuda = torch.cuda.is_available()
    return dict(
        report_to=[],
        save_strategy="no",
        logging_steps=10,
        disable_tqdm=not sys.stderr.isatty(),  # progress bars for people, metric lines for logs
        seed=seed,
        bf16=cuda and torch.cuda.is_bf16_supported(),
        fp16=False,
        dataloader_pin_memory=cuda,
        use_cpu=not cuda,  # on CPU, `accelerate launch` processes then form a gloo group
        # TRL turns it on by default: it saves GPU memory, but on CPU it only costs a third more time
        gradient_checkpointing=cuda,
    )


def lora_config(r: int, alpha: int, targets: list[str], task_type: str):
    """A PEFT LoRA config, or None for full fine-tuning (r = 0)."""
    if r <= 0:
        return None
    from peft import LoraConfig

    modules_to_save = ["score"] if task_type == "SEQ_CLS" else None
    return LoraConfig(
        r=r, lora_alpha=alpha, target_modules=targets, task_type=task_type, modules_to_save=modules_to_save
    )


def merged(model):
    """The plain model with any LoRA adapters folded in: every stage hands on an ordinary checkpoint."""
    return model.merge_and_unload() if hasattr(model, "merge_and_unload") else model


def write_json(path: Path, data: Any) -> None:
    """Write atomically: a stage marked done always has its whole record."""
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")
    tmp.replace(path)
