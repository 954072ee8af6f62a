"""How close critics come to a teacher, and how well they predict gold critiques, on held-out data.

    python bench/distill_agreement.py --teacher runs/distilled-critic/sft \\
        --data runs/distilled-critic/data runs/default-critic-v1/sft runs/distilled-critic/distill

For each model: per critique token, the forward KL from the teacher's next-token distribution (what
distillation minimises) and the NLL of the gold critique (what SFT minimises), on the same held-out
validation critiques `critic train distill` reports its KL on. The teacher's own NLL is the first row.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from critic.datagen.tamper_data import load_dataset
from critic.rl.distill import PromptCompletionCollator, agreement, load_policy, probe_examples


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("models", nargs="+", type=Path, help="checkpoint directories to compare")
    parser.add_argument("--teacher", type=Path, required=True)
    parser.add_argument("--data", type=Path, required=True, help="a run's data/ or tamper output")
    parser.add_argument("--max-length", type=int, default=512)
    parser.add_argument("--json", type=Path, help="also write the rows here")
    args = parser.parse_args()

    teacher, tokenizer = load_policy(args.teacher)
    probe = probe_examples(load_dataset(args.data, "validation"), tokenizer, args.max_length)
    collator = PromptCompletionCollator(tokenizer, args.max_length)
    rows = []
    for directory in [args.teacher, *args.models]:
        model = teacher if directory == args.teacher else load_policy(directory)[0]
        scores = agreement(model, teacher, probe, collator)
        params = sum(p.numel() for p in model.parameters())
        rows.append({"model": str(directory), "parameters": params, **scores})
    print(f"{len(probe)} held-out critiques from {args.data / 'validation'}; teacher {args.teacher}")
    print(f"{'model':<40} {'params':>8} {'KL to teacher':>14} {'gold NLL':>9}")
    for row in rows:
        print(f"{row['model']:<40} {row['parameters'] / 1e6:>7.2f}M {row['kl']:>14.3f} {row['nll']:>9.3f}")
    if args.json:
        args.json.write_text(json.dumps({"examples": len(probe), "rows": rows}, indent=2) + "\n")


if __name__ == "__main__":
    main()
