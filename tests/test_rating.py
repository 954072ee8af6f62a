import json
import math

import pytest

from critic.core.critique import format_critique, parse_critique
from critic.datagen.rating import (
    RATING_FIELDS,
    Preference,
    Rating,
    gold_critique,
    mean_overall,
    preferences,
    rate_critique,
    win_rates,
)

# A tampered sample: `mean` was correct until `- 1` was inserted on line 4.
CODE = '''\
def mean(xs):
    """Arithmetic mean of a non-empty list."""
    total = 0
    for i in range(len(xs) - 1):
        total += xs[i]
    return total / len(xs)


def clamp(x, lo, hi):
    return max(lo, min(x, hi))
'''
BUG_LINES = [4]
DESCRIPTION = "`range(len(xs) - 1)` stops one element early, so the last item of `xs` is never added."
BUG = "    for i in range(len(xs) - 1):"
CATCH = (BUG, "`range` already stops before `len(xs)`; the `- 1` drops the last item.")
FAKE = ("    return max(lo, min(x, hi))", "This crashes when lo > hi.")
NIT = ("def clamp(x, lo, hi):", "Nit: add a docstring and type hints.")

# Line 6 repeats line 4; the bug is that line 6 should count `m`.
COUNTS = """\
def f(xs):
    n = m = 0
    for x in xs:
        n += 1
    for x in xs:
        n += 1
    return n, m
"""


def rate(*pairs, preamble=""):
    return rate_critique(format_critique(pairs, preamble), CODE, BUG_LINES, DESCRIPTION)


def valid_rating(**changes) -> Rating:
    values = dict(
        cbi=6,
        comprehensiveness=7,
        nitpick=False,
        fake_problem=True,
        hallucinated_quote=False,
        conciseness=6,
        overall=5,
        rationale="Catches the bug; one fake problem.",
        rater="alice",
    )
    return Rating(**{**values, **changes})


# --- the automatic rater ---


def test_quoting_the_bug_line_and_explaining_it_includes_the_bug():
    rating = rate(CATCH)
    assert rating.cbi == 7
    assert (rating.nitpick, rating.fake_problem, rating.hallucinated_quote) == (False, False, False)
    assert rating.overall == 7
    assert rating.rationale == "Highlight 1 (line 4) covers the inserted bug and explains it."


def test_a_defect_claim_on_the_bug_line_that_misses_the_point_gets_6():
    assert rate((BUG, "This loop is wrong and gives incorrect results.")).cbi == 6


@pytest.mark.parametrize("comment", ["", "Bug."])
def test_the_bug_line_with_little_or_no_comment_gets_5(comment):
    assert rate((BUG, comment)).cbi == 5


def test_calling_the_bug_line_correct_misses_the_bug():
    rating = rate((BUG, "This loop is correct."))
    assert rating.cbi <= 2 and not rating.fake_problem


def test_quoting_only_other_lines_misses_the_bug_and_is_a_fake_problem():
    rating = rate(FAKE)
    assert rating.cbi <= 2
    assert rating.fake_problem and not rating.hallucinated_quote
    assert rating.comprehensiveness == 1 and rating.overall == 1
    assert "(line 10) claims a problem in correct code (fake)" in rating.rationale
    assert "the inserted bug is missed" in rating.rationale


def test_hallucinated_quote_is_a_fake_problem():
    rating = rate(CATCH, ("return sum(xs) / n", "Divides by the wrong count."))
    assert rating.hallucinated_quote and rating.fake_problem
    assert rating.cbi == 7
    assert rating.overall < rate(CATCH, FAKE).overall < rate(CATCH).overall
    assert "(not in the code)" in rating.rationale


def test_nitpick_on_correct_code_is_a_nitpick_not_a_fake_problem():
    rating = rate(CATCH, NIT)
    assert rating.nitpick and not rating.fake_problem
    assert rating.conciseness < 7 and rating.overall < 7


def test_a_defect_claim_in_nitpick_wording_is_still_a_fake_problem():
    rating = rate(CATCH, (FAKE[0], "Consider what happens here: this raises a TypeError for strings."))
    assert rating.fake_problem and not rating.nitpick


def test_a_comment_that_clears_other_code_is_neither_fake_nor_nitpick():
    rating = rate(CATCH, (FAKE[0], "This line is correct."))
    assert not rating.fake_problem and not rating.nitpick
    assert rating.conciseness == 6


def test_a_nitpick_on_the_bug_line_is_unsure_inclusion():
    rating = rate((BUG, "Consider a more descriptive name than `i`."))
    assert rating.cbi == 4 and rating.nitpick


def test_gold_critique_quotes_the_bug_verbatim_and_rates_7():
    gold = gold_critique(CODE, BUG_LINES, DESCRIPTION)
    (highlight,) = parse_critique(gold, CODE).highlights
    assert (highlight.quote, highlight.comment) == (BUG, DESCRIPTION)
    assert (highlight.start_line, highlight.end_line, highlight.match) == (4, 4, "exact")
    rating = rate_critique(gold, CODE, BUG_LINES, DESCRIPTION)
    assert (rating.cbi, rating.comprehensiveness, rating.conciseness, rating.overall) == (7, 7, 7, 7)
    assert (rating.nitpick, rating.fake_problem, rating.hallucinated_quote) == (False, False, False)


def test_gold_critique_widens_a_repeated_line_until_it_is_found_at_the_bug():
    code = COUNTS
    description = "Counts `n` instead of `m`, so `m` stays 0."
    gold = gold_critique(code, [6], description)
    (highlight,) = parse_critique(gold, code).highlights
    assert 6 in highlight.lines
    assert rate_critique(gold, code, [6], description).overall == 7


def test_gold_critique_rejects_bad_bugs():
    with pytest.raises(ValueError, match="description"):
        gold_critique(CODE, BUG_LINES, "  ")
    with pytest.raises(ValueError, match="blank"):
        gold_critique(CODE, [7], DESCRIPTION)


@pytest.mark.parametrize("bug_lines", [[], [0], [11], ["4"], [True]])
def test_bug_lines_must_be_lines_of_the_code(bug_lines):
    with pytest.raises(ValueError, match="bug"):
        rate_critique("Looks good.", CODE, bug_lines, DESCRIPTION)


def test_empty_critique_on_tampered_code_scores_low():
    rating = rate_critique("Looks good.", CODE, BUG_LINES, DESCRIPTION)
    assert rating.cbi == 1 and rating.comprehensiveness == 1 and rating.overall <= 2
    assert not rating.fake_problem and not rating.nitpick
    assert rating.rationale == "No highlights; the inserted bug is missed."


def test_mentioning_the_bug_without_quoting_it_gets_3():
    rating = rate_critique("The loop skips the last element: `len(xs) - 1`.", CODE, BUG_LINES, DESCRIPTION)
    assert rating.cbi == 3
    assert "mentioned but not quoted" in rating.rationale


def test_describing_the_bug_on_the_wrong_line_is_a_mention_not_a_fake_problem():
    rating = rate(("        total += xs[i]", "The last item is never added: the loop stops one early."))
    assert rating.cbi == 3 and not rating.fake_problem


def test_multi_highlight_mixes_order_as_the_rubric_says():
    clean, nit, fake, two_fakes = rate(CATCH), rate(CATCH, NIT), rate(CATCH, FAKE), rate(CATCH, FAKE, FAKE)
    assert all(r.cbi == 7 for r in (clean, nit, fake, two_fakes))
    assert clean.overall > nit.overall > fake.overall > two_fakes.overall
    assert fake.fake_problem and not clean.fake_problem
    assert fake.rationale == (
        "Highlight 1 (line 4) covers the inserted bug and explains it; "
        "highlight 2 (line 10) claims a problem in correct code (fake)."
    )


def test_a_verbatim_quote_of_a_repeated_line_covers_the_bug_copy():
    code = COUNTS
    critique = format_critique([("        n += 1", "Counts `n` again instead of `m`, so `m` stays 0.")])
    rating = rate_critique(critique, code, [6], "Counts `n` instead of `m`, so `m` stays 0.")
    assert rating.cbi == 7 and not rating.fake_problem
    assert "(line 6)" in rating.rationale


def test_long_prose_costs_conciseness():
    padded = rate((CATCH[0], CATCH[1] + " Also," * 180))
    assert rate(CATCH).conciseness == 7
    assert padded.conciseness == 5 and padded.cbi == 7
    assert "long" in padded.rationale


def test_rater_is_deterministic():
    text = format_critique([CATCH, FAKE, NIT])
    first, second = (rate_critique(text, CODE, BUG_LINES, DESCRIPTION) for _ in range(2))
    assert first == second


# --- the record ---


def test_rating_round_trips_through_json():
    rating = valid_rating()
    data = json.loads(json.dumps(rating.to_dict()))
    assert list(data) == list(RATING_FIELDS)
    assert Rating.from_dict(data) == rating
    auto = rate(CATCH, FAKE)
    assert Rating.from_dict(auto.to_dict()) == auto and auto.rater == "auto"


def test_rater_may_be_left_out():
    data = valid_rating().to_dict()
    del data["rater"]
    assert Rating.from_dict(data).rater == "auto"


@pytest.mark.parametrize("name", ["cbi", "comprehensiveness", "conciseness", "overall"])
@pytest.mark.parametrize("value", [0, 8, -1, "7", 7.0, True, None])
def test_scores_must_be_ints_from_1_to_7(name, value):
    with pytest.raises(ValueError, match=f"^{name} must be an int from 1 to 7"):
        valid_rating(**{name: value}).validate()


@pytest.mark.parametrize("name", ["nitpick", "fake_problem", "hallucinated_quote"])
@pytest.mark.parametrize("value", [1, 0, "yes", None])
def test_flags_must_be_bools(name, value):
    data = valid_rating().to_dict() | {name: value}
    with pytest.raises(ValueError, match=f"^{name} must be a bool"):
        Rating.from_dict(data)


@pytest.mark.parametrize("name", ["rationale", "rater"])
@pytest.mark.parametrize("value", ["", "   ", None, 3])
def test_rationale_and_rater_must_be_non_empty_strings(name, value):
    with pytest.raises(ValueError, match=f"^{name} must be a non-empty string"):
        valid_rating(**{name: value}).validate()


def test_to_dict_refuses_an_invalid_rating():
    with pytest.raises(ValueError, match="^overall"):
        valid_rating(overall=9).to_dict()


def test_from_dict_rejects_missing_and_unknown_fields():
    data = valid_rating().to_dict()
    with pytest.raises(ValueError, match="^missing rating field\\(s\\): overall$"):
        Rating.from_dict({k: v for k, v in data.items() if k != "overall"})
    with pytest.raises(ValueError, match="^unknown rating field\\(s\\): score$"):
        Rating.from_dict(data | {"score": 3})
    with pytest.raises(ValueError, match="mapping"):
        Rating.from_dict([("cbi", 7)])


def test_error_messages_are_one_line():
    with pytest.raises(ValueError) as caught:
        valid_rating(rationale=None, cbi="seven\n" * 50).validate()
    assert "\n" not in str(caught.value)


# --- preferences ---


def test_preferences_follow_the_overall_order_with_margins():
    prefs = preferences("t1", ["a", "b", "c"], [3, 7, 5])
    assert prefs == [
        Preference("t1", "b", "a", 4.0, 1.0),
        Preference("t1", "c", "a", 2.0, 1.0),
        Preference("t1", "b", "c", 2.0, 1.0),
    ]


def test_a_tie_is_two_half_weight_records():
    prefs = preferences("t1", ["a", "b"], [4.5, 4.5])
    assert prefs == [Preference("t1", "a", "b", 0.0, 0.5), Preference("t1", "b", "a", 0.0, 0.5)]


def test_preferences_stay_within_one_task():
    tasks = {"t1": (["a", "b"], [7, 1]), "t2": (["c", "d", "e"], [2, 6, 6])}
    prefs = [p for task, (texts, scores) in tasks.items() for p in preferences(task, texts, scores)]
    for p in prefs:
        texts = tasks[p.task_id][0]
        assert p.chosen in texts and p.rejected in texts
    assert len(prefs) == 1 + 4  # one strict pair; two strict pairs and a tie (two records)


def test_identical_critiques_are_not_compared():
    assert preferences("t1", ["a", "a", "b"], [7, 5, 1]) == [
        Preference("t1", "a", "b", 6.0, 1.0),
        Preference("t1", "a", "b", 4.0, 1.0),
    ]


@pytest.mark.parametrize(
    ("texts", "scores", "message"),
    [
        (["a", "b"], [1], "2 critiques but 1"),
        (["a", "b"], [1, math.nan], r"overall\[1\]"),
        (["a"], [True], r"overall\[0\]"),
    ],
)
def test_preferences_reject_bad_scores(texts, scores, message):
    with pytest.raises(ValueError, match=message):
        preferences("t1", texts, scores)


def test_auto_ratings_give_the_rubric_order():
    critiques = [format_critique([CATCH, FAKE]), gold_critique(CODE, BUG_LINES, DESCRIPTION), "Looks good."]
    scores = [rate_critique(c, CODE, BUG_LINES, DESCRIPTION).overall for c in critiques]
    rates = win_rates(preferences("t1", critiques, scores))
    assert rates == {critiques[1]: 1.0, critiques[0]: 0.5, critiques[2]: 0.0}


def test_mean_overall_averages_several_raters():
    ratings = [[valid_rating(overall=5), valid_rating(overall=6, rater="bob")], [valid_rating(overall=2)]]
    assert mean_overall(ratings) == [5.5, 2.0]
    with pytest.raises(ValueError, match="critique 1 has no ratings"):
        mean_overall([[valid_rating()], []])


def test_win_rates_count_ties_as_half():
    prefs = preferences("t1", ["a", "b", "c"], [5, 5, 1])
    assert win_rates(prefs) == {"a": 0.75, "b": 0.75, "c": 0.0}
    assert win_rates([]) == {}
