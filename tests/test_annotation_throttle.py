"""Failed logins are throttled per account and per client address: five free tries per account (twenty
per address, which a team behind one NAT shares), then locks that grow from 30 s to 15 minutes; a
success resets the count; unknown names are throttled alike.

The app's clock (`db.now`) is moved by the tests, so a lock takes no time to wait out. Every test runs
on SQLite and, when CRITIC_TEST_POSTGRES_URL is set, on PostgreSQL (the `annotation_engine` fixture).
"""

from __future__ import annotations

import pytest
from annotation_helpers import PASSWORD, make_users
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlmodel import Session, col, select

from critic.annotation_app import api, store, throttle
from critic.annotation_app.db import AuditEvent, LoginFailure

WRONG = "wrong user name or password"


@pytest.fixture
def engine(annotation_engine, clock):
    make_users(annotation_engine, "alice", "bob")
    return annotation_engine


def attempt(engine, name: str, password: str, client: str = "10.0.0.1") -> str | Exception:
    """A login's token, or the AppError it raised."""
    with Session(engine) as session:
        try:
            return store.login(session, name, password, client)
        except store.AppError as err:
            return err


def fail(engine, name: str, client: str = "10.0.0.1") -> Exception:
    result = attempt(engine, name, "not the password", client)
    assert isinstance(result, store.AppError)
    return result


def actions(engine) -> list[tuple[str, str, str, str]]:
    with Session(engine) as session:
        rows = session.exec(select(AuditEvent).order_by(col(AuditEvent.id))).all()
        return [(e.actor, e.action, e.target, e.client) for e in rows if e.action.startswith("login")]


def test_lock_lengths_and_messages():
    assert [throttle.lock_seconds(n) for n in range(1, 12)] == [0, 0, 0, 0, 0, 30, 60, 120, 240, 480, 900]
    assert throttle.lock_seconds(100) == throttle.MAX_LOCK_S == 900
    assert str(throttle.TooManyAttempts(29.2)) == "too many failed logins: try again in 30 s"
    assert throttle.TooManyAttempts(0.1).retry_after == 1
    assert str(throttle.TooManyAttempts(119)) == "too many failed logins: try again in 119 s"
    assert str(throttle.TooManyAttempts(121)) == "too many failed logins: try again in 3 min"
    assert throttle.keys(" Alice ", "") == ["user:alice"]
    assert throttle.keys("alice", "::1") == ["user:alice", "client:::1"]


def test_the_sixth_failure_locks_the_account_and_the_wait_grows(engine, clock):
    for _ in range(5):
        assert str(fail(engine, "alice")) == WRONG  # five free tries
    sixth = fail(engine, "alice")
    assert isinstance(sixth, store.TooManyAttempts) and sixth.retry_after == 30
    assert str(sixth) == "too many failed logins: try again in 30 s"
    locked = attempt(engine, "alice", PASSWORD, client="10.0.0.2")  # the right password, another client
    assert isinstance(locked, store.TooManyAttempts) and locked.retry_after == 30  # not even checked
    clock.advance(seconds=20)
    assert attempt(engine, "alice", PASSWORD, client="10.0.0.2").retry_after == 10
    clock.advance(seconds=10)
    seventh = fail(engine, "alice", client="10.0.0.2")  # the lock has passed: the count goes on
    assert isinstance(seventh, store.TooManyAttempts) and seventh.retry_after == 60
    clock.advance(seconds=60)
    assert fail(engine, "alice", client="10.0.0.3").retry_after == 120
    assert "try again in 2 min" in str(attempt(engine, "alice", PASSWORD, client="10.0.0.4"))
    clock.advance(seconds=120)
    token = attempt(engine, "alice", PASSWORD, client="10.0.0.4")
    assert isinstance(token, str)  # a correct password after the wait works
    with Session(engine) as session:
        assert store.user_for_token(session, token).name == "alice"
        assert session.exec(select(LoginFailure).where(LoginFailure.key == "user:alice")).first() is None
    for _ in range(5):
        assert str(fail(engine, "alice", client="10.0.0.4")) == WRONG  # the success reset the count
    assert isinstance(fail(engine, "alice", client="10.0.0.4"), store.TooManyAttempts)
    assert isinstance(attempt(engine, "bob", PASSWORD), str)  # other accounts are not locked


def test_unknown_names_are_throttled_like_real_ones(engine):
    real, unknown = [], []
    for client, name, seen in (("10.0.0.1", "alice", real), ("10.0.0.2", "nobody", unknown)):
        seen.extend(str(fail(engine, name, client)) for _ in range(7))
    assert real == unknown  # the same words at every step: a lock tells nothing about which names exist
    assert real[:5] == [WRONG] * 5 and real[5].startswith("too many failed logins: try again in 30 s")


def test_a_client_is_throttled_across_names_and_a_success_resets_it(engine, clock):
    guessed = [f"user{n}" for n in range(throttle.CLIENT_FREE_FAILURES)]  # one try each: no account locks
    for name in guessed:
        assert str(fail(engine, name, "10.9.9.9")) == WRONG
    assert isinstance(fail(engine, "heidi", "10.9.9.9"), store.TooManyAttempts)  # the client's 21st
    assert isinstance(attempt(engine, "bob", PASSWORD, "10.9.9.9"), store.TooManyAttempts)
    assert isinstance(attempt(engine, "bob", PASSWORD, "10.1.1.1"), str)  # bob elsewhere: fine
    clock.advance(seconds=30)
    assert isinstance(attempt(engine, "bob", PASSWORD, "10.9.9.9"), str)
    for name in guessed:
        assert str(fail(engine, name, "10.9.9.9")) == WRONG  # bob's login reset the client's count


def test_a_team_behind_one_address_survives_everyones_typos(annotation_engine, clock):
    """Four people behind one NAT each mistype their password three times, then log in: nobody is
    locked out. Each account still locks at its own sixth failure, from that address or any other."""
    team = ("alice", "bob", "carol", "dave")
    make_users(annotation_engine, *team)
    for name in team:
        for _ in range(3):
            assert str(fail(annotation_engine, name, "192.0.2.7")) == WRONG
    for name in team:
        assert isinstance(attempt(annotation_engine, name, PASSWORD, "192.0.2.7"), str), name
    for _ in range(5):
        fail(annotation_engine, "carol", "192.0.2.7")
    assert isinstance(fail(annotation_engine, "carol", "192.0.2.7"), store.TooManyAttempts)
    assert isinstance(attempt(annotation_engine, "dave", PASSWORD, "192.0.2.7"), str)  # the address is not
    assert throttle.lock_seconds(20, throttle.free_failures("client:x")) == 0
    assert throttle.lock_seconds(21, throttle.free_failures("client:x")) == 30
    assert throttle.lock_seconds(6, throttle.free_failures("user:x")) == 30


def test_an_old_count_is_forgotten(engine, clock):
    for _ in range(5):
        fail(engine, "alice")
    clock.advance(hours=25)
    assert str(fail(engine, "alice")) == WRONG  # a day later, typos start again from one
    with Session(engine) as session:
        assert session.get(LoginFailure, "user:alice").failures == 1


def test_every_attempt_is_audited(engine, clock):
    for _ in range(6):
        fail(engine, "alice", "10.0.0.1")
    attempt(engine, "alice", PASSWORD, "10.0.0.1")
    clock.advance(seconds=30)
    attempt(engine, "alice", PASSWORD, "10.0.0.1")
    failed = ("", "login_failed", "alice", "10.0.0.1")
    assert actions(engine) == [
        *[failed] * 6,
        ("", "login_throttled", "alice", "10.0.0.1"),
        ("alice", "login", "alice", "10.0.0.1"),
    ]
    with Session(engine) as session:
        details = [e.detail for e in session.exec(select(AuditEvent).order_by(col(AuditEvent.id))).all()]
    assert details[-3:] == [{"locked_for_s": 30}, {"retry_after_s": 30}, None]


def test_the_api_answers_429_with_retry_after(engine, clock):
    app = FastAPI()
    api.install(app, engine, lambda: None)
    with TestClient(app) as client:
        wrong = {"name": "alice", "password": "not the password"}
        for _ in range(5):
            response = client.post("/api/login", json=wrong)
            assert response.status_code == 400 and response.json() == {"detail": WRONG}
        sixth = client.post("/api/login", json=wrong)
        assert sixth.status_code == 429 and sixth.headers["Retry-After"] == "30"
        assert sixth.json() == {"detail": "too many failed logins: try again in 30 s"}
        right = {"name": "alice", "password": PASSWORD}
        early = client.post("/api/login", json=right)
        assert early.status_code == 429 and early.headers["Retry-After"] == "30"
        clock.advance(seconds=30)
        late = client.post("/api/login", json=right)
        assert late.status_code == 200 and late.json()["user"] == "alice"
    assert {client for *_, client in actions(engine)} == {"testclient"}  # the connection's address
