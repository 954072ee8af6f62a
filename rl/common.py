"""What every stage shares: the text of a critique request and its reference answer, checkpoint checks."""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path
from typing import Any

from critic.core.critique import terminate_critique
from critic.datagen.rating import gold_critique
from critic.model.checkpoint import CheckpointError, verify_checkpoint


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
        **{_checkpointing_argument(): cuda},
    )


def _checkpointing_argument() -> str:
    """transformers 5 renamed gradient_checkpointing to activation_checkpointing (the old name warns)."""
    import dataclasses

    from transformers import TrainingArguments

    names = {f.name for f in dataclasses.fields(TrainingArguments)}
    return "activation_checkpointing" if "activation_checkpointing" in names else "gradient_checkpointing"


CHECKPOINTS = "checkpoints"  # RUN/<stage>/checkpoints/: Trainer checkpoints while the stage runs
SETTINGS = "stage.json"  # in it: the stage config the checkpoints were written under


def resumable_args(seed: int, out: Path, save_steps: int) -> dict[str, Any]:
    """`trainer_defaults` plus a Trainer checkpoint (weights as safetensors, optimizer, scheduler, RNG
    states) into out/checkpoints every `save_steps` steps, the last two kept: a killed stage loses at
    most save_steps steps. The end of training writes none (see `SkipFinalCheckpoint`)."""
    return {
        **trainer_defaults(seed),
        "output_dir": str(Path(out) / CHECKPOINTS),
        "save_strategy": "steps",
        "save_steps": save_steps,
        "save_total_limit": 2,  # the newest may be half-written when a run is killed
        "save_only_model": False,
    }


def _complete(checkpoint: Path) -> bool:
    """The Trainer writes trainer_state.json last: a checkpoint without a readable one was cut short."""
    try:
        json.loads((checkpoint / "trainer_state.json").read_text())
    except (OSError, ValueError):
        return False
    return True


def _step(checkpoint: Path) -> int:
    return int(checkpoint.name.rsplit("-", 1)[1])


def resume_point(out: Path, settings: dict[str, Any]) -> str | None:
    """The newest complete checkpoint in out/checkpoints if it was written under the same stage
    settings, else None (a fresh start). Every process reads; the main process then clears what cannot
    be resumed (half-written checkpoints, or all of them when the settings changed) and records the
    settings, so the trainer's own checkpoint rotation only ever sees complete ones."""
    from accelerate import PartialState

    state = PartialState()
    directory = Path(out) / CHECKPOINTS
    recorded = directory / SETTINGS
    settings = json.loads(json.dumps(settings, default=str))  # as it reads back
    same = recorded.is_file() and json.loads(recorded.read_text()) == settings
    found = sorted(directory.glob("checkpoint-*"), key=_step) if directory.is_dir() else []
    complete = [c for c in found if _complete(c)] if same else []
    state.wait_for_everyone()
    if state.is_main_process:
        for checkpoint in found:
            if checkpoint not in complete:
                shutil.rmtree(checkpoint)
        directory.mkdir(parents=True, exist_ok=True)
        write_json(recorded, settings)
    state.wait_for_everyone()
    return str(complete[-1]) if complete else None


def resumed_step(checkpoint: str | None) -> int:
    return _step(Path(checkpoint)) if checkpoint else 0


def finish_checkpoints(out: Path) -> None:
    """A finished stage keeps only its final save_pretrained directory (main process)."""
    shutil.rmtree(Path(out) / CHECKPOINTS, ignore_errors=True)


def cosine_schedule(cfg) -> dict[str, Any]:
    """TrainingArguments for a stage's steps, batch and a cosine schedule after a short linear warm-up
    (cfg.warmup_ratio of max_steps; transformers reads a warmup_steps below 1 as that share)."""
    return {
        "max_steps": cfg.max_steps,
        "per_device_train_batch_size": cfg.batch_size,
        "learning_rate": cfg.learning_rate,
        "lr_scheduler_type": "cosine",
        "warmup_steps": cfg.warmup_ratio,
    }


def save_stage(accelerator, model, tokenizer, out: Path) -> None:
    """The finished stage's save_pretrained directory, tokenizer included, written by the main process,
    which then drops the stage's checkpoints."""
    if accelerator.is_main_process:
        model.save_pretrained(out)
        tokenizer.save_pretrained(out)
        finish_checkpoints(out)


def skip_final_checkpoint():
    """A callback: the Trainer saves a checkpoint at max_steps too, but a finished stage writes its
    model with save_pretrained and deletes its checkpoints, so that last save would only cost time (for
    a large model, optimizer state of twice its weights)."""
    from transformers import TrainerCallback

    class SkipFinalCheckpoint(TrainerCallback):
        def on_step_end(self, args, state, control, **kwargs):
            if state.global_step >= state.max_steps:
                control.should_save = False
            return control

    return SkipFinalCheckpoint()


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
