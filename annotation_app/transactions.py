"""How concurrent transactions share one SQLite database: writers queue in-process, readers do not queue.

SQLite has one writer at a time. Every transaction starts with BEGIN IMMEDIATE (the write lock up
front), so two requests that read then write (claiming the last overlap slot of a task) serialise
instead of both succeeding, or failing with "database is locked" halfway. A writer that finds the lock
taken is left to SQLite's busy handler, which sleeps and retries (1 ms, then up to 100 ms a try):
under 20 concurrent requests the lock sat free while waiters slept, and unlucky ones lost the race for
seconds (p95 near 1 s, the worst 5 s). So the server's writers first queue on a lock in this process
(the write gate) and reach SQLite one at a time: a waiter wakes the moment the writer before it ends,
and the busy handler only arbitrates between processes (the server and a CLI command).

Transactions begun inside `reading()` only read: they start deferred (plain BEGIN) and skip the gate,
because in WAL mode a reader sees the last commit and waits for no writer. A session-token lookup on
every request is one. Nothing inside `reading()` may write: a deferred transaction that writes after
another writer committed fails with "database is locked" instead of waiting.

PostgreSQL needs none of this: it locks rows, not the database, and `reading()` changes nothing there.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar

from sqlalchemy import event
from sqlalchemy.engine import Connection, Engine

_reading: ContextVar[bool] = ContextVar("critic_annotation_reading", default=False)
_HOLDS_GATE = "critic_write_gate"  # key in Connection.info: this connection's transaction holds the gate


@contextmanager
def reading() -> Iterator[None]:
    """Transactions begun inside only read: on SQLite they neither take the write lock nor queue for it."""
    token = _reading.set(True)
    try:
        yield
    finally:
        _reading.reset(token)


def install_write_gate(engine: Engine, timeout_s: float) -> None:
    """Make every transaction on SQLite `engine` BEGIN IMMEDIATE after queueing on an in-process lock,
    held until it commits or rolls back; inside `reading()`, a plain BEGIN without the lock.

    The lock is released just before the COMMIT or ROLLBACK runs (SQLAlchemy has no event after it);
    the next writer's BEGIN IMMEDIATE then waits at most for that statement, in SQLite's busy handler.
    A thread that already holds the lock through another connection (a session opened inside another
    session's transaction) does not queue for it again: it goes straight to SQLite, which waits up to
    `timeout_s` and then refuses, as it would without the gate. So does a writer that has queued for
    `timeout_s`: the gate never fails a transaction SQLite would have let through.
    """
    gate = threading.Lock()
    owner: list[int | None] = [None]  # the thread that took the gate, to spot a nested writer

    def release(connection: Connection) -> None:
        if connection.info.pop(_HOLDS_GATE, False):
            owner[0] = None
            gate.release()

    @event.listens_for(engine, "begin")
    def _begin(connection: Connection) -> None:
        if _reading.get():
            connection.exec_driver_sql("BEGIN")
            return
        if owner[0] != threading.get_ident() and gate.acquire(timeout=timeout_s):
            owner[0] = threading.get_ident()
            connection.info[_HOLDS_GATE] = True
        try:
            connection.exec_driver_sql("BEGIN IMMEDIATE")
        except BaseException:
            release(connection)  # no transaction began, so no commit or rollback will release it
            raise

    event.listen(engine, "commit", release)
    event.listen(engine, "rollback", release)
