"""Human annotations as training data: tamperings, ratings, within-task preference pairs, and the
per-origin report.

`tampering` has the schema of the automatic tampering dataset (critic.datagen.tamper_data.SCHEMA) with
`source = human`, so the SFT stage reads both alike, followed by columns only human tamperings have
(HUMAN_TAMPERING_COLUMNS: `tampering_id`, `author`, `adversarial`, `caught`, `tests_verified`; the last
two null when never checked / never tested); a reader that mixes both datasets selects FIELDS.
`ratings` has one row per rating: the rubric fields a human fills in (db.RATED_FIELDS), with the
critique, its origin and grouped origin (`origin_group`, report.origin_of), and its rater.
`preferences` is what `rl/rate.py`'s `human_preferences` reads (critic.datagen.rating.PAIR_SCHEMA, plus
`tampering_id`, `weight` and the grouped origins `chosen_origin` / `rejected_origin`, so pairs across
origins can be picked out): the prompt is the exact critique request (`critic.core.critique.request`)
and chosen / rejected are finished model turns (`terminate_critique`). Pairs come from each tampering's
mean overall scores over its raters, never across tamperings (critic.datagen.rating.preferences);
`task_id` is the sample's, shared by all its tamperings, so a held-out task holds out every tampering
of that code. `origins` is report.origin_rows over the same critiques and ratings: the Admin tab's
per-origin table.
"""

from __future__ import annotations

import shutil
import tempfile
from itertools import combinations
from pathlib import Path
from typing import TYPE_CHECKING, get_type_hints

from sqlmodel import Session, col, select

from critic.annotation_app.auth import AppError, Forbidden
from critic.annotation_app.db import RATED_FIELDS, CodeSample, Critique, Rating, Tampering, User
from critic.annotation_app.report import COLUMNS, origin_of, origin_rows
from critic.core.critique import request, terminate_critique
from critic.datagen.rating import Rating as RubricRating
from critic.datagen.rating import mean_overall, pair_features, preferences
from critic.datagen.tamper_data import record, tampering_features

if TYPE_CHECKING:
    from datasets import DatasetDict

HUMAN_SOURCE = "human"
_VALUE_TYPES = {int: "int32", bool: "bool", str: "string"}  # a rubric field's Python type -> its column's
# The `tampering` split's columns after the shared SCHEMA: what only the app knows of a tampering.
HUMAN_TAMPERING_COLUMNS = {
    "tampering_id": "int64",
    "author": "string",
    "adversarial": "bool",
    "caught": "int32",  # searches that caught the bug; null if never checked
    "tests_verified": "bool",  # null if no tests ran
}
_ORIGIN_TYPES = {"origin": "string", "critiques": "int64", "ratings": "int64"}  # the rest: float64


def _features():
    """Features of the tampering, ratings, preferences and origins splits."""
    from datasets import Features, Value

    rubric = get_type_hints(RubricRating)
    tampering = {
        **tampering_features(),
        **{name: Value(kind) for name, kind in HUMAN_TAMPERING_COLUMNS.items()},
    }
    ratings = {
        **{name: Value("int64") for name in ("tampering_id", "critique_id")},
        **{name: Value("string") for name in ("task_id", "origin", "origin_group", "critique", "rater")},
        **{name: Value(_VALUE_TYPES[rubric[name]]) for name in RATED_FIELDS},
    }
    prefs = {
        **pair_features(),
        "tampering_id": Value("int64"),
        "weight": Value("float64"),
        **{name: Value("string") for name in ("chosen_origin", "rejected_origin")},
    }
    origins = {name: Value(_ORIGIN_TYPES.get(name, "float64")) for name in COLUMNS}
    return Features(tampering), Features(ratings), Features(prefs), Features(origins)


def export_dataset(session: Session, user: User | None = None) -> DatasetDict:
    """Every tampering, every rating, the preference pairs of every rated tampering, and the per-origin
    report, all from one read of the database.

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
            | dict(
                tampering_id=t.id,
                author=names.get(t.author_id, ""),
                adversarial=t.adversarial,
                caught=t.caught,
                tests_verified=t.tests_verified,
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
                        origin_group=origin_of(c.origin),
                        critique=c.text,
                        rater=names.get(r.rater_id, ""),
                        **{name: getattr(r, name) for name in RATED_FIELDS},
                    )
                )
        if len(rated) < 2:
            continue
        means = mean_overall([[_rubric(r) for r in by_critique[c.id]] for c in rated])
        prompt = request(t.code)
        texts = [terminate_critique(c.text) for c in rated]
        # Pair by pair (the order `preferences` gives for the whole task), so each record knows which
        # critiques it holds: texts alone cannot say, since two critiques may read the same.
        for i, j in combinations(range(len(rated)), 2):
            for p in preferences(sample.task_id, [texts[i], texts[j]], [means[i], means[j]]):
                chosen, rejected = (i, j) if p.chosen == texts[i] else (j, i)
                pair_rows.append(
                    dict(
                        task_id=p.task_id,
                        tampering_id=t.id,
                        prompt=prompt,
                        chosen=p.chosen,
                        rejected=p.rejected,
                        margin=p.margin,
                        weight=p.weight,
                        chosen_origin=origin_of(rated[chosen].origin),
                        rejected_origin=origin_of(rated[rejected].origin),
                    )
                )

    tampering_features, rating_features, pair_features, origin_features = _features()

    def table(rows: list[dict], features) -> Dataset:
        # Column by column: from_list drops the columns of an empty split, and a saved split must keep them.
        return Dataset.from_dict({name: [row[name] for row in rows] for name in features}, features=features)

    return DatasetDict(
        tampering=table(tampering_rows, tampering_features),
        ratings=table(rating_rows, rating_features),
        preferences=table(pair_rows, pair_features),
        origins=table(origin_rows(critiques, ratings), origin_features),
    )


def _rubric(r: Rating) -> RubricRating:
    return RubricRating(**{name: getattr(r, name) for name in RATED_FIELDS}, rater=str(r.rater_id))


class FolderNotEmpty(AppError):
    """The export folder holds files already (the CLI adds how to overwrite them)."""


def export_folder(directory: str | Path, *, overwrite: bool = False) -> Path:
    """The folder `save_to_folder` would save into, or AppError: checked before a slow export too.

    The path is taken as given: `~` is no home folder here (the server's would not be the admin's), and
    `..` is refused rather than resolved, since `/a/../b` would create `/a` on the way to `/b`."""
    given = str(directory).strip()
    path = Path(given)
    if not given or not path.is_absolute():
        raise AppError(f"give an absolute path on the server: {given or '(none given)'}")
    if ".." in path.parts:
        raise AppError(f"give a path without '..': {given}")
    if path.exists() and not path.is_dir():
        raise AppError(f"{path}: exists and is not a folder")
    if path.exists() and any(path.iterdir()) and not overwrite:
        raise FolderNotEmpty(f"{path}: exists and is not empty")
    return path


def _save(dataset: DatasetDict, path: Path) -> None:
    """`save_to_disk` with one shard per split: an empty split (nothing rated yet) otherwise gets zero
    shards, which `load_from_disk` cannot read back."""
    dataset.save_to_disk(str(path), num_shards={name: 1 for name in dataset})


def save_to_folder(dataset: DatasetDict, directory: str | Path, *, overwrite: bool = False) -> dict[str, int]:
    """Save an export (`save_to_disk`) into a folder on the server; returns the rows per split.

    One rule for the admin tab and `critic data export`: an absolute path (a relative one would be
    relative to the server's working directory, which the admin cannot see), and a folder that does not
    exist or is empty (an earlier export's files must not mix with this one's) unless `overwrite`.
    Missing parent folders are created.
    """
    path = export_folder(directory, overwrite=overwrite)
    path.mkdir(parents=True, exist_ok=True)
    _save(dataset, path)
    return {name: len(split) for name, split in dataset.items()}


def save_zip(dataset: DatasetDict, directory: Path) -> Path:
    """The export as one zip file (for a browser download), in a new temporary subfolder of
    `directory`, so concurrent downloads never share a file. The caller removes it once served."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="export-", dir=directory))
    name = "critic-annotations"
    _save(dataset, work / name)
    archive = shutil.make_archive(str(work / name), "zip", root_dir=work, base_dir=name)
    shutil.rmtree(work / name)
    return Path(archive)
