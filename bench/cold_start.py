"""Cold `critic review` of a ~100-line file at several git revisions, runs alternated, in one process.

    python bench/cold_start.py REV [REV ...] [--runs 7]

Each revision is checked out into a temporary git worktree and run with it first on PYTHONPATH (the
installed package data, i.e. the shipped critic, is shared), from a fresh process each time and with an
empty review cache, on the standard library's `_sitebuiltins.py` (103 lines, bench/review.py's file).
Runs alternate between revisions so that load on the machine hits all of them alike; prints each
revision's median and min, and its median relative to the first revision's.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import sysconfig
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
FILE = Path(sysconfig.get_paths()["stdlib"]) / "_sitebuiltins.py"


def cold_run(tree: Path, cache: Path) -> float:
    env = os.environ | {"PYTHONPATH": str(tree), "CRITIC_CACHE_DIR": str(cache)}
    start = time.perf_counter()
    result = subprocess.run(
        [sys.executable, "-m", "critic.cli", "review", str(FILE)], env=env, cwd=cache, capture_output=True
    )
    elapsed = time.perf_counter() - start
    if result.returncode not in (0, 1):
        raise SystemExit(f"critic review failed in {tree}: {result.stderr.decode()[-500:]}")
    return elapsed


def git(*args: str, check: bool = True) -> None:
    subprocess.run(["git", "-C", str(ROOT), *args], check=check)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("revisions", nargs="+")
    parser.add_argument("--runs", type=int, default=7)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        trees = {}
        for rev in args.revisions:
            tree = Path(scratch) / f"tree{len(trees)}"
            subprocess.run(
                ["git", "-C", str(ROOT), "worktree", "add", "-q", "--detach", str(tree), rev], check=True
            )
            trees[rev] = tree
        try:
            times: dict[str, list[float]] = {rev: [] for rev in trees}
            for _ in range(args.runs):
                for rev, tree in trees.items():
                    times[rev].append(cold_run(tree, Path(tempfile.mkdtemp(dir=scratch))))
        finally:
            for tree in trees.values():
                subprocess.run(
                    ["git", "-C", str(ROOT), "worktree", "remove", "--force", str(tree)], check=False
                )
    first = statistics.median(times[args.revisions[0]])
    print(f"cold `critic review {FILE.name}`, {args.runs} alternated runs each")
    for rev, runs in times.items():
        median = statistics.median(runs)
        print(f"{rev:>12}: median {median:.2f} s, min {min(runs):.2f} s, {median / first:.3f}x the first")


if __name__ == "__main__":
    main()
