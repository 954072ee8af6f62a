"""The annotation database: SQLModel tables, engine setup and the schema version.

SQLite is the default so one annotator can start without a server; teams point `--db` (or
`CRITIC_DATABASE_URL`) at PostgreSQL. On SQLite every transaction but a `reading()` one starts with
BEGIN IMMEDIATE, queued in-process (critic.annotation_app.transactions): the write lock is taken up
front, so two requests that read-then-write (claiming the last overlap slot of a task) serialise instead
of both succeeding or failing with "database is locked" mid-transaction.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import JSON, Column, UniqueConstraint, event
from sqlalchemy.engine import Engine, make_url
from sqlmodel import Field, Session, SQLModel, create_engine, select

from critic.annotation_app.transactions import install_write_gate
from critic.datagen.rating import RATING_FIELDS

SCHEMA_VERSION = 2
# The rubric fields (critic.datagen.rating) a human rater fills in and a `rating` row stores: all of them but
# `rater` (the row's rater_id). The `rating` table spells its columns out, because a column added to the
# rubric is a schema change (create_all adds no column to an existing table); tests/test_annotation_store.py
# checks that they are exactly these, with the rubric's types.
RATED_FIELDS: tuple[str, ...] = tuple(name for name in RATING_FIELDS if name != "rater")
ENV_URL = "CRITIC_DATABASE_URL"
BUSY_TIMEOUT_S = 30


def _system_clock() -> datetime:
    return datetime.now(UTC)


_clock: Callable[[], datetime] = _system_clock


def now() -> datetime:
    """The app's time (UTC). Every timestamp and every expiry reads it, so tests can move the clock."""
    return _clock()


def set_clock(clock: Callable[[], datetime] | None) -> None:
    """Use `clock` for `now()` (None: the system clock again). For tests of expiry and lifetimes."""
    global _clock
    _clock = clock or _system_clock


def _now() -> datetime:
    return now()


class User(SQLModel, table=True):
    id: int | None = Field(default=None, primary_key=True)
    name: str = Field(unique=True, index=True)
    role: str  # "annotator" | "admin"
    password_hash: str
    disabled: bool = False  # cannot log in; existing sessions stop working
    takes_tasks: bool = True  # is given compare and write tasks (admins: False unless they opt in)
    created_at: datetime = Field(default_factory=_now)


class SessionToken(SQLModel, table=True):
    __tablename__ = "session_token"
    token_hash: str = Field(primary_key=True)  # sha256 of the token: a stolen DB gives no live sessions
    user_id: int = Field(foreign_key="user.id", index=True)
    created_at: datetime = Field(default_factory=_now)  # for the absolute lifetime
    last_seen_at: datetime = Field(default_factory=_now)  # last request, to the minute: for the idle timeout


class LoginFailure(SQLModel, table=True):
    """Failed logins in a row for one key: an account ("user:<name lowercased>", known or not) or a
    client address ("client:<address>"); `locked_until` is when the next try is allowed (throttle.py)."""

    __tablename__ = "login_failure"
    key: str = Field(primary_key=True)
    failures: int = 0
    first_at: datetime = Field(default_factory=_now)
    locked_until: datetime | None = None


class AuditEvent(SQLModel, table=True):
    """One admin action or login attempt (audit.py): who (`actor`: a user name, "" for an attempt by
    nobody known, "cli" for the shell), what, to what, with what, and from which address."""

    __tablename__ = "audit_event"
    id: int | None = Field(default=None, primary_key=True)
    at: datetime = Field(default_factory=_now)
    actor: str
    action: str = Field(index=True)  # "login", "login_failed", "add_user", "update_user", ...
    target: str = ""  # the user, source or setting acted on
    detail: dict[str, Any] | None = Field(default=None, sa_column=Column(JSON, nullable=True))
    client: str = ""  # the client's address, where the action came over the network


class CodeSample(SQLModel, table=True):
    __tablename__ = "code_sample"
    __table_args__ = (UniqueConstraint("source", "task_id"),)
    id: int | None = Field(default=None, primary_key=True)
    code: str
    test: str = ""  # Python source run after `code`, non-zero exit iff the code is wrong; "" = no tests
    source: str  # "humaneval", a directory, "tamper:<dir>"
    task_id: str
    created_at: datetime = Field(default_factory=_now)


class Tampering(SQLModel, table=True):
    id: int | None = Field(default=None, primary_key=True)
    sample_id: int = Field(foreign_key="code_sample.id", index=True)
    author_id: int = Field(foreign_key="user.id", index=True)
    code: str
    bug_lines: list[int] = Field(sa_column=Column(JSON, nullable=False))
    description: str
    bug_kind: str = "human"
    adversarial: bool = False  # at least one of the critic's searches missed the bug
    caught: int | None = None  # searches (of CHECK_SEARCHES) that caught it; None = never checked
    tests_verified: bool | None = None  # original passes and tampered fails; None = no tests run
    created_at: datetime = Field(default_factory=_now)


class Critique(SQLModel, table=True):
    id: int | None = Field(default=None, primary_key=True)
    tampering_id: int = Field(foreign_key="tampering.id", index=True)
    text: str
    origin: (
        str  # "model:<name>" | "gold" | "human" (written unaided) | "assisted" (written from the critic's)
    )
    fsbs_settings: dict[str, Any] | None = Field(default=None, sa_column=Column(JSON, nullable=True))
    position: int  # display order, fixed per tampering so every rater sees the same order
    author_id: int | None = Field(default=None, foreign_key="user.id")  # the writer of a human/assisted one


class HighlightEvent(SQLModel, table=True):
    """What a critique writer did with one highlight: the log of human + critic teamwork.

    action: "kept" (the critic's highlight, unchanged), "edited" (the critic's, changed), "removed" (the
    critic's, dropped) or "added" (the writer's own). `before_*` is the critic's highlight, `after_*`
    what was submitted; each is None where there is none.
    """

    __tablename__ = "highlight_event"
    id: int | None = Field(default=None, primary_key=True)
    critique_id: int = Field(foreign_key="critique.id", index=True)  # the written critique
    action: str
    before_quote: str | None = None
    before_comment: str | None = None
    after_quote: str | None = None
    after_comment: str | None = None
    created_at: datetime = Field(default_factory=_now)


class Rating(SQLModel, table=True):
    __table_args__ = (UniqueConstraint("critique_id", "rater_id"),)
    id: int | None = Field(default=None, primary_key=True)
    critique_id: int = Field(foreign_key="critique.id", index=True)
    rater_id: int = Field(foreign_key="user.id", index=True)
    # the rubric: exactly RATED_FIELDS, typed as in critic.datagen.rating.Rating
    cbi: int
    comprehensiveness: int
    conciseness: int
    overall: int
    nitpick: bool
    fake_problem: bool
    hallucinated_quote: bool
    rationale: str
    created_at: datetime = Field(default_factory=_now)


class Assignment(SQLModel, table=True):
    """A user's claim on one item: a sample to tamper, or a tampering to compare (`item_id`)."""

    __table_args__ = (UniqueConstraint("kind", "user_id", "item_id"),)
    id: int | None = Field(default=None, primary_key=True)
    kind: str  # "tamper" (item_id = code_sample.id) | "compare" | "write" (item_id = tampering.id)
    user_id: int = Field(foreign_key="user.id", index=True)
    item_id: int = Field(index=True)
    # "open" | "done" | "skipped" (given up by its holder) | "expired" (held too long: back in the pool)
    status: str = "open"
    mode: str | None = None  # a write task's: "human" (unaided) or "assisted" (starts from the critic's)
    # a tamper task's last *Check against critic* (checker.CheckResult as a dict): kept across reloads
    check_result: dict[str, Any] | None = Field(default=None, sa_column=Column(JSON, nullable=True))
    created_at: datetime = Field(default_factory=_now)
    touched_at: datetime = Field(default_factory=_now)  # last activity (claim, draft, check): for expiry


class Draft(SQLModel, table=True):
    user_id: int = Field(foreign_key="user.id", primary_key=True)
    kind: str = Field(primary_key=True)
    item_id: int = Field(primary_key=True)
    payload: dict[str, Any] = Field(sa_column=Column(JSON, nullable=False))
    updated_at: datetime = Field(default_factory=_now)


class Setting(SQLModel, table=True):
    key: str = Field(primary_key=True)
    value: str


class SchemaVersion(SQLModel, table=True):
    __tablename__ = "schema_version"
    version: int = Field(primary_key=True)


class SchemaError(RuntimeError):
    """The database was written by a newer release (or is not ours): refuse rather than corrupt it."""


def user_data_dir() -> Path:
    """Where per-user application data lives on this platform (XDG on Linux)."""
    home = Path.home()
    if sys.platform == "win32":
        return Path(os.environ.get("LOCALAPPDATA") or home / "AppData" / "Local")
    if sys.platform == "darwin":
        return home / "Library" / "Application Support"
    return Path(os.environ.get("XDG_DATA_HOME") or home / ".local" / "share")


def database_url(cli_value: str | None = None) -> str:
    """`--db` wins over CRITIC_DATABASE_URL, which wins over a SQLite file in the user's data dir."""
    if cli_value:
        return cli_value
    if os.environ.get(ENV_URL):
        return os.environ[ENV_URL]
    return f"sqlite:///{user_data_dir() / 'critic' / 'annotations.db'}"


def make_engine(url: str) -> Engine:
    """An engine for `url`; SQLite files get WAL, a busy timeout, foreign keys and immediate writes."""
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite":
        return create_engine(url, pool_pre_ping=True)
    if parsed.database and parsed.database != ":memory:":
        Path(parsed.database).expanduser().parent.mkdir(parents=True, exist_ok=True)
    engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": BUSY_TIMEOUT_S})

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection, _record) -> None:
        dbapi_connection.isolation_level = None  # we issue BEGIN ourselves (pysqlite's is deferred)
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_S * 1000}")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA synchronous=NORMAL")  # durable at every checkpoint, consistent always
        cursor.close()

    install_write_gate(engine, BUSY_TIMEOUT_S)  # BEGIN IMMEDIATE, writers queued in-process
    return engine


# Columns each schema version added to tables that already existed, as (table, column); `create_all`
# creates new tables but never alters old ones, so `init_db` adds these to a database of an older version.
_ADDED_COLUMNS: dict[int, tuple[tuple[str, str], ...]] = {
    2: (
        ("user", "disabled"),
        ("user", "takes_tasks"),
        ("critique", "author_id"),
        ("assignment", "mode"),
        ("assignment", "check_result"),
        ("assignment", "touched_at"),
        ("session_token", "last_seen_at"),
    ),
}


def init_db(engine: Engine) -> None:
    """Create missing tables, upgrade an older schema in place, and record the schema version; refuse
    a database from a newer release."""
    SQLModel.metadata.create_all(engine)
    with Session(engine) as session:
        versions = session.exec(select(SchemaVersion.version)).all()
        if versions and max(versions) > SCHEMA_VERSION:
            raise SchemaError(
                f"the annotation database has schema version {max(versions)}, newer than this release's "
                f"{SCHEMA_VERSION}: upgrade critic"
            )
        if versions and max(versions) < SCHEMA_VERSION:
            _upgrade(session, max(versions))
        if not versions or max(versions) < SCHEMA_VERSION:
            session.add(SchemaVersion(version=SCHEMA_VERSION))
        session.commit()


def _upgrade(session: Session, version: int) -> None:
    """Add the columns of every schema version after `version`, with their model defaults filled in."""
    connection = session.connection()
    dialect = connection.dialect
    quote = dialect.identifier_preparer.quote
    for step in range(version + 1, SCHEMA_VERSION + 1):
        for table_name, column_name in _ADDED_COLUMNS.get(step, ()):
            table = SQLModel.metadata.tables[table_name]
            column = table.c[column_name]
            # Nullable here (a NOT NULL column cannot be added to rows that exist); the backfill fills it.
            kind = column.type.compile(dialect=dialect)
            connection.exec_driver_sql(
                f"ALTER TABLE {quote(table_name)} ADD COLUMN {quote(column_name)} {kind}"
            )
            value = _backfill(table, column_name)
            if value is not None:
                connection.execute(table.update().values({column_name: value}))


def _backfill(table: Any, column_name: str) -> Any:
    """What rows written before a column existed hold in it: its default, with a few exceptions."""
    if (table.name, column_name) in (("assignment", "touched_at"), ("session_token", "last_seen_at")):
        return _now()
    if (table.name, column_name) == ("user", "takes_tasks"):
        return table.c.role != "admin"  # admins opt in to tasks; annotators take them
    default = table.c[column_name].default
    return default.arg if default is not None and not callable(default.arg) else None


class NoDatabase(RuntimeError):
    """The annotation database cannot be opened: it does not exist (and this command must not create
    it: a typo in --db would leave an empty database behind), or its server cannot be reached."""


def open_engine(url: str, create: bool) -> Engine:
    """An engine on the annotation database at `url`, its schema created or upgraded (`init_db`).

    With `create` False (every command but the server's start and add-user), a SQLite file that does
    not exist is NoDatabase rather than a new empty database. On any backend, a database that cannot
    be opened (PostgreSQL: no such database, server down) is NoDatabase with a one-line reason; the app
    never creates a PostgreSQL database.
    """
    from sqlalchemy.exc import OperationalError

    parsed = make_url(url)
    where = parsed.render_as_string(hide_password=True)
    sqlite = parsed.get_backend_name() == "sqlite"
    if sqlite and parsed.database and parsed.database != ":memory:":
        where = str(Path(parsed.database).expanduser())
        if not create and not Path(where).is_file():
            raise NoDatabase(
                f"no annotation database at {where}: start the server once (critic annotate) or add a "
                "user (critic annotate add-user) to create it"
            )
    engine = make_engine(url)
    try:
        init_db(engine)
    except OperationalError as err:
        engine.dispose()
        # psycopg: "connection failed: connection to server at ... failed: FATAL: <the server's words>"
        reason = " ".join(str(err.orig).split()).rpartition("failed: ")[2].removeprefix("FATAL: ")
        if not sqlite and "does not exist" in reason:
            raise NoDatabase(
                f"no annotation database at {where} ({reason}): create it (createdb), then start the "
                "server once (critic annotate)"
            ) from None
        raise NoDatabase(f"cannot open the annotation database at {where}: {reason}") from None
    except BaseException:
        engine.dispose()
        raise
    return engine
