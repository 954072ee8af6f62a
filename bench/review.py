"""`critic review` latency with the default critic, and the review path's decode speed.

    python bench/review.py [--threads 2] [--repeats 3]

Measured in one run on this machine:
- cold: a fresh `critic review FILE` process, from start to the first line of output (a finding)
  and to exit, for a ~100-line and a ~1,000-line file of the standard library;
- warm: per-file latency of the review engine with the critic already loaded, same files;
- decode: tokens/s of the review path's sampler against `generate()` on the default critic's
  policy, batch 1 and 4 (bench/decode.py, the same comparison at the shipped weights).

Files are the stdlib modules whose line counts are closest to 100 and 1,000 (fixed by name below, so
runs compare). Targets from issue 5: cold under 3 s for 100 lines, under 1 s per further 100 lines,
decode at least 3x generate().
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import sysconfig
import time
from pathlib import Path

import torch
from decode import decode_rates, print_rates

from critic.review.reviewer import SourceFile, load_critic, review
from critic.review.settings import ReviewSettings

STDLIB = Path(sysconfig.get_paths()["stdlib"])
FILES = {"100 lines": STDLIB / "_sitebuiltins.py", "1,000 lines": STDLIB / "functools.py"}


def cold(path: Path) -> tuple[float, float | None, int]:
    """Seconds to exit, seconds to the first output line (None without findings), exit code."""
    start = time.perf_counter()
    process = subprocess.Popen(
        [sys.executable, "-m", "critic.cli", "review", str(path)],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
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
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    settings = ReviewSettings()
    print(f"torch {torch.__version__}, {args.threads} threads, default critic: {settings.model.parent}")
    print(
        f"FSBS n={settings.samples} d={settings.rounds} k={settings.keep}, "
        f"{settings.max_new_tokens} tokens/round, {settings.chunk_tokens}-token chunks\n"
    )

    print(
        f"{'file':<34}{'lines':>7}{'cold exit s':>13}{'first finding s':>17}{'warm s':>9}"
        f"{'s / 100 lines':>15}"
    )
    critic = load_critic(settings)
    for label, path in FILES.items():
        text = path.read_text(encoding="utf-8")
        lines = text.count("\n")
        colds = [cold(path) for _ in range(args.repeats)]
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

    print("decode, default critic's policy (greedy, 500-token prompt, 128 new tokens):")
    print_rates(decode_rates(critic.policy, repeats=args.repeats))


if __name__ == "__main__":
    main()
