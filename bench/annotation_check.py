"""*Check against critic* timed, and what its search costs in catch rate: the old check against the new.

    python bench/annotation_check.py [--functions 12] [--old-functions 3] [--lines 25 35] [--seed 0]
                                     [--threads 2] [--out FILE]

Functions: the HumanEval problems (prompt + canonical solution, code the shipped critic never trained
on) whose length is within `--lines`, in task order, each tampered once by the automatic tamperer
(`critic.datagen.tamper`, seeded), so every run checks the same bugs. Checked with the shipped critic:

- new: `check_tampering` as the annotation app runs it (annotation_app/checker.py: one repair search at
  `critic review`'s min-score and max-findings). Cold is a fresh process from start
  to the first check's result: importing torch, loading the critic (the app loads it on the first
  check) and checking; warm is each later check with the critic loaded.
- old: the check before the repair search, three FSBS searches (seeds 0, 1, 2) at FSBSSettings'
  defaults, each critique rated; caught when a search's critique catches the bug. Minutes per function
  on 2 cores, so only the first `--old-functions`.

Catch rate: the share of checks whose critique the rubric rater (who knows the bug) rates as including
it (`Rating.caught`); for the old check, per search and for "all three caught" (the old `adversarial`
was "not all caught"). The load average is printed before and after: the target (issue 26, item 13) is
at most 10 s for a 30-line function on an idle 2-core machine.
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def functions(lines: tuple[int, int], count: int, seed: int) -> list[tuple[str, str, list[int], str]]:
    """(task id, tampered code, bug lines, description) of the first `count` HumanEval functions of
    `lines` lines, each tampered once."""
    from critic.datagen.tamper import tamper
    from critic.datagen.tamper_data import humaneval_items

    out = []
    for item in humaneval_items():
        if not lines[0] <= len(item.code.splitlines()) <= lines[1]:
            continue
        tampered = tamper(item.code, random.Random(f"{seed}:{item.task_id}"))
        if tampered:
            t = tampered[0]
            out.append((item.task_id, t.code, t.bug_lines, t.description))
        if len(out) == count:
            break
    return out


def cold_child(lines: tuple[int, int], seed: int, threads: int) -> None:
    """In a fresh process, as in a server that has not checked yet (its web stack already imported):
    import torch, load the critic as the server does (lazy_critic) and run the first check."""
    from critic.annotation_app.checker import check_tampering
    from critic.annotation_app.server import lazy_critic

    task, code, bug_lines, description = functions(lines, 1, seed)[0]
    start = time.perf_counter()
    import torch

    torch.set_num_threads(threads)
    imported = time.perf_counter()
    critic = lazy_critic()()
    loaded = time.perf_counter()
    check_tampering(critic, code, bug_lines, description)
    done = time.perf_counter()
    print(f"{imported - start:.2f} {loaded - imported:.2f} {done - loaded:.2f}")


def cold(lines: tuple[int, int], seed: int, threads: int) -> tuple[float, list[float]]:
    """Seconds of a whole fresh process (interpreter start, the web stack, picking the function), and
    (torch import, critic load, check) inside it: what the first check in a running server pays."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    argv = [sys.executable, __file__, "--cold-child", "--threads", str(threads), "--seed", str(seed)]
    argv += ["--lines", *map(str, lines)]
    start = time.perf_counter()
    out = subprocess.run(argv, capture_output=True, text=True, check=True, env=env).stdout
    return time.perf_counter() - start, [float(x) for x in out.split()]


def old_check(critic, code: str, bug_lines: list[int], description: str) -> list[bool]:
    """The check before the repair search: three FSBS searches, each critique rated."""
    from critic.annotation_app.checker import caught
    from critic.inference.fsbs import FSBSSettings

    prompt = critic.prompt_ids(code)
    critiques = [critic.search([prompt], [code], FSBSSettings(), seed=s)[0].best.critique for s in range(3)]
    return [caught(c, code, bug_lines, description) for c in critiques]


def settings() -> str:
    """The new check's search settings, as checker.check_tampering uses them."""
    from critic.inference.repair_scoring import ROW_TOKENS, WINDOW
    from critic.review.reviewer import LOCATED_PER_CHUNK
    from critic.review.settings import ReviewSettings

    review = ReviewSettings()
    return (
        f"one repair search, every candidate repair scored (margin window {WINDOW} tokens, packed rows of "
        f"{ROW_TOKENS} tokens), {max(LOCATED_PER_CHUNK, review.max_findings)} lines located, reported at "
        f"min-score {review.min_score}, max-findings {review.max_findings}"
    )


def load() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--functions", type=int, default=12)
    parser.add_argument("--old-functions", type=int, default=3)
    parser.add_argument("--lines", type=int, nargs=2, default=(25, 35))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", type=Path)
    parser.add_argument("--cold-child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    lines = tuple(args.lines)
    if args.cold_child:  # before importing torch: its import is part of a cold check
        cold_child(lines, args.seed, args.threads)
        return
    import torch

    from critic.inference.fsbs import FSBSSettings

    torch.set_num_threads(args.threads)

    from critic.annotation_app.checker import check_tampering
    from critic.annotation_app.server import lazy_critic

    report = [
        f"# python bench/annotation_check.py {' '.join(sys.argv[1:])}".rstrip(),
        f"torch {torch.__version__}, {args.threads} threads, default critic; load average at start {load()}",
        f"new check: {settings()}",
        "old check: 3 FSBS searches (seeds 0-2) at FSBSSettings() = "
        f"{FSBSSettings().samples} samples, {FSBSSettings().rounds} rounds, keep {FSBSSettings().keep}",
    ]
    print("\n".join(report), flush=True)

    def say(line: str) -> None:
        report.append(line)
        print(line, flush=True)

    total, (imported, loaded, first) = cold(lines, args.seed, args.threads)
    say(
        f"cold first check in a server: {imported + loaded + first:.2f} s (torch import {imported:.2f}, "
        f"critic load {loaded:.2f}, check {first:.2f}); a whole fresh process {total:.2f} s"
    )
    critic = lazy_critic()()
    picked = functions(lines, args.functions, args.seed)
    say(f"{len(picked)} functions of {lines[0]}-{lines[1]} lines, one tampering each (seed {args.seed})")
    say(f"{'task':<16} {'lines':>5} {'new s':>7} {'new caught':>10} {'old s':>7} {'old caught':>14}")
    new_times, new_hits, old_times, old_hits = [], [], [], []
    for i, (task, code, bug_lines, description) in enumerate(picked):
        start = time.perf_counter()
        result = check_tampering(critic, code, bug_lines, description)
        new_times.append(time.perf_counter() - start)
        new_hits.append(result.caught[0])
        old = ""
        if i < args.old_functions:
            start = time.perf_counter()
            hits = old_check(critic, code, bug_lines, description)
            old_times.append(time.perf_counter() - start)
            old_hits.append(hits)
            old = f"{old_times[-1]:7.1f} {str([int(h) for h in hits]):>14}"
        say(f"{task:<16} {len(code.splitlines()):>5} {new_times[-1]:7.2f} {int(new_hits[-1]):>10} {old}")
    say(
        f"new (repair search, warm): median {statistics.median(new_times):.2f} s, "
        f"max {max(new_times):.2f} s; caught {sum(new_hits)}/{len(new_hits)}"
    )
    if old_times:
        per_search = sum(map(sum, old_hits))
        every = sum(all(h) for h in old_hits)
        same = new_hits[: len(old_hits)]
        say(
            f"old (3 FSBS searches, warm): median {statistics.median(old_times):.1f} s, "
            f"max {max(old_times):.1f} s; caught by a search {per_search}/{3 * len(old_hits)}, "
            f"by all three {every}/{len(old_hits)} "
            f"(new on the same functions: {sum(same)}/{len(same)})"
        )
    say(f"load average at end {load()}")
    if args.out:
        args.out.write_text("\n".join(report) + "\n")


if __name__ == "__main__":
    main()
