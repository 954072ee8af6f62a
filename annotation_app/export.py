"""Human annotations as training data: tamperings, ratings and within-task preference pairs.

`tampering` has the schema of the automatic tampering dataset (critic.datagen.tamper_data.SCHEMA) with
`source = human`, so the SFT stage reads both alike. `ratings` has one row per rating: the rubric fields
a human fills in (db.RATED_FIELDS), with the critique and its rater. `preferences` is what `rl/rate.py`'s
`human_preferences` reads (critic.datagen.rating.PAIR_SCHEMA, plus `tampering_id` and `weight`): the
prompt is the exact critique request (`critic.core.critique.request`) and chosen / rejected are finished
model turns (`terminate_critique`). Pairs come from each tampering's mean overall scores over its
raters, never across tamperings (critic.datagen.rating.preferences); `task_id` is the sample's, shared
by all its tamperings, so a held-out task holds out every tampering of that code.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, get_type_hints

from sqlmodel import Session, col, select

from critic.annotation_app.auth import Forbidden
from critic.annotation_app.db import RATED_FIELDS, CodeSample, Critique, Rating, Tampering, User
from critic.core.critique import request, terminate_critique
from critic.datagen.rating import Rating as RubricRating
from critic.datagen.rating import mean_overall, pair_features, preferences
from critic.datagen.tamper_data import record, tampering_features

if TYPE_CHECKING:
    from datasets import DatasetDict

HUMAN_SOURCE = "human"
_VALUE_TYPES = {int: "int32", bool: "bool", str: "string"}  # a rubric field's Python type -> its column's


def _features():
    from datasets import Features, Value

    rubric = get_type_hints(RubricRating)
    ratings = {
        **{name: Value("int64") for name in ("tampering_id", "critique_id")},
        **{name: Value("string") for name in ("task_id", "origin", "critique", "rater")},
        **{name: Value(_VALUE_TYPES[rubric[name]]) for name in RATED_FIELDS},
    }
    prefs = {**pair_features(), "tampering_id": Value("int64"), "weight": Value("float64")}
    return tampering_features(), Features(ratings), Features(prefs)


def export_dataset(session: Session, user: User | None = None) -> DatasetDict:
    """Every tampering, every rating, and the preference pairs of every rated tampering.

    `user` None is the local admin (the CLI, with access to the database file); otherwise admins only.
    """
    from datasets import Dataset, DatasetDict

    if user is not None and user.role != "admin":
        raise Forbidden("only admins can do this")
    try:
        samples = {s.id: s for s in session.exec(select(CodeSample)).all()}
        tamperings = session.exec(select(Tampering).order_by(col(Tampering.id))).all()
        critiques = session.exec(
            select(Critique).order_by(col(Critique.tampering_id), col(Critique.position))
        ).all()
        ratings = session.exec(select(Rating).order_by(col(Rating.id))).all()
        names = dict(session.exec(select(User.id, User.name)).all())
    finally:
        session.rollback()

    by_critique: dict[int, list[Rating]] = {}
    for r in ratings:
        by_critique.setdefault(r.critique_id, []).append(r)
    of_tampering: dict[int, list[Critique]] = {}
    for c in critiques:
        of_tampering.setdefault(c.tampering_id, []).append(c)

    tampering_rows, rating_rows, pair_rows = [], [], []
    for t in tamperings:
        sample = samples[t.sample_id]
        tampering_rows.append(
            record(
                task_id=sample.task_id,
                original=sample.code,
                code=t.code,
                test=sample.test,
                bug_kind=t.bug_kind,
                bug_lines=list(t.bug_lines),
                description=t.description,
                verified=bool(t.tests_verified),
                source=HUMAN_SOURCE,
            )
        )
        rated = [c for c in of_tampering.get(t.id, []) if by_critique.get(c.id)]
        for c in rated:
            for r in by_critique[c.id]:
                rating_rows.append(
                    dict(
                        tampering_id=t.id,
                        critique_id=c.id,
                        task_id=sample.task_id,
                        origin=c.origin,
                        critique=c.text,
                        rater=names.get(r.rater_id, ""),
                        **{name: getattr(r, name) for name in RATED_FIELDS},
                    )
                )
        if len(rated) < 2:
            continue
        means = mean_overall([[_rubric(r) for r in by_critique[c.id]] for c in rated])
        prompt = request(t.code)
        for p in preferences(sample.task_id, [terminate_critique(c.text) for c in rated], means):
            pair_rows.append(
                dict(
                    task_id=p.task_id,
                    tampering_id=t.id,
                    prompt=prompt,
                    chosen=p.chosen,
                    rejected=p.rejected,
                    margin=p.margin,
                    weight=p.weight,
                )
            )

    tampering_features, rating_features, pair_features = _features()

    def table(rows: list[dict], features) -> Dataset:
        # Column by column: from_list drops the columns of an empty split, and a saved split must keep them.
        return Dataset.from_dict({name: [row[name] for row in rows] for name in features}, features=features)

    return DatasetDict(
        tampering=table(tampering_rows, tampering_features),
        ratings=table(rating_rows, rating_features),
        preferences=table(pair_rows, pair_features),
    )


def _rubric(r: Rating) -> RubricRating:
    return RubricRating(**{name: getattr(r, name) for name in RATED_FIELDS}, rater=str(r.rater_id))
