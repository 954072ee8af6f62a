"""Reward pairs that need no sampling: gold > "no bugs" > another line, and clean code stays silent."""

from __future__ import annotations

import random
from collections import Counter

from conftest import BUG_LINE, BUGGY_CODE

from critic.core.critique import NO_BUGS, parse_critique, split_request
from critic.rl.pairs import synthetic_pairs, synthetic_preferences, synthetic_rankings

ORIGINAL = BUGGY_CODE.replace("range(len(xs) - 1)", "range(len(xs))")
ROW = {
    "task_id": "t0",
    "original": ORIGINAL,
    "code": BUGGY_CODE,
    "bug_lines": [BUG_LINE],
    "description": "`for i in range(len(xs) - 1):` stops one element early, so the last one is never added.",
}


def lines_of(critique: str, code: str) -> set[int]:
    return {n for h in parse_critique(critique, code).valid_highlights for n in h.lines}


def test_orderings_on_tampered_and_clean_code():
    pairs = list(synthetic_pairs(ROW, negatives=2, rng=random.Random(0)))
    on_tampered = [(c, r) for p, c, r in pairs if split_request(p)[0] == BUGGY_CODE.rstrip("\n")]
    on_clean = [(c, r) for p, c, r in pairs if split_request(p)[0] == ORIGINAL.rstrip("\n")]
    gold, no_bugs = on_tampered[0]
    assert no_bugs == NO_BUGS and lines_of(gold, BUGGY_CODE) == {BUG_LINE}
    wrong = [r for c, r in on_tampered if c == NO_BUGS]
    assert len(wrong) == 2
    for critique in wrong:  # another line, quoted verbatim, with the comment moved to it
        found = lines_of(critique, BUGGY_CODE)
        assert found and BUG_LINE not in found
        assert "range(len(xs) - 1)" not in critique.split("```")[-1]
    both = [r for c, r in on_tampered if c == gold and r != NO_BUGS]
    assert len(both) == 1 and lines_of(both[0], BUGGY_CODE) > {BUG_LINE}
    assert on_clean and all(c == NO_BUGS and lines_of(r, ORIGINAL) for c, r in on_clean)


def test_other_lines_are_not_only_the_longest():
    picked = Counter()
    rng = random.Random(1)
    for _ in range(200):
        for _, chosen, rejected in synthetic_pairs(ROW, negatives=1, rng=rng):
            if chosen == NO_BUGS and rejected != NO_BUGS:
                picked.update(lines_of(rejected, BUGGY_CODE) - {BUG_LINE})
    assert len(picked) >= 3  # short lines are drawn too, not just the longest one


def test_preference_columns_are_deterministic():
    a = synthetic_preferences([ROW, ROW], negatives=3, seed=5)
    assert a == synthetic_preferences([ROW, ROW], negatives=3, seed=5)
    assert set(a) == {"task_id", "prompt", "chosen", "rejected", "margin"}
    assert all(c.endswith("<end_of_turn>") for c in a["chosen"] + a["rejected"])
    assert len(a["prompt"]) == 2 * (1 + 3 + 1 + 1)


def test_line_claims_differ_only_in_the_lines_they_quote():
    """The orderings that teach a finding's confidence: one comment for every line, so only the code
    can tell the bug's line from another."""
    from critic.core.critique import LINE_CLAIM

    tampered, clean = synthetic_rankings(ROW, negatives=2, rng=random.Random(0), claims=True)
    claims = [i for i, c in enumerate(tampered.critiques) if c.endswith(LINE_CLAIM)]
    assert len(claims) == 3
    bug_claim, *other_claims = claims
    assert lines_of(tampered.critiques[bug_claim], BUGGY_CODE) == {BUG_LINE}
    no_bugs = tampered.critiques.index(NO_BUGS)
    assert (bug_claim, no_bugs) in tampered.wins
    assert all((no_bugs, i) in tampered.wins for i in other_claims)
    assert all(BUG_LINE not in lines_of(tampered.critiques[i], BUGGY_CODE) for i in other_claims)
    assert sum(c.endswith(LINE_CLAIM) for c in clean.critiques) == 1 and clean.critiques[0] == NO_BUGS
