"""User names and first logins (issue 26, items 5 and 14): names come from a documented character set,
wherever a user is created; a name from an older database is shown as text, never as markup, and the
audit CSV writes control characters out. An empty database tells the login page how to make the first
admin; a disabled user's right password says the account is disabled, and a wrong one says nothing more.

Every test runs on SQLite and, when CRITIC_TEST_POSTGRES_URL is set, on PostgreSQL.
"""

from __future__ import annotations

import unicodedata

import pytest
from annotation_helpers import PASSWORD, make_users
from fastapi import FastAPI
from fastapi.testclient import TestClient
from markdown_it import MarkdownIt
from sqlmodel import Session, col, select

from critic.annotation_app import api, audit, store
from critic.annotation_app.auth import hash_password
from critic.annotation_app.db import AuditEvent, User

WRONG = "wrong user name or password"
DISABLED = "this account is disabled: ask an admin to enable it"
FIRST_ADMIN = "critic annotate add-user NAME --role admin"
# A name an older release accepted: a live link in "Logged in as", a bidi override and an escape.
LEGACY = "[phish](http://evil.example)\u202e\x1b[31m"


def login(engine, name: str, password: str = PASSWORD) -> str | store.AppError:
    with Session(engine) as session:
        try:
            return store.login(session, name, password, "10.0.0.1")
        except store.AppError as err:
            return err


def rendered(markdown: str) -> str:
    """The HTML a CommonMark renderer makes of a gr.Markdown value."""
    return MarkdownIt("commonmark").render(markdown)


def ui(engine):
    from critic.annotation_app.ui import AnnotationUI

    return AnnotationUI(engine, lambda: None)


def test_names_come_from_the_documented_set_in_the_store_and_the_api(annotation_engine):
    (admin,) = make_users(annotation_engine, "admin", role="admin")
    with Session(annotation_engine) as session:
        for name in ("alice", "j.doe-2", "B_7", "x" * store.MAX_NAME):
            assert store.add_user(session, admin, name, "annotator", PASSWORD).name == name
        for name in (LEGACY, "x\x00y", "a b", "-alice", ".x", "é", "x" * (store.MAX_NAME + 1), "", "a<b>"):
            with pytest.raises(store.AppError) as err:
                store.add_user(session, admin, name, "annotator", PASSWORD)
            assert str(err.value).startswith("user name must be 1-64 ASCII letters, digits, '.', '_' or '-'")
    app = FastAPI()
    api.install(app, annotation_engine, lambda: None)
    with TestClient(app) as client:
        token = client.post("/api/login", json={"name": "admin", "password": PASSWORD}).json()["token"]
        body = {"name": "[x](http://evil.example)", "role": "annotator", "password": PASSWORD}
        refused = client.post("/api/admin/users", json=body, headers={"Authorization": f"Bearer {token}"})
    assert refused.status_code == 400 and refused.json()["detail"].startswith("user name must be")


def test_a_legacy_name_is_shown_as_text_and_its_controls_written_out(annotation_engine):
    (admin,) = make_users(annotation_engine, "admin", role="admin")
    with Session(annotation_engine) as session:  # as an older release stored it
        session.add(User(name=LEGACY, role="annotator", password_hash=hash_password(PASSWORD)))
        session.commit()
    page = ui(annotation_engine)
    token = login(annotation_engine, LEGACY)
    assert isinstance(token, str)
    who = rendered(page.enter(token)[page.who])
    assert "<a" not in who and "[phish](http://evil.example)" in who  # the name as typed, no link
    assert "\u202e" not in who and "\x1b" not in who and "\\u202e\\u001b[31m" in who
    admin_token = login(annotation_engine, "admin")
    view = page.admin.update_user(admin_token, LEGACY, "{} takes tasks.", takes_tasks=True)
    status = rendered(view[page.admin.users_status])
    assert "<a" not in status and "[phish](http://evil.example)\\u202e" in status
    assert LEGACY not in list(view[page.admin.accounts]["name"])  # written out in the table
    assert (audit.visible(LEGACY), LEGACY) in view[page.admin.member].choices  # the value stays the name


def test_the_audit_csv_writes_control_characters_out(annotation_engine):
    (admin,) = make_users(annotation_engine, "admin", role="admin")
    assert str(login(annotation_engine, "x\x00y\u202e=z")) == WRONG  # refused, not a database error
    with Session(annotation_engine) as session:
        text = audit.export_csv(session, admin)
        targets = session.exec(select(AuditEvent.target).order_by(col(AuditEvent.id))).all()
    assert targets[-2:] == ["x\ufffdy\u202e=z", "audit log"]  # PostgreSQL cannot hold a NUL: U+FFFD
    assert "x\ufffdy\\u202e=z" in text
    raw = {c for c in text if c != "\n" and unicodedata.category(c) in ("Cc", "Cf", "Zl", "Zp")}
    assert not raw


def test_an_empty_database_says_how_to_make_the_first_admin(annotation_engine):
    page = ui(annotation_engine)
    hint = page.enter(None)[page.first_run]
    assert FIRST_ADMIN in hint
    assert str(login(annotation_engine, "admin", "anything at all")) == (
        f"no users yet: create the first admin on the server with `{FIRST_ADMIN}`"
    )
    make_users(annotation_engine, "admin", role="admin")
    assert page.enter(None)[page.first_run] == ""
    assert str(login(annotation_engine, "nobody", "anything at all")) == WRONG


def test_a_disabled_user_is_told_only_after_the_right_password(annotation_engine):
    admin, _ = make_users(annotation_engine, "admin", "alice", role="admin")
    with Session(annotation_engine) as session:
        store.update_user(session, admin, "alice", disabled=True)
    assert str(login(annotation_engine, "alice", "not her password")) == WRONG  # a guesser learns nothing
    assert str(login(annotation_engine, "alice")) == DISABLED
    app = FastAPI()
    api.install(app, annotation_engine, lambda: None)
    with TestClient(app) as client:
        answer = client.post("/api/login", json={"name": "alice", "password": PASSWORD})
    assert answer.status_code == 400 and answer.json() == {"detail": DISABLED}
    with Session(annotation_engine) as session:
        events = session.exec(select(AuditEvent).where(AuditEvent.action == "login_failed")).all()
    assert [event.detail for event in events] == [None, {"disabled": True}, {"disabled": True}]
