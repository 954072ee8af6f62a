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
import math
import random
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field, fields, make_dataclass
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar, get_type_hints

from sqlalchemy import and_, func, or_
from sqlalchemy.exc import IntegrityError, OperationalError
from sqlmodel import Session, col, select

from critic.annotation_app import audit
from critic.annotation_app.agreement import alpha
from critic.annotation_app.auth import (
    DEFAULT_IDLE_MINUTES,
    DEFAULT_LIFETIME_HOURS,
    IDLE_SETTING,
    LIFETIME_SETTING,
    MAX_NAME,
    MIN_PASSWORD,
    ROLES,
    AppError,
    Forbidden,
    SessionExpired,
    authenticate,
    check_role,
    create_user,
    end_sessions,
    login,
    logout,
    parse_session_limits,
    role_for_token,
    set_password,
    user_for_token,
)
from critic.annotation_app.checker import (
    CHECK_SEARCHES,
    SEARCH,
    CheckResult,
    TestResult,
    caught,
    check_tampering,
    run_sample_tests,
    search_of,
    shown_to_people,
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
from critic.annotation_app.report import ORIGINS, origin_of, origin_report
from critic.annotation_app.throttle import TooManyAttempts
from critic.annotation_app.transactions import reading
from critic.annotation_app.writing import (
    MAX_HIGHLIGHTS,
    START_GONE,
    WriteTask,
    claim_count,
    get_writers,
    next_write_task,
    set_writers,
    settle_mode,
    skip_write_task,
    start_gone,
    submit_critique,
    takes_tasks,
    write_tasks_left,
)
from critic.core.critique import code_lines
from critic.datagen.rating import SCORE_FIELDS, SCORE_MIN, gold_critique
from critic.datagen.rating import Rating as RubricRating

if TYPE_CHECKING:
    from critic.inference.fsbs import Critic
    from critic.review.settings import ReviewSettings

__all__ = [
    "CHECK_SEARCHES",
    "CRITIQUES_PER_TASK",
    "DEFAULT_ASSIGNMENT_TTL_HOURS",
    "DEFAULT_IDLE_MINUTES",
    "DEFAULT_LIFETIME_HOURS",
    "DEFAULT_OVERLAP",
    "KINDS",
    "MAX_ASSIGNMENT_TTL_HOURS",
    "MAX_CODE",
    "MAX_DESCRIPTION",
    "MAX_DRAFT",
    "MAX_HIGHLIGHTS",
    "MAX_NAME",
    "MAX_OVERLAP",
    "MAX_RATIONALE",
    "MAX_SESSION_LIFETIME_HOURS",
    "MIN_PASSWORD",
    "MIN_SHOWN",
    "ORIGINS",
    "RATED_FIELDS",
    "ROLES",
    "AppError",
    "CheckResult",
    "CompareTask",
    "CritiqueView",
    "Forbidden",
    "RatingInput",
    "SampleView",
    "SessionExpired",
    "TestResult",
    "TooManyAttempts",
    "WriteTask",
    "add_user",
    "agreement",
    "authenticate",
    "check_sample",
    "check_tampering",
    "comparable",
    "create_user",
    "export_dataset",
    "record_export",
    "get_assignment_ttl",
    "get_overlap",
    "get_session_limits",
    "get_writers",
    "import_samples",
    "list_users",
    "load_draft",
    "login",
    "logout",
    "my_progress",
    "next_compare_task",
    "next_tamper_sample",
    "next_write_task",
    "origin_of",
    "origin_report",
    "progress",
    "rating_problems",
    "run_tests",
    "save_draft",
    "set_assignment_ttl",
    "set_overlap",
    "set_session_limits",
    "set_writers",
    "shown_critiques",
    "skip_sample",
    "skip_write_task",
    "submit_critique",
    "submit_ratings",
    "submit_tampering",
    "role_for_token",
    "update_user",
    "user_for_token",
    "validate_tampering",
    "write_tasks_left",
]

KINDS = ("tamper", "compare", "write")
MAX_CODE = 20_000  # characters of tampered code
MAX_DESCRIPTION = 5_000
MAX_RATIONALE = 5_000
MAX_DRAFT = 100_000  # characters of a draft's JSON
DEFAULT_OVERLAP = 2
DEFAULT_ASSIGNMENT_TTL_HOURS = 24.0
MAX_ASSIGNMENT_TTL_HOURS = 24.0 * 365
MAX_SESSION_LIFETIME_HOURS = 24.0 * 365
MAX_OVERLAP = 10
CRITIQUES_PER_TASK = CHECK_SEARCHES + 1  # the critic's critique and the gold critique
MAX_WRITERS = 4  # written critiques (human, assisted) a tampering may collect before it is rated
# The most critiques one compare task can show. A tampering checked before the repair search also holds
# three FSBS critiques (seeds 0..2), but those are never shown (checker.shown_to_people).
MAX_CRITIQUES = CRITIQUES_PER_TASK + MAX_WRITERS
MIN_SHOWN = 2  # critiques a compare task needs: a rater compares them
_RETRIES = 3  # a claim that loses a race (unique constraint, deadlock) is retried with fresh data
_DEADLOCK = "40P01"  # PostgreSQL's SQLSTATE deadlock_detected

T = TypeVar("T")


@dataclass
class SampleView:
    sample_id: int
    code: str
    has_tests: bool
    source: str
    task_id: str
    draft: dict | None
    check: CheckResult | None = None  # the last *Check against critic* of this sample: survives a reload


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
    """Run a claiming unit of work again when a concurrent claim wins the unique constraint, or when
    PostgreSQL breaks a lock cycle between two claimers (deadlock detected: it aborts one of them, and
    that one only has to try again)."""
    for attempt in range(_RETRIES):
        try:
            with _unit(session):
                return fn()
        except (IntegrityError, OperationalError) as err:
            lost = isinstance(err, IntegrityError) or getattr(err.orig, "sqlstate", None) == _DEADLOCK
            if not lost:
                raise
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


def _expired_message(session: Session) -> str:
    hours = get_assignment_ttl(session)
    unit = "hour" if hours == 1 else "hours"
    return f"your hold on this task expired after {hours:g} {unit} without activity; it went back to the pool"


def _require_open(session: Session, held: Assignment, closed: str) -> None:
    """AppError unless the user still holds the task: the expiry message (so the UI can say why the
    work is gone) or `closed` (submitted or skipped)."""
    if held.status == "expired":
        raise AppError(_expired_message(session))
    if held.status != "open":
        raise AppError(closed)


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
    submission that made it obsolete. A draft for an expired task is refused with the expiry message:
    the user must learn that the work is no longer theirs. Saving counts as activity (`touch`). A
    draft of an assisted write task that started from an FSBS critique is refused (`writing.start_gone`):
    it holds that critique's text, and the page that sent it must reload.
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
        if held.status == "expired":
            raise AppError(_expired_message(session))
        if held.status != "open":
            return
        if kind == "write" and start_gone(session, held):
            raise AppError(START_GONE)
        touch(held)  # working on a task keeps it
        session.add(held)
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
    """The user's own draft of a task, or None. Nobody reads another user's drafts. A write task's
    mode is settled first (`writing.settle_mode`): a draft built on an FSBS critique is dropped."""
    _check_kind(kind)
    with _unit(session):
        held = _assignment(session, kind, user.id, item_id) if kind == "write" else None
        if held is not None:
            settle_mode(session, held)
        return _draft(session, user.id, kind, item_id)


# --- tampering -------------------------------------------------------------------------------------


def next_tamper_sample(session: Session, user: User) -> SampleView | None:
    """The sample the user is tampering, or a newly claimed one: the least-claimed sample (live claims:
    open or done) they have never held. None when there is none left. Fetching it counts as activity."""

    def claim() -> SampleView | None:
        expire_stale(session)
        held = _open_assignment(session, "tamper", user.id)
        if held is not None:
            touch(held)
            session.add(held)
        else:
            claims = (
                select(Assignment.item_id, func.count().label("n"))
                .where(Assignment.kind == "tamper", col(Assignment.status).in_(LIVE))
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
            _draft(session, user.id, "tamper", sample.id), _stored_check(held),
        )  # fmt: skip

    return _retrying(session, claim)


def skip_sample(session: Session, user: User, sample_id: int) -> None:
    """Give up the sample being tampered (nothing subtle fits in it): it is never offered to this user
    again, and the next call of `next_tamper_sample` claims another one."""
    with _unit(session):
        held = _assignment(session, "tamper", user.id, sample_id)
        if held is None:
            raise Forbidden(f"sample {sample_id} is not in your queue")
        _require_open(session, held, "this sample is no longer open")
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
    tampered = _parse_tampered(code)
    try:
        same = ast.dump(ast.parse(original)) == ast.dump(tampered)
    except (SyntaxError, ValueError):
        same = original.strip() == code.strip()
    if same:
        raise AppError("the code does the same as the original (only whitespace or comments changed)")


def _parse_tampered(code: str) -> ast.Module:
    """The tampered code's syntax tree; AppError with the parser's message and line if it has none."""
    try:
        return ast.parse(code)
    except SyntaxError as err:
        raise AppError(f"the tampered code does not parse: {err.msg} (line {err.lineno})") from None
    except ValueError as err:  # e.g. a null byte
        raise AppError(f"the tampered code does not parse: {err}") from None


def _stored_check(held: Assignment | None) -> CheckResult | None:
    """The check `check_sample` stored on a tamper assignment, or None (never checked, or a stored dict
    this release cannot read or no longer makes, such as an FSBS check: the user checks again)."""
    if held is None or not isinstance(held.check_result, dict):
        return None
    try:
        check = CheckResult(**held.check_result)
    except TypeError:
        return None
    current = isinstance(check.settings, dict) and search_of(check.settings) == SEARCH
    return check if current and len(check.critiques) == CHECK_SEARCHES else None


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
    settings: ReviewSettings | None = None,
    *,
    on_search: Callable[[int], None] | None = None,
) -> CheckResult:
    """*Check against critic* for a sample the user holds: validate the tampering, then load the critic
    (only for valid input) and run it, outside any transaction: a search takes seconds. `on_search(n)`
    is called as search n starts (`checker.check_tampering`), for a progress display; `settings`: the
    review operating point it checks at (default `critic review`'s).

    The result is stored on the user's assignment afterwards, in its own short transaction, so a reload
    shows it and `submit_tampering` can use it; a check counts as activity. Only this function writes
    it: a check result inside a draft is the client's word, never trusted.
    """
    with _unit(session):
        sample, held = _held_sample(session, user, sample_id)
        if held is not None:
            _require_open(session, held, "this sample is no longer open")
    validate_tampering(sample.code, code, bug_lines, description)
    result = check_tampering(
        critic_factory(), code, list(bug_lines), description, settings, on_search=on_search
    )

    def keep() -> None:
        found = _assignment(session, "tamper", user.id, sample_id)
        if found is None:
            return  # an admin's check of a sample they do not hold
        _require_open(session, found, "this sample is no longer open")
        found.check_result = asdict(result)
        touch(found)
        session.add(found)

    with _unit(session):
        keep()
    return result


def run_tests(session: Session, user: User, sample_id: int, code: str) -> TestResult:
    """Whether the sample's tests pass on the original and fail on `code` (sandboxed, no DB lock held)."""
    with _unit(session):
        sample, _ = _held_sample(session, user, sample_id)
    if not sample.test:
        raise AppError("this sample has no tests")
    if not isinstance(code, str) or len(code) > MAX_CODE:
        raise AppError(f"the code must be text of at most {MAX_CODE} characters")
    _parse_tampered(code)  # the sandbox would only report a SyntaxError as a failing test
    return run_sample_tests(sample.code, code, sample.test)


def submit_tampering(
    session: Session,
    user: User,
    sample_id: int,
    code: str,
    bug_lines: list[int],
    description: str,
    check: CheckResult | None,
    *,
    verify_tests: bool = True,
) -> int:
    """Store a tampering with its check's model critique and the gold critique, in a shuffled order
    fixed for every rater, queue it for comparison, close the tamper task and drop its draft.

    Whether the model critique caught the bug is re-rated against the submitted bug lines and
    description (they may have changed since the check; the code may not). `check` None: the check
    `check_sample` stored for this sample. With `verify_tests`, a sample with tests is run in the
    sandbox so the tampering records whether the tests notice the bug.
    """
    with _unit(session):
        sample, held = _held_sample(session, user, sample_id)
        if held is None:
            raise Forbidden(f"sample {sample_id} is not in your queue")
        _require_open(session, held, "you already submitted a tampering of this sample")
        if check is None:
            check = _stored_check(held)
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
        if held is None:
            raise AppError("you already submitted a tampering of this sample")
        _require_open(session, held, "you already submitted a tampering of this sample")
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


def shown_critiques(tampering_id: int, what: Any = Critique):
    """The query of `what` (the rows, or a column) of a tampering's critiques that a rater sees and rates,
    in display order: all but the FSBS checks' word salad (checker.shown_to_people), so a card and the
    ratings it asks for agree."""
    return (
        select(what)
        .where(Critique.tampering_id == tampering_id, shown_to_people())
        .order_by(col(Critique.position))
    )


def comparable():
    """Per tampering (correlated with the outer Tampering.id): it shows at least MIN_SHOWN critiques. A
    tampering from the FSBS checks with no written critiques shows only the gold one, so it gets no
    compare task rather than a card with nothing to compare."""
    shown = (
        select(func.count())
        .select_from(Critique)
        .where(Critique.tampering_id == Tampering.id, shown_to_people())
        .scalar_subquery()
    )
    return shown >= MIN_SHOWN


def _comparable(session: Session, tampering_id: int) -> bool:
    return bool(session.exec(select(comparable()).where(Tampering.id == tampering_id)).first())


def next_compare_task(session: Session, user: User) -> CompareTask | None:
    """The task the user is rating, or a newly claimed one: the oldest tampering they neither tampered
    nor wrote a critique of, have not rated, whose `writers` written critiques are in (or whose rating
    has begun), that shows at least MIN_SHOWN critiques (`comparable`), and that still has fewer than
    `overlap` live claims (open or done). None when there is none, or when the user takes no tasks.
    Fetching it counts as activity.

    The card shows `shown_critiques`: never the FSBS checks' model critiques. A task held since before
    they were hidden that no longer shows MIN_SHOWN is marked skipped (its draft dropped) and another
    one is claimed: it could never be submitted."""

    def claim() -> CompareTask | None:
        if not takes_tasks(session, user):
            return None
        expire_stale(session)
        held = _open_assignment(session, "compare", user.id)
        while held is not None and not _comparable(session, held.item_id):
            held.status = "skipped"
            session.add(held)
            _delete_draft(session, user.id, "compare", held.item_id)
            session.flush()
            held = _open_assignment(session, "compare", user.id)
        if held is not None:
            touch(held)
            session.add(held)
            session.flush()
        else:
            overlap, writers = get_overlap(session), get_writers(session)

            # A writer of a tampering never rates it: they would know their own critique.
            mine = select(Assignment.item_id).where(
                col(Assignment.kind).in_(("compare", "write")), Assignment.user_id == user.id
            )
            query = (
                select(Tampering.id)
                .where(
                    Tampering.author_id != user.id,
                    col(Tampering.id).not_in(mine),
                    claim_count("compare", LIVE) < overlap,
                    comparable(),
                    # Its written critiques are in, or its rating began before `writers` was raised:
                    # its critiques are fixed either way, and its raters must be able to finish it.
                    or_(claim_count("write", ("done",)) >= writers, claim_count("compare", LIVE) > 0),
                )
                .order_by(col(Tampering.id))
                .limit(20)
            )
            candidates = session.exec(query).all()

            def lock_and_claim(tampering_id: int, wait: bool) -> Assignment | None | bool:
                """Lock the tampering, then count again: a concurrent claim may have filled it meanwhile.
                False when `wait` is off and another claim holds the lock (PostgreSQL; SQLite's write
                lock already serialises claims, and it ignores FOR UPDATE)."""
                lock = select(Tampering.id).where(Tampering.id == tampering_id)
                if session.exec(lock.with_for_update(skip_locked=not wait)).first() is None:
                    return False
                live = select(func.count()).where(
                    Assignment.kind == "compare",
                    Assignment.item_id == tampering_id,
                    col(Assignment.status).in_(LIVE),
                )
                if session.exec(live).one() >= overlap:
                    return None
                claimed = Assignment(kind="compare", user_id=user.id, item_id=tampering_id)
                session.add(claimed)
                session.flush()
                return claimed

            # Concurrent claimers all want the oldest tampering: each first takes one nobody is locking,
            # and waits for a locked one only when every candidate was locked.
            skipped = []
            for tampering_id in candidates:
                outcome = lock_and_claim(tampering_id, wait=False)
                if outcome is False:
                    skipped.append(tampering_id)
                elif outcome is not None:
                    held = outcome
                    break
            else:
                for tampering_id in skipped:
                    outcome = lock_and_claim(tampering_id, wait=True)
                    if outcome:
                        held = outcome
                        break
            if held is None:
                return None
        tampering = session.get(Tampering, held.item_id)
        if tampering is None:
            raise AppError(f"task {held.item_id} no longer exists")
        critiques = session.exec(shown_critiques(tampering.id)).all()
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
    all in one transaction, so a crash leaves either all of it or none. A refusal lists every problem
    of every critique at once (`rating_problems`), so the rater fixes them in one pass. The critiques
    to rate are the card's (`shown_critiques`): a hidden FSBS critique is neither asked for nor accepted.

    The hot path of a rating session: it loads the columns it checks, not whole rows, and writes the
    ratings in one flush."""
    with _unit(session):
        author_id = session.exec(select(Tampering.author_id).where(Tampering.id == tampering_id)).first()
        if author_id is None:
            raise AppError(f"no such task {tampering_id}")
        if author_id == user.id:
            raise Forbidden("you cannot rate your own tampering")
        held = _assignment(session, "compare", user.id, tampering_id)
        if held is None:
            raise Forbidden(f"task {tampering_id} is not assigned to you")
        _require_open(session, held, "you already submitted ratings for this task")
        critique_ids = session.exec(shown_critiques(tampering_id, Critique.id)).all()
        rows = _rating_rows(user, critique_ids, ratings)
        try:
            session.add_all(rows)
            session.flush()  # all of them in one flush
        except IntegrityError:
            raise AppError("you already submitted ratings for this task") from None
        held.status = "done"
        session.add(held)
        _delete_draft(session, user.id, "compare", tampering_id)


def _rating_rows(user: User, critique_ids: list[int], ratings: dict[int, RatingInput]) -> list[Rating]:
    """The `rating` rows for the critiques of a task, in display order; AppError listing every problem
    if any critique is unrated or wrongly rated, or a rating is for another task's critique."""
    if not isinstance(ratings, dict):
        raise AppError("ratings must map critique ids to ratings")
    ids = set(critique_ids)
    if unknown := [key for key in ratings if key not in ids]:
        raise AppError(f"critique {unknown[0]!r} is not part of this task")
    rows, problems = [], []
    for number, critique_id in enumerate(critique_ids, start=1):
        given = ratings.get(critique_id)
        if given is None:
            problems.append(f"critique {number}: not rated")
            continue
        if not isinstance(given, RatingInput):
            problems.append(f"critique {number}: not a rating")
            continue
        values = {f.name: getattr(given, f.name) for f in fields(RatingInput)}
        if found := _critique_problems(values):
            problems.append(f"critique {number}: {', '.join(found)}")
        else:
            rows.append(Rating(critique_id=critique_id, rater_id=user.id, **values))
    if problems:
        raise AppError("; ".join(problems))
    return rows


_FIELD_LABELS = {"cbi": "CBI"}  # how a rubric field is named to a rater: as the form labels it


def rating_problems(values_by_critique: list[dict[str, object]]) -> list[str]:
    """One message per critique with problems, in order, e.g. `critique 2: no CBI, no rationale`.

    Each dict holds the RATED_FIELDS, with None for an unanswered score and "" for an empty rationale.
    Pure, so the UI lists what is missing as the rater works, in the words `submit_ratings` refuses with.
    """
    return [
        f"critique {number}: {', '.join(found)}"
        for number, values in enumerate(values_by_critique, start=1)
        if (found := _critique_problems(values))
    ]


def _critique_problems(values: dict[str, object]) -> list[str]:
    """Every problem of one critique's answers: each unanswered field, an over-long rationale, and the
    rubric's own complaint (critic.datagen.rating.Rating.validate) about a value out of range."""
    rationale = values.get("rationale")
    missing = [name for name in SCORE_FIELDS if values.get(name) is None]
    if rationale is None or (isinstance(rationale, str) and not rationale.strip()):
        missing.append("rationale")
    problems = [f"no {_FIELD_LABELS.get(name, name)}" for name in missing]
    if isinstance(rationale, str) and len(rationale) > MAX_RATIONALE:
        problems.append(f"the rationale is over {MAX_RATIONALE} characters")
    # The rubric checks the given values; an unanswered field gets a valid stand-in, so the rubric's
    # first complaint is about a value the rater gave, not one already reported missing.
    stand_in = {**dict.fromkeys(SCORE_FIELDS, SCORE_MIN), "rationale": "-"}
    given = {name: stand_in[name] if name in missing else values.get(name) for name in RATED_FIELDS}
    try:
        RubricRating(**given, rater="rater").validate()
    except ValueError as err:
        problems.append(str(err))
    return problems


# --- admin -----------------------------------------------------------------------------------------


def add_user(session: Session, user: User, name: str, role: str, password: str) -> User:
    """Admin: create a user (audited: `add_user`)."""
    _require_admin(user)
    return create_user(session, name, role, password, actor=user.name)


def list_users(session: Session, user: User) -> list[dict]:
    """Admin: every user (name, role, disabled, takes_tasks, created_at as ISO text), in id order."""
    _require_admin(user)
    with reading(), _unit(session):
        users = session.exec(select(User).order_by(col(User.id))).all()
        return [
            {
                "name": u.name,
                "role": u.role,
                "disabled": u.disabled,
                "takes_tasks": u.takes_tasks,
                "created_at": u.created_at.isoformat(),
            }
            for u in users
        ]


def update_user(
    session: Session,
    user: User,
    name: str,
    *,
    role: str | None = None,
    disabled: bool | None = None,
    takes_tasks: bool | None = None,
    password: str | None = None,
) -> None:
    """Admin: change a user's role, disabled flag, whether they take compare and write tasks, or
    password (None: unchanged). Disabling a user, changing their role or resetting their password ends
    all their sessions. An admin cannot disable themselves or drop their own admin role, so there is
    always an admin who can log in. Audited (`update_user`, with the fields given; a password only as
    "reset")."""
    _require_admin(user)
    if role is not None:
        check_role(role)
    for label, value in (("disabled", disabled), ("takes_tasks", takes_tasks)):
        if value is not None and not isinstance(value, bool):
            raise AppError(f"{label} must be true or false, got {value!r}")
    name = name.strip() if isinstance(name, str) else ""
    with _unit(session):
        target = session.exec(select(User).where(User.name == name)).first()
        if target is None:
            raise AppError(f"no such user {name!r}")
        if target.id == user.id and disabled:
            raise AppError("you cannot disable yourself: another admin can")
        if target.id == user.id and role not in (None, "admin"):
            raise AppError("you cannot remove your own admin role: another admin can")
        end = False
        if role is not None and role != target.role:
            target.role, end = role, True
        if disabled is not None:
            end = end or (disabled and not target.disabled)
            target.disabled = disabled
        if takes_tasks is not None:
            target.takes_tasks = takes_tasks
        if password is not None:
            set_password(target, password)
            end = True
        session.add(target)
        if end:
            end_sessions(session, target.id)
        changes = {"role": role, "disabled": disabled, "takes_tasks": takes_tasks}
        detail = {key: value for key, value in changes.items() if value is not None}
        if password is not None:
            detail["password"] = "reset"
        audit.record(session, user.name, "update_user", target.name, detail)


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
    skipped; returns how many were added. Audited (`import`)."""
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
        audit.record(session, user.name, "import", source.strip(), {"added": added})
        return added


def set_overlap(session: Session, user: User, n: int) -> None:
    """Admin: how many distinct annotators rate each tampering (applies to tasks not yet claimed).
    A whole float (3.0, as a number field sends it) is accepted; 2.5 is refused, never truncated."""
    _require_admin(user)
    if isinstance(n, float) and n.is_integer():
        n = int(n)
    if isinstance(n, bool) or not isinstance(n, int) or not 1 <= n <= MAX_OVERLAP:
        raise AppError(f"overlap must be a whole number from 1 to {MAX_OVERLAP}, got {n!r}")
    with _unit(session):
        _set_setting(session, "overlap", str(n))
        audit.record(session, user.name, "set_overlap", "overlap", {"overlap": n})


def set_assignment_ttl(session: Session, user: User, hours: float) -> None:
    """Admin: hours an open assignment may go without activity before it returns to the pool (applies
    at the next claim, to every open assignment)."""
    _require_admin(user)
    if (
        isinstance(hours, bool)
        or not isinstance(hours, int | float)
        or not math.isfinite(hours)
        or not 0 < hours <= MAX_ASSIGNMENT_TTL_HOURS
    ):
        raise AppError(
            f"the assignment expiry must be a number of hours above 0 and at most "
            f"{MAX_ASSIGNMENT_TTL_HOURS:g} (a year), got {hours!r}"
        )
    with _unit(session):
        _set_setting(session, "assignment_ttl_hours", repr(float(hours)))
        audit.record(session, user.name, "set_assignment_ttl", "assignments", {"hours": float(hours)})


def get_session_limits(session: Session) -> tuple[float, float]:
    """(idle minutes, lifetime hours): a session ends after that long without a request, or that long
    after its login, whichever comes first (auth.user_for_token)."""
    with reading(), _unit(session):
        idle, lifetime = session.get(Setting, IDLE_SETTING), session.get(Setting, LIFETIME_SETTING)
        return parse_session_limits(
            idle.value if idle is not None else None, lifetime.value if lifetime is not None else None
        )


def set_session_limits(session: Session, user: User, idle_minutes: float, lifetime_hours: float) -> None:
    """Admin: how long a session may go without a request (minutes) and how long it may last at all
    (hours). They apply at once, to sessions already open too. Audited (`set_session_limits`)."""
    _require_admin(user)
    for label, value, limit in (
        ("idle timeout", idle_minutes, MAX_SESSION_LIFETIME_HOURS * 60),
        ("session lifetime", lifetime_hours, MAX_SESSION_LIFETIME_HOURS),
    ):
        if (
            isinstance(value, bool)
            or not isinstance(value, int | float)
            or not math.isfinite(value)
            or not 0 < value <= limit
        ):
            raise AppError(f"the {label} must be a number above 0 and at most {limit:g}, got {value!r}")
    if idle_minutes > lifetime_hours * 60:
        raise AppError(
            f"the idle timeout ({idle_minutes:g} minutes) cannot be longer than the session lifetime "
            f"({lifetime_hours:g} hours)"
        )
    with _unit(session):
        _set_setting(session, IDLE_SETTING, repr(float(idle_minutes)))
        _set_setting(session, LIFETIME_SETTING, repr(float(lifetime_hours)))
        detail = {"idle_minutes": float(idle_minutes), "lifetime_hours": float(lifetime_hours)}
        audit.record(session, user.name, "set_session_limits", "sessions", detail)


def _set_setting(session: Session, key: str, value: str) -> None:
    found = session.get(Setting, key)
    if found is None:
        session.add(Setting(key=key, value=value))
    else:
        found.value = value
        session.add(found)


def progress(session: Session, user: User) -> dict[str, Any]:
    """Admin: per user, what they tampered and rated; per tampering, how far its rating has got; how
    far the samples have got (`samples`: total, tampered at least once, skipped and never tampered,
    held open now, never assigned)."""
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

        tampered = {t.sample_id for t in tamperings}
        held = {a.item_id for a in assignments if a.kind == "tamper" and a.status == "open"}
        skipped = {a.item_id for a in assignments if a.kind == "tamper" and a.status == "skipped"}
        touched = {a.item_id for a in assignments if a.kind == "tamper"}
        sample_counts = {
            "total": len(samples),
            "tampered": len(tampered),
            "skipped": len(skipped - tampered),
            "open": len(held),
            "untouched": len(samples.keys() - touched),
        }
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
        return {"users": user_rows, "tasks": task_rows, "overlap": overlap, "samples": sample_counts}


def my_progress(session: Session, user: User) -> dict[str, dict[str, int]]:
    """The user's own progress per task kind: `done` (their submitted tasks) and `left` (items they
    could still be given, their open one included).

    An open assignment idle past the TTL counts as expired, as the next claim will make it. `compare`
    ignores the writers gate: a tampering still collecting written critiques counts as left, because it
    is work ahead even if it cannot be claimed this minute. Users who take no tasks (admins unless they
    opt in) have no compare or write tasks left.
    """
    kinds = ("tamper", "compare", "write")
    with reading(), _unit(session):  # only reads: on SQLite it does not queue behind writers
        cutoff = now() - timedelta(hours=get_assignment_ttl(session))
        fresh = and_(Assignment.status == "open", Assignment.touched_at >= cutoff)  # not expiring yet
        of_user = Assignment.user_id == user.id
        columns = select(Assignment.kind, Assignment.item_id, Assignment.status)
        mine = session.exec(columns.where(of_user)).all()
        # A held compare task with too few critiques to show is released at the next claim: not left.
        still_held = or_(
            Assignment.kind != "compare",
            col(Assignment.item_id).in_(select(Tampering.id).where(comparable())),
        )
        holding = set(session.exec(select(Assignment.kind).where(of_user, fresh, still_held)).all())
        done = {kind: sum(k == kind and status == "done" for k, _, status in mine) for kind in kinds}
        had_sample = [item for k, item, _ in mine if k == "tamper"]
        never_had = select(func.count()).select_from(CodeSample).where(col(CodeSample.id).not_in(had_sample))
        left = {"tamper": session.exec(never_had).one() + ("tamper" in holding), "compare": 0, "write": 0}
        if user.takes_tasks:
            had_tampering = [item for k, item, _ in mine if k in ("compare", "write")]
            live = or_(Assignment.status == "done", fresh)
            claims = (
                select(func.count())
                .where(Assignment.kind == "compare", Assignment.item_id == Tampering.id, live)
                .scalar_subquery()
            )
            open_to_me = select(func.count()).where(
                Tampering.author_id != user.id,
                col(Tampering.id).not_in(had_tampering),
                claims < get_overlap(session),
                comparable(),
            )
            left["compare"] = session.exec(open_to_me).one() + ("compare" in holding)
    if user.takes_tasks:
        left["write"] = _write_tasks_left(session, user)
    return {kind: {"done": done[kind], "left": left[kind]} for kind in kinds}


def _write_tasks_left(session: Session, user: User) -> int:
    """`writing.write_tasks_left`, or 0 in a release without critique writing."""
    try:
        from critic.annotation_app import writing
    except ModuleNotFoundError as err:
        if err.name != "critic.annotation_app.writing":
            raise
        return 0
    count_left = getattr(writing, "write_tasks_left", None)
    return int(count_left(session, user)) if count_left is not None else 0


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
    """The tampering, ratings and preferences DatasetDict (see critic.annotation_app.export). Building
    it records nothing: the caller audits the export once it is saved (`record_export`)."""
    from critic.annotation_app.export import export_dataset as export

    return export(session, user)


def record_export(session: Session, user: User, target: str, rows: dict[str, int]) -> None:
    """Audit an export that happened (`export`, to `target`: a folder or "zip download", with the rows
    per split). A refused or failed export is never recorded."""
    _require_admin(user)
    with _unit(session):
        audit.record(session, user.name, "export", target, {"rows": rows})
