"""A consistent copy of a SQLite annotation database, taken while the server keeps writing to it.

SQLite's online backup API copies the pages in one step under a read transaction: with the app's WAL
journal, writers go on committing meanwhile (a reader never blocks them), and the copy is the database
as of one moment, never half a submission. The copy is written next to the target under a temporary
name, checked (`PRAGMA integrity_check`), switched to a plain rollback journal (one self-contained
file), and only then linked to its name, which must be new: a backup never overwrites anything.

PostgreSQL has its own tool for this (pg_dump), and a consistent one; this module refuses its URLs.
"""

from __future__ import annotations

import os
import shutil
import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy.engine import make_url

from critic.annotation_app.db import BUSY_TIMEOUT_S
from critic.annotation_app.errors import AppError

_TABLES = "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' ORDER BY name"


class BackupError(AppError):
    """The backup cannot be taken; str(err) says why in one line."""


@dataclass(frozen=True)
class BackupReport:
    """What a backup wrote: the file, its size, rows per table, and how long it took."""

    path: Path
    bytes: int
    rows: dict[str, int]
    seconds: float


def sqlite_path(url: str) -> Path:
    """The database file of a SQLite URL; BackupError (pointing at pg_dump) for any other database."""
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite":
        where = parsed.render_as_string(hide_password=True)
        raise BackupError(
            f"{where} is not SQLite: back up PostgreSQL with pg_dump (pg_dump -Fc -f FILE DBNAME), "
            "see annotation_app/README.md, 'Run it for a team'"
        )
    if not parsed.database or parsed.database == ":memory:":
        raise BackupError("an in-memory SQLite database has nothing on disk to back up")
    return Path(parsed.database).expanduser()


def backup_sqlite(url: str, out: Path) -> BackupReport:
    """Copy the SQLite database at `url` to the new file `out` (BackupError if it exists, or if the
    database does not), consistent while others write to it."""
    source = sqlite_path(url)
    if not source.is_file():
        raise BackupError(f"no annotation database at {source}")
    out = out.expanduser()
    if out.is_dir():
        raise BackupError(f"{out}: is a folder; give a file name")
    if out.exists():
        raise BackupError(f"{out}: exists; a backup never overwrites a file, choose a new name")
    out.parent.mkdir(parents=True, exist_ok=True)
    partial = out.with_name(f".{out.name}.{os.getpid()}.partial")
    started = time.monotonic()
    try:
        rows = _copy(source, partial)
        _publish(partial, out)
    finally:
        partial.unlink(missing_ok=True)
    return BackupReport(out, out.stat().st_size, rows, time.monotonic() - started)


def _copy(source: Path, target: Path) -> dict[str, int]:
    """The backup itself, into `target`; returns its rows per table after checking it."""
    target.unlink(missing_ok=True)  # a leftover of a killed run with this pid
    src = sqlite3.connect(source, timeout=BUSY_TIMEOUT_S)
    dst = sqlite3.connect(target)
    try:
        src.backup(dst)  # pages=-1: every page in one step, so one read transaction, one snapshot
        dst.execute("PRAGMA journal_mode=DELETE")  # one file: no -wal or -shm beside the copy
        check = dst.execute("PRAGMA integrity_check").fetchall()
        if check != [("ok",)]:
            raise BackupError(f"the copy failed its integrity check: {check[0][0]}")
        tables = [name for (name,) in dst.execute(_TABLES)]
        return {name: dst.execute(f'SELECT count(*) FROM "{name}"').fetchone()[0] for name in tables}
    except sqlite3.Error as err:
        raise BackupError(f"backup of {source} failed: {err}") from err
    finally:
        dst.close()
        src.close()


def _publish(partial: Path, out: Path) -> None:
    """Give the finished copy its name, failing if a file of that name appeared meanwhile."""
    try:
        os.link(partial, out)
    except FileExistsError as err:
        raise BackupError(f"{out}: exists; a backup never overwrites a file, choose a new name") from err
    except OSError:  # a file system without hard links: an exclusive create and a copy
        try:
            with partial.open("rb") as src, out.open("xb") as dst:
                shutil.copyfileobj(src, dst)
        except FileExistsError as err:
            raise BackupError(f"{out}: exists; a backup never overwrites a file, choose a new name") from err
