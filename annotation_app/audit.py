"""The audit log: one `audit_event` row per admin action and per login attempt.

`record` adds its row inside the caller's unit of work, so an action and its trace commit together
or not at all; a refused action (bad input, wrong role) records nothing. Admins read the log newest
first (`events`) and export it as CSV (`export_csv`, also `critic annotate audit --out FILE`).
Passwords never reach it: a reset password is logged as `"password": "reset"`.
"""

from __future__ import annotations

import csv
import io
import json
import unicodedata
from typing import Any

from sqlmodel import Session, col, select

from critic.annotation_app.db import AuditEvent, User
from critic.annotation_app.errors import AppError, Forbidden
from critic.annotation_app.transactions import reading

MAX_TARGET = 200  # characters kept of a target: a failed login's name is whatever the client sent
MAX_EVENTS = 10_000  # the most rows `events` returns; the CSV export has them all
COLUMNS = ("id", "at", "actor", "action", "target", "detail", "client")
CLI = "cli"  # the actor of a command run on the database directly (critic annotate add-user)
# A spreadsheet runs a cell starting with one of these as a formula: a user name or a login attempt's
# name could be "=HYPERLINK(...)". The CSV quotes such a cell with a leading ' (OWASP's advice).
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
# Controls (NUL, line breaks, escape), formats (bidi overrides, zero-width) and line separators: a
# name tried at login may hold any of them, and none may reach a file, a terminal or a page raw.
_INVISIBLE = {"Cc", "Cf", "Zl", "Zp"}


def visible(text: str) -> str:
    """`text` with every control or format character written out as `\\uXXXX`, so what a name or a
    target holds is seen, and cannot reorder, hide or cut what follows it."""
    return "".join(f"\\u{ord(c):04x}" if unicodedata.category(c) in _INVISIBLE else c for c in text)


def record(
    session: Session,
    actor: str,
    action: str,
    target: str = "",
    detail: dict[str, Any] | None = None,
    client: str = "",
) -> None:
    """Add one event to the caller's unit of work (it commits or rolls back with the action)."""
    session.add(
        AuditEvent(
            actor=actor,
            action=action,
            target=str(target)[:MAX_TARGET],
            detail=detail,
            client=client or "",
        )
    )


def _require_admin(admin: User | None) -> None:
    if admin is not None and admin.role != "admin":
        raise Forbidden("only admins can do this")


def _row(event: AuditEvent) -> dict[str, Any]:
    return {
        "id": event.id,
        "at": event.at.isoformat(),
        "actor": event.actor,
        "action": event.action,
        "target": event.target,
        "detail": event.detail,
        "client": event.client,
    }


def events(session: Session, admin: User, limit: int = 1000) -> list[dict[str, Any]]:
    """Admin: the latest `limit` events (at most MAX_EVENTS), newest first, as plain dicts (`at` in
    ISO form; `detail` a dict or None)."""
    _require_admin(admin)
    if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
        raise AppError(f"limit must be a whole number of at least 1, got {limit!r}")
    try:
        with reading():
            query = select(AuditEvent).order_by(col(AuditEvent.id).desc()).limit(min(limit, MAX_EVENTS))
            return [_row(event) for event in session.exec(query).all()]
    finally:
        session.rollback()


def export_csv(session: Session, admin: User | None) -> str:
    """Admin: every event, oldest first, as CSV text with a header (COLUMNS; `detail` as JSON).

    `admin` None is the shell (`critic annotate audit`, with access to the database itself). An export
    by a user is an admin action like any other: it is recorded, and the file holds its own row."""
    _require_admin(admin)
    try:
        if admin is not None:
            record(session, admin.name, "export", "audit log")
            session.flush()
        rows = [_row(event) for event in session.exec(select(AuditEvent).order_by(col(AuditEvent.id))).all()]
        session.commit()
    except BaseException:
        session.rollback()
        raise
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(COLUMNS)
    for row in rows:
        row["detail"] = json.dumps(row["detail"], sort_keys=True) if row["detail"] is not None else ""
        writer.writerow([_cell(row[name]) for name in COLUMNS])
    return out.getvalue()


def _cell(value: Any) -> Any:
    """A CSV cell that a spreadsheet shows as text, never runs as a formula, with no control raw."""
    if not isinstance(value, str):
        return value
    value = visible(value)
    return "'" + value if value.startswith(_FORMULA_START) else value
