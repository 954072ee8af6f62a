"""Session lifetimes: an idle timeout, an absolute lifetime, and sessions ended by an admin's change.

The app's clock (`db.now`) is moved by the tests, so a day-long session takes no time. Every test runs
on SQLite and, when CRITIC_TEST_POSTGRES_URL is set, on PostgreSQL (the `annotation_engine` fixture).
"""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest
from annotation_helpers import PASSWORD, make_users
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlmodel import Session, select

from critic.annotation_app import api, store
from critic.annotation_app.db import SessionToken

EXPIRED = "your session expired: log in again"
UNKNOWN = "not logged in (unknown or expired session)"


@pytest.fixture
def users(annotation_engine, clock):
    """An admin and two annotators, on the test's clock."""
    (admin,) = make_users(annotation_engine, "admin", role="admin")
    alice, bob = make_users(annotation_engine, "alice", "bob")
    return annotation_engine, admin, alice, bob


def login(engine, name: str) -> str:
    with Session(engine) as session:
        return store.login(session, name, PASSWORD)


def whoami(engine, token: str) -> str:
    with Session(engine) as session:
        return store.user_for_token(session, token).name


def tokens(engine) -> int:
    with Session(engine) as session:
        return len(session.exec(select(SessionToken)).all())


def last_seen(engine, token: str) -> datetime:
    from critic.annotation_app.auth import _token_hash

    with Session(engine) as session:
        return session.get(SessionToken, _token_hash(token)).last_seen_at


def test_default_limits_are_documented_and_an_idle_session_expires(users, clock):
    engine, _, alice, _ = users
    with Session(engine) as session:
        assert store.get_session_limits(session) == (120.0, 24.0)  # the documented defaults
    token = login(engine, "alice")
    clock.advance(minutes=100)
    assert whoami(engine, token) == "alice"  # used after 100 idle minutes: the idle clock restarts
    clock.advance(minutes=119)
    assert whoami(engine, token) == "alice"
    clock.advance(minutes=122)  # more than the idle limit (and the minute last_seen_at is kept to)
    with Session(engine) as session, pytest.raises(store.SessionExpired) as err:
        store.user_for_token(session, token)
    assert str(err.value) == EXPIRED and isinstance(err.value, store.AppError)
    with Session(engine) as session, pytest.raises(store.AppError) as err:
        store.user_for_token(session, token)  # the expired token was deleted: now simply unknown
    assert not isinstance(err.value, store.SessionExpired)
    assert str(err.value) == UNKNOWN
    assert whoami(engine, login(engine, "alice")) == "alice"  # logging in again works


def test_last_seen_is_written_at_most_once_a_minute(users, clock):
    engine, *_ = users
    token = login(engine, "alice")
    issued = last_seen(engine, token)
    clock.advance(seconds=50)
    whoami(engine, token)
    assert last_seen(engine, token) == issued  # a read stays a read within the minute
    clock.advance(seconds=20)
    whoami(engine, token)
    assert last_seen(engine, token) == issued + timedelta(seconds=70)


def test_a_busy_session_ends_at_its_lifetime(users, clock):
    engine, admin, *_ = users
    with Session(engine) as session:
        store.set_session_limits(session, admin, 30, 2)
        assert store.get_session_limits(session) == (30.0, 2.0)
    token = login(engine, "bob")
    for _ in range(6):  # a request every 20 minutes: never idle, for 2 hours
        clock.advance(minutes=20)
        assert whoami(engine, token) == "bob"
    clock.advance(seconds=1)
    with Session(engine) as session, pytest.raises(store.SessionExpired, match=EXPIRED):
        store.user_for_token(session, token)
    assert tokens(engine) == 0


def test_new_limits_apply_to_open_sessions(users, clock):
    engine, admin, *_ = users
    token = login(engine, "alice")
    clock.advance(minutes=40)
    assert whoami(engine, token) == "alice"
    clock.advance(minutes=40)
    with Session(engine) as session:
        store.set_session_limits(session, admin, 15, 24)
    with Session(engine) as session, pytest.raises(store.SessionExpired):
        store.user_for_token(session, token)


def test_session_limits_are_validated(users):
    engine, admin, alice, _ = users
    refused = [
        ((0, 24), "the idle timeout must be a number above 0"),
        ((-5, 24), "the idle timeout must be a number above 0"),
        ((float("nan"), 24), "the idle timeout must be a number above 0"),
        ((True, 24), "the idle timeout must be a number above 0"),
        (("60", 24), "the idle timeout must be a number above 0"),
        ((60, 0), "the session lifetime must be a number above 0"),
        ((60, float("inf")), "the session lifetime must be a number above 0"),
        ((60, 24 * 366), "at most 8760"),
        ((121, 2), "the idle timeout (121 minutes) cannot be longer than the session lifetime (2 hours)"),
    ]
    with Session(engine) as session:
        for (idle, lifetime), message in refused:
            with pytest.raises(store.AppError) as err:
                store.set_session_limits(session, admin, idle, lifetime)
            assert message in str(err.value) and "\n" not in str(err.value)
        with pytest.raises(store.Forbidden, match="only admins"):
            store.set_session_limits(session, alice, 60, 8)
        assert store.get_session_limits(session) == (120.0, 24.0)  # nothing refused was stored
        store.set_session_limits(session, admin, 120, 2)  # idle equal to the lifetime is fine
        assert store.get_session_limits(session) == (120.0, 2.0)


def test_admin_changes_end_the_users_sessions(users):
    """`update_user` ends a user's sessions when it disables them, changes their role or resets their
    password (auth.end_sessions); other changes, and other users' sessions, leave them be."""
    engine, admin, *_ = users

    def survives(**change) -> bool:
        """Log alice and bob in, change alice: whether her session lives on (bob's always does)."""
        alice, bob = login(engine, "alice"), login(engine, "bob")
        with Session(engine) as session:
            store.update_user(session, admin, "alice", **change)
        assert whoami(engine, bob) == "bob"
        try:
            return whoami(engine, alice) == "alice"
        except store.AppError as err:
            assert str(err) == UNKNOWN
            return False

    assert survives(takes_tasks=False)
    assert survives(role="annotator")  # her role already: no change
    assert not survives(disabled=True)
    with Session(engine) as session:
        store.update_user(session, admin, "alice", disabled=False)
    assert not survives(role="admin")
    assert not survives(password="a brand new password")


@pytest.fixture
def client(users):
    engine = users[0]
    app = FastAPI()
    api.install(app, engine, lambda: None)
    with TestClient(app) as test_client:
        yield test_client, engine


def bearer(client: TestClient, name: str) -> dict:
    response = client.post("/api/login", json={"name": name, "password": PASSWORD})
    assert response.status_code == 200, response.text
    return {"Authorization": f"Bearer {response.json()['token']}"}


def test_over_http_disabling_ends_a_session_and_expiry_is_its_own_401(client, clock):
    client, engine = client
    admin, alice, bob = bearer(client, "admin"), bearer(client, "alice"), bearer(client, "bob")
    assert client.get("/api/me", headers=alice).status_code == 200
    assert client.patch("/api/admin/users/alice", json={"disabled": True}, headers=admin).status_code == 200
    ended = client.get("/api/me", headers=alice)
    assert ended.status_code == 401 and ended.json() == {"detail": UNKNOWN}
    assert client.get("/api/me", headers=bob).status_code == 200

    limits = {"idle_minutes": 10, "lifetime_hours": 1}
    assert client.put("/api/admin/session-limits", json=limits, headers=bob).status_code == 403
    done = client.put("/api/admin/session-limits", json=limits, headers=admin)
    assert done.status_code == 200 and done.json() == {"idle_minutes": 10.0, "lifetime_hours": 1.0}
    bad = client.put(
        "/api/admin/session-limits", json={"idle_minutes": 90, "lifetime_hours": 1}, headers=admin
    )
    assert bad.status_code == 400 and "cannot be longer than the session lifetime" in bad.json()["detail"]
    clock.advance(minutes=12)
    expired = client.get("/api/me", headers=bob)
    assert expired.status_code == 401 and expired.json() == {"detail": EXPIRED}
    assert expired.headers["WWW-Authenticate"] == "Bearer"
    again = client.get("/api/me", headers=bob)
    assert again.json() == {"detail": UNKNOWN}
