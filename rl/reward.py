"""Reward model: TRL's RewardTrainer on within-task preferences, started from the SFT policy (or from
the rank stage's checkpoint, rl/rank.py); a rerun of an interrupted stage resumes from its last
checkpoint in out/checkpoints."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import torch
from datasets import Dataset, DatasetDict
from trl import RewardConfig, RewardTrainer

from critic.core.tokenizer import load_hf_tokenizer
from critic.model import CriticForSequenceClassification
from critic.rl.common import (
    check_checkpoint,
    merged,
    resumable_args,
    resume_point,
    resumed_step,
    save_stage,
    skip_final_checkpoint,
)
from critic.rl.config import RewardStage


@torch.no_grad()
def pairwise_accuracy(model, tokenizer, pairs: Dataset, max_length: int, batch_size: int = 16) -> float:
    """Share of held-out pairs where the chosen critique scores above the rejected one."""
    model.eval()
    wins = 0
    for start in range(0, len(pairs), batch_size):
        batch = pairs[start : start + batch_size]
        scores = []
        for key in ("chosen", "rejected"):
            texts = [p + c + tokenizer.eos_token for p, c in zip(batch["prompt"], batch[key], strict=True)]
            enc = tokenizer(texts, padding=True, truncation=True, max_length=max_length, return_tensors="pt")
            scores.append(model(**enc).logits.squeeze(-1))
        wins += (scores[0] > scores[1]).sum().item()
    return wins / max(1, len(pairs))


def run_reward(cfg: RewardStage, ratings: DatasetDict, policy_dir: Path, out: Path) -> dict:
    policy_dir = check_checkpoint(policy_dir)
    tokenizer = load_hf_tokenizer(policy_dir)
    tokenizer.padding_side = "left"  # the score is read at the last non-pad token either way
    torch.manual_seed(cfg.seed)
    model = CriticForSequenceClassification.from_pretrained(policy_dir, num_labels=1)
    model.config.pad_token_id = tokenizer.pad_token_id
    train = ratings["preferences_train"].select_columns(["prompt", "chosen", "rejected"])
    held_out = ratings["preferences_validation"]
    if len(held_out) > cfg.eval_pairs:  # synthetic pairs make thousands; a seeded sample measures it
        held_out = held_out.shuffle(seed=cfg.seed).select(range(cfg.eval_pairs))
    before = pairwise_accuracy(model, tokenizer, held_out, cfg.max_length)
    args = RewardConfig(
        max_steps=cfg.max_steps,
        per_device_train_batch_size=cfg.batch_size,
        learning_rate=cfg.learning_rate,
        max_length=cfg.max_length,
        **resumable_args(cfg.seed, out, cfg.save_steps),
    )
    trainer = RewardTrainer(
        model=model,
        args=args,
        train_dataset=train,
        processing_class=tokenizer,
        peft_config=cfg.lora("SEQ_CLS"),
        callbacks=[skip_final_checkpoint()],
    )
    checkpoint = resume_point(out, {**dataclasses.asdict(cfg), "policy": str(policy_dir)})
    result = trainer.train(resume_from_checkpoint=checkpoint)
    model = merged(trainer.model)
    accuracy = pairwise_accuracy(model, tokenizer, held_out, cfg.max_length)
    save_stage(trainer.accelerator, model, tokenizer, out)
    return {
        "loss": result.training_loss,
        "steps": result.global_step,
        "resumed_from": resumed_step(checkpoint),
        "start": str(policy_dir),
        "eval_accuracy": accuracy,
        "eval_accuracy_before": before,
        "eval_pairs": len(held_out),
        "train_pairs": len(train),
        "processes": trainer.accelerator.num_processes,
    }
