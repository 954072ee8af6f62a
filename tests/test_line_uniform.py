"""Line-uniform tampering: the bug line is drawn uniformly among lines with sites, so long lines (which
hold more sites) no longer carry the bug more often; every tampering still compiles and differs."""

from __future__ import annotations

import random
import statistics

import pytest

from critic.datagen.tamper import tamper
from critic.datagen.tamper_data import SourceItem, build_samples, humaneval_items
from critic.evaluate import code_tokens_per_line


@pytest.fixture(scope="module")
def functions() -> list[str]:
    return [item.code for item in humaneval_items()]


def bug_line_tokens(code: str, seed: int, line_uniform: bool, n: int = 8) -> list[int]:
    """Code tokens on the first bug line of each of n tamperings."""
    found = tamper(code, random.Random(seed), n, line_uniform=line_uniform)
    return [code_tokens_per_line(t.code)[t.bug_lines[0] - 1] for t in found]


def test_line_uniform_bug_lines_are_shorter(functions):
    # Paired over HumanEval's 164 functions: natural minus line-uniform mean bug-line length. The
    # natural draw favours long lines (they hold more sites of more kinds); line-uniform does not.
    diffs = []
    for seed, code in enumerate(functions):
        natural, uniform = bug_line_tokens(code, seed, False), bug_line_tokens(code, seed, True)
        if natural and uniform:
            diffs.append(statistics.mean(natural) - statistics.mean(uniform))
    assert len(diffs) > 150
    mean = statistics.mean(diffs)
    t = mean / (statistics.stdev(diffs) / len(diffs) ** 0.5)
    assert mean > 0 and t > 2.6, f"mean difference {mean:.2f} tokens, paired t {t:.2f}"  # one-sided p < 0.005


def test_line_uniform_tamperings_compile_and_differ(functions):
    for seed, code in enumerate(functions):
        found = tamper(code, random.Random(seed), 4, line_uniform=True)
        # as many as the natural draw finds (a few functions, like `return len(string)`, have no site)
        assert len(found) == len(tamper(code, random.Random(seed), 4)), seed
        assert len({t.code for t in found}) == len(found)
        for t in found:
            assert t.code != code
            compile(t.code, "<tampered>", "exec")
            assert all(1 <= n <= len(t.code.split("\n")) for n in t.bug_lines)


def test_line_uniform_is_deterministic_and_draws_lines_evenly():
    code = "def f(a, b):\n    x = a + b - a * b + a // b - a % b\n    if a < b:\n"
    code += "        return x\n    return -x\n"
    first = tamper(code, random.Random(5), 3, line_uniform=True)
    assert first == tamper(code, random.Random(5), 3, line_uniform=True)
    # One draw per seed: every line with sites comes up about equally often, although line 2 holds
    # most of the sites.
    counts: dict[int, int] = {}
    for seed in range(600):
        (t,) = tamper(code, random.Random(seed), 1, line_uniform=True)
        counts[t.bug_lines[0]] = counts.get(t.bug_lines[0], 0) + 1
    assert len(counts) >= 3
    expected = 600 / len(counts)
    assert all(0.6 * expected < c < 1.4 * expected for c in counts.values()), counts


def test_build_samples_passes_line_uniform_through():
    code = "def f(a, b):\n    x = a + b - a * b\n    if a < b:\n        return x\n    return -x\n"
    item = SourceItem("t", code, "", "test", "t")
    samples, _ = build_samples([item], 2, 7, line_uniform=True)
    drawn = tamper(code, random.Random(7), 6, line_uniform=True)
    assert [s["code"] for s in samples] == [t.code for t in drawn][:2]
