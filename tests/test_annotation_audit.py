"""The audit log: every admin action and every login is a row, committed with the action itself;
refused actions leave none; admins read it newest first and export it as CSV (API and CLI).

Every database test runs on SQLite and, when CRITIC_TEST_POSTGRES_URL is set, on PostgreSQL.
"""

from __future__ import annotations

import csv
import io
import json
import subprocess
from datetime import UTC, datetime, timedelta

import pytest
from annotation_helpers import PASSWORD, make_users, write_functions
from cli_process import run_critic
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlmodel import Session, col, select

from critic.annotation_app import api, audit, db, store
from critic.annotation_app.db import AuditEvent


@pytest.fixture
def clock():
    start = datetime(2030, 1, 1, tzinfo=UTC)
    ticks = iter(range(10**6))
    db.set_clock(lambda: start + timedelta(seconds=next(ticks)))  # every reading a second later
    yield
    db.set_clock(None)


@pytest.fixture
def team(annotation_engine, clock):
    (admin,) = make_users(annotation_engine, "admin", role="admin")
    (alice,) = make_users(annotation_engine, "alice")
    return annotation_engine, admin, alice


def rows(engine, **match: str) -> list[AuditEvent]:
    with Session(engine) as session:
        query = select(AuditEvent).order_by(col(AuditEvent.id))
        return [e for e in session.exec(query).all() if all(getattr(e, k) == v for k, v in match.items())]


def test_a_scripted_admin_session_is_in_the_log(team, tmp_path):
    engine, *_ = team
    app = FastAPI()
    api.install(app, engine, lambda: None)
    source = str(write_functions(tmp_path / "src", 2))
    with TestClient(app) as client:
        token = client.post("/api/login", json={"name": "admin", "password": PASSWORD}).json()["token"]
        admin = {"Authorization": f"Bearer {token}"}
        alice_token = client.post("/api/login", json={"name": "alice", "password": PASSWORD}).json()["token"]
        alice = {"Authorization": f"Bearer {alice_token}"}
        script = [
            ("post", "/api/admin/users", {"name": "dave", "role": "annotator", "password": PASSWORD}),
            ("patch", "/api/admin/users/dave", {"takes_tasks": False}),
            ("patch", "/api/admin/users/dave", {"password": "another good password", "role": "admin"}),
            ("post", "/api/admin/import", {"source": source}),
            ("put", "/api/admin/overlap", {"overlap": 3}),
            ("put", "/api/admin/writers", {"writers": 1}),
            ("put", "/api/admin/assignment-ttl", {"hours": 12.0}),
            ("put", "/api/admin/session-limits", {"idle_minutes": 60.0, "lifetime_hours": 8.0}),
        ]
        for method, path, body in script:
            response = client.request(method, path, json=body, headers=admin)
            assert response.status_code == 200, (path, response.text)
        refused = [
            ("post", "/api/admin/users", {"name": "dave", "role": "annotator", "password": PASSWORD}, admin),
            ("put", "/api/admin/overlap", {"overlap": 99}, admin),
            ("put", "/api/admin/session-limits", {"idle_minutes": 600.0, "lifetime_hours": 1.0}, admin),
            ("put", "/api/admin/overlap", {"overlap": 2}, alice),
            ("get", "/api/admin/audit", None, alice),
            ("get", "/api/admin/audit.csv", None, alice),
        ]
        for method, path, body, who in refused:
            assert client.request(method, path, json=body, headers=who).status_code in (400, 403), path
        from datasets import load_from_disk

        from critic.annotation_app.ui import AnnotationUI

        admin_tab = AnnotationUI(engine, lambda: None).admin
        for refused_folder in ("relative/folder", source):  # not absolute; not empty: nothing recorded
            with pytest.raises(store.AppError):
                admin_tab.export(token, refused_folder)
        admin_tab.export(token, str(tmp_path / "exported"))
        exported = load_from_disk(str(tmp_path / "exported"))
        download = client.get("/api/admin/audit.csv", headers=admin)
        assert download.status_code == 200 and download.headers["content-type"].startswith("text/csv")
        assert "attachment" in download.headers["content-disposition"]
        events = client.get("/api/admin/audit", headers=admin).json()["events"]
        latest = client.get("/api/admin/audit", params={"limit": 2}, headers=admin).json()["events"]

    by_admin = [(e["action"], e["target"], e["detail"]) for e in reversed(events) if e["actor"] == "admin"]
    folder = str(tmp_path / "exported")
    assert by_admin == [
        ("login", "admin", None),
        ("add_user", "dave", {"role": "annotator"}),
        ("update_user", "dave", {"takes_tasks": False}),
        ("update_user", "dave", {"role": "admin", "password": "reset"}),
        ("import", source, {"added": 2}),
        ("set_overlap", "overlap", {"overlap": 3}),
        ("set_writers", "writers", {"writers": 1}),
        ("set_assignment_ttl", "assignments", {"hours": 12.0}),
        ("set_session_limits", "sessions", {"idle_minutes": 60.0, "lifetime_hours": 8.0}),
        ("export", folder, {"rows": {name: len(split) for name, split in exported.items()}}),
        ("export", "audit log", None),
    ]
    assert [e["id"] for e in events] == sorted((e["id"] for e in events), reverse=True)  # newest first
    assert latest == events[:2]
    assert all(e["client"] == "testclient" for e in events if e["action"] == "login")
    assert not any(p in json.dumps(events) for p in (PASSWORD, "another good password"))  # never logged
    assert datetime.fromisoformat(events[0]["at"]) > datetime.fromisoformat(events[-1]["at"])

    table = list(csv.DictReader(io.StringIO(download.text)))  # oldest first, its own export row last
    assert list(table[0]) == list(audit.COLUMNS)
    assert [(int(r["id"]), r["action"], r["target"]) for r in table] == [
        (e["id"], e["action"], e["target"]) for e in reversed(events)
    ]
    assert [json.loads(r["detail"]) if r["detail"] else None for r in table] == [
        e["detail"] for e in reversed(events)
    ]


def test_an_action_and_its_event_commit_together(team, tmp_path):
    engine, admin, alice = team
    before = len(rows(engine))
    with Session(engine) as session:
        with pytest.raises(store.AppError, match="already exists"):
            store.add_user(session, admin, "alice", "annotator", PASSWORD)
        with pytest.raises(store.AppError, match="overlap must be"):
            store.set_overlap(session, admin, 0)
        with pytest.raises(store.AppError, match="no such user"):
            store.update_user(session, admin, "nobody", disabled=True)
        with pytest.raises(store.AppError, match="you cannot disable yourself"):
            store.update_user(session, admin, "admin", disabled=True)
        with pytest.raises(store.Forbidden):
            store.set_writers(session, alice, 1)
        with pytest.raises(store.AppError):
            store.import_samples(session, admin, str(tmp_path / "missing"))
    assert len(rows(engine)) == before  # refused actions record nothing
    with Session(engine) as session:
        store.update_user(session, admin, "alice", disabled=True)
        token = store.login(session, "admin", PASSWORD)
        store.logout(session, token)
    assert [(e.actor, e.action, e.target) for e in rows(engine)[before:]] == [
        ("admin", "update_user", "alice"),
        ("admin", "login", "admin"),
        ("admin", "logout", "admin"),
    ]


def test_reading_the_log_is_for_admins_and_the_csv_is_safe_in_a_spreadsheet(team):
    engine, admin, alice = team
    with Session(engine) as session:
        with pytest.raises(store.AppError, match="wrong user name"):
            store.login(session, '=HYPERLINK("http://evil")', "whatever!", "10.0.0.1")
        with pytest.raises(store.Forbidden, match="only admins"):
            audit.events(session, alice)
        with pytest.raises(store.Forbidden, match="only admins"):
            audit.export_csv(session, alice)
        with pytest.raises(store.AppError, match="limit must be"):
            audit.events(session, admin, 0)
        assert len(audit.events(session, admin, limit=1)) == 1
        text = audit.export_csv(session, None)  # the shell's export: recorded nowhere
    assert len(rows(engine)) == 3
    attacker = rows(engine, action="login_failed")[0]
    assert attacker.target == '=HYPERLINK("http://evil")' and attacker.client == "10.0.0.1"
    table = list(csv.DictReader(io.StringIO(text)))
    assert [(r["actor"], r["action"]) for r in table] == [
        ("cli", "add_user"),  # the fixture's users, made without an admin
        ("cli", "add_user"),
        ("", "login_failed"),
    ]
    assert table[2]["target"] == '\'=HYPERLINK("http://evil")'  # text in a spreadsheet, not a formula


def critic(*args: str, stdin: str = "") -> subprocess.CompletedProcess:
    return run_critic(*args, stdin=stdin, timeout=300)


def test_the_cli_adds_users_as_cli_and_exports_the_log(annotation_url, tmp_path):
    missing = critic("annotate", "audit", "--db", f"sqlite:///{tmp_path / 'none.db'}", "--out", "x.csv")
    assert missing.returncode == 2 and "no annotation database" in missing.stderr
    added = critic("annotate", "add-user", "root", "--role", "admin", "--db", annotation_url, stdin=PASSWORD)
    assert added.returncode == 0, added.stderr
    out = tmp_path / "audit" / "log.csv"
    done = critic("annotate", "audit", "--db", annotation_url, "--out", str(out))
    assert done.returncode == 0, done.stderr
    assert f"1 audit events -> {out}" in done.stderr
    (row,) = list(csv.DictReader(out.open()))
    assert (row["actor"], row["action"], row["target"], json.loads(row["detail"])) == (
        "cli", "add_user", "root", {"role": "admin"},
    )  # fmt: skip
    again = critic("annotate", "audit", "--db", annotation_url, "--out", str(out))
    assert again.returncode == 2 and "exists (use --force to overwrite)" in again.stderr
    assert critic("annotate", "audit", "--db", annotation_url, "--out", str(out), "--force").returncode == 0
