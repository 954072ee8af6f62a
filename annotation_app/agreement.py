"""Krippendorff's alpha: chance-corrected agreement among any number of raters, with missing ratings.

Each unit (here: one critique) has the values its raters gave; units with fewer than two values carry
no pairing and are left out. alpha = 1 - D_o / D_e, the observed over the expected disagreement in the
coincidence matrix (Krippendorff, "Computing Krippendorff's Alpha-Reliability", 2011).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Hashable, Sequence

METRICS = ("nominal", "ordinal", "interval")


def alpha(units: Sequence[Sequence[Hashable | None]], metric: str = "interval") -> float | None:
    """Alpha over `units` (each the values its raters gave, None for missing); None when undefined
    (no unit has two values, or every value is the same so nothing can be disagreed on)."""
    if metric not in METRICS:
        raise ValueError(f"unknown metric {metric!r} (choose from {', '.join(METRICS)})")
    pairable = [[v for v in unit if v is not None] for unit in units]
    pairable = [unit for unit in pairable if len(unit) >= 2]
    coincidence: Counter = Counter()
    for unit in pairable:
        m = len(unit)
        for i, a in enumerate(unit):
            for j, b in enumerate(unit):
                if i != j:
                    coincidence[a, b] += 1 / (m - 1)
    totals: Counter = Counter()
    for (a, _), count in coincidence.items():
        totals[a] += count
    n = sum(totals.values())
    if n <= 1:
        return None
    values = sorted(totals)
    delta = _distance(metric, values, totals)
    observed = sum(count * delta(a, b) for (a, b), count in coincidence.items())
    expected = sum(totals[a] * totals[b] * delta(a, b) for a in values for b in values) / (n - 1)
    if expected == 0:
        return None
    return 1 - observed / expected


def _distance(metric: str, values: list, totals: Counter):
    """The squared difference function of the metric (ordinal ranks by the values' frequencies)."""
    if metric == "nominal":
        return lambda a, b: float(a != b)
    if metric == "interval":
        return lambda a, b: float(a - b) ** 2
    rank = {v: i for i, v in enumerate(values)}
    cumulative = [0.0]
    for v in values:
        cumulative.append(cumulative[-1] + totals[v])

    def ordinal(a, b) -> float:
        lo, hi = sorted((rank[a], rank[b]))
        between = cumulative[hi + 1] - cumulative[lo]  # n_g for g from the lower value to the higher
        return (between - (totals[a] + totals[b]) / 2) ** 2

    return ordinal
