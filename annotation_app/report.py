"""How critiques of each origin fare with human raters: the CriticGPT comparison of human, human + critic
(assisted), critic (model) and reference (the tamperer's own description) critiques.

One row per grouped origin, from every rating of a critique of that origin. The Admin tab, the JSON API,
the export's `origins` split and `critic data export`'s summary all come from `origin_rows`, so they
agree by construction.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from sqlmodel import Session, select

from critic.annotation_app.auth import Forbidden
from critic.annotation_app.db import Critique, Rating, User

ORIGINS = ("human", "assisted", "model", "reference")
# The report's columns, in order (the export's `origins` split has exactly these).
COLUMNS = (
    "origin",
    "critiques",
    "ratings",
    "mean_cbi",
    "mean_comprehensiveness",
    "fake_problem_rate",
    "hallucinated_quote_rate",
)
DECIMALS = 3


def origin_of(critique_origin: str) -> str:
    """The group of a stored `Critique.origin`: "gold" is the reference critique, "human" and "assisted"
    are written critiques, and every other origin is the critic's: `model:<name>` in production (a
    check's critiques take their origin from the check's settings, which tests fill in themselves)."""
    if critique_origin == "gold":
        return "reference"
    if critique_origin in ("human", "assisted"):
        return critique_origin
    return "model"


def origin_rows(critiques: Iterable[Critique], ratings: Iterable[Rating]) -> list[dict[str, Any]]:
    """The report from critiques and their ratings: per origin in ORIGINS order, the number of rated
    critiques and of ratings, mean CBI and comprehensiveness, and the fractions of ratings that flag a
    fake problem or a hallucinated quote (None without ratings), rounded to DECIMALS places."""
    group = {c.id: origin_of(c.origin) for c in critiques}
    by_origin: dict[str, list[Rating]] = {origin: [] for origin in ORIGINS}
    for r in ratings:
        if r.critique_id in group:
            by_origin[group[r.critique_id]].append(r)
    rows = []
    for origin in ORIGINS:
        rated = by_origin[origin]
        rows.append(
            {
                "origin": origin,
                "critiques": len({r.critique_id for r in rated}),
                "ratings": len(rated),
                "mean_cbi": _mean([r.cbi for r in rated]),
                "mean_comprehensiveness": _mean([r.comprehensiveness for r in rated]),
                "fake_problem_rate": _mean([r.fake_problem for r in rated]),
                "hallucinated_quote_rate": _mean([r.hallucinated_quote for r in rated]),
            }
        )
    return rows


def _mean(values: list[int] | list[bool]) -> float | None:
    """The mean (of flags: the fraction set), rounded; None for no values."""
    return round(sum(values) / len(values), DECIMALS) if values else None


def origin_report(session: Session, user: User | None = None) -> list[dict[str, Any]]:
    """Admin (or None: the local CLI, with access to the database): the per-origin table of `origin_rows`
    over every critique and rating."""
    if user is not None and user.role != "admin":
        raise Forbidden("only admins can do this")
    try:
        critiques = session.exec(select(Critique)).all()
        ratings = session.exec(select(Rating)).all()
    finally:
        session.rollback()
    return origin_rows(critiques, ratings)


def origin_lines(rows: Iterable[dict[str, Any]]) -> list[str]:
    """The report as one line of text per origin (the CLI's summary after an export)."""

    def show(value: float | None, percent: bool = False) -> str:
        if value is None:
            return "-"
        return f"{value:.1%}" if percent else f"{value:.2f}"

    def count(n: int, noun: str) -> str:
        return f"{n} {noun}" if n == 1 else f"{n} {noun}s"

    return [
        f"{row['origin']}: {count(row['critiques'], 'critique')}, {count(row['ratings'], 'rating')}, "
        f"mean CBI {show(row['mean_cbi'])}, comprehensiveness {show(row['mean_comprehensiveness'])}, "
        f"fake problem {show(row['fake_problem_rate'], True)}, "
        f"hallucinated quote {show(row['hallucinated_quote_rate'], True)}"
        for row in rows
    ]


__all__ = ["COLUMNS", "ORIGINS", "origin_lines", "origin_of", "origin_report", "origin_rows"]
