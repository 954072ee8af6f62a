"""Orderings per second: the rank stage's packed rows against the same orderings as reward pairs.

    python bench/rank_throughput.py RUN [--steps 10] [--batch 8]

From RUN/data's train split and RUN/sft, the rankings the rank stage trains on (rl/pairs.py, with
line claims) are trained two ways, one after the other in this process with the same loss,
-log sigmoid(better - worse), and a fresh optimizer: packed (rl/rank.py: one row per ranking, every
critique a branch), and as RewardTrainer sees them (each ordering a chosen and a rejected sequence,
left-padded). Prints orderings per second of each and their ratio.
"""

from __future__ import annotations

import argparse
import random
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from datasets import load_from_disk

from critic.core.critique import terminate_critique
from critic.core.tokenizer import load_hf_tokenizer
from critic.model import CriticForSequenceClassification
from critic.rl.config import RankStage
from critic.rl.pairs import synthetic_rankings
from critic.rl.rank import collate, margins, pack


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("run", type=Path)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--batch", type=int, default=8)
    args = parser.parse_args()
    torch.set_num_threads(2)
    cfg = RankStage()
    tokenizer = load_hf_tokenizer(args.run / "sft")
    tokenizer.padding_side = "left"
    rows = load_from_disk(str(args.run / "data"))["train"].select(range(200))
    rng = random.Random(0)
    rankings = [
        r for row in rows for r in synthetic_rankings(row, cfg.negatives, rng, cfg.clean_negatives, True)
    ]
    packed = [p for r in rankings if (p := pack(r, tokenizer, cfg.max_length))]
    pairs = [pair for r in rankings for pair in r.pairs()]
    random.Random(1).shuffle(pairs)

    def model():
        torch.manual_seed(0)
        m = CriticForSequenceClassification.from_pretrained(args.run / "sft", num_labels=1).train()
        m.config.pad_token_id = tokenizer.pad_token_id
        return m, torch.optim.AdamW(m.parameters(), lr=1e-4)

    def step(optimizer, loss) -> None:
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()

    m, optimizer = model()
    orderings, start = 0, time.perf_counter()
    for i in range(args.steps):
        batch = collate(packed[i * args.batch : (i + 1) * args.batch], tokenizer.pad_token_id)
        mask = batch["pairs"].bool()
        step(optimizer, -F.logsigmoid(margins(m, batch)[mask]).mean())
        orderings += int(mask.sum())
    packed_rate = orderings / (time.perf_counter() - start)

    m, optimizer = model()
    orderings, start = 0, time.perf_counter()
    for i in range(args.steps):
        chunk = pairs[i * args.batch : (i + 1) * args.batch]
        scores = []
        for side in (1, 2):
            texts = [p[0] + terminate_critique(p[side]) + tokenizer.eos_token for p in chunk]
            enc = tokenizer(
                texts, padding=True, truncation=True, max_length=cfg.max_length, return_tensors="pt"
            )
            scores.append(m(**enc).logits[:, 0])
        step(optimizer, -F.logsigmoid(scores[0] - scores[1]).mean())
        orderings += len(chunk)
    pair_rate = orderings / (time.perf_counter() - start)
    print(f"{args.steps} steps of {args.batch}: packed rows {packed_rate:.1f} orderings/s,")
    print(f"reward pairs {pair_rate:.1f} orderings/s, ratio {packed_rate / pair_rate:.2f}x")


if __name__ == "__main__":
    main()
