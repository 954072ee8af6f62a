"""SFT: teach the policy the critique format on tampered code, with TRL's SFTTrainer.

Prompt = critique request for the tampered code; completion = the gold critique (bug lines quoted,
the tamperer's description as comment). With `clean_fraction`, untampered originals are taught to get
"I found no bugs in this code." Loss on the completion only. The policy starts from `init` (the
pipeline sets it to RUN/pretrain when the config has a pretrain stage) or new weights of `preset`; a
rerun of an interrupted stage resumes from its last checkpoint in out/checkpoints.
"""

from __future__ import annotations

import dataclasses
import random
from pathlib import Path

from datasets import Dataset, DatasetDict
from transformers import Trainer
from trl import SFTConfig, SFTTrainer

from critic.core.critique import NO_BUGS, request, terminate_critique
from critic.core.sources import stdlib_root
from critic.core.tokenizer import load_hf_tokenizer, stdlib_files
from critic.core.tokens import BOS
from critic.datagen.tamper_data import split_functions, split_of_group
from critic.model import CriticConfig, CriticForCausalLM, to_hf_config
from critic.rl.common import (
    check_checkpoint,
    merged,
    reference_completion,
    resumable_args,
    resume_point,
    resumed_step,
    save_stage,
    skip_final_checkpoint,
)
from critic.rl.config import SFTStage


class LeanSFTTrainer(SFTTrainer):
    """TRL's SFTTrainer, with the model's own causal-LM loss on CPU.

    Since 1.16 TRL patches a tiled LM head into the model's forward that scores log-probabilities,
    entropy and top-1 hits of every position in chunks: it saves GPU memory on long rows and large
    vocabularies, but on CPU it made an SFT step of the tiny critic 3.1x slower (bench/train.py). On a
    CPU this trainer restores the model's forward and takes the loss the model returns (the same
    masked next-token loss), keeping TRL's token count; on a GPU it is TRL's trainer unchanged."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.plain_loss = self.args.device.type == "cpu"
        if self.plain_loss:
            model = self.model.get_base_model() if hasattr(self.model, "get_base_model") else self.model
            vars(model).pop("forward", None)  # the patched forward is an instance attribute

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        if not self.plain_loss:
            return super().compute_loss(model, inputs, return_outputs, num_items_in_batch)
        if model.training:  # what TRL's compute_loss logs as num_tokens
            seen = self.accelerator.gather_for_metrics(inputs["attention_mask"].sum()).sum().item()
            self._total_train_tokens += seen
            self._metrics["train"]["num_tokens"] = [self._total_train_tokens]
        inputs = {**inputs, "use_cache": False}
        return Trainer.compute_loss(self, model, inputs, return_outputs, num_items_in_batch)


def initial_policy(cfg: SFTStage) -> tuple[CriticForCausalLM, object]:
    if cfg.init:
        directory = check_checkpoint(cfg.init)
        return CriticForCausalLM.from_pretrained(directory), load_hf_tokenizer(directory)
    config = CriticConfig.from_preset(cfg.preset)
    import torch

    torch.manual_seed(cfg.seed)
    return CriticForCausalLM(to_hf_config(config)), load_hf_tokenizer()


def pretraining_corpus(max_items: int = 4000, seed: int = 0) -> Dataset:
    """Plain Python functions of the standard library (distill.pretrain_steps; the pretrain stage reads
    whole files, rl/pretrain.py), from the files the data stage with this seed puts in train only:
    held-out files are the evaluation's."""
    root = stdlib_root()
    texts: list[str] = []
    for path in stdlib_files():
        if split_of_group(path.relative_to(root).as_posix(), seed) != "train":
            continue
        try:
            texts += [BOS + code for _, code in split_functions(path.read_text(encoding="utf-8"))]
        except (SyntaxError, UnicodeDecodeError):
            continue
        if len(texts) >= max_items:
            break
    return Dataset.from_dict({"text": texts[:max_items]})


def sft_examples(samples: Dataset, clean_fraction: float, seed: int) -> Dataset:
    """Request -> gold critique for every tampered sample, plus request -> NO_BUGS for a seeded
    `clean_fraction` of the distinct untampered originals: a critic must also learn to say when code
    is fine, or `critic review` flags every file."""
    prompts = [request(code) for code in samples["code"]]
    completions = [reference_completion(row) for row in samples]
    originals = list(dict.fromkeys(samples["original"]))
    clean = random.Random(seed).sample(originals, round(clean_fraction * len(originals)))
    prompts += [request(code) for code in clean]
    completions += [terminate_critique(NO_BUGS)] * len(clean)
    return Dataset.from_dict({"prompt": prompts, "completion": completions})  # the trainer shuffles


def fitting(examples: Dataset, tokenizer, max_length: int) -> Dataset:
    """The examples whose prompt and completion fit in max_length tokens: the trainer truncates from
    the right, so a longer one would cost a full step and teach nothing of its critique."""
    lengths = [
        len(tokenizer(p + c, add_special_tokens=False).input_ids)
        for p, c in zip(examples["prompt"], examples["completion"], strict=True)
    ]
    return examples.select([i for i, n in enumerate(lengths) if n <= max_length])


def run_sft(cfg: SFTStage, data: DatasetDict, out: Path) -> dict:
    model, tokenizer = initial_policy(cfg)
    metrics: dict = {
        "parameters": sum(p.numel() for p in model.parameters()),
        "start": cfg.init or f"preset {cfg.preset}",
    }
    train = sft_examples(data["train"], cfg.clean_fraction, cfg.seed)
    fit = fitting(train, tokenizer, cfg.max_length)
    metrics.update(examples=len(fit), too_long=len(train) - len(fit))
    args = SFTConfig(
        max_steps=cfg.max_steps,
        per_device_train_batch_size=cfg.batch_size,
        learning_rate=cfg.learning_rate,
        max_length=cfg.max_length,
        completion_only_loss=True,
        **resumable_args(cfg.seed, out, cfg.save_steps),
    )
    trainer = LeanSFTTrainer(
        model,
        args,
        train_dataset=fit,
        processing_class=tokenizer,
        peft_config=cfg.lora("CAUSAL_LM"),
        callbacks=[skip_final_checkpoint()],
    )
    checkpoint = resume_point(out, dataclasses.asdict(cfg))
    result = trainer.train(resume_from_checkpoint=checkpoint)
    resumed = resumed_step(checkpoint)
    metrics.update(loss=result.training_loss, steps=result.global_step, resumed_from=resumed)
    # TRL counts num_tokens from this session's first step, as the runtime; a resumed log_history holds
    # the earlier session's counts too
    logged = [h for h in trainer.state.log_history if h.get("step", 0) > resumed]
    tokens = max((h.get("num_tokens", 0.0) for h in logged), default=0.0)
    metrics["tokens_per_second"] = tokens / result.metrics["train_runtime"]
    save_stage(trainer.accelerator, merged(trainer.model), tokenizer, out)
    return metrics
