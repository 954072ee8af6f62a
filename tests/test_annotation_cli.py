"""`critic annotate add-user` and `critic data export`, run as the user runs them."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from annotation_helpers import PASSWORD, make_team, rate_task, tamper_next
from sqlmodel import Session

from critic.annotation_app import store
from critic.annotation_app.db import make_engine


def critic(*args: str, stdin: str = "", cwd=None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "critic.cli", *args],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=300,
        cwd=cwd,
    )


def test_add_user_reads_the_password_from_stdin(annotation_url):
    done = critic(
        "annotate", "add-user", "alice", "--role", "admin", "--db", annotation_url, stdin=PASSWORD + "\n"
    )
    assert done.returncode == 0, done.stderr
    assert "created admin alice" in done.stderr
    engine = make_engine(annotation_url)
    with Session(engine) as session:
        assert store.user_for_token(session, store.login(session, "alice", PASSWORD)).role == "admin"
    engine.dispose()

    again = critic("annotate", "add-user", "alice", "--db", annotation_url, stdin=PASSWORD + "\n")
    assert again.returncode == 2 and again.stderr.strip() == "critic: error: user 'alice' already exists"
    short = critic("annotate", "add-user", "bob", "--db", annotation_url, stdin="pw\n")
    assert short.returncode == 2 and "at least 8 characters" in short.stderr
    as_argument = critic("annotate", "add-user", "bob", "--password", PASSWORD, "--db", annotation_url)
    assert as_argument.returncode == 2 and "No such option" in as_argument.stderr


def test_export_is_what_the_reward_stage_reads(annotation_engine, annotation_url, tmp_path):
    from critic.rl.rate import human_preferences

    empty = critic("data", "export", "--db", annotation_url, "--out", str(tmp_path / "empty"))
    assert empty.returncode == 2 and "no tamperings to export" in empty.stderr

    _, alice, bob, carol = make_team(annotation_engine, tmp_path / "src")
    tamper_next(annotation_engine, alice)
    rate_task(annotation_engine, bob, [7, 1])
    rate_task(annotation_engine, carol, [6, 1])
    out = tmp_path / "export"
    done = critic("data", "export", "--db", annotation_url, "--out", str(out))
    assert done.returncode == 0, done.stderr
    assert "tampering 1, ratings 4, preferences 1" in done.stderr
    pairs = human_preferences(out)
    assert sum(len(split) for split in pairs.values()) == 1

    refused = critic("data", "export", "--db", annotation_url, "--out", str(out))
    assert refused.returncode == 2
    assert (
        refused.stderr.strip() == f"critic: error: {out}: exists and is not empty (use --force to overwrite)"
    )
    forced = critic("data", "export", "--db", annotation_url, "--out", str(out), "--force")
    assert forced.returncode == 0, forced.stderr
    relative = critic("data", "export", "--db", annotation_url, "--out", "here", cwd=tmp_path)
    assert relative.returncode == 0, relative.stderr  # a shell's relative path is relative to its cwd
    assert sum(len(split) for split in human_preferences(tmp_path / "here").values()) == 1


def test_a_missing_database_is_an_error_and_is_not_created(tmp_path):
    """A typo in --db must not leave an empty database behind and export nothing."""
    typo, out = tmp_path / "typo.db", tmp_path / "out"
    done = critic("data", "export", "--db", f"sqlite:///{typo}", "--out", str(out))
    assert done.returncode == 2
    assert done.stderr.strip() == (
        f"critic: error: no annotation database at {typo}: start the server once (critic annotate) or add "
        "a user (critic annotate add-user) to create it"
    )
    assert not typo.exists() and not out.exists()


def test_a_missing_postgresql_database_is_one_line():
    url = os.environ.get("CRITIC_TEST_POSTGRES_URL")
    if not url:
        pytest.skip("CRITIC_TEST_POSTGRES_URL is not set")
    from sqlalchemy.engine import make_url

    missing = make_url(url).set(database="critic_no_such_database")
    done = critic("data", "export", "--db", missing.render_as_string(hide_password=False), "--out", "/tmp/x")
    assert done.returncode == 2 and len(done.stderr.strip().splitlines()) == 1, done.stderr
    assert done.stderr.startswith("critic: error: no annotation database at postgresql")
    assert 'database "critic_no_such_database" does not exist' in done.stderr
    assert ":***@" in done.stderr  # never the password
