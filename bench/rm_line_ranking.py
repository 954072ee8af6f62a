"""The reward model as a line ranker: does it put the bug line first, against the longest-line baseline?

    python bench/rm_line_ranking.py RUN [--samples 60] [--seed 0]

On a seeded sample of RUN/data's validation split, every candidate line of the tampered code is
critiqued the way rl/pairs.py builds its pairs (the bug's description moved to that line; the gold
critique on the bug line) and scored by RUN/reward against "no bugs". Prints how often the top-scored
line is a bug line, how often the longest line (most code tokens) is, and the mean margin of the best
line over "no bugs" (negative: the reward model would rather stay silent than report any line).
"""

from __future__ import annotations

import argparse
import random
from pathlib import Path

import torch
from datasets import load_from_disk

from critic.critique import NO_BUGS
from critic.evaluate import code_tokens_per_line
from critic.fsbs import Critic
from critic.model import load_causal_lm, load_reward_model
from critic.rating import gold_critique
from critic.sampling import start
from critic.tokenizer import load_tokenizer
from rl.pairs import candidate_lines, misplaced_critique


@torch.inference_mode()
def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("run", type=Path)
    parser.add_argument("--samples", type=int, default=60)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    torch.set_num_threads(2)
    rows = [dict(r) for r in load_from_disk(str(args.run / "data"))["validation"]]
    rows = random.Random(args.seed).sample(rows, min(args.samples, len(rows)))
    policy = args.run / "sft"
    critic = Critic(load_causal_lm(policy), load_reward_model(args.run / "reward"), load_tokenizer(policy))
    top = longest = 0
    margins = []
    for row in rows:
        code, bugs = row["code"], set(row["bug_lines"])
        lines = candidate_lines(code, set())
        texts = [
            gold_critique(code, sorted(bugs), row["description"])
            if n in bugs
            else misplaced_critique(code, n, row["description"], sorted(bugs))
            for n in lines
        ]
        prompt = start(critic.reward, [critic.prompt_ids(code)], max_length=2048)
        scores = critic.score(prompt, [0] * len(texts), texts)
        clean = critic.score(prompt, [0], [NO_BUGS])[0]
        top += lines[max(range(len(lines)), key=scores.__getitem__)] in bugs
        tokens = code_tokens_per_line(code)
        longest += max(range(len(tokens)), key=tokens.__getitem__) + 1 in bugs
        margins.append(max(scores) - clean)
    n = len(rows)
    print(f"{args.run}: {n} validation samples")
    print(f"reward model's top line on the bug {top / n:.3f}; longest line {longest / n:.3f}")
    print(f"mean margin of the best line over 'no bugs' {sum(margins) / n:.2f}")


if __name__ == "__main__":
    main()
