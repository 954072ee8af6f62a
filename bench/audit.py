"""`critic audit` measured: the shipped critic over held-out buggy and clean code, with ground truth.

    python bench/audit.py [--tasks 50] [--seed 0] [--out bench/results/audit]

Builds OUT/humaneval_mix.jsonl from `--tasks` HumanEval tasks drawn at random (seeded; the shipped
critic never saw HumanEval): for each task with a verified tampering (its tests now fail, as in
`critic eval`), one row of the tampered code (`is_buggy` true) and one of its clean original (false).
Then runs, as a user would,

    critic audit OUT/humaneval_mix.jsonl --column code --label-column is_buggy --min-score 0 --out OUT/audit

(min-score 0: every finding is kept, so the precision / recall curve in OUT/audit/summary.json and
pr_curve.png spans every threshold; flagging at t is the same as auditing at --min-score t). Last it
writes OUT/metrics.json and prints: precision and recall at the default min-score and at 0 (any
finding) with 95% bootstrap intervals that resample tasks (a tampering and its original together),
and how often a flagged tampered row's most confident finding is on the inserted bug's lines.
"""

from __future__ import annotations

import argparse
import json
import random
import subprocess
import sys
import time
from pathlib import Path

from critic.datagen.tamper_data import build_samples, humaneval_items
from critic.evaluate import bootstrap_ratio
from critic.review.settings import ReviewSettings

ROOT = Path(__file__).resolve().parents[1]


def build(tasks: int, seed: int) -> list[dict]:
    items = humaneval_items()
    random.Random(seed).shuffle(items)
    samples, _ = build_samples(items[:tasks], 1, seed)
    rows = []
    for s in samples:
        common = {"task_id": s["task_id"], "bug_kind": s["bug_kind"]}
        rows.append(common | {"code": s["code"], "is_buggy": True, "bug_lines": list(s["bug_lines"])})
        rows.append(common | {"code": s["original"], "is_buggy": False, "bug_lines": []})
    return rows


def measure(rows: list[dict], audited: list[dict], threshold: float, resamples: int, seed: int) -> dict:
    flagged = [
        row["critic_max_confidence"] > 0 and row["critic_max_confidence"] >= threshold for row in audited
    ]
    buggy = [row["is_buggy"] for row in rows]
    hits = [f and b for f, b in zip(flagged, buggy, strict=True)]
    tasks = [row["task_id"] for row in rows]
    on_bug = []
    for row, found, hit in zip(rows, audited, hits, strict=True):
        if hit:
            top = max(json.loads(found["critic_findings"]), key=lambda f: f["score"])
            on_bug.append(any(top["line"] <= n <= top["end_line"] for n in row["bug_lines"]))
    return {
        "threshold": threshold,
        "flagged": sum(flagged),
        "precision": bootstrap_ratio(hits, flagged, tasks, resamples, seed),
        "recall": bootstrap_ratio(hits, buggy, tasks, resamples, seed),
        "false_alarm_rate": bootstrap_ratio(
            [f and not b for f, b in zip(flagged, buggy, strict=True)],
            [not b for b in buggy],
            tasks,
            resamples,
            seed,
        ),
        "top_finding_on_bug": sum(on_bug) / len(on_bug) if on_bug else None,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=50)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--bootstrap", type=int, default=1000)
    parser.add_argument(
        "--out", type=Path, default=ROOT / "bench" / "results" / "audit", help="under the repository"
    )
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    data = args.out / "humaneval_mix.jsonl"
    rows = build(args.tasks, args.seed)
    data.write_text("".join(json.dumps(row) + "\n" for row in rows))
    print(f"{data}: {len(rows)} rows from {len(rows) // 2} of {args.tasks} tasks", flush=True)

    relative = (data.resolve().relative_to(ROOT), (args.out / "audit").resolve().relative_to(ROOT))
    command = [sys.executable, "-m", "critic.cli", "audit", str(relative[0]), "--column", "code"]
    command += ["--label-column", "is_buggy", "--min-score", "0", "--out", str(relative[1])]
    start = time.perf_counter()
    subprocess.run(command, check=True, cwd=ROOT)
    seconds = time.perf_counter() - start

    from datasets import load_from_disk

    audited = load_from_disk(str(args.out / "audit" / "dataset")).to_list()
    summary = json.loads((args.out / "audit" / "summary.json").read_text())
    default = ReviewSettings().min_score
    metrics = {
        "rows": len(rows),
        "tasks": len(rows) // 2,
        "seed": args.seed,
        "audit_seconds": round(seconds, 1),
        "average_precision": summary["labels"]["average_precision"],
        "at_default_min_score": measure(rows, audited, default, args.bootstrap, args.seed),
        "any_finding": measure(rows, audited, 0.0, args.bootstrap, args.seed),
    }
    (args.out / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
    print(json.dumps(metrics, indent=2))


if __name__ == "__main__":
    main()
