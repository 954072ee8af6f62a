"""The reward model as a line ranker: does it put the bug line first, against the longest-line baseline?

    python bench/rm_line_ranking.py RUN [RUN ...] [--samples 200] [--seed 0]

On a seeded sample of the first RUN's data validation split (the same samples for every RUN), every
candidate line of the tampered code gets its line claim (critic.rating.line_claim: the line quoted, one
fixed comment), which RUN/reward scores against "no bugs" exactly as `critic review` scores a finding's
confidence. Prints how often the top-scored line is a bug line (with a 95% Wilson interval), how often
the longest line (most code tokens) is, and the mean margin of the best line over "no bugs"
(negative: the reward model would rather stay silent than report any line).
"""

from __future__ import annotations

import argparse
import math
import random
from pathlib import Path

import torch
from datasets import load_from_disk

from critic.critique import NO_BUGS
from critic.evaluate import code_tokens_per_line
from critic.fsbs import Critic
from critic.model import load_causal_lm, load_reward_model
from critic.rating import line_claim
from critic.sampling import start
from critic.tokenizer import load_tokenizer
from rl.pairs import candidate_lines


def wilson(hits: int, n: int, z: float = 1.96) -> tuple[float, float]:
    centre = (hits + z * z / 2) / (n + z * z)
    half = z * math.sqrt(hits * (n - hits) / n + z * z / 4) / (n + z * z)
    return centre - half, centre + half


@torch.inference_mode()
def rank_lines(run: Path, rows: list[dict]) -> tuple[int, int, list[float]]:
    """(top line on the bug, longest line on the bug, best margin over "no bugs" per sample)."""
    policy = run / "sft"
    critic = Critic(load_causal_lm(policy), load_reward_model(run / "reward"), load_tokenizer(policy))
    top = longest = 0
    margins = []
    for row in rows:
        code, bugs = row["code"], set(row["bug_lines"])
        lines = candidate_lines(code, set())
        texts = [line_claim(code, [n]) for n in lines]
        prompt = start(critic.reward, [critic.prompt_ids(code)], max_length=2048)
        scores = critic.score(prompt, [0] * len(texts), texts)
        clean = critic.score(prompt, [0], [NO_BUGS])[0]
        top += lines[max(range(len(lines)), key=scores.__getitem__)] in bugs
        tokens = code_tokens_per_line(code)
        longest += max(range(len(tokens)), key=tokens.__getitem__) + 1 in bugs
        margins.append(max(scores) - clean)
    return top, longest, margins


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("runs", type=Path, nargs="+")
    parser.add_argument("--samples", type=int, default=200)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    torch.set_num_threads(2)
    rows = [dict(r) for r in load_from_disk(str(args.runs[0] / "data"))["validation"]]
    rows = random.Random(args.seed).sample(rows, min(args.samples, len(rows)))
    n = len(rows)
    print(f"{n} validation samples of {args.runs[0] / 'data'}")
    for run in args.runs:
        top, longest, margins = rank_lines(run, rows)
        low, high = wilson(top, n)
        print(
            f"{run}: reward model's top line on the bug {top / n:.3f} [{low:.3f}, {high:.3f}]; "
            f"longest line {longest / n:.3f}; mean margin of the best line over 'no bugs' "
            f"{sum(margins) / n:.2f}"
        )


if __name__ == "__main__":
    main()
