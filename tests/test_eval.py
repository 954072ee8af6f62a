"""`critic eval`: metric arithmetic on hand-made critiques, the bootstrap, baselines and backtick check
on hand-made code, the post-hoc review filter, and the command end to end on a tiny critic."""

from __future__ import annotations

import json
import random

import pytest
from cli_process import run_critic
from conftest import BUG_CRITIQUE, BUG_LINE, BUGGY_CODE, with_comment

from critic.core.critique import code_spans, format_critique
from critic.datagen.rating import Rating
from critic.evaluate import (
    BASELINES,
    _dial_at,
    baseline_line,
    baseline_metrics,
    bootstrap_auc,
    bootstrap_ratio,
    cbi_difference,
    code_tokens_per_line,
    detection_auc,
    fix_restores,
    fixes_parse,
    judge,
    localization,
    non_body_lines,
    random_line_critiques,
    reliability,
    reported,
    review_raw,
    spans_verbatim,
)
from critic.review.fixes import Fix
from critic.review.reviewer import Finding
from critic.review.settings import ReviewSettings

FIXED = BUGGY_CODE.replace("range(len(xs) - 1)", "range(len(xs))")
SAMPLE = {
    "task_id": "t0",
    "original": FIXED,
    "code": BUGGY_CODE,
    "test": "",
    "bug_kind": "off_by_one_range",
    "bug_lines": [BUG_LINE],
    "description": "The loop stops one element early, so the last element is never added.",
    "verified": False,
    "source": "test",
}


def test_metrics_arithmetic():
    samples = [SAMPLE] * 4
    critiques = [
        BUG_CRITIQUE,  # hits the bug: 1 quoted line, 1 bug line
        format_critique([("total = 0", "This initial value is wrong, it breaks the sum.")]),  # fake problem
        format_critique(
            [("return total / len(xs)", "Wrong result."), (BUG_CRITIQUE.split("\n")[1], "Off by one.")]
        ),
        format_critique([("no_such_code()", "Crashes.")]),  # hallucinated quote
    ]
    metrics, ratings = judge(critiques, samples)
    assert [r.caught for r in ratings] == [True, False, True, False]
    assert metrics.samples == 4
    assert metrics.cbi_rate == 0.5
    assert metrics.fake_problem_rate == 0.75  # the wrong init, the wrong return, the hallucination
    assert metrics.hallucinated_quote_rate == 0.25
    assert metrics.mean_highlights == (1 + 1 + 2 + 0) / 4  # hallucinated quotes are not highlights
    assert metrics.line_precision == pytest.approx(2 / 4)  # lines 3, 2, 5 + 3 quoted; 3 twice a bug
    assert metrics.line_recall == pytest.approx(2 / 4)


def test_random_line_baseline_quotes_a_real_line():
    samples = [SAMPLE, {**SAMPLE, "code": "x_value = 1\n", "bug_lines": [1]}]
    critiques = random_line_critiques(samples, seed=3)
    assert critiques == random_line_critiques(samples, seed=3)
    metrics, ratings = judge(critiques, samples)
    assert ratings[1].caught  # a one-line file: the random line is the bug line
    assert metrics.hallucinated_quote_rate == 0.0


def test_cbi_at_matched_fake_problem_rate_reads_the_other_dial_between_its_points():
    def ratings(caught: list[bool], fake: list[bool]) -> list[Rating]:
        return [
            Rating(cbi=7 if c else 1, comprehensiveness=1, nitpick=False, fake_problem=f,
                   hallucinated_quote=False, conciseness=7, overall=4, rationale="")
            for c, f in zip(caught, fake, strict=True)
        ]  # fmt: skip

    clusters = ["a", "b", "c", "d"]
    # Theirs: (fake 0.0, CBI 0.25) at LM 0 and (fake 0.5, CBI 0.75) at LM 1; ours: fake 0.25, CBI 0.75.
    theirs = {
        0.0: ratings([True, False, False, False], [False] * 4),
        1.0: ratings([True, True, True, False], [True, True, False, False]),
    }
    ours = {0.0: ratings([True, True, False, True], [True, False, False, False])}
    (row,) = cbi_difference(ours, theirs, clusters, resamples=200, seed=0)
    assert row["fake_problem_rate"] == 0.25
    assert row["sft_cbi_at_matched"] == pytest.approx(0.5)  # halfway along their dial
    assert row["matched"]["value"] == pytest.approx(0.25)
    assert row["matched"]["low"] <= 0.25 <= row["matched"]["high"]
    assert row["same_length_modifier"]["value"] == pytest.approx(0.5)  # against their LM 0
    # Beyond the other dial's ends it is flat, and ties keep their best CBI.
    assert _dial_at(0.9, [0.0, 0.5, 0.5], [0.1, 0.3, 0.6]) == pytest.approx(0.6)
    assert _dial_at(-1.0, [0.2, 0.5], [0.1, 0.6]) == pytest.approx(0.1)


# -- bootstrap ---------------------------------------------------------------------------------------


def test_bootstrap_resamples_clusters_not_samples():
    # Cluster "a": three hits; cluster "b": one miss. Resampling two clusters gives aa (1.0), ab or ba
    # (0.75: a ratio of sums, not a mean of cluster rates) and bb (0.0), with chances 1/4, 1/2, 1/4.
    hits, ones, clusters = [1, 1, 1, 0], [1] * 4, ["a", "a", "a", "b"]
    ci = bootstrap_ratio(hits, ones, clusters, resamples=1000, seed=0)
    assert ci == {"value": 0.75, "low": 0.0, "high": 1.0}
    assert bootstrap_ratio(hits, ones, clusters, 1000, seed=0) == ci  # seeded
    # The same four samples as four clusters: the interval can end strictly inside (0, 1).
    alone = bootstrap_ratio(hits, ones, ["a", "b", "c", "d"], 1000, seed=0)
    assert alone["value"] == 0.75 and alone["low"] > 0.0 and alone["high"] == 1.0


def test_bootstrap_ratio_of_sums_and_normal_width():
    # Line precision: 1 of 1 flagged lines, 0 of 1, 3 of 4 -> 4 / 6 overall.
    assert bootstrap_ratio([1, 0, 3], [1, 1, 4], ["x", "y", "z"], 100, 0)["value"] == pytest.approx(4 / 6)
    assert bootstrap_ratio([2, 2], [2, 2], ["x", "y"], 100, 0) == {"value": 1.0, "low": 1.0, "high": 1.0}
    assert bootstrap_ratio([0, 0], [0, 0], ["x", "y"], 100, 0) == {"value": None, "low": None, "high": None}
    # 400 independent clusters at rate 0.5: the 95% interval is about 0.5 +- 1.96 * sqrt(0.25 / 400).
    n = 400
    ci = bootstrap_ratio([i % 2 for i in range(n)], [1] * n, [str(i) for i in range(n)], 1000, seed=1)
    half = 1.96 * (0.25 / n) ** 0.5
    assert ci["value"] == 0.5
    assert ci["low"] == pytest.approx(0.5 - half, abs=0.01)
    assert ci["high"] == pytest.approx(0.5 + half, abs=0.01)


# -- baselines and helpers on hand-made code ---------------------------------------------------------

HAND_MADE = '''def f(xs):
    """A very long docstring line that has many, many words in it: more than any code line here."""
    # a long comment: comment comment comment comment comment comment comment comment comment comment
    total = 0

    for x in xs:
        total += x * 2 + len(xs)
    message = "a long string literal with lots of words words words words words words words words"
    label = f"{total} {xs[0]} {x} {total} {xs[0]} {x} {total} {xs[0]} {x} {total} {xs[0]} {x}"
    text = """
    inside a string
    """
    return total, message, label, text
'''


def test_code_tokens_ignore_strings_comments_and_layout():
    counts = code_tokens_per_line(HAND_MADE)
    assert counts[:4] == [6, 0, 0, 3]  # def f ( xs ) : / docstring / comment / total = 0
    assert counts[4:7] == [0, 5, 10]  # blank / for x in xs : / total += x * 2 + len ( xs )
    assert counts[7:9] == [2, 2]  # the long string and the long f-string count as nothing
    assert counts[9:12] == [2, 0, 0]  # text = """ / inside the string / """
    assert counts[12] == 8  # return total , message , label , text


def test_baselines_on_hand_made_code():
    rng = random.Random(0)
    assert baseline_line(HAND_MADE, "longest_line", rng) == 7  # not the comment, not the strings
    tie = "a = b\nc = d\n"
    assert baseline_line(tie, "longest_line", rng) == 1  # the first of equals
    lines = HAND_MADE.split("\n")
    nonblank = {n for n, line in enumerate(lines, start=1) if line.strip()}
    random_lines = {baseline_line(HAND_MADE, "random_line", rng) for _ in range(500)}
    assert random_lines == nonblank
    code_lines = {baseline_line(HAND_MADE, "random_code_line", rng) for _ in range(500)}
    assert code_lines == {1, 4, 6, 7, 8, 9, 10, 13}  # no docstring, comment, blank or string-only line
    assert baseline_line("# only a comment\n", "longest_line", rng) is None

    tampered = {"task_id": "t", "code": HAND_MADE, "bug_lines": [7]}
    clean = {"task_id": "t", "code": HAND_MADE, "bug_lines": []}
    metrics = baseline_metrics({"humaneval": [tampered] * 3, "clean": [clean]}, resamples=20, seed=0)
    longest = metrics["longest_line"]["humaneval"]
    assert longest["samples"] == 3
    assert longest["top_on_bug"]["value"] == longest["line_precision"]["value"] == 1.0
    assert longest["silent_rate"]["value"] == 0.0
    assert set(metrics) == set(BASELINES)
    for kind in BASELINES:
        assert metrics[kind]["clean"] == {
            "files": 1,
            "false_alarm_rate": {"value": 1.0, "low": 1.0, "high": 1.0},
        }


FAIR = '''"""Module docstring."""
import collections.abc as abstract_base_classes, itertools, functools, operator, sys


@functools.lru_cache(maxsize=None, typed=not True)
def weighted_total(values: list[int], weights: list[int],
                   default: int | None = None) -> dict[str, int]:
    """Add values times weights.

    >>> weighted_total([1, 2, 3], [4, 5, 6]) + weighted_total([7, 8, 9], [1, 2, 3]) + [x for x in y]
    """
    from operator import add, mul, sub, truediv, floordiv, mod
    total = sum(map(mul, values, weights))

    def helper(
        a, b, c=None, d=None, e=None
    ):
        """Nested docstring."""
        return a + b
    return {"total": total or default}
'''


def test_fair_baseline_skips_headers_docstrings_and_imports():
    counts = code_tokens_per_line(FAIR)
    # the imports, the decorator and the header lines (nested too) have more code tokens than any line
    # of the body (line 13: 13); the docstring line, longest of all by characters, has none
    assert [counts[n - 1] for n in (2, 5, 6, 7, 12, 16)] == [14, 14, 17, 16, 14, 15]
    assert counts[12] == 13 and counts[9] == 0
    assert non_body_lines(FAIR) == {1, 2, 5, 6, 7, 8, 9, 10, 11, 12, 15, 16, 17, 18}
    rng = random.Random(0)
    assert baseline_line(FAIR, "longest_line", rng) == 6  # the signature
    assert baseline_line(FAIR, "longest_body_line", rng) == 13  # total = sum(...)
    shorter = FAIR.replace("sum(map(mul, values, weights))", "0")
    assert baseline_line(shorter, "longest_body_line", rng) == 20  # now the return line
    # nothing but headers, docstrings and imports: the plain longest line
    assert baseline_line("import os, sys\ndef f(a, b):\n    'doc'\n", "longest_body_line", rng) == 2
    assert baseline_line("def f(:\n", "longest_body_line", rng) == 1  # unparsable: nothing excluded
    assert baseline_line("# only a comment\n", "longest_body_line", rng) is None


# -- localization, detection and fixes ----------------------------------------------------------------

LOCALIZED = "def f(xs):\n    total = sum(x * 2 for x in xs if x)\n    return total\n"  # fair baseline: 2


def _finding(line: int, score: float = 0.9, fix: Fix | None = None) -> Finding:
    return Finding("p", line, 1, line, 1, "CRT000", "m", "c", "q", score, fix)


def test_localization_difference_is_paired():
    samples = [{"task_id": f"t{i}", "code": LOCALIZED, "bug_lines": [2 + i % 2]} for i in range(8)]
    # The critic's top finding is where the fair baseline is right (line 2) or wrong (line 3), sample by
    # sample: identical outcomes. Each rate varies over resamples; the paired difference cannot.
    same = [[_finding(2)] if s["bug_lines"] == [2] else [_finding(4)] for s in samples]
    local = localization(samples, same, resamples=200, seed=0)
    assert local["top_on_bug"] == local["fair_baseline"]
    assert local["top_on_bug"]["low"] < 0.5 < local["top_on_bug"]["high"]
    assert local["difference"] == {"value": 0.0, "low": 0.0, "high": 0.0}
    # Always on the bug (a less confident finding elsewhere does not count against the top one).
    always = [[_finding(s["bug_lines"][0]), _finding(1, score=0.1)] for s in samples]
    local = localization(samples, always, resamples=200, seed=0)
    assert local["top_on_bug"]["value"] == 1.0 and local["fair_baseline"]["value"] == 0.5
    diff = local["difference"]
    assert diff["value"] == pytest.approx(0.5)
    # paired: each resample's difference is 1 minus the baseline's rate on that same resample
    assert (diff["low"], diff["high"]) == pytest.approx(
        (1 - local["fair_baseline"]["high"], 1 - local["fair_baseline"]["low"])
    )


def test_detection_auc_on_hand_made_confidences():
    def auc(pos, neg, clusters=None):
        clusters = clusters or [str(i) for i in range(len(pos) + len(neg))]
        positive = [True] * len(pos) + [False] * len(neg)
        return bootstrap_auc([*pos, *neg], positive, clusters, resamples=200, seed=0)

    assert auc([0.9, 0.8, 0.7], [0.1, 0.2, 0.0]) == {"value": 1.0, "low": 1.0, "high": 1.0}
    assert auc([0.3, 0.3], [0.3, 0.3, 0.3]) == {"value": 0.5, "low": 0.5, "high": 0.5}
    assert auc([0.1], [0.9])["value"] == 0.0
    # 0.9 beats all three negatives; 0.4 beats 0.1, ties 0.4 (a half), loses to 0.5: 4.5 of 6 pairs
    assert auc([0.9, 0.4], [0.5, 0.1, 0.4])["value"] == 0.75
    assert auc([0.9], [])["value"] is None
    # Clusters draw their positives and negatives together. Cluster a alone separates perfectly (1.0),
    # b alone inverts (0.0), both give 3 of 4 pairs: resamples aa, ab/ba, bb give 1.0, 0.75, 0.0.
    ci = bootstrap_auc([0.9, 0.1, 0.2, 0.5], [True, False, True, False], ["a", "a", "b", "b"], 1000, 0)
    assert ci == {"value": 0.75, "low": 0.0, "high": 1.0}

    # a file's score is its highest raw confidence, 0 without any finding
    tampered = [{"task_id": "t0", "bug_lines": [1]}, {"task_id": "t1", "bug_lines": [1]}]
    clean = [{"task_id": "t0", "bug_lines": []}, {"task_id": "t1", "bug_lines": []}]
    raw = [[_finding(1, 0.2), _finding(2, 0.7)], []]
    clean_raw = [[_finding(3, 0.5)], []]
    # 0.7 beats 0.5 and 0.0; the silent tampered file (0.0) loses to 0.5 and ties the silent original
    assert detection_auc(tampered, raw, clean, clean_raw, 100, 0)["value"] == pytest.approx(2.5 / 4)


BUGGY_RANGE = BUGGY_CODE.splitlines()[BUG_LINE - 1]
_START = BUGGY_RANGE.index("range(") + 1


def _range_fix(text: str) -> Fix:
    return Fix(BUG_LINE, _START, BUG_LINE, _START + len("range(len(xs) - 1)"), text)


def test_fix_restores_and_fixes_parse():
    restoring = _finding(BUG_LINE, 0.9, _range_fix("range(len(xs))"))
    wrong = _finding(BUG_LINE, 0.9, _range_fix("range(len(xs) - 2)"))
    broken = _finding(BUG_LINE, 0.9, _range_fix("range(len(xs)"))  # unbalanced: does not parse
    outside = _finding(BUG_LINE, 0.9, Fix(40, 1, 40, 2, "x"))  # not in the code: applies to nothing
    no_fix = _finding(BUG_LINE, 0.9)
    sample = {**SAMPLE, "group": "g"}
    assert FIXED == BUGGY_CODE.replace("range(len(xs) - 1)", "range(len(xs))")

    def restores(found, samples=None):
        samples = samples or [sample] * len(found)
        return fix_restores(samples, found, resamples=50, seed=0)["value"]

    assert restores([[restoring]]) == 1.0
    assert restores([[wrong]]) == 0.0
    assert restores([[no_fix]]) == 0.0 and restores([[]]) == 0.0
    assert restores([[restoring], [wrong], [broken], [no_fix]]) == 0.25
    # only the top finding's fix counts
    assert restores([[_finding(1, 0.95), restoring]]) == 0.0
    assert restores([[_finding(1, 0.5), restoring]]) == 1.0
    # a trailing newline difference only is forgiven; any other difference is not
    assert restores([[restoring]], [{**sample, "original": FIXED.rstrip("\n")}]) == 1.0
    assert restores([[restoring]], [{**sample, "original": FIXED + "\n"}]) == 1.0
    assert restores([[restoring]], [{**sample, "original": FIXED.replace("    ", "  ")}]) == 0.0

    # over findings: 2 of the first sample's 4 parse (wrong fixes parse too), 1 of the second's 2
    found = [[restoring, wrong, broken, no_fix], [outside, restoring]]
    parse = fixes_parse([sample, {**sample, "group": "h"}], found, resamples=50, seed=0)
    assert parse["value"] == pytest.approx(3 / 6)
    assert fixes_parse([sample], [[]], 50, 0)["value"] is None  # no finding: undefined


def test_operating_point_adds_localization_detection_and_fixes(monkeypatch):
    """The wiring, with the review stubbed: the relaxed metrics see every raw finding (min-score 0),
    while the OP's own fixes_parse sees what clears the operating point's min-score."""
    import critic.evaluate as evaluate

    fix = _range_fix("range(len(xs))")
    low_fix = Finding("p", BUG_LINE, 1, BUG_LINE, 9, "CRT000", "m", "Off by one.", BUGGY_RANGE, 0.3, fix)

    def raw_of(critic, codes, settings, progress=None, searches=None):
        searches.extend([[None]] * len(codes))
        return [[low_fix] if code == BUGGY_CODE else [] for code in codes]

    monkeypatch.setattr(evaluate, "review_raw", raw_of)
    samples = [{**SAMPLE, "task_id": f"t{i}"} for i in range(3)]
    sets = {"humaneval": samples, evaluate.CLEAN_SET: evaluate.clean_originals(samples)}
    settings = ReviewSettings(min_score=0.5)  # above the one finding's 0.3
    op, _, _ = evaluate.operating_point(None, sets, settings, resamples=20)
    main = op["humaneval"]
    assert main["silent_rate"]["value"] == 1.0 and main["fixes_parse"]["value"] is None  # nothing reported
    assert main["localization"]["top_on_bug"]["value"] == 1.0
    assert main["localization"]["fair_baseline"]["value"] == 1.0  # the range line is the longest body line
    assert main["localization"]["difference"] == {"value": 0.0, "low": 0.0, "high": 0.0}
    assert main["detection_auc"]["value"] == 1.0  # 0.3 on every tampered file, 0.0 on the originals
    assert main["fixes"]["fix_restores"]["value"] == main["fixes"]["fixes_parse"]["value"] == 1.0
    assert set(op[evaluate.CLEAN_SET]) >= {"false_alarm_rate"} and "localization" not in op["clean"]


def test_backticked_spans_must_appear_verbatim():
    comment = "Use `x + 1` here, not ``total``; also `` a`b `` and a lone ` tick."
    assert code_spans(comment) == ["x + 1", "total", "a`b"]
    assert spans_verbatim(comment, "y = x + 1\ntotal = a`b")
    assert not spans_verbatim(comment, "y = x + 1\ntotal = 0")  # `a`b` is not in the code
    assert spans_verbatim("No code quoted at all.", "")  # nothing to check: passes
    assert code_spans("```\nfenced\n```") == []


def test_reliability_bins_and_ece():
    def finding(line, score):
        return Finding("p", line, 1, line, 1, "CRT000", "m", "c", "q", score)

    sample = {"bug_lines": [1]}
    raw = [[finding(1, 0.95), finding(2, 0.9), finding(1, 0.15), finding(2, 0.05), finding(2, 1.0)]]
    rel = reliability([sample], raw, bins=10)
    assert rel["findings"] == 5 and rel["on_bug_rate"] == 0.4
    counts = [b["count"] for b in rel["bins"]]
    assert counts == [1, 1, 0, 0, 0, 0, 0, 0, 0, 3]  # 1.0 falls in the last bin
    top = rel["bins"][9]
    assert top["mean_confidence"] == pytest.approx(0.95) and top["on_bug_rate"] == pytest.approx(1 / 3)
    # ECE: bins weighted by their findings, |on-bug rate - mean confidence|
    expected = (1 * abs(0 - 0.05) + 1 * abs(1 - 0.15) + 3 * abs(1 / 3 - 0.95)) / 5
    assert rel["ece"] == pytest.approx(expected)


# -- the post-hoc filter is review's -----------------------------------------------------------------


def test_post_hoc_filter_equals_review(known_critic):
    from critic.review.reviewer import SourceFile, load_critic, review
    from critic.review.settings import ReviewSettings

    policy, reward = known_critic
    # review's default filter (min-score 0.5, max-findings 5); a small search keeps the test fast
    fast = dict(samples=2, rounds=2, keep=1, max_new_tokens=48, temperature=0.5)
    settings = ReviewSettings(model=policy, reward_model=reward, search="fsbs", **fast)
    assert (settings.min_score, settings.max_findings) == (
        ReviewSettings().min_score,
        ReviewSettings().max_findings,
    )
    critic = load_critic(settings)
    codes = [BUGGY_CODE, with_comment("# critic: ignore"), FIXED, with_comment("# critic: ignore[CRT105]")]
    raw = review_raw(critic, codes, settings)
    assert any(raw), "the memorized critic should find something"
    sources = [SourceFile(f"sample_{i}.py", code) for i, code in enumerate(codes)]
    for variant in (settings, settings.updated(min_score=0.0, max_findings=1)):
        post_hoc = [reported(r, code, variant) for r, code in zip(raw, codes, strict=True)]
        assert post_hoc == review(critic, sources, variant)
    # min-score only cuts the relaxed findings (overlaps are settled by score first), then the cap
    for r, code in zip(raw, codes, strict=True):
        relaxed = reported(r, code, settings, min_score=0.0)
        kept = sorted([f for f in relaxed if f.score >= settings.min_score], key=lambda f: -f.score)
        expected = sorted(kept[: settings.max_findings], key=lambda f: (f.line, f.column))
        assert reported(r, code, settings) == expected


def test_the_ladder_reuses_the_operating_points_searches(known_critic):
    """The ladder's FSBS picks are the review's own (same settings, same random streams), so it takes
    them from the operating point instead of searching every sample twice."""
    from critic.evaluate import CLEAN_SET, ladder, operating_point
    from critic.review.reviewer import load_critic
    from critic.review.settings import ReviewSettings

    policy, reward = known_critic
    fast = dict(samples=2, rounds=2, keep=1, max_new_tokens=24, temperature=0.5)
    settings = ReviewSettings(model=policy, reward_model=reward, search="fsbs", **fast)
    critic = load_critic(settings)
    description = "`for i in range(len(xs) - 1):` skips the last element."
    samples = [
        {
            "task_id": f"t{i}",
            "code": code,
            "original": FIXED,
            "bug_lines": [BUG_LINE],
            "description": description,
            "bug_kind": "k",
        }
        for i, code in enumerate([BUGGY_CODE, with_comment("# critic: ignore")])
    ]
    sets = {"humaneval": samples, CLEAN_SET: [dict(samples[0], code=FIXED, bug_lines=[])]}
    _, _, searched = operating_point(critic, sets, settings, resamples=10)
    assert all(r is not None for r in searched["humaneval"])
    known = [searched["humaneval"][0], None]  # the second is searched anew
    assert ladder(critic, samples, settings, [0, 1], searched=(known, None)) == ladder(
        critic, samples, settings, [0, 1]
    )


# -- the command ----------------------------------------------------------------------------------------

STDLIB_FILE = """def scale(values, factor):
    out = []
    for value in values:
        if value > 0:
            out.append(value * factor)
    return out


def last(items):
    if not items:
        return None
    return items[len(items) - 1]
"""


def test_eval_command_writes_metrics_and_plots(tmp_path, known_critic):
    from datasets import Dataset, DatasetDict

    policy, reward = known_critic
    rows = [SAMPLE, {**SAMPLE, "task_id": "t1"}]
    data = tmp_path / "data"
    split = Dataset.from_list(rows)
    DatasetDict({"train": split, "validation": split, "test": split}).save_to_disk(str(data))
    stdlib = tmp_path / "stdlib"
    stdlib.mkdir()
    for name in ("a", "b", "c"):  # three files (of distinct functions): assign_splits puts one in "test"
        (stdlib / f"{name}.py").write_text(STDLIB_FILE.replace("def ", f"def {name}_"))
    (tmp_path / "pyproject.toml").write_text(
        "[tool.critic]\ntemperature = 0.5\nmin-score = 0.0\nsamples = 2\nrounds = 2\nkeep = 1\n"
    )
    out = tmp_path / "eval"
    args = ["--model", str(policy), "--reward-model", str(reward), "--sft-model", str(policy)]
    args += ["--data", str(data), "--out", str(out), "--length-modifiers", "0,1", "--per-item", "1"]
    args += ["--stdlib-dir", str(stdlib), "--stdlib-samples", "2", "--bootstrap", "50"]
    result = run_critic("eval", *args, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    console = " ".join(result.stderr.split())  # rich wraps the line
    for part in ("top finding on the bug", "longest line", "longest body line", "detection AUC"):
        assert part in console
    assert "top minus longest body line" in console and "fix restores" in console
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["schema"] == 4 and metrics["samples"] == 2 and metrics["split"] == "test"
    sets = ("humaneval", "humaneval_line_uniform", "stdlib")
    assert set(metrics["sample_sets"]) == {*sets, "clean"}
    assert metrics["sample_sets"]["stdlib"]["samples"] == 2
    assert metrics["sample_sets"]["clean"]["samples"] == 2  # one original per task
    assert all("data" in s for s in metrics["sample_sets"].values())

    op = metrics["operating_point"]
    assert (op["min_score"], op["max_findings"]) == (0.0, 5)
    assert set(op["critic"]) == {*sets, "clean"} and set(op["sft"]) == {"humaneval", "clean"}
    main = op["critic"]["humaneval"]
    assert main["any_on_bug"]["value"] == 1.0  # the memorized critic finds its bug
    assert main["silent_rate"]["value"] == 0.0
    for name in ("top_on_bug", "line_precision", "backticks_verbatim", "with_backticks"):
        ci = main[name]
        assert set(ci) == {"value", "low", "high"} and ci["low"] <= ci["value"] <= ci["high"]
    assert set(op["critic"]["clean"]) >= {"files", "false_alarm_rate", "backticks_verbatim"}
    for point in (*(op["critic"][key] for key in sets), op["sft"]["humaneval"]):
        assert set(point["localization"]) == {"top_on_bug", "fair_baseline", "difference"}
        assert set(point["fixes"]) == {"fix_restores", "fixes_parse"}
        for ci in (*point["localization"].values(), *point["fixes"].values(), point["detection_auc"]):
            assert set(ci) == {"value", "low", "high"}
        assert set(point["fixes_parse"]) == {"value", "low", "high"}
    local = main["localization"]
    assert local["fair_baseline"]["value"] == 1.0  # the range line is the longest body line
    assert local["top_on_bug"] == sweep_top_at_zero(metrics)
    assert local["difference"]["value"] == pytest.approx(local["top_on_bug"]["value"] - 1.0)
    assert 0.0 <= main["detection_auc"]["value"] <= 1.0

    assert set(metrics["baselines"]) == {
        "random_line",
        "random_code_line",
        "longest_line",
        "longest_body_line",
    }
    for base in metrics["baselines"].values():
        assert set(base) == {*sets, "clean"}
        assert base["humaneval"]["silent_rate"]["value"] == 0.0
        assert base["clean"]["false_alarm_rate"]["value"] == 1.0
    assert metrics["baselines"]["longest_line"]["humaneval"]["top_on_bug"]["value"] == 1.0  # the range line
    assert metrics["baselines"]["longest_body_line"]["humaneval"]["top_on_bug"] == local["fair_baseline"]

    sweep = metrics["min_score_sweep"]
    assert [row["min_score"] for row in sweep] == [0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9]
    assert sweep[0]["humaneval"]["any_on_bug"] == main["any_on_bug"]  # min-score 0 is the set default
    silent = [row["humaneval"]["silent_rate"]["value"] for row in sweep]
    assert silent == sorted(silent)  # a higher threshold never reports more
    rel = metrics["reliability"]
    assert len(rel["bins"]) == 10 and rel["findings"] == sum(b["count"] for b in rel["bins"]) > 0
    assert 0.0 <= rel["ece"] <= 1.0

    assert set(metrics["configs"]) == {
        "critic@lm=0",
        "critic@lm=1",
        "critic@single",
        "random_line",
        "sft@lm=0",
        "sft@lm=1",
        "sft@single",
    }
    fields = {"samples", "cbi_rate", "fake_problem_rate", "hallucinated_quote_rate", "nitpick_rate"}
    fields |= {"mean_highlights", "line_precision", "line_recall", "intervals"}
    assert all(set(m) == fields for m in metrics["configs"].values())
    for m in metrics["configs"].values():
        for name, ci in m["intervals"].items():
            assert ci["value"] == m[name] and ci["low"] <= ci["value"] <= ci["high"]
    assert metrics["configs"]["critic@lm=0"]["cbi_rate"] == 1.0
    for dial in ("pareto", "sft_pareto"):
        assert [p["length_modifier"] for p in metrics[dial]] == [0.0, 1.0]
    # The SFT critic here is the same checkpoint: every paired difference is exactly 0.
    versus = metrics["critic_vs_sft"]
    assert versus["top_on_bug_difference"] == {"value": 0.0, "low": 0.0, "high": 0.0}
    assert [row["length_modifier"] for row in versus["cbi_difference"]] == [0.0, 1.0]
    for row in versus["cbi_difference"]:
        assert row["same_length_modifier"] == {"value": 0.0, "low": 0.0, "high": 0.0}
        assert row["matched"]["value"] == 0.0
    assert "critic minus SFT 0.000" in console
    assert metrics["per_bug_kind"] == {"off_by_one_range": {"samples": 2, "cbi_rate": 1.0}}
    assert metrics["clean"]["files"] == 2 and 0.0 <= metrics["clean"]["silent_rate"] <= 1.0
    for plot in ("pareto.png", "reliability.png"):
        assert (out / plot).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def sweep_top_at_zero(metrics: dict) -> dict:
    """Localization's top_on_bug is the sweep's at min-score 0 (max-findings as set)."""
    return next(r for r in metrics["min_score_sweep"] if r["min_score"] == 0.0)["humaneval"]["top_on_bug"]


@pytest.mark.parametrize(
    ("args", "text"),
    [
        (["--data", "{tmp}"], "dataset_dict.json"),
        (["--split", "train"], "--split applies to --data only"),
        (["--bootstrap", "0"], "--bootstrap must be at least 1"),
        (["--stdlib-samples", "-1"], "--stdlib-samples must be at least 0"),
        (["--length-modifiers", "a,b"], "--length-modifiers"),
    ],
)
def test_eval_bad_input_is_one_line_error(tmp_path, args, text):
    args = [a.replace("{tmp}", str(tmp_path)) for a in args]
    result = run_critic("eval", *args, "--out", str(tmp_path / "o"))
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert result.stderr.startswith("critic: error: ") and text in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
