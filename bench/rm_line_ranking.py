"""The reward model as a line ranker: does it put the bug line first, against the longest-line baseline?

    python bench/rm_line_ranking.py RUN [RUN ...] [--samples 200] [--seed 0]

On a seeded sample of the first RUN's data validation split (the same samples for every RUN), every candidate
line of the tampered code gets its line claim (critic.datagen.rating.line_claim: the line quoted, one fixed
comment), which RUN/reward scores against "no bugs" exactly as `critic review` scores a finding's confidence.
Prints how often the top-scored line is a bug line (with a 95% Wilson interval), how often the longest line
(most code tokens) is, and the mean margin of the best line over "no bugs" (negative: the reward model would
rather stay silent than report any line).

It also scores every line of each sample's untampered original the same way and prints the detection
AUC: the chance that the best line's margin is higher on the tampered function than on a clean one
(0.5: the margin cannot tell buggy code from clean code, so no min-score can keep false alarms low
and still report bugs), with a 95% bootstrap interval over functions.
"""

from __future__ import annotations

import argparse
import math
import random
from pathlib import Path

import numpy as np
import torch
from datasets import load_from_disk

from critic.core.critique import NO_BUGS
from critic.core.tokenizer import load_tokenizer
from critic.datagen.rating import line_claim
from critic.evaluate import code_tokens_per_line
from critic.inference.fsbs import Critic
from critic.inference.sampling import start
from critic.model import load_causal_lm, load_reward_model
from critic.rl.pairs import candidate_lines


def wilson(hits: int, n: int, z: float = 1.96) -> tuple[float, float]:
    centre = (hits + z * z / 2) / (n + z * z)
    half = z * math.sqrt(hits * (n - hits) / n + z * z / 4) / (n + z * z)
    return centre - half, centre + half


def line_margins(critic: Critic, code: str) -> tuple[list[int], list[float]]:
    """Every candidate line of `code` and its line claim's margin over "no bugs"."""
    lines = candidate_lines(code, set())
    texts = [line_claim(code, [n]) for n in lines]
    prompt = start(critic.reward, [critic.prompt_ids(code)], max_length=2048)
    scores = critic.score(prompt, [0] * len(texts), texts)
    clean = critic.score(prompt, [0], [NO_BUGS])[0]
    return lines, [s - clean for s in scores]


@torch.inference_mode()
def rank_lines(run: Path, rows: list[dict]) -> tuple[int, int, list[float], list[float]]:
    """(top line on the bug, longest line on the bug, best margin over "no bugs" per sample, and the
    same on each sample's original)."""
    policy = run / "sft"
    critic = Critic(load_causal_lm(policy), load_reward_model(run / "reward"), load_tokenizer(policy))
    top = longest = 0
    margins, clean_margins = [], []
    for row in rows:
        code, bugs = row["code"], set(row["bug_lines"])
        lines, scores = line_margins(critic, code)
        top += lines[max(range(len(lines)), key=scores.__getitem__)] in bugs
        tokens = code_tokens_per_line(code)
        longest += max(range(len(tokens)), key=tokens.__getitem__) + 1 in bugs
        margins.append(max(scores))
        clean_margins.append(max(line_margins(critic, row["original"])[1]))
    return top, longest, margins, clean_margins


def detection_auc(
    buggy: list[float], clean: list[float], resamples: int = 1000
) -> tuple[float, float, float]:
    """AUC of buggy-vs-clean best margins (pairs i, j of buggy[i] and clean[j]) and a 95% bootstrap
    interval that resamples functions (a tampering with its own original)."""
    b, c = np.array(buggy), np.array(clean)

    def auc(i: np.ndarray) -> float:
        diff = b[i][:, None] - c[i][None, :]
        return float((diff > 0).mean() + 0.5 * (diff == 0).mean())

    every = np.arange(len(b))
    picks = np.random.default_rng(0).integers(0, len(b), size=(resamples, len(b)))
    low, high = np.percentile([auc(i) for i in picks], [2.5, 97.5])
    return auc(every), float(low), float(high)


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
        top, longest, margins, clean_margins = rank_lines(run, rows)
        low, high = wilson(top, n)
        auc, auc_low, auc_high = detection_auc(margins, clean_margins)
        print(
            f"{run}: reward model's top line on the bug {top / n:.3f} [{low:.3f}, {high:.3f}]; "
            f"longest line {longest / n:.3f}; mean margin of the best line over 'no bugs' "
            f"{sum(margins) / n:.2f} (originals {sum(clean_margins) / n:.2f}); "
            f"detection AUC {auc:.3f} [{auc_low:.3f}, {auc_high:.3f}]"
        )


if __name__ == "__main__":
    main()
