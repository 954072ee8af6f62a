"""The JSON API: authentication, roles, blind payloads, and malformed input refused without a write."""

from __future__ import annotations

import pytest
from annotation_helpers import PASSWORD, make_team, rating, tamper_next, tampered
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlmodel import Session, func, select

from critic.annotation_app import api, store
from critic.annotation_app.db import Assignment, Rating, Tampering


def unused_critic():
    raise AssertionError("this test must not run the critic")


@pytest.fixture
def setup(annotation_engine, tmp_path):
    """A client of the API over a team's database, with alice's tampering waiting for comparison."""
    engine = annotation_engine
    app = FastAPI()
    api.install(app, engine, unused_critic)
    team = make_team(engine, tmp_path / "src")
    tamper_next(engine, team[1])
    with TestClient(app) as client:
        yield client, engine


def auth(client: TestClient, name: str) -> dict:
    response = client.post("/api/login", json={"name": name, "password": PASSWORD})
    assert response.status_code == 200, response.text
    return {"Authorization": f"Bearer {response.json()['token']}"}


def count(engine, table, *where) -> int:
    with Session(engine) as session:
        return session.exec(select(func.count()).select_from(table).where(*where)).one()


ADMIN_CALLS = [
    ("post", "/api/admin/users", {"name": "mallory", "role": "admin", "password": PASSWORD}),
    ("post", "/api/admin/import", {"source": "humaneval"}),
    ("put", "/api/admin/overlap", {"overlap": 5}),
    ("get", "/api/admin/progress", None),
    ("get", "/api/admin/agreement", None),
    ("get", "/api/admin/users", None),
    ("patch", "/api/admin/users/carol", {"disabled": True}),
    ("put", "/api/admin/assignment-ttl", {"hours": 12.0}),
]


def test_authentication_and_roles(setup):
    client, engine = setup
    assert client.get("/api/tamper/next").status_code == 401
    assert client.get("/api/tamper/next", headers={"Authorization": "Bearer nope"}).status_code == 401
    bad = client.post("/api/login", json={"name": "bob", "password": "wrong password"})
    assert bad.status_code == 400 and bad.json() == {"detail": "wrong user name or password"}

    bob = auth(client, "bob")
    for method, path, body in ADMIN_CALLS:
        response = client.request(method, path, json=body, headers=bob)
        assert response.status_code == 403, path
        assert response.json() == {"detail": "only admins can do this"}
    assert count(engine, Tampering) == 1 and client.get("/api/me", headers=bob).json()["role"] == "annotator"

    admin = auth(client, "admin")
    progress = client.get("/api/admin/progress", headers=admin)
    assert progress.status_code == 200 and len(progress.json()["tasks"]) == 1
    assert client.put("/api/admin/overlap", json={"overlap": 3}, headers=admin).json() == {"overlap": 3}
    assert client.post("/api/logout", headers=bob).status_code == 200
    assert client.get("/api/me", headers=bob).status_code == 401


def test_users_progress_and_expiry_over_http(setup):
    client, engine = setup
    bob, admin = auth(client, "bob"), auth(client, "admin")
    progress = client.get("/api/me/progress", headers=bob).json()
    assert set(progress) == {"tamper", "compare", "write"}
    assert progress["compare"] == {"done": 0, "left": 1} and progress["tamper"] == {"done": 0, "left": 3}

    users = client.get("/api/admin/users", headers=admin).json()["users"]
    assert [u["name"] for u in users] == ["admin", "alice", "bob", "carol"]
    assert users[2] == {**users[2], "role": "annotator", "disabled": False, "takes_tasks": True}
    disabled = client.patch("/api/admin/users/bob", json={"disabled": True}, headers=admin)
    assert disabled.status_code == 200, disabled.text
    assert client.get("/api/me", headers=bob).status_code == 401  # his session ended with it
    relogin = client.post("/api/login", json={"name": "bob", "password": PASSWORD})
    disabled_detail = {"detail": "this account is disabled: ask an admin to enable it"}
    assert relogin.status_code == 400 and relogin.json() == disabled_detail  # the right password hears it
    refused = [
        ("/api/admin/users/bob", {"disabled": "yes"}, 422, "disabled: Input should be a valid boolean"),
        ("/api/admin/users/bob", {"name": "robert"}, 422, "name: Extra inputs are not permitted"),
        ("/api/admin/users/nobody", {"role": "admin"}, 400, "no such user 'nobody'"),
        ("/api/admin/users/admin", {"disabled": True}, 400, "you cannot disable yourself"),
        ("/api/admin/users/carol", {"password": "short"}, 400, "at least 8 characters"),
    ]
    for path, body, status, detail in refused:
        response = client.patch(path, json=body, headers=admin)
        assert response.status_code == status and detail in response.json()["detail"], response.text
    both = client.patch("/api/admin/users/bob", json={"disabled": False, "role": "admin"}, headers=admin)
    assert both.status_code == 200 and client.get("/api/me", headers=auth(client, "bob")).json() == {
        "user": "bob",
        "role": "admin",
    }

    half = client.put("/api/admin/assignment-ttl", json={"hours": 0.5}, headers=admin)
    assert half.status_code == 200 and half.json() == {"hours": 0.5}
    zero = client.put("/api/admin/assignment-ttl", json={"hours": 0}, headers=admin)
    assert zero.status_code == 400 and "above 0 and at most 8760" in zero.json()["detail"]
    text = client.put("/api/admin/assignment-ttl", json={"hours": "2"}, headers=admin)
    assert text.status_code == 422
    with Session(engine) as session:
        assert store.get_assignment_ttl(session) == 0.5


def test_compare_over_http_is_blind_and_complete(setup):
    client, engine = setup
    bob = auth(client, "bob")
    task = client.get("/api/compare/next", headers=bob).json()["task"]
    assert set(task) == {"tampering_id", "code", "original", "critiques", "draft", "bug_lines"}
    assert all(set(c) == {"critique_id", "text"} for c in task["critiques"])
    assert len(task["critiques"]) == store.CRITIQUES_PER_TASK == 2
    alice = auth(client, "alice")
    assert client.get("/api/compare/next", headers=alice).json() == {"task": None}  # her own tampering

    body = {"ratings": [{"critique_id": c["critique_id"], **vars(rating())} for c in task["critiques"]]}
    response = client.post(f"/api/compare/{task['tampering_id']}", json=body, headers=bob)
    assert response.status_code == 200, response.text
    assert count(engine, Rating) == 2
    again = client.post(f"/api/compare/{task['tampering_id']}", json=body, headers=bob)
    assert again.status_code == 400 and "already submitted" in again.json()["detail"]
    self_rating = client.post(f"/api/compare/{task['tampering_id']}", json=body, headers=alice)
    assert (
        self_rating.status_code == 403
        and self_rating.json()["detail"] == "you cannot rate your own tampering"
    )
    assert count(engine, Rating) == 2


def _mutations():
    def score_as_text(body):
        body["ratings"][0]["cbi"] = "5"

    def missing_field(body):
        del body["ratings"][1]["rationale"]

    def extra_field(body):
        body["ratings"][1]["origin"] = "gold"

    def out_of_range(body):
        body["ratings"][0]["overall"] = 9

    def missing_critique(body):
        body["ratings"].pop()

    def duplicated(body):
        body["ratings"][1] = dict(body["ratings"][0])

    def not_a_list(body):
        body["ratings"] = "all good"

    def empty_rationale(body):
        body["ratings"][1]["rationale"] = ""

    return [
        (score_as_text, 422, "ratings.0.cbi: Input should be a valid integer"),
        (missing_field, 422, "ratings.1.rationale: Field required"),
        (extra_field, 422, "ratings.1.origin: Extra inputs are not permitted"),
        (out_of_range, 400, "critique 1: overall must be an int from 1 to 7, got 9"),
        (missing_critique, 400, "critique 2: not rated"),
        (duplicated, 400, "is rated twice"),
        (not_a_list, 422, "ratings: Input should be a valid list"),
        (empty_rationale, 400, "critique 2: no rationale"),
    ]


@pytest.mark.parametrize(
    ("mutate", "status", "detail"), _mutations(), ids=lambda x: getattr(x, "__name__", None)
)
def test_malformed_rating_submission_is_refused_and_writes_nothing(setup, mutate, status, detail):
    client, engine = setup
    bob = auth(client, "bob")
    task = client.get("/api/compare/next", headers=bob).json()["task"]
    body = {"ratings": [{"critique_id": c["critique_id"], **vars(rating())} for c in task["critiques"]]}
    mutate(body)
    response = client.post(f"/api/compare/{task['tampering_id']}", json=body, headers=bob)
    assert response.status_code == status, response.text
    message = response.json()["detail"]
    assert isinstance(message, str) and detail in message and "\n" not in message
    assert count(engine, Rating) == 0
    assert count(engine, Assignment, Assignment.kind == "compare", Assignment.status == "open") == 1


def test_broken_json_and_unknown_task(setup):
    client, _ = setup
    bob = auth(client, "bob")
    broken = client.post(
        "/api/compare/1", content=b"{not json", headers={**bob, "Content-Type": "application/json"}
    )
    assert broken.status_code == 422 and "\n" not in broken.json()["detail"]
    unknown = client.post("/api/compare/999", json={"ratings": []}, headers=bob)
    assert unknown.status_code == 400 and unknown.json() == {"detail": "no such task 999"}


def test_oversized_input(setup):
    client, engine = setup
    bob = auth(client, "bob")
    sample = client.get("/api/tamper/next", headers=bob).json()["sample"]
    huge = client.put(
        f"/api/drafts/tamper/{sample['sample_id']}", json={"payload": {"x": "y" * 2_000_000}}, headers=bob
    )
    assert huge.status_code == 413
    long_code = tampered(sample["code"]) + "#" * 20_001
    body = {
        "sample_id": sample["sample_id"],
        "code": long_code,
        "bug_lines": [3],
        "description": "Off by one.",
    }
    response = client.post("/api/tamper/submit", json=body, headers=bob)
    assert response.status_code == 400 and "the limit is 20000" in response.json()["detail"]
    assert count(engine, Tampering) == 1


def test_drafts_over_http(setup):
    client, _ = setup
    bob, carol = auth(client, "bob"), auth(client, "carol")
    sample = client.get("/api/tamper/next", headers=bob).json()["sample"]
    path = f"/api/drafts/tamper/{sample['sample_id']}"
    assert client.put(path, json={"payload": {"code": "x = 1"}}, headers=bob).status_code == 200
    assert client.get(path, headers=bob).json() == {"payload": {"code": "x = 1"}}
    assert client.get(path, headers=carol).json() == {"payload": None}
    assert client.put(path, json={"payload": {"code": "x"}}, headers=carol).status_code == 403
    assert client.get("/api/tamper/next", headers=bob).json()["sample"]["draft"] == {"code": "x = 1"}
    assert client.put("/api/drafts/review/1", json={"payload": {}}, headers=bob).status_code == 400


@pytest.mark.parametrize("big", [2**31, 2**63, 10**20])
def test_an_id_no_row_can_have_is_refused_not_a_server_error(setup, big):
    client, engine = setup
    bob = auth(client, "bob")
    task = client.get("/api/compare/next", headers=bob).json()["task"]
    too_big_critique = {"ratings": [{"critique_id": big, **vars(rating())}]}
    calls = [
        ("post", f"/api/tamper/{big}/skip", None),
        ("post", f"/api/compare/{big}", {"ratings": []}),
        ("post", f"/api/compare/{task['tampering_id']}", too_big_critique),
        ("post", f"/api/write/{big}", {"highlights": []}),
        ("post", f"/api/write/{big}/skip", None),
        ("get", f"/api/drafts/tamper/{big}", None),
        ("put", f"/api/drafts/tamper/{big}", {"payload": {"code": "x"}}),
        ("post", "/api/tamper/tests", {"sample_id": big, "code": "x = 1"}),
        ("post", "/api/tamper/submit", {"sample_id": big, "code": "x", "bug_lines": [1], "description": "d"}),
    ]
    for method, path, body in calls:
        response = client.request(method, path, json=body, headers=bob)
        assert response.status_code in (400, 403, 404, 422), (path, response.status_code, response.text)
        detail = response.json()["detail"]
        assert isinstance(detail, str) and "\n" not in detail, (path, detail)
    assert count(engine, Rating) == 0 and count(engine, Tampering) == 1


def test_a_login_utf8_cannot_hold_is_a_failed_login_throttled_and_audited(setup):
    """JSON can carry a lone surrogate ("\\ud800"), which no database can store: such a name or password
    is a wrong login, counted by the throttle and written to the audit log, never a server error."""
    from critic.annotation_app.db import AuditEvent

    client, engine = setup

    def log_in_raw(name: str, password: str):
        body = f'{{"name": "{name}", "password": "{password}"}}'
        return client.post("/api/login", content=body.encode(), headers={"Content-Type": "application/json"})

    garbled = log_in_raw("bob", "\\ud800" + PASSWORD)
    assert garbled.status_code == 400 and garbled.json() == {"detail": "wrong user name or password"}
    statuses = [log_in_raw("mal\\udfffory", "whatever password").status_code for _ in range(7)]
    assert statuses == [400] * 5 + [429, 429]  # this name's 6th failure locks it
    with Session(engine) as session:
        events = session.exec(select(AuditEvent).where(AuditEvent.action.like("login%"))).all()
    assert [e.action for e in events] == ["login_failed"] * 7 + ["login_throttled"]
    assert events[0].target == "bob" and events[-1].target.startswith("mal")
    assert "\udfff" not in events[-1].target  # stored as U+FFFD
