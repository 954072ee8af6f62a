"""`critic annotate add-user` and `critic data export`, run as the user runs them."""

from __future__ import annotations

import os
import re
import shlex
import subprocess
from pathlib import Path

import pytest
from annotation_helpers import PASSWORD, make_team, rate_task, tamper_next
from cli_process import run_critic
from sqlmodel import Session

from critic.annotation_app import store
from critic.annotation_app.db import make_engine


def critic(*args: str, stdin: str = "", cwd=None) -> subprocess.CompletedProcess:
    return run_critic(*args, stdin=stdin, cwd=cwd, timeout=300)


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


def refused(done: subprocess.CompletedProcess, message: str) -> None:
    """Exit 2 with one line, `critic: error: ` and the message: no traceback."""
    assert done.returncode == 2, done.stderr
    assert len(done.stderr.strip().splitlines()) == 1, done.stderr
    assert done.stderr.startswith(f"critic: error: {message}"), done.stderr


def test_add_user_mistakes_are_one_line_and_create_nothing(tmp_path):
    """A wrong --db, role, name or password: one line, exit 2, and no database or folder left behind."""
    missing = tmp_path / "no" / "such" / "dir"
    db = f"sqlite:///{tmp_path / 'a.db'}"
    cases = [
        (("alice", "--db", "foo://bar"), "--db: unknown kind of database 'foo'"),
        (("alice", "--db", "not a url"), "--db: not a database URL"),
        (("alice", "--db", f"sqlite:///{missing}/a.db"), f"--db: no folder {missing} for the annotation"),
        (("alice", "--role", "root", "--db", db), "unknown role 'root'"),
        (("[phish](http://evil.example)", "--db", db), "user name must be 1-64 ASCII letters"),
        (("x\x01y", "--db", db), "user name must be"),
    ]
    for args, message in cases:
        refused(critic("annotate", "add-user", *args, stdin=PASSWORD + "\n"), message)
    refused(critic("annotate", "add-user", "alice", "--db", db, stdin="short\n"), "password must be at least")
    assert list(tmp_path.iterdir()) == []


def test_a_port_in_use_is_one_line_before_anything_is_created(tmp_path):
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = critic("annotate", "--port", str(port), "--db", f"sqlite:///{tmp_path / 'a.db'}")
    refused(done, f"cannot listen on 127.0.0.1:{port}: Address already in use")
    assert "http://" not in done.stderr  # never announced as serving
    with socket.socket() as free:
        free.bind(("127.0.0.1", 0))
        port = free.getsockname()[1]
    missing = tmp_path / "no" / "dir"
    refused(critic("annotate", "--port", str(port), "--db", f"sqlite:///{missing}/a.db"), "--db: no folder")
    assert list(tmp_path.iterdir()) == []


ROOT = Path(__file__).resolve().parents[1]


def test_the_readme_quick_start_goes_from_nothing_to_a_first_task(tmp_path):
    """The README's quick start, run as written (with --db): its users are made, the source it names
    imports, and its annotator gets a sample to tamper. The team deployment lives in the app's README."""
    readme = (ROOT / "README.md").read_text()
    assert len(readme.encode()) <= 12 * 1024
    blocks = re.findall(r"^```bash\n(.*?)^```", readme, re.MULTILINE | re.DOTALL)
    (block,) = [b for b in blocks if "add-user admin --role admin" in b]
    *add_users, serve = [shlex.split(line, comments=True) for line in block.splitlines()]
    assert serve == ["critic", "annotate"]
    db = f"sqlite:///{tmp_path / 'a.db'}"
    for argv in add_users:
        assert argv[:3] == ["critic", "annotate", "add-user"], argv
        done = critic(*argv[1:], "--db", db, stdin=PASSWORD + "\n")
        assert done.returncode == 0, done.stderr
    (admin_name, annotator_name) = [argv[3] for argv in add_users]
    quick = readme[readme.index("## Annotate with a team") :].split("\n## ")[0]
    assert "`humaneval`" in quick  # the source the admin is told to import
    engine = make_engine(db)
    with Session(engine) as session:
        admin = store.user_for_token(session, store.login(session, admin_name, PASSWORD))
        assert admin.role == "admin" and store.import_samples(session, admin, "humaneval") == 164
        annotator = store.user_for_token(session, store.login(session, annotator_name, PASSWORD))
        assert annotator.role == "annotator" and store.next_tamper_sample(session, annotator) is not None
    engine.dispose()
    assert "## Run it for a team" not in readme
    assert "## Run it for a team" in (ROOT / "annotation_app" / "README.md").read_text()
