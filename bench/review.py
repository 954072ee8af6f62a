"""`critic review` latency with the default critic, and the review path's decode speed.

    python bench/review.py [--threads 2] [--repeats 3] [--cache-only]

Measured in one run on this machine:
- cold: a fresh `critic review --no-cache FILE` process, from start to the first line of output (a
  finding) and to exit, for a ~100-line and a ~1,000-line file of the standard library;
- cache: a second `critic review` of the unchanged ~1,000-line file (every chunk a cache hit, in a
  temporary cache directory) against the cold start of a 10-line file, side by side (issue 16:
  at most 1.5x, so that a hit costs little more than importing torch); `--cache-only` measures
  just this;
- warm: per-file latency of the review engine with the critic already loaded, same files;
- decode: tokens/s of the review path's sampler against `generate()` on the default critic's
  policy, batch 1 and 4 (bench/decode.py, the same comparison at the shipped weights).

Files are the stdlib modules whose line counts are closest to 100 and 1,000 (fixed by name below, so
runs compare). Targets from issue 5: cold under 3 s for 100 lines, under 1 s per further 100 lines,
decode at least 3x generate().
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

import torch
from decode import decode_rates, print_rates

from critic.review.reviewer import SourceFile, load_critic, review
from critic.review.settings import ReviewSettings

STDLIB = Path(sysconfig.get_paths()["stdlib"])
FILES = {"100 lines": STDLIB / "_sitebuiltins.py", "1,000 lines": STDLIB / "functools.py"}
SMALL = STDLIB / "venv" / "__main__.py"  # 10 lines: the cold start a cache hit is measured against


def cold(path: Path, *options: str, env: dict[str, str] | None = None) -> tuple[float, float | None, int]:
    """Seconds to exit, seconds to the first output line (None without findings), exit code."""
    start = time.perf_counter()
    process = subprocess.Popen(
        [sys.executable, "-m", "critic.cli", "review", *options, str(path)],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        env=env,
    )
    first = None
    for _ in process.stdout:
        if first is None:
            first = time.perf_counter() - start
    code = process.wait()
    return time.perf_counter() - start, first, code


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--cache-only", action="store_true", help="Measure only the warm cache.")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    settings = ReviewSettings()
    print(f"torch {torch.__version__}, {args.threads} threads, default critic: {settings.model.parent}")
    print(
        f"FSBS n={settings.samples} d={settings.rounds} k={settings.keep}, "
        f"{settings.max_new_tokens} tokens/round, {settings.chunk_tokens}-token chunks\n"
    )
    if args.cache_only:
        warm_cache(args.repeats)
        return

    print(
        f"{'file':<34}{'lines':>7}{'cold exit s':>13}{'first finding s':>17}{'warm s':>9}"
        f"{'s / 100 lines':>15}"
    )
    critic = load_critic(settings)
    for label, path in FILES.items():
        text = path.read_text(encoding="utf-8")
        lines = text.count("\n")
        colds = [cold(path, "--no-cache") for _ in range(args.repeats)]
        exit_s = min(c[0] for c in colds)
        firsts = [c[1] for c in colds if c[1] is not None]
        first = f"{min(firsts):.2f}" if firsts else "no finding"
        warm = []
        for _ in range(args.repeats):
            start = time.perf_counter()
            review(critic, [SourceFile(str(path), text)], settings)
            warm.append(time.perf_counter() - start)
        best = min(warm)
        print(
            f"{label + ' (' + path.name + ')':<34}{lines:>7}{exit_s:>13.2f}{first:>17}{best:>9.2f}"
            f"{best / lines * 100:>15.2f}"
        )
        sys.stdout.flush()
    print(
        f"(warm spread: median {statistics.median(warm):.2f} s over {args.repeats} runs of the last file)\n"
    )

    warm_cache(args.repeats)
    print("decode, default critic's policy (greedy, 500-token prompt, 128 new tokens):")
    print_rates(decode_rates(critic.policy, repeats=args.repeats))


def warm_cache(repeats: int) -> None:
    """A full cache hit on the 1,000-line file against a 10-line cold start, alternated, best of each."""
    big = FILES["1,000 lines"]
    with tempfile.TemporaryDirectory(prefix="critic-bench-cache-") as directory:
        env = {**os.environ, "CRITIC_CACHE_DIR": directory}
        fill = cold(big, env=env)[0]
        small, hits = [], []
        for _ in range(repeats):
            small.append(cold(SMALL, "--no-cache")[0])
            hits.append(cold(big, env=env)[0])
    lines = {path: path.read_text(encoding="utf-8").count("\n") for path in (big, SMALL)}
    rows = [
        (f"first run, {big.name} ({lines[big]} lines), filling the cache", fill),
        (f"second run, {big.name}, every chunk a hit", min(hits)),
        (f"cold start, {SMALL.parent.name}/{SMALL.name} ({lines[SMALL]} lines), --no-cache", min(small)),
    ]
    print(f"warm cache (best of {repeats} alternated runs each):")
    for label, seconds in rows:
        print(f"  {label:<62}{seconds:6.2f} s")
    print(f"  ratio hit / 10-line cold start: {min(hits) / min(small):.2f} (issue 16: at most 1.5)\n")
    sys.stdout.flush()


if __name__ == "__main__":
    main()
