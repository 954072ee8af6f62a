"""The service layer: every read and write of the annotation app, with its rules enforced once.

The UI, the JSON API and the CLI all call these functions; none of them touches the tables directly.
Each function is one unit of work on the session it is given: it commits on success and rolls back on
any error, so no transaction (on SQLite, the write lock) outlives the call. Slow work (sandboxed test
runs, loading samples) happens outside any transaction. Users passed in are the detached objects that
`user_for_token` / `create_user` return; only their id, name and role are read.
"""

from __future__ import annotations

import ast
import json
import random
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, fields, make_dataclass
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar, get_type_hints

from sqlalchemy import func
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, select

from critic.annotation_app.agreement import alpha
from critic.annotation_app.auth import (
    MAX_NAME,
    MIN_PASSWORD,
    ROLES,
    AppError,
    Forbidden,
    authenticate,
    create_user,
    login,
    logout,
    user_for_token,
)
from critic.annotation_app.checker import (
    CHECK_SEARCHES,
    CheckResult,
    TestResult,
    caught,
    check_tampering,
    run_sample_tests,
)
from critic.annotation_app.db import (
    RATED_FIELDS,
    Assignment,
    CodeSample,
    Critique,
    Draft,
    Rating,
    Setting,
    Tampering,
    User,
    now,
)
from critic.core.critique import code_lines
from critic.datagen.rating import Rating as RubricRating
from critic.datagen.rating import gold_critique

if TYPE_CHECKING:
    from critic.inference.fsbs import Critic, FSBSSettings

__all__ = [
    "CHECK_SEARCHES",
    "CRITIQUES_PER_TASK",
    "DEFAULT_OVERLAP",
    "KINDS",
    "MAX_CODE",
    "MAX_DESCRIPTION",
    "MAX_DRAFT",
    "MAX_NAME",
    "MAX_OVERLAP",
    "MAX_RATIONALE",
    "MIN_PASSWORD",
    "RATED_FIELDS",
    "ROLES",
    "AppError",
    "CheckResult",
    "CompareTask",
    "CritiqueView",
    "Forbidden",
    "RatingInput",
    "SampleView",
    "TestResult",
    "add_user",
    "agreement",
    "authenticate",
    "check_sample",
    "check_tampering",
    "create_user",
    "export_dataset",
    "get_overlap",
    "import_samples",
    "load_draft",
    "login",
    "logout",
    "next_compare_task",
    "next_tamper_sample",
    "progress",
    "run_tests",
    "save_draft",
    "set_overlap",
    "skip_sample",
    "submit_ratings",
    "submit_tampering",
    "user_for_token",
    "validate_tampering",
]

KINDS = ("tamper", "compare")
MAX_CODE = 20_000  # characters of tampered code
MAX_DESCRIPTION = 5_000
MAX_RATIONALE = 5_000
MAX_DRAFT = 100_000  # characters of a draft's JSON
DEFAULT_OVERLAP = 2
DEFAULT_ASSIGNMENT_TTL_HOURS = 24.0
MAX_OVERLAP = 10
CRITIQUES_PER_TASK = CHECK_SEARCHES + 1  # the critic's searches and the gold critique
_RETRIES = 3  # a claim that loses a race (unique constraint) is retried with fresh data

T = TypeVar("T")


@dataclass
class SampleView:
    sample_id: int
    code: str
    has_tests: bool
    source: str
    task_id: str
    draft: dict | None


@dataclass
class CritiqueView:
    """One critique of a compare task: blind, so text only (no origin, author or ratings)."""

    critique_id: int
    text: str


@dataclass
class CompareTask:
    """A tampering to rate. Blind: the tamperer's description is not here, because it is the reference
    critique's text; raters learn the bug from its lines and from the original code they replaced."""

    tampering_id: int
    code: str
    original: str  # the sample before tampering: the diff is the bug, written by nobody
    critiques: list[CritiqueView]  # in the tampering's fixed shuffled order
    draft: dict | None
    bug_lines: list[int] = field(default_factory=list)  # where the reference bug is, for the CBI question


# One rater's answers for one critique: the rubric's fields (critic.datagen.rating.Rating) that a human
# fills in, with the rubric's types, so a field added to the rubric reaches the API and the UI by itself.
_RUBRIC_TYPES = get_type_hints(RubricRating)
RatingInput = make_dataclass("RatingInput", [(name, _RUBRIC_TYPES[name]) for name in RATED_FIELDS])
RatingInput.__module__ = __name__  # for pickle and repr (3.11's make_dataclass takes no module)
RatingInput.__doc__ = "One rater's answers for one critique: the rubric fields in RATED_FIELDS."


# --- plumbing --------------------------------------------------------------------------------------


@contextmanager
def _unit(session: Session) -> Iterator[None]:
    """One unit of work: commit on success, roll back on any error."""
    try:
        yield
        session.commit()
    except BaseException:
        session.rollback()
        raise


def _retrying(session: Session, fn: Callable[[], T]) -> T:
    """Run a claiming unit of work again when a concurrent claim wins the unique constraint."""
    for attempt in range(_RETRIES):
        try:
            with _unit(session):
                return fn()
        except IntegrityError:
            if attempt == _RETRIES - 1:
                raise AppError("the server is busy: try again") from None
    raise AssertionError("unreachable")


def _require_admin(user: User) -> None:
    if user.role != "admin":
        raise Forbidden("only admins can do this")


def _assignment(session: Session, kind: str, user_id: int, item_id: int) -> Assignment | None:
    query = select(Assignment).where(
        Assignment.kind == kind, Assignment.user_id == user_id, Assignment.item_id == item_id
    )
    return session.exec(query).first()


def _open_assignment(session: Session, kind: str, user_id: int) -> Assignment | None:
    query = select(Assignment).where(
        Assignment.kind == kind, Assignment.user_id == user_id, Assignment.status == "open"
    )
    return session.exec(query.order_by(col(Assignment.id))).first()


def get_assignment_ttl(session: Session) -> float:
    """Hours an open assignment may go without activity before it expires and returns to the pool."""
    found = session.get(Setting, "assignment_ttl_hours")
    return float(found.value) if found is not None else DEFAULT_ASSIGNMENT_TTL_HOURS


def expire_stale(session: Session) -> None:
    """Mark open assignments idle for longer than the TTL `expired`, so their items return to the pool.

    Called inside every claim, before counting claims: expiry needs no background job, and a claim
    never waits on an item its holder abandoned. Their drafts go too; the holder is told on submit.
    """
    cutoff = now() - timedelta(hours=get_assignment_ttl(session))
    stale = session.exec(
        select(Assignment).where(Assignment.status == "open", Assignment.touched_at < cutoff)
    ).all()
    for held in stale:
        held.status = "expired"
        session.add(held)
        _delete_draft(session, held.user_id, held.kind, held.item_id)
    if stale:
        session.flush()


def touch(held: Assignment) -> None:
    """Record activity on an assignment (a draft, a check): it does not expire while worked on."""
    held.touched_at = now()


LIVE = ("open", "done")  # assignment statuses that hold an item's slot; skipped and expired ones do not


def _draft(session: Session, user_id: int, kind: str, item_id: int) -> dict | None:
    found = session.get(Draft, (user_id, kind, item_id))
    return dict(found.payload) if found is not None else None


def _delete_draft(session: Session, user_id: int, kind: str, item_id: int) -> None:
    found = session.get(Draft, (user_id, kind, item_id))
    if found is not None:
        session.delete(found)


def _check_kind(kind: str) -> None:
    if kind not in KINDS:
        raise AppError(f"unknown task kind {kind!r} (choose from {', '.join(KINDS)})")


# --- drafts ----------------------------------------------------------------------------------------


def save_draft(session: Session, user: User, kind: str, item_id: int, payload: dict) -> None:
    """Keep the user's unsubmitted work on a task they hold, so a reload or a crash loses nothing.

    A draft for a task already submitted is dropped silently: a debounced save can arrive after the
    submission that made it obsolete.
    """
    _check_kind(kind)
    if not isinstance(payload, dict):
        raise AppError("a draft must be a JSON object")
    try:
        size = len(json.dumps(payload))
    except (TypeError, ValueError) as err:
        raise AppError(f"a draft must be plain JSON ({err})") from None
    if size > MAX_DRAFT:
        raise AppError(f"the draft is {size} characters; the limit is {MAX_DRAFT}")

    def save() -> None:
        held = _assignment(session, kind, user.id, item_id)
        if held is None:
            raise Forbidden(f"{kind} task {item_id} is not assigned to you")
        if held.status != "open":
            return
        found = session.get(Draft, (user.id, kind, item_id))
        if found is None:
            session.add(Draft(user_id=user.id, kind=kind, item_id=item_id, payload=dict(payload)))
        else:
            found.payload = dict(payload)  # a new object, so the JSON column sees the change
            found.updated_at = now()
            session.add(found)
        session.flush()

    _retrying(session, save)


def load_draft(session: Session, user: User, kind: str, item_id: int) -> dict | None:
    """The user's own draft of a task, or None. Nobody reads another user's drafts."""
    _check_kind(kind)
    with _unit(session):
        return _draft(session, user.id, kind, item_id)


# --- tampering -------------------------------------------------------------------------------------


def next_tamper_sample(session: Session, user: User) -> SampleView | None:
    """The sample the user is tampering, or a newly claimed one: the least-tampered sample they have
    not tampered yet. None when there is none left."""

    def claim() -> SampleView | None:
        held = _open_assignment(session, "tamper", user.id)
        if held is None:
            claims = (
                select(Assignment.item_id, func.count().label("n"))
                .where(Assignment.kind == "tamper")
                .group_by(Assignment.item_id)
                .subquery()
            )
            mine = select(Assignment.item_id).where(
                Assignment.kind == "tamper", Assignment.user_id == user.id
            )
            query = (
                select(CodeSample.id)
                .outerjoin(claims, claims.c.item_id == CodeSample.id)
                .where(col(CodeSample.id).not_in(mine))
                .order_by(func.coalesce(claims.c.n, 0), col(CodeSample.id))
                .limit(1)
            )
            sample_id = session.exec(query).first()
            if sample_id is None:
                return None
            held = Assignment(kind="tamper", user_id=user.id, item_id=sample_id)
            session.add(held)
            session.flush()
        sample = session.get(CodeSample, held.item_id)
        if sample is None:
            raise AppError(f"sample {held.item_id} no longer exists")
        return SampleView(
            sample.id, sample.code, bool(sample.test), sample.source, sample.task_id,
            _draft(session, user.id, "tamper", sample.id),
        )  # fmt: skip

    return _retrying(session, claim)


def skip_sample(session: Session, user: User, sample_id: int) -> None:
    """Give up the sample being tampered (nothing subtle fits in it): it is never offered to this user
    again, and the next call of `next_tamper_sample` claims another one."""
    with _unit(session):
        held = _assignment(session, "tamper", user.id, sample_id)
        if held is None:
            raise Forbidden(f"sample {sample_id} is not in your queue")
        if held.status != "open":
            raise AppError("this sample is no longer open")
        held.status = "skipped"
        session.add(held)
        _delete_draft(session, user.id, "tamper", sample_id)


def validate_tampering(original: str, code: str, bug_lines: list[int], description: str) -> None:
    """Raise AppError with a one-line message for the first problem of a tampering, if any."""
    if not isinstance(code, str) or not code.strip():
        raise AppError("the tampered code is empty")
    if len(code) > MAX_CODE:
        raise AppError(f"the code is {len(code)} characters; the limit is {MAX_CODE}")
    if not isinstance(description, str) or not description.strip():
        raise AppError("the bug description is empty: describe the bug as a reviewer who caught it would")
    if len(description) > MAX_DESCRIPTION:
        raise AppError(f"the description is {len(description)} characters; the limit is {MAX_DESCRIPTION}")
    if not isinstance(bug_lines, list | tuple) or not bug_lines:
        raise AppError("no bug lines marked: mark the lines that contain the bug")
    lines = code_lines(code)
    for n in bug_lines:
        if isinstance(n, bool) or not isinstance(n, int) or not 1 <= n <= len(lines):
            raise AppError(f"bug line {n!r} is not a line of the code (1 to {len(lines)})")
    if not any(lines[n - 1].strip() for n in bug_lines):
        raise AppError("the marked bug lines are blank: mark the lines with the bug's code")
    try:
        tampered = ast.parse(code)
    except SyntaxError as err:
        raise AppError(f"the tampered code does not parse: {err.msg} (line {err.lineno})") from None
    except ValueError as err:
        raise AppError(f"the tampered code does not parse: {err}") from None
    try:
        same = ast.dump(ast.parse(original)) == ast.dump(tampered)
    except (SyntaxError, ValueError):
        same = original.strip() == code.strip()
    if same:
        raise AppError("the code does the same as the original (only whitespace or comments changed)")


def _held_sample(session: Session, user: User, sample_id: int) -> tuple[CodeSample, Assignment | None]:
    sample = session.get(CodeSample, sample_id)
    if sample is None:
        raise AppError(f"no such sample {sample_id}")
    held = _assignment(session, "tamper", user.id, sample_id)
    if held is None and user.role != "admin":
        raise Forbidden(f"sample {sample_id} is not in your queue")
    session.expunge(sample)
    return sample, held


def check_sample(
    session: Session,
    user: User,
    critic_factory: Callable[[], Critic],
    sample_id: int,
    code: str,
    bug_lines: list[int],
    description: str,
    settings: FSBSSettings | None = None,
) -> CheckResult:
    """*Check against critic* for a sample the user holds: validate the tampering, then load the critic
    (only for valid input) and run it, outside any transaction: a search takes seconds."""
    with _unit(session):
        sample, _ = _held_sample(session, user, sample_id)
    validate_tampering(sample.code, code, bug_lines, description)
    return check_tampering(critic_factory(), code, list(bug_lines), description, settings)


def run_tests(session: Session, user: User, sample_id: int, code: str) -> TestResult:
    """Whether the sample's tests pass on the original and fail on `code` (sandboxed, no DB lock held)."""
    with _unit(session):
        sample, _ = _held_sample(session, user, sample_id)
    if not sample.test:
        raise AppError("this sample has no tests")
    if not isinstance(code, str) or len(code) > MAX_CODE:
        raise AppError(f"the code must be text of at most {MAX_CODE} characters")
    return run_sample_tests(sample.code, code, sample.test)


def submit_tampering(
    session: Session,
    user: User,
    sample_id: int,
    code: str,
    bug_lines: list[int],
    description: str,
    check: CheckResult,
    *,
    verify_tests: bool = True,
) -> int:
    """Store a tampering with its CHECK_SEARCHES model critiques and the gold critique, in a shuffled
    order fixed for every rater, queue it for comparison, close the tamper task and drop its draft.

    Whether each model critique caught the bug is re-rated against the submitted bug lines and
    description (they may have changed since the check; the code may not). With `verify_tests`, a
    sample with tests is run in the sandbox so the tampering records whether the tests notice the bug.
    """
    with _unit(session):
        sample, held = _held_sample(session, user, sample_id)
        if held is None:
            raise Forbidden(f"sample {sample_id} is not in your queue")
        if held.status != "open":
            raise AppError("you already submitted a tampering of this sample")
    validate_tampering(sample.code, code, bug_lines, description)
    description = description.strip()  # what raters read, what the gold critique quotes, what is rated
    if not isinstance(check, CheckResult) or len(check.critiques) != CHECK_SEARCHES:
        raise AppError("check the tampering against the critic before submitting")
    if check.code and check.code != code:
        raise AppError("the code changed since the check: check against the critic again")
    hits = [caught(text, code, list(bug_lines), description) for text in check.critiques]
    try:
        gold = gold_critique(code, list(bug_lines), description)
    except ValueError as err:
        raise AppError(str(err)) from None
    verified = None
    if verify_tests and sample.test:
        verified = run_sample_tests(sample.code, code, sample.test).verified
    origin = check.settings.get("origin") or f"model:{check.settings.get('model', 'critic')}"
    entries = [(text, str(origin), dict(check.settings)) for text in check.critiques] + [(gold, "gold", None)]
    random.SystemRandom().shuffle(entries)

    with _unit(session):
        held = _assignment(session, "tamper", user.id, sample_id)
        if held is None or held.status != "open":
            raise AppError("you already submitted a tampering of this sample")
        tampering = Tampering(
            sample_id=sample_id,
            author_id=user.id,
            code=code,
            bug_lines=[int(n) for n in bug_lines],
            description=description,
            adversarial=not all(hits),
            caught=sum(hits),
            tests_verified=verified,
        )
        session.add(tampering)
        session.flush()
        # Inserted in display order, so critique ids say nothing about which one is gold.
        for position, (text, origin_, settings) in enumerate(entries):
            session.add(
                Critique(
                    tampering_id=tampering.id,
                    text=text,
                    origin=origin_,
                    fsbs_settings=settings,
                    position=position,
                )
            )
            session.flush()
        held.status = "done"
        session.add(held)
        _delete_draft(session, user.id, "tamper", sample_id)
        return tampering.id


# --- comparison ------------------------------------------------------------------------------------


def get_overlap(session: Session) -> int:
    """How many distinct annotators rate each tampering."""
    found = session.get(Setting, "overlap")
    return int(found.value) if found is not None else DEFAULT_OVERLAP


def _compare_claims(session: Session, tampering_id: int) -> int:
    query = select(func.count()).where(Assignment.kind == "compare", Assignment.item_id == tampering_id)
    return session.exec(query).one()


def next_compare_task(session: Session, user: User) -> CompareTask | None:
    """The task the user is rating, or a newly claimed one: the oldest tampering they did not write
    and have not rated that still has fewer than `overlap` raters. None when there is none."""

    def claim() -> CompareTask | None:
        held = _open_assignment(session, "compare", user.id)
        if held is None:
            overlap = get_overlap(session)
            claims = (
                select(func.count())
                .where(Assignment.kind == "compare", Assignment.item_id == Tampering.id)
                .scalar_subquery()
            )
            mine = select(Assignment.item_id).where(
                Assignment.kind == "compare", Assignment.user_id == user.id
            )
            query = (
                select(Tampering.id)
                .where(Tampering.author_id != user.id, col(Tampering.id).not_in(mine), claims < overlap)
                .order_by(col(Tampering.id))
                .limit(20)
            )
            for tampering_id in session.exec(query).all():
                # Lock the tampering, then count again: a concurrent claim may have filled it meanwhile.
                session.exec(select(Tampering.id).where(Tampering.id == tampering_id).with_for_update()).one()
                if _compare_claims(session, tampering_id) < overlap:
                    held = Assignment(kind="compare", user_id=user.id, item_id=tampering_id)
                    session.add(held)
                    session.flush()
                    break
            if held is None:
                return None
        tampering = session.get(Tampering, held.item_id)
        if tampering is None:
            raise AppError(f"task {held.item_id} no longer exists")
        critiques = session.exec(
            select(Critique).where(Critique.tampering_id == tampering.id).order_by(col(Critique.position))
        ).all()
        sample = session.get(CodeSample, tampering.sample_id)
        return CompareTask(
            tampering.id,
            tampering.code,
            sample.code if sample is not None else "",
            [CritiqueView(c.id, c.text) for c in critiques],
            _draft(session, user.id, "compare", tampering.id),
            list(tampering.bug_lines),
        )

    return _retrying(session, claim)


def submit_ratings(session: Session, user: User, tampering_id: int, ratings: dict[int, RatingInput]) -> None:
    """Store the user's rubric ratings of every critique of a task, close the task and drop its draft:
    all in one transaction, so a crash leaves either all of it or none."""
    with _unit(session):
        tampering = session.get(Tampering, tampering_id)
        if tampering is None:
            raise AppError(f"no such task {tampering_id}")
        if tampering.author_id == user.id:
            raise Forbidden("you cannot rate your own tampering")
        held = _assignment(session, "compare", user.id, tampering_id)
        if held is None:
            raise Forbidden(f"task {tampering_id} is not assigned to you")
        if held.status != "open":
            raise AppError("you already submitted ratings for this task")
        critiques = session.exec(
            select(Critique).where(Critique.tampering_id == tampering_id).order_by(col(Critique.position))
        ).all()
        rows = _rating_rows(user, critiques, ratings)
        try:
            for row in rows:
                session.add(row)
                session.flush()
        except IntegrityError:
            raise AppError("you already submitted ratings for this task") from None
        held.status = "done"
        session.add(held)
        _delete_draft(session, user.id, "compare", tampering_id)


def _rating_rows(user: User, critiques: list[Critique], ratings: dict[int, RatingInput]) -> list[Rating]:
    if not isinstance(ratings, dict):
        raise AppError("ratings must map critique ids to ratings")
    ids = {c.id for c in critiques}
    if unknown := [key for key in ratings if key not in ids]:
        raise AppError(f"critique {unknown[0]!r} is not part of this task")
    rows = []
    for number, critique in enumerate(critiques, start=1):
        given = ratings.get(critique.id)
        if given is None:
            raise AppError(f"critique {number} has no rating: rate all {len(critiques)} critiques")
        if not isinstance(given, RatingInput):
            raise AppError(f"critique {number}: not a rating")
        values = {f.name: getattr(given, f.name) for f in fields(RatingInput)}
        if isinstance(values["rationale"], str) and len(values["rationale"]) > MAX_RATIONALE:
            raise AppError(f"critique {number}: the rationale is over {MAX_RATIONALE} characters")
        try:
            RubricRating(**values, rater=user.name).validate()
        except ValueError as err:
            raise AppError(f"critique {number}: {err}") from None
        rows.append(Rating(critique_id=critique.id, rater_id=user.id, **values))
    return rows


# --- admin -----------------------------------------------------------------------------------------


def add_user(session: Session, user: User, name: str, role: str, password: str) -> User:
    """Admin: create a user."""
    _require_admin(user)
    return create_user(session, name, role, password)


def _source_items(source: str) -> list[tuple[str, str, str, str]]:
    """(code, test, source, task_id) of every sample in `source`, loaded before any transaction."""
    from critic.core.errors import UserError
    from critic.core.sources import SOURCES
    from critic.datagen.tamper_data import source_items

    if source in SOURCES:
        return [(i.code, i.test, i.source, i.task_id) for i in source_items(source)]
    path = Path(source).expanduser()
    if not path.exists():
        raise AppError(
            f"{source}: no such file or directory (give {', '.join(SOURCES)}, a dataset or a folder)"
        )
    if (path / "dataset_dict.json").is_file():
        from datasets import load_from_disk

        try:
            dataset = load_from_disk(str(path))
        except (FileNotFoundError, ValueError) as err:
            raise AppError(f"{source}: not a readable dataset ({err})") from None
        name, items = f"tamper:{path.resolve()}", {}
        for split in dataset.values():
            if "original" not in split.column_names:
                raise AppError(f"{source}: not a `critic data tamper` dataset (no 'original' column)")
            for row in split:
                items.setdefault(row["task_id"], (row["original"], row["test"] or "", name, row["task_id"]))
        return list(items.values())
    try:
        return [(i.code, i.test, str(path.resolve()), i.task_id) for i in source_items(str(path))]
    except UserError as err:
        raise AppError(str(err)) from None


def import_samples(session: Session, user: User, source: str) -> int:
    """Admin: add the samples of a named source (humaneval, stdlib, site-packages), a `critic data tamper`
    dataset directory, or a folder of .py files (one sample per function). Samples already present are
    skipped; returns how many were added."""
    _require_admin(user)
    if not isinstance(source, str) or not source.strip():
        raise AppError("name a source to import: humaneval, stdlib, a datasets directory or a folder")
    items = [item for item in _source_items(source.strip()) if len(item[0]) <= MAX_CODE]
    with _unit(session):
        sources = {item[2] for item in items}
        present = set(
            session.exec(
                select(CodeSample.source, CodeSample.task_id).where(col(CodeSample.source).in_(sources))
            ).all()
        )
        added = 0
        for code, test, source_, task_id in items:
            if (source_, task_id) not in present:
                present.add((source_, task_id))
                session.add(CodeSample(code=code, test=test, source=source_, task_id=task_id))
                added += 1
        return added


def set_overlap(session: Session, user: User, n: int) -> None:
    """Admin: how many distinct annotators rate each tampering (applies to tasks not yet claimed)."""
    _require_admin(user)
    if isinstance(n, bool) or not isinstance(n, int) or not 1 <= n <= MAX_OVERLAP:
        raise AppError(f"overlap must be a whole number from 1 to {MAX_OVERLAP}, got {n!r}")
    with _unit(session):
        found = session.get(Setting, "overlap")
        if found is None:
            session.add(Setting(key="overlap", value=str(n)))
        else:
            found.value = str(n)
            session.add(found)


def progress(session: Session, user: User) -> dict[str, Any]:
    """Admin: per user, what they tampered and rated; per tampering, how far its rating has got."""
    _require_admin(user)
    with _unit(session):
        overlap = get_overlap(session)
        users = session.exec(select(User).order_by(col(User.id))).all()
        assignments = session.exec(select(Assignment)).all()
        tamperings = session.exec(select(Tampering).order_by(col(Tampering.id))).all()
        samples = dict(session.exec(select(CodeSample.id, CodeSample.task_id)).all())
        names = {u.id: u.name for u in users}

        def count(kind: str, status: str, **match: int) -> int:
            return sum(
                a.kind == kind and a.status == status and all(getattr(a, k) == v for k, v in match.items())
                for a in assignments
            )

        user_rows = [
            {
                "user": u.name,
                "role": u.role,
                "tamperings": count("tamper", "done", user_id=u.id),
                "tamper_open": count("tamper", "open", user_id=u.id),
                "compared": count("compare", "done", user_id=u.id),
                "compare_open": count("compare", "open", user_id=u.id),
            }
            for u in users
        ]
        task_rows = [
            {
                "tampering_id": t.id,
                "task_id": samples.get(t.sample_id, ""),
                "author": names.get(t.author_id, ""),
                "adversarial": t.adversarial,
                "caught": t.caught,
                "tests_verified": t.tests_verified,
                "raters_done": count("compare", "done", item_id=t.id),
                "raters_open": count("compare", "open", item_id=t.id),
                "overlap": overlap,
            }
            for t in tamperings
        ]
        return {"users": user_rows, "tasks": task_rows, "overlap": overlap}


def agreement(session: Session, user: User) -> dict[str, Any]:
    """Admin: Krippendorff's alpha (ordinal) on overall and CBI over critiques rated by 2+ annotators.

    None where it is undefined: no critique rated twice, or no variation at all among the ratings.
    """
    _require_admin(user)
    with _unit(session):
        rows = session.exec(select(Rating.critique_id, Rating.overall, Rating.cbi)).all()
    overall: dict[int, list[int]] = {}
    cbi: dict[int, list[int]] = {}
    for critique_id, overall_, cbi_ in rows:
        overall.setdefault(critique_id, []).append(overall_)
        cbi.setdefault(critique_id, []).append(cbi_)
    units = sum(len(values) >= 2 for values in overall.values())
    return {
        "overall": alpha(list(overall.values()), "ordinal"),
        "cbi": alpha(list(cbi.values()), "ordinal"),
        "units": units,
        "metric": "ordinal",
    }


def export_dataset(session: Session, user: User | None = None):
    """The tampering, ratings and preferences DatasetDict (see critic.annotation_app.export)."""
    from critic.annotation_app.export import export_dataset as export

    return export(session, user)
