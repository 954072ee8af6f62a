"""Cost of quote-constrained decoding per generated token (critic.inference.quoting), with and without
constraining the comment's inline code spans.

    python bench/quoting.py [--functions 40] [--min-lines 50] [--max-lines 110]

Critiques are written the way a critic writes them: a forced fence, a verbatim quote of the bug line
and the tampered code's reference description as the comment (its inline code is verbatim code).
Each token costs one mask() (the allowed or forbidden tokens) and one advance(). "cold": the first
critique of a code (the code's suffix automaton and each comment state are worked out then);
"warm": the same critique again right after, as FSBS's other samples of a chunk see it. Comment steps are
the tokens after the quote's closing fence.
"""

from __future__ import annotations

import argparse
import random
import statistics
import sysconfig
import time
from pathlib import Path

import critic.inference.quoting as quoting
from critic.core.tokenizer import load_tokenizer
from critic.datagen.tamper import tamper
from critic.datagen.tamper_data import directory_items
from critic.inference.quoting import QuoteConstraint, TokenTrie


def critiques(functions: int, min_lines: int, max_lines: int) -> list[tuple[str, str]]:
    """(tampered code, critique after the forced fence) pairs from stdlib functions."""
    stdlib = Path(sysconfig.get_paths()["stdlib"])
    items = [i for d in ("email", "asyncio") for i in directory_items(stdlib / d, min_lines, max_lines)]
    out = []
    for i, item in enumerate(items[:functions]):
        for t in tamper(item.code, random.Random(i), max_samples=4):
            line = t.code.splitlines()[t.bug_lines[0] - 1].strip()
            out.append((t.code, f"\n{line}\n```\n{t.description}"))
    return out


def step_times(pairs, tokenizer, trie: TokenTrie, code_spans: bool) -> dict[str, list[float]]:
    times: dict[str, list[float]] = {f"{a} {b}": [] for a in ("cold", "warm") for b in ("quote", "comment")}
    quoting._shared.cache_clear()
    for code, text in pairs:
        for phase in ("cold", "warm"):
            constraint = QuoteConstraint(code, trie, code_spans=code_spans)
            part = "quote"
            for token in tokenizer.encode(text).ids:
                if not constraint.active:
                    break  # without code_spans the comment is not followed
                start = time.perf_counter()
                constraint.mask()
                constraint.advance(token)
                times[f"{phase} {part}"].append(time.perf_counter() - start)
                if next(iter(constraint.states))[0] in ("tail", "free"):
                    part = "comment"
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--functions", type=int, default=40)
    parser.add_argument("--min-lines", type=int, default=50)
    parser.add_argument("--max-lines", type=int, default=110)
    args = parser.parse_args()
    tokenizer = load_tokenizer()
    trie = TokenTrie.of(tokenizer)
    pairs = critiques(args.functions, args.min_lines, args.max_lines)
    lines = statistics.mean(code.count("\n") for code, _ in pairs)
    span = f"{args.min_lines}-{args.max_lines}"
    print(f"{len(pairs)} critiques of functions of {span} lines (mean {lines:.0f})")
    print(f"{'':28}{'tokens':>8}{'mean ms':>10}{'p50 ms':>9}{'p99 ms':>9}{'max ms':>9}")
    for code_spans in (False, True):
        for name, values in step_times(pairs, tokenizer, trie, code_spans).items():
            if not values:
                continue
            values.sort()
            p50, p99 = values[len(values) // 2], values[int(0.99 * len(values))]
            label = f"{'spans' if code_spans else 'quotes only'}, {name}"
            print(
                f"{label:28}{len(values):>8}{1e3 * statistics.mean(values):>10.3f}"
                f"{1e3 * p50:>9.3f}{1e3 * p99:>9.3f}{1e3 * values[-1]:>9.1f}"
            )


if __name__ == "__main__":
    main()
