"""Critique writing: the human and human + critic teams of CriticGPT.

An annotator writes a critique (highlights: an exact quote of the code and a comment on it, plus an
optional preamble) of someone else's tampering without being told the bug. In mode `human` they start
from nothing; in mode `assisted` from the critic's own critique of the code, stored when the tamperer
checked it, so no critic runs here. Only a readable one (the repair search's) is a start: a tampering
whose model critiques the old FSBS checks wrote is written in mode human (`settle_mode`), so "assisted"
in the per-origin report always means started from a readable critic critique. What the writer did
with each highlight is logged (`HighlightEvent`): that log, and the ratings the written critiques get
next to the critic's, are what the teams experiment measures.

The `writers` setting (0: off) is how many written critiques each tampering collects before its
compare tasks open (store.next_compare_task holds them back until then). Writers take turns in mode,
so writers=2 gives one of each and writers=1 alternates across tamperings. A tampering's writers never
rate it (they would recognise their own critique) and its raters never write one.

These functions follow store.py's conventions (one unit of work each, AppError / Forbidden) and use its
plumbing, imported inside each function: store.py re-exports this module's names, so importing store
here at module level would be circular.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from sqlalchemy import func
from sqlmodel import Session, col, select

from critic.annotation_app import audit
from critic.annotation_app.auth import AppError, Forbidden
from critic.annotation_app.checker import shown_to_people
from critic.annotation_app.db import Assignment, Critique, HighlightEvent, Setting, Tampering, User
from critic.annotation_app.report import origin_of
from critic.core.critique import Highlight, format_critique, line_span_of, parse_critique

MODES = ("human", "assisted")
MAX_HIGHLIGHTS = 20
START_GONE = (
    "the critic's critique this task started from is no longer shown (an old check wrote it): "
    "reload the task, which now starts empty"
)


@dataclass
class WriteTask:
    """A tampering to write a critique of. Blind: no description, bug lines or original code."""

    tampering_id: int
    code: str
    mode: str  # "human" | "assisted"
    # the starting highlights, {"quote", "comment", "source_index"}: the critic's for assisted, [] for human
    highlights: list[dict[str, object]]
    preamble: str  # the critic's preamble for assisted, "" for human
    draft: dict | None


# --- settings and eligibility ----------------------------------------------------------------------


def get_writers(session: Session) -> int:
    """How many written critiques each tampering collects before it can be rated (0: no writing)."""
    found = session.get(Setting, "writers")
    return int(found.value) if found is not None else 0


def set_writers(session: Session, user: User, n: int) -> None:
    """Admin: how many written critiques each tampering collects (0 to store.MAX_WRITERS, which the
    compare form is sized for; 0 turns writing off). A tampering already open for rating keeps its
    critiques. A whole float (3.0) is accepted, 2.5 refused, as for the overlap."""
    from critic.annotation_app import store

    store._require_admin(user)
    if isinstance(n, float) and n.is_integer():
        n = int(n)
    if isinstance(n, bool) or not isinstance(n, int) or not 0 <= n <= store.MAX_WRITERS:
        raise AppError(f"writers must be a whole number from 0 to {store.MAX_WRITERS}, got {n!r}")
    with store._unit(session):
        found = session.get(Setting, "writers")
        if found is None:
            session.add(Setting(key="writers", value=str(n)))
        else:
            found.value = str(n)
            session.add(found)
        audit.record(session, user.name, "set_writers", "writers", {"writers": n})


def takes_tasks(session: Session, user: User) -> bool:
    """Whether the user is given write and compare tasks (admins only when they opt in), read from the
    database: the user object a request carries may predate the admin's change."""
    found = session.get(User, user.id)
    return found is not None and found.takes_tasks and not found.disabled


def claim_count(kind: str, statuses: tuple[str, ...]):
    """Per tampering (correlated with the outer Tampering.id): its `kind` assignments in `statuses`."""
    return (
        select(func.count())
        .where(
            Assignment.kind == kind, Assignment.item_id == Tampering.id, col(Assignment.status).in_(statuses)
        )
        .scalar_subquery()
    )


def _count(session: Session, kind: str, tampering_id: int, statuses: tuple[str, ...]) -> int:
    query = select(func.count()).where(
        Assignment.kind == kind, Assignment.item_id == tampering_id, col(Assignment.status).in_(statuses)
    )
    return session.exec(query).one()


def _writable(user_id: int, writers: int):
    """The tamperings this user may claim a write slot of, oldest first: not theirs, never written or
    rated by them, a free slot (live claims below `writers`), and not yet open for rating."""
    from critic.annotation_app.store import LIVE

    seen = select(Assignment.item_id).where(
        col(Assignment.kind).in_(("write", "compare")), Assignment.user_id == user_id
    )
    return (
        select(Tampering.id)
        .where(
            Tampering.author_id != user_id,
            col(Tampering.id).not_in(seen),
            claim_count("write", LIVE) < writers,
            claim_count("compare", LIVE) == 0,
        )
        .order_by(col(Tampering.id))
    )


def _mode(tampering_id: int, live_modes: list[str], writers: int) -> str:
    """Writer k of tampering t writes in MODES[(t + k) % 2]. k is the first slot whose mode no live claim
    holds: the claim order while nobody's hold expires, and still one of each when one does."""
    wanted = [MODES[(tampering_id + k) % 2] for k in range(writers)]
    for mode in live_modes:
        if mode in wanted:
            wanted.remove(mode)
    return wanted[0]


# --- the task --------------------------------------------------------------------------------------


def _critic_critique(session: Session, tampering_id: int) -> str | None:
    """The critique an assisted writer starts from: the tampering's shown model critique with the lowest
    id, or None when it has none.

    The check stores one (the repair search's). A tampering checked before it holds three FSBS searches'
    critiques, which are never shown (checker.shown_to_people): it has none. Written critiques are not
    model critiques, so writers' work never becomes another writer's start.
    """
    rows = session.exec(
        select(Critique.origin, Critique.text)
        .where(Critique.tampering_id == tampering_id, shown_to_people())
        .order_by(col(Critique.id))
    ).all()
    for origin, text in rows:
        if origin_of(origin) == "model":
            return text
    return None


def start_gone(session: Session, held: Assignment) -> bool:
    """Whether an open assisted write task has no critic critique to start from (only FSBS's)."""
    return (
        held.status == "open" and held.mode == "assisted" and _critic_critique(session, held.item_id) is None
    )


def settle_mode(session: Session, held: Assignment) -> str:
    """The write task's mode, after an assisted one with no critic critique to start from (`start_gone`)
    falls back to human: stored on the assignment, so its critique is recorded as human, and its draft,
    which holds the FSBS critique's text, is dropped. Assisted must mean started from a readable one."""
    from critic.annotation_app import store

    if start_gone(session, held):
        held.mode = "human"
        session.add(held)
        store._delete_draft(session, held.user_id, "write", held.item_id)
        session.flush()
    return held.mode or "human"


def _start(session: Session, tampering: Tampering, mode: str) -> tuple[list[Highlight], str]:
    """The highlights and preamble a writer starts from: the critic's for assisted, nothing for human.
    AppError (START_GONE) for assisted without a critic critique: `settle_mode` comes first."""
    if mode != "assisted":
        return [], ""
    text = _critic_critique(session, tampering.id)
    if text is None:
        raise AppError(START_GONE)
    parsed = parse_critique(text, tampering.code)
    return parsed.highlights, parsed.preamble


def _task(session: Session, held: Assignment) -> WriteTask:
    tampering = session.get(Tampering, held.item_id)
    if tampering is None:
        raise AppError(f"tampering {held.item_id} no longer exists")
    mode = settle_mode(session, held)
    highlights, preamble = _start(session, tampering, mode)
    from critic.annotation_app import store

    return WriteTask(
        tampering.id,
        tampering.code,
        mode,
        [{"quote": h.quote, "comment": h.comment, "source_index": i} for i, h in enumerate(highlights)],
        preamble,
        store._draft(session, held.user_id, "write", tampering.id),
    )


def next_write_task(session: Session, user: User) -> WriteTask | None:
    """The write task the user holds, or a newly claimed one: the oldest tampering they may write for
    with a free slot. None when writing is off, the user takes no tasks, or nothing is left. Its mode is
    settled (`settle_mode`): assisted only with a readable critic critique to start from."""
    from critic.annotation_app import store

    def claim() -> WriteTask | None:
        writers = get_writers(session)
        if writers == 0 or not takes_tasks(session, user):
            return None
        store.expire_stale(session)
        held = store._open_assignment(session, "write", user.id)
        if held is not None:
            store.touch(held)
            session.add(held)
        else:
            for tampering_id in session.exec(_writable(user.id, writers).limit(20)).all():
                # Lock the tampering, then count again: a concurrent claim may have taken the slot.
                session.exec(select(Tampering.id).where(Tampering.id == tampering_id).with_for_update()).one()
                live = session.exec(
                    select(Assignment.mode).where(
                        Assignment.kind == "write",
                        Assignment.item_id == tampering_id,
                        col(Assignment.status).in_(store.LIVE),
                    )
                ).all()
                if len(live) < writers and not _count(session, "compare", tampering_id, store.LIVE):
                    mode = _mode(tampering_id, [m or "human" for m in live], writers)
                    held = Assignment(kind="write", user_id=user.id, item_id=tampering_id, mode=mode)
                    session.add(held)
                    break
            if held is None:
                return None
        session.flush()
        return _task(session, held)

    return store._retrying(session, claim)


def write_tasks_left(session: Session, user: User) -> int:
    """How many tamperings this user could still write a critique for, their open one included (for
    store.my_progress). 0 when writing is off or the user takes no tasks."""
    from critic.annotation_app import store

    with store._unit(session):
        writers = get_writers(session)
        if writers == 0 or not takes_tasks(session, user):
            return 0
        held = store._open_assignment(session, "write", user.id)
        free = session.exec(select(func.count()).select_from(_writable(user.id, writers).subquery())).one()
        return free + (held is not None)


def skip_write_task(session: Session, user: User, tampering_id: int) -> None:
    """Give up a write task (the code is beyond the writer): its slot goes to someone else, and the
    tampering is never offered to this user again, to write or to rate."""
    from critic.annotation_app import store

    with store._unit(session):
        held = store._assignment(session, "write", user.id, tampering_id)
        if held is None:
            raise Forbidden(f"tampering {tampering_id} is not in your writing queue")
        store._require_open(session, held, "this write task is no longer open")
        held.status = "skipped"
        session.add(held)
        store._delete_draft(session, user.id, "write", tampering_id)


# --- submission ------------------------------------------------------------------------------------


def submit_critique(
    session: Session, user: User, tampering_id: int, highlights: list[dict], preamble: str = ""
) -> int:
    """Store the user's written critique of a tampering they hold, with its highlight log; close the
    task and drop its draft. When it is the tampering's last written critique, shuffle the display
    order of all its critiques, which is fixed from then on. One transaction; returns the critique id.

    `highlights`: {"quote", "comment", "source_index"} each, `source_index` the index of the critic's
    highlight (WriteTask.highlights) it started from, or None for one the writer added. An assisted
    task whose start was an FSBS critique is refused (START_GONE): its page must reload and start empty.
    """
    from critic.annotation_app import store

    with store._unit(session):
        # Locked: two writers finishing at once must agree on which of them is the last.
        tampering = session.exec(
            select(Tampering).where(Tampering.id == tampering_id).with_for_update()
        ).first()
        if tampering is None:
            raise AppError(f"no such tampering {tampering_id}")
        held = store._assignment(session, "write", user.id, tampering_id)
        if held is None:
            raise Forbidden(f"tampering {tampering_id} is not in your writing queue")
        store._require_open(session, held, "you already submitted a critique of this tampering")
        writers = get_writers(session)
        done = _count(session, "write", tampering_id, ("done",))
        if done >= writers or _count(session, "compare", tampering_id, store.LIVE):
            raise AppError("this tampering is already open for rating and needs no more critiques: skip it")
        mode = held.mode or "human"
        start, _ = _start(session, tampering, mode)
        sources, text = _validated(tampering.code, start, highlights, preamble)

        last = session.exec(
            select(func.max(Critique.position)).where(Critique.tampering_id == tampering_id)
        ).one()
        critique = Critique(
            tampering_id=tampering_id,
            text=text,
            origin=mode,
            fsbs_settings=None,
            position=(last if last is not None else -1) + 1,
            author_id=user.id,
        )
        session.add(critique)
        session.flush()
        written = parse_critique(text, tampering.code).highlights
        for event in _events(critique.id, start, sources, written):
            session.add(event)
        held.status = "done"
        store.touch(held)
        session.add(held)
        store._delete_draft(session, user.id, "write", tampering_id)
        session.flush()
        if done + 1 == writers:
            return _reshuffle(session, tampering_id, critique.id)
        return critique.id


def _validated(
    code: str, start: list[Highlight], highlights: list[dict], preamble: str
) -> tuple[list[int | None], str]:
    """Each highlight's source index and the critique's text, or an AppError naming the first problem."""
    from critic.annotation_app.store import MAX_CODE, MAX_RATIONALE

    if not isinstance(highlights, list | tuple):
        raise AppError("highlights must be a list")
    if len(highlights) > MAX_HIGHLIGHTS:
        raise AppError(f"{len(highlights)} highlights; the limit is {MAX_HIGHLIGHTS}")
    if not isinstance(preamble, str):
        raise AppError("the overall remark must be text")
    if len(preamble) > MAX_RATIONALE:
        raise AppError(f"the overall remark is {len(preamble)} characters; the limit is {MAX_RATIONALE}")
    pairs: list[tuple[str, str]] = []
    sources: list[int | None] = []
    for n, item in enumerate(highlights, start=1):
        if not isinstance(item, dict):
            raise AppError(f"highlight {n}: not a highlight (quote, comment, source_index)")
        quote, comment, source = item.get("quote"), item.get("comment"), item.get("source_index")
        if not isinstance(quote, str) or not quote.strip():
            raise AppError(f"highlight {n}: the quote is empty")
        if len(quote) > MAX_CODE:
            raise AppError(f"highlight {n}: the quote is longer than the code can be ({MAX_CODE} characters)")
        if not isinstance(comment, str) or not comment.strip():
            raise AppError(f"highlight {n}: the comment is empty")
        if len(comment) > MAX_RATIONALE:
            raise AppError(
                f"highlight {n}: the comment is {len(comment)} characters; the limit is {MAX_RATIONALE}"
            )
        if source is not None and (isinstance(source, bool) or not isinstance(source, int)):
            raise AppError(f"highlight {n}: source_index must be a whole number or null")
        if source is not None and not 0 <= source < len(start):
            raise AppError(f"highlight {n}: source_index {source} is not one of the critic's highlights")
        if source is not None and source in sources:
            raise AppError(
                f"highlight {n}: comes from the critic's highlight {source}, as highlight "
                f"{sources.index(source) + 1} does"
            )
        if line_span_of(quote, code) is None:
            raise AppError(f"highlight {n}: the quote is not in the code")
        try:
            format_critique([(quote, comment)])
        except ValueError as err:
            raise AppError(f"highlight {n}: {err}") from None
        pairs.append((quote, comment))
        sources.append(source)
    if not pairs and not preamble.strip():
        raise AppError("the critique is empty: write at least one highlight or an overall remark")
    try:
        text = format_critique(pairs, preamble)
    except ValueError as err:
        raise AppError(str(err)) from None
    return sources, text


def _same(a: str, b: str) -> bool:
    return "".join(a.split()) == "".join(b.split())


def _events(
    critique_id: int, start: list[Highlight], sources: list[int | None], written: list[Highlight]
) -> list[HighlightEvent]:
    """The log of what the writer did with each highlight: each of the critic's kept (same quote and
    comment, whitespace aside), edited or removed, and each of the writer's own added. Without a
    critic critique (human mode) every highlight is added."""
    events = []
    for source, after in zip(sources, written, strict=True):
        if source is None:
            events.append(
                HighlightEvent(
                    critique_id=critique_id,
                    action="added",
                    after_quote=after.quote,
                    after_comment=after.comment,
                )
            )
            continue
        before = start[source]
        kept = _same(before.quote, after.quote) and _same(before.comment, after.comment)
        events.append(
            HighlightEvent(
                critique_id=critique_id,
                action="kept" if kept else "edited",
                before_quote=before.quote,
                before_comment=before.comment,
                after_quote=after.quote,
                after_comment=after.comment,
            )
        )
    for index, before in enumerate(start):
        if index not in sources:
            events.append(
                HighlightEvent(
                    critique_id=critique_id,
                    action="removed",
                    before_quote=before.quote,
                    before_comment=before.comment,
                )
            )
    return events


def _reshuffle(session: Session, tampering_id: int, critique_id: int) -> int:
    """Shuffle the display order of all the tampering's critiques now that its written ones are in, so
    they are not always last. Each is inserted again in the new order, as submit_tampering inserts them,
    so critique ids do not tell written from model or reference critiques; the highlight log follows its
    critique. Nobody has rated them yet (no compare task opens before this). Returns `critique_id`'s
    new id."""
    critiques = list(session.exec(select(Critique).where(Critique.tampering_id == tampering_id)).all())
    random.SystemRandom().shuffle(critiques)
    new_id = critique_id
    for position, old in enumerate(critiques):
        fresh = Critique(
            tampering_id=tampering_id,
            text=old.text,
            origin=old.origin,
            fsbs_settings=old.fsbs_settings,
            position=position,
            author_id=old.author_id,
        )
        session.add(fresh)
        session.flush()
        for event in session.exec(select(HighlightEvent).where(HighlightEvent.critique_id == old.id)).all():
            event.critique_id = fresh.id
            session.add(event)
        session.flush()
        if old.id == critique_id:
            new_id = fresh.id
        session.delete(old)
        session.flush()
    return new_id


__all__ = [
    "MAX_HIGHLIGHTS",
    "MODES",
    "START_GONE",
    "WriteTask",
    "claim_count",
    "get_writers",
    "next_write_task",
    "set_writers",
    "settle_mode",
    "skip_write_task",
    "start_gone",
    "submit_critique",
    "takes_tasks",
    "write_tasks_left",
]
