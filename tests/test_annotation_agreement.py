"""Krippendorff's alpha against the published reliability-data example (Krippendorff 2011, sec. C):
4 observers x 12 units, values 1-5, with missing values."""

from __future__ import annotations

import pytest

from critic.annotation_app.agreement import alpha

_ = None
OBSERVERS = [
    [1, 2, 3, 3, 2, 1, 4, 1, 2, _, _, _],
    [1, 2, 3, 3, 2, 2, 4, 1, 2, 5, _, 3],
    [_, 3, 3, 3, 2, 3, 4, 2, 2, 5, 1, _],
    [1, 2, 3, 3, 2, 4, 4, 1, 2, 5, 1, _],
]
UNITS = [list(unit) for unit in zip(*OBSERVERS, strict=True)]


@pytest.mark.parametrize(
    ("metric", "published"), [("nominal", 0.743), ("ordinal", 0.815), ("interval", 0.849)]
)
def test_published_example(metric, published):
    assert alpha(UNITS, metric) == pytest.approx(published, abs=5e-4)


def test_units_with_one_value_carry_no_information():
    # unit 12 has a single value: dropping it changes nothing
    assert alpha(UNITS[:11], "interval") == pytest.approx(alpha(UNITS, "interval"))


def test_perfect_and_undefined_agreement():
    assert alpha([[1, 1], [5, 5], [3, 3, 3]], "ordinal") == pytest.approx(1.0)
    assert alpha([[4, 4], [4, 4]], "interval") is None  # no variation: nothing to disagree on
    assert alpha([[4], [5]], "interval") is None  # no unit rated twice
    with pytest.raises(ValueError, match="unknown metric"):
        alpha(UNITS, "ratio")


def test_systematic_disagreement_is_negative():
    assert alpha([[1, 7], [7, 1], [1, 7], [7, 1]], "interval") < 0
