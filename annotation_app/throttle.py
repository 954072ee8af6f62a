"""Failed logins, counted per account and per client address, and the temporary locks they earn.

An account is strict: five failures in a row are free, the sixth locks it for 30 s, and each failure
after a lock has passed doubles it (60 s, 2 min, ...) up to 15 minutes. An address is looser, twenty
free failures (across any names) before the same locks: a team behind one NAT address shares it, and a
few typos by several people must not lock them all out, while one guesser still meets the account's
limit on every name it tries. While either of a login's keys is locked the password is not even
checked (`TooManyAttempts`, which the API answers with 429 and Retry-After).
A successful login clears the account's count and the client's. A name nobody has is counted like a
real one, so a lock reveals nothing about which names exist. A count whose first failure is a day old
is forgotten once no lock is in force, so occasional typos over weeks never add up to a lock.

Each function works in the caller's unit of work (auth.login holds the transactions); times are the
app's clock (`db.now`), so tests move them.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from datetime import datetime, timedelta

from sqlalchemy import delete, or_
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlmodel import Session, col, select

from critic.annotation_app.db import LoginFailure, now
from critic.annotation_app.errors import AppError

FREE_FAILURES = 5  # an account's failures in a row before its first lock
CLIENT_FREE_FAILURES = 20  # an address's (looser: several people may share one, behind a NAT)
FIRST_LOCK_S = 30
MAX_LOCK_S = 15 * 60
FORGET_AFTER = timedelta(hours=24)  # an unlocked count this old (from its first failure) starts over
MAX_KEY = 200  # characters of a name or address kept in a key: a client may send any length
_INSERTS = {"postgresql": postgresql_insert, "sqlite": sqlite_insert}


class TooManyAttempts(AppError):
    """Too many failed logins for this account or from this address: `retry_after` whole seconds (at
    least 1) until the next try is allowed."""

    def __init__(self, retry_after: float) -> None:
        self.retry_after = max(1, math.ceil(retry_after))
        super().__init__(f"too many failed logins: try again in {wait_text(self.retry_after)}")


def wait_text(seconds: int) -> str:
    """`N s`, or `N min` (rounded up) from two minutes on."""
    return f"{math.ceil(seconds / 60)} min" if seconds >= 120 else f"{seconds} s"


def keys(name: str, client: str) -> list[str]:
    """The counters a login attempt for `name` from `client` touches: the account's (names compare as
    typed, less case and surrounding space) and, when the address is known, the client's."""
    found = [f"user:{name.strip().lower()[:MAX_KEY]}"]
    if client:
        found.append(f"client:{client[:MAX_KEY]}")
    return found


def lock_seconds(failures: int, free: int = FREE_FAILURES) -> int:
    """How long a key with `failures` failures in a row, `free` of them free, is locked from its latest
    failure (0: not)."""
    if failures <= free:
        return 0
    return min(FIRST_LOCK_S * 2 ** min(failures - free - 1, 16), MAX_LOCK_S)


def free_failures(key: str) -> int:
    """How many failures in a row a key may have before its first lock: an address's allowance is looser."""
    return CLIENT_FREE_FAILURES if key.startswith("client:") else FREE_FAILURES


def locked_for(session: Session, keys: Sequence[str]) -> int:
    """Seconds until none of `keys` is locked; 0 when none is."""
    at = now()
    query = select(LoginFailure.locked_until).where(
        col(LoginFailure.key).in_(keys), col(LoginFailure.locked_until) > at
    )
    locks = session.exec(query).all()
    return max((max(1, math.ceil((until - at).total_seconds())) for until in locks), default=0)


def failed(session: Session, keys: Sequence[str]) -> int:
    """Count one failure against each key; returns the seconds until the next try is allowed (0: now)."""
    at = now()
    _forget(session, at)
    insert = _INSERTS.get(session.get_bind().dialect.name)
    for key in keys:
        if insert is not None:  # a concurrent first failure of the same key inserts nothing twice
            session.exec(insert(LoginFailure).values(key=key, first_at=at).on_conflict_do_nothing())
        elif session.get(LoginFailure, key) is None:
            session.add(LoginFailure(key=key))
            session.flush()
    rows = session.exec(
        select(LoginFailure)
        .where(col(LoginFailure.key).in_(keys))
        .with_for_update()  # PostgreSQL: concurrent failures count one after the other
        .execution_options(populate_existing=True)
    ).all()
    wait = 0
    for row in rows:
        row.failures += 1
        seconds = lock_seconds(row.failures, free_failures(row.key))
        if seconds:
            row.locked_until = at + timedelta(seconds=seconds)
        if row.locked_until is not None and row.locked_until > at:
            wait = max(wait, math.ceil((row.locked_until - at).total_seconds()))
        session.add(row)
    session.flush()
    return wait


def succeeded(session: Session, keys: Sequence[str]) -> None:
    """A login went through: its account and its client start again from zero."""
    session.exec(delete(LoginFailure).where(col(LoginFailure.key).in_(keys)))


def _forget(session: Session, at: datetime) -> None:
    """Drop counts whose first failure is FORGET_AFTER old and that hold no lock: the table keeps only
    recent trouble, however many names are tried."""
    session.exec(
        delete(LoginFailure).where(
            col(LoginFailure.first_at) < at - FORGET_AFTER,
            or_(col(LoginFailure.locked_until).is_(None), col(LoginFailure.locked_until) < at),
        )
    )
