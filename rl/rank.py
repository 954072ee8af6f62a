"""Ranking warm-up of the reward model: many more synthetic orderings per CPU-hour than pairs give.

The reward model is the localizer (rl/pairs.py): a finding's confidence is how far the claim that
its lines are a bug scores above "no bugs". A preference pair runs the whole prompt twice for one
ordering. Here a row packs the prompt once, followed by every candidate critique of it as a branch
that sees the prompt but no other branch (`critic.model.gemma2.branch_masks`), so each branch scores
exactly as it would alone: a tampered sample with six misplaced critiques and their line claims
gives fifteen orderings for about the cost of three pair sequences (bench/rank_throughput.py). The
loss is RewardTrainer's, -log sigmoid(better - worse), over every ordering of the row. The reward
stage then continues from this checkpoint on the rated preference pairs; a rerun of an interrupted
stage resumes from its last checkpoint in out/checkpoints.
"""

from __future__ import annotations

import dataclasses
import random
from pathlib import Path

import torch
import torch.nn.functional as F
from datasets import Dataset, DatasetDict
from transformers import Trainer, TrainingArguments

from critic.core.critique import terminate_critique
from critic.core.tokenizer import load_hf_tokenizer
from critic.model import CriticForSequenceClassification
from critic.rl.common import (
    check_checkpoint,
    cosine_schedule,
    resumable_args,
    resume_point,
    resumed_step,
    save_stage,
    skip_final_checkpoint,
)
from critic.rl.config import RankStage
from critic.rl.pairs import Ranking, synthetic_rankings
from critic.rl.rate import SPLIT_SEEDS


def pack(ranking: Ranking, tokenizer, max_length: int) -> dict[str, list[int]] | None:
    """One row: the prompt's tokens, then each critique (ended as the reward model reads it) as a
    branch whose positions continue the prompt's. Critiques that would not fit in `max_length` are
    left out with their orderings; None when no ordering is left."""
    prompt = tokenizer(ranking.prompt)["input_ids"]
    ids, segments, positions = list(prompt), [0] * len(prompt), list(range(len(prompt)))
    ends: dict[int, int] = {}  # critique index -> index of its last token in the row
    for i, critique in enumerate(ranking.critiques):
        branch = tokenizer(terminate_critique(critique) + tokenizer.eos_token, add_special_tokens=False)
        branch = branch["input_ids"]
        if len(ids) + len(branch) > max_length:
            continue
        ids += branch
        segments += [len(ends) + 1] * len(branch)
        positions += range(len(prompt), len(prompt) + len(branch))
        ends[i] = len(ids) - 1
    slot = {i: n for n, i in enumerate(ends)}
    wins = [(slot[b], slot[w]) for b, w in ranking.wins if b in slot and w in slot]
    if not wins:
        return None
    return {
        "input_ids": ids,
        "segment_ids": segments,
        "position_ids": positions,
        "ends": list(ends.values()),
        "better": [b for b, _ in wins],
        "worse": [w for _, w in wins],
        "length": len(ids),  # for length-grouped batches: little padding
    }


def packed_rankings(rows, cfg: RankStage, tokenizer, seed: int) -> Dataset:
    rng = random.Random(seed)
    packed = []
    for row in rows:
        for ranking in synthetic_rankings(row, cfg.negatives, rng, cfg.clean_negatives, cfg.line_claims):
            if (p := pack(ranking, tokenizer, cfg.max_length)) is not None:
                packed.append(p)
    return Dataset.from_list(packed)


def collate(rows: list[dict], pad_token_id: int) -> dict[str, torch.Tensor]:
    """Right-pad every column of packed rows; padding is segment -1, and `pairs` marks real orderings."""

    def padded(key: str, value: int) -> torch.Tensor:
        width = max(len(r[key]) for r in rows)
        return torch.tensor([r[key] + [value] * (width - len(r[key])) for r in rows])

    batch = {
        "input_ids": padded("input_ids", pad_token_id),
        "segment_ids": padded("segment_ids", -1),
        "position_ids": padded("position_ids", 0),
        "ends": padded("ends", 0),
        "better": padded("better", 0),
        "worse": padded("worse", 0),
    }
    width = batch["better"].shape[1]
    batch["pairs"] = torch.tensor([[1] * len(r["better"]) + [0] * (width - len(r["better"])) for r in rows])
    return batch


def branch_scores(model: CriticForSequenceClassification, batch: dict[str, torch.Tensor]) -> torch.Tensor:
    """Reward [B, branches]: each branch's score at its last token, as if scored alone."""
    hidden = model.model(
        batch["input_ids"], position_ids=batch["position_ids"], segment_ids=batch["segment_ids"]
    ).last_hidden_state
    last = hidden.gather(1, batch["ends"][..., None].expand(-1, -1, hidden.shape[-1]))
    return model.score(last).squeeze(-1)


def margins(model, batch: dict[str, torch.Tensor]) -> torch.Tensor:
    """better - worse for every ordering slot [B, P] (padding slots are meaningless; see `pairs`)."""
    scores = branch_scores(model, batch)
    return scores.gather(1, batch["better"]) - scores.gather(1, batch["worse"])


class RankTrainer(Trainer):
    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        mask = inputs["pairs"].float()
        loss = -(F.logsigmoid(margins(model, inputs)) * mask).sum() / mask.sum()
        return (loss, None) if return_outputs else loss


@torch.no_grad()
def ordering_accuracy(model, rows: Dataset, pad_token_id: int, batch_size: int = 8) -> float:
    """Share of held-out orderings the model gets right."""
    model.eval()
    right = total = 0
    for start in range(0, len(rows), batch_size):
        batch = collate([rows[i] for i in range(start, min(len(rows), start + batch_size))], pad_token_id)
        mask = batch["pairs"].bool()
        right += (margins(model, batch) > 0)[mask].sum().item()
        total += mask.sum().item()
    return right / max(1, total)


def run_rank(cfg: RankStage, data: DatasetDict, policy_dir: Path, out: Path) -> dict:
    policy_dir = check_checkpoint(policy_dir)
    tokenizer = load_hf_tokenizer(policy_dir)
    torch.manual_seed(cfg.seed)
    model = CriticForSequenceClassification.from_pretrained(policy_dir, num_labels=1)
    model.config.pad_token_id = tokenizer.pad_token_id
    train = packed_rankings(data["train"], cfg, tokenizer, cfg.seed + SPLIT_SEEDS["train"])
    held_out_rows = (
        data["validation"]
        .shuffle(seed=cfg.seed)
        .select(range(min(cfg.eval_samples, len(data["validation"]))))
    )
    held_out = packed_rankings(held_out_rows, cfg, tokenizer, cfg.seed + SPLIT_SEEDS["validation"])
    before = ordering_accuracy(model, held_out, tokenizer.pad_token_id)
    args = TrainingArguments(
        **cosine_schedule(cfg),
        remove_unused_columns=False,
        train_sampling_strategy="group_by_length",
        length_column_name="length",
        **resumable_args(cfg.seed, out, cfg.save_steps),
    )
    trainer = RankTrainer(
        model=model,
        args=args,
        train_dataset=train,
        data_collator=lambda rows: collate(rows, tokenizer.pad_token_id),
        callbacks=[skip_final_checkpoint()],
    )
    checkpoint = resume_point(out, {**dataclasses.asdict(cfg), "policy": str(policy_dir)})
    result = trainer.train(resume_from_checkpoint=checkpoint)
    accuracy = ordering_accuracy(model, held_out, tokenizer.pad_token_id)
    processes = trainer.accelerator.num_processes
    save_stage(trainer.accelerator, model, tokenizer, out)
    return {
        "loss": result.training_loss,
        "steps": result.global_step,
        "resumed_from": resumed_step(checkpoint),
        "eval_ordering_accuracy": accuracy,
        "eval_ordering_accuracy_before": before,
        "eval_rows": len(held_out),
        "train_rows": len(train),
        "train_orderings": sum(len(b) for b in train["better"]),
        "epochs": round(result.global_step * cfg.batch_size * processes / len(train), 3),
        "processes": processes,
    }
