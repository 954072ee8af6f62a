"""`critic annotate backup`: a consistent copy of the SQLite database taken while annotators write.

The backup runs while rater threads claim and rate compare tasks and others save drafts through the
store; every copy must open, pass SQLite's integrity check, and be one moment of the database (each
rating's critique and tampering there, no task half-rated), and no writer may see an error.
"""

from __future__ import annotations

import sqlite3
import subprocess
import threading
import time
from pathlib import Path

import pytest
from annotation_helpers import PASSWORD, make_team, make_users, rate_every_task, tamper_next
from cli_process import run_critic
from sqlmodel import Session

from critic.annotation_app import store
from critic.annotation_app.backup import BackupError, backup_sqlite
from critic.annotation_app.db import init_db, make_engine

TAMPERINGS = 8
OVERLAP = 3
RATERS = 6


def critic(*args: str) -> subprocess.CompletedProcess:
    return run_critic(*args, timeout=300)


def snapshot_problems(path: Path) -> list[str]:
    """What makes the copy at `path` not a consistent snapshot of the annotation database."""
    db = sqlite3.connect(path)
    try:
        problems = []
        if (check := db.execute("PRAGMA integrity_check").fetchall()) != [("ok",)]:
            problems.append(f"integrity_check: {check}")
        if orphans := db.execute("PRAGMA foreign_key_check").fetchall():
            problems.append(f"rows pointing at missing rows: {orphans[:5]}")
        lost = db.execute(
            "SELECT count(*) FROM rating r LEFT JOIN critique c ON c.id = r.critique_id "
            "LEFT JOIN tampering t ON t.id = c.tampering_id WHERE t.id IS NULL"
        ).fetchone()[0]
        if lost:
            problems.append(f"{lost} ratings without their critique or tampering")
        # A compare assignment is done exactly when its rater's ratings of that tampering are all there.
        half_done = db.execute(
            """
            SELECT a.item_id, a.user_id, a.status, count(r.id) FROM assignment a
            LEFT JOIN critique c ON c.tampering_id = a.item_id
            LEFT JOIN rating r ON r.critique_id = c.id AND r.rater_id = a.user_id
            WHERE a.kind = 'compare'
            GROUP BY a.id
            HAVING (a.status = 'done' AND count(r.id) != ?) OR (a.status != 'done' AND count(r.id) != 0)
            """,
            (store.CRITIQUES_PER_TASK,),
        ).fetchall()
        if half_done:
            problems.append(f"half-done assignments (item, user, status, ratings): {half_done[:5]}")
        return problems
    finally:
        db.close()


def count(path: Path, table: str) -> int:
    db = sqlite3.connect(path)
    try:
        return db.execute(f"SELECT count(*) FROM {table}").fetchone()[0]
    finally:
        db.close()


@pytest.fixture
def sqlite_db(tmp_path):
    url = f"sqlite:///{tmp_path / 'annotations.db'}"
    engine = make_engine(url)
    init_db(engine)
    yield url, engine
    engine.dispose()


def test_backup_while_annotators_write_is_a_consistent_snapshot(sqlite_db, tmp_path):
    url, engine = sqlite_db
    admin, alice, bob, _ = make_team(engine, tmp_path / "src", samples=TAMPERINGS + 2)
    for i in range(TAMPERINGS):
        tamper_next(engine, alice if i % 2 else bob)
    raters = make_users(engine, *(f"rater{i}" for i in range(RATERS)))
    drafters = make_users(engine, "drafter0", "drafter1")
    with Session(engine) as session:  # each drafter holds a sample to tamper, and saves drafts of it
        held = {d.name: store.next_tamper_sample(session, d).sample_id for d in drafters}
    with Session(engine) as session:
        store.set_overlap(session, admin, OVERLAP)
    failures: list[BaseException] = []
    submitted: list[int] = []
    stop_drafting = threading.Event()

    def rate(rater) -> None:
        try:
            rate_every_task(engine, rater, submitted.append)
        except BaseException as err:  # reported below: an exception in a thread fails nothing by itself
            failures.append(err)

    def draft(user) -> None:
        try:
            n = 0
            while not stop_drafting.is_set():
                with Session(engine) as session:
                    store.save_draft(session, user, "tamper", held[user.name], {"code": "x" * (n % 500)})
                n += 1
        except BaseException as err:
            failures.append(err)

    threads = [threading.Thread(target=rate, args=(r,)) for r in raters]
    drafting = [threading.Thread(target=draft, args=(d,)) for d in drafters]
    for thread in threads + drafting:
        thread.start()
    copies: list[Path] = []
    try:
        deadline = time.monotonic() + 120
        while len(submitted) < 3 and time.monotonic() < deadline:
            time.sleep(0.005)
        while any(t.is_alive() for t in threads) or not copies:
            out = tmp_path / f"backup{len(copies)}.db"
            report = backup_sqlite(url, out)
            assert report.path == out and report.rows["rating"] == count(out, "rating")
            copies.append(out)
    finally:
        for thread in threads:
            thread.join(timeout=120)
        stop_drafting.set()
        for thread in drafting:
            thread.join(timeout=30)
    assert not failures, failures
    assert len(submitted) == TAMPERINGS * OVERLAP
    final_ratings = len(submitted) * store.CRITIQUES_PER_TASK
    for copy in copies:
        assert snapshot_problems(copy) == [], copy
        assert not Path(f"{copy}-wal").exists()  # one self-contained file
    assert any(0 < count(copy, "rating") < final_ratings for copy in copies), "no copy taken mid-run"
    # The users and the tamperings were there before the first copy: every copy holds all of them.
    assert all(count(copy, "tampering") == TAMPERINGS for copy in copies)
    assert all(count(copy, "user") == 4 + RATERS + 2 for copy in copies)
    # A copy is a working annotation database: its users log in with their passwords.
    copy_engine = make_engine(f"sqlite:///{copies[-1]}")
    with Session(copy_engine) as session:
        assert store.user_for_token(session, store.login(session, "rater0", PASSWORD)).name == "rater0"
    copy_engine.dispose()


def test_backup_refuses_to_overwrite(sqlite_db, tmp_path):
    url, _ = sqlite_db
    out = tmp_path / "copy.db"
    out.write_text("keep me")
    with pytest.raises(BackupError, match="exists"):
        backup_sqlite(url, out)
    assert out.read_text() == "keep me"
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".copy")] == []  # no partial left


@pytest.mark.slow  # a server, a proxy or a browser, or CLI processes
def test_backup_command(sqlite_db, tmp_path):
    url, engine = sqlite_db
    make_users(engine, "alice")
    out = tmp_path / "backups" / "annotations.db"
    done = critic("annotate", "backup", "--db", url, "--out", str(out))
    assert done.returncode == 0, done.stderr
    assert f"-> {out}" in done.stderr and count(out, "user") == 1
    assert snapshot_problems(out) == []

    again = critic("annotate", "backup", "--db", url, "--out", str(out))
    assert again.returncode == 2 and "exists" in again.stderr and len(again.stderr.splitlines()) == 1

    missing = critic(
        "annotate", "backup", "--db", f"sqlite:///{tmp_path / 'nope.db'}", "--out", str(tmp_path / "x.db")
    )
    assert missing.returncode == 2 and "no annotation database" in missing.stderr
    assert not (tmp_path / "nope.db").exists() and not (tmp_path / "x.db").exists()

    postgres = critic(
        "annotate",
        "backup",
        "--db",
        "postgresql+psycopg://critic:secret@db.invalid/ann",
        "--out",
        str(tmp_path / "p"),
    )
    assert postgres.returncode == 2 and len(postgres.stderr.splitlines()) == 1
    assert "pg_dump" in postgres.stderr and "secret" not in postgres.stderr
    assert not (tmp_path / "p").exists()
