"""Model critiques that the old FSBS checks wrote (word salad from a 2M-parameter critic) are never shown
to a person again: not on compare cards, not as an assisted writer's start, not over the API. Their
rows and the ratings they got stay, in the per-origin report and the export. A tampering whose model
critique the repair search wrote is compared and written from as before.

Every test runs on SQLite and, when CRITIC_TEST_POSTGRES_URL is set, on PostgreSQL.
"""

from __future__ import annotations

import json
from dataclasses import asdict, is_dataclass

import pytest
from annotation_helpers import PASSWORD, rating
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlmodel import Session, col, select
from writing_helpers import (
    CRITIC,
    FSBS_SETTINGS,
    MODEL_ORIGIN,
    REPAIRS_SETTINGS,
    SALADS,
    call,
    highlight,
    tamper_with_critic,
    tamper_with_fsbs,
    write_next,
)

from critic.annotation_app import api, store
from critic.annotation_app.checker import search_of, shown_to_people
from critic.annotation_app.db import Assignment, Critique, Draft, HighlightEvent, Rating
from critic.core.critique import parse_critique

LOOP = "for i in range(len(xs) - 1):"
SALAD_COMMENTS = [salad.split("\n```\n")[1] for salad in SALADS]


def unused_critic():
    raise AssertionError("this test must not run the critic")


@pytest.fixture
def client(crew):
    app = FastAPI()
    api.install(app, crew.engine, unused_critic)
    with TestClient(app) as c:
        yield c


def auth(client: TestClient, name: str) -> dict:
    response = client.post("/api/login", json={"name": name, "password": PASSWORD})
    assert response.status_code == 200, response.text
    return {"Authorization": f"Bearer {response.json()['token']}"}


def salad_in(payload: object) -> bool:
    """Whether an FSBS critique's comment is anywhere in `payload`: a store result or the API's JSON text."""
    if is_dataclass(payload) and not isinstance(payload, type):
        payload = asdict(payload)
    text = payload if isinstance(payload, str) else json.dumps(payload)
    return any(comment in text for comment in SALAD_COMMENTS)


def test_the_filter_is_search_of_in_sql(crew):
    """shown_to_people() keeps exactly the critiques whose stored settings `search_of` does not call
    "fsbs", on the database itself (JSON in SQLite and PostgreSQL)."""
    t = tamper_with_fsbs(crew.engine, crew.alice)
    settings = [FSBS_SETTINGS, REPAIRS_SETTINGS, None, {}, {"origin": MODEL_ORIGIN}, {"search": "fsbs"}]
    with Session(crew.engine) as session:
        for n, value in enumerate(settings):
            session.add(
                Critique(
                    tampering_id=t, text=f"probe {n}", origin="model:x", fsbs_settings=value, position=90 + n
                )
            )
        session.commit()
        shown = set(session.exec(select(Critique.text).where(shown_to_people())).all())
        rows = session.exec(select(Critique)).all()
    assert {c.text for c in rows if search_of(c.fsbs_settings) != "fsbs"} == shown
    assert {"probe 1", "probe 2", "probe 3", "probe 4"} <= shown
    assert not shown & {"probe 0", "probe 5", *SALADS}


# --- compare tasks ---------------------------------------------------------------------------------


def test_an_fsbs_tampering_with_only_the_gold_critique_left_gets_no_compare_task(crew, client):
    """Without its FSBS critiques an old tampering shows one critique: nothing to compare, so no task
    (no empty card, no crash), and nobody's progress counts it as left. A newer tampering whose critique
    the repair search wrote is served instead, with that critique."""
    engine = crew.engine
    old = tamper_with_fsbs(engine, crew.alice)
    new = tamper_with_critic(engine, crew.alice, CRITIC, REPAIRS_SETTINGS)
    assert call(engine, store.my_progress, crew.bob)["compare"] == {"done": 0, "left": 1}

    task = call(engine, store.next_compare_task, crew.bob)
    assert task.tampering_id == new and old != new
    assert [c.text for c in task.critiques].count(CRITIC) == 1
    assert len(task.critiques) == store.CRITIQUES_PER_TASK and not salad_in(task)
    call(engine, store.submit_ratings, crew.bob, new, {c.critique_id: rating() for c in task.critiques})
    assert call(engine, store.next_compare_task, crew.bob) is None
    assert call(engine, store.my_progress, crew.bob)["compare"] == {"done": 1, "left": 0}

    carol = auth(client, "carol")
    served = client.get("/api/compare/next", headers=carol)
    assert served.status_code == 200 and served.json()["task"]["tampering_id"] == new
    assert not salad_in(served.text)
    body = {
        "ratings": [
            {"critique_id": c["critique_id"], **vars(rating())} for c in served.json()["task"]["critiques"]
        ]
    }
    assert client.post(f"/api/compare/{new}", json=body, headers=carol).status_code == 200
    assert client.get("/api/compare/next", headers=carol).json() == {"task": None}
    assert client.get("/api/me/progress", headers=carol).json()["compare"] == {"done": 1, "left": 0}


def test_an_fsbs_tampering_with_written_critiques_is_compared_without_its_fsbs_critiques(crew, client):
    """With written critiques an old tampering still has something to compare: its card shows them and
    the gold one, and its ratings are asked (and accepted) for exactly those."""
    engine = crew.engine
    writers = 2
    call(engine, store.set_writers, crew.admin, writers)
    t = tamper_with_fsbs(engine, crew.alice)
    write_next(engine, crew.bob, "Bob: the loop stops one short.")
    write_next(engine, crew.carol, "Carol: the last element is skipped.")

    task = call(engine, store.next_compare_task, crew.dave)
    assert task.tampering_id == t and len(task.critiques) == 1 + writers
    assert not salad_in(task)
    with Session(engine) as session:
        hidden = session.exec(
            select(Critique.id).where(Critique.tampering_id == t, col(Critique.text).in_(SALADS))
        ).all()
    assert len(hidden) == len(SALADS)
    ratings = {c.critique_id: rating() for c in task.critiques}
    with pytest.raises(store.AppError, match="is not part of this task"):
        call(engine, store.submit_ratings, crew.dave, t, {**ratings, hidden[0]: rating()})
    call(engine, store.submit_ratings, crew.dave, t, ratings)

    erin = auth(client, "erin")
    served = client.get("/api/compare/next", headers=erin)
    assert served.status_code == 200 and served.json()["task"]["tampering_id"] == t
    assert len(served.json()["task"]["critiques"]) == 1 + writers and not salad_in(served.text)


def test_a_compare_task_held_from_before_is_released_when_nothing_is_left_to_compare(crew):
    """A rater who claimed an old tampering before its FSBS critiques were hidden is not shown it (it
    could never be submitted): the hold is marked skipped, its draft dropped, and the next task served."""
    engine = crew.engine
    old = tamper_with_fsbs(engine, crew.alice)
    new = tamper_with_critic(engine, crew.alice, CRITIC, REPAIRS_SETTINGS)
    with Session(engine) as session:
        session.add(Assignment(kind="compare", user_id=crew.bob.id, item_id=old))
        session.add(Draft(user_id=crew.bob.id, kind="compare", item_id=old, payload={"note": "half"}))
        session.commit()

    assert call(engine, store.my_progress, crew.bob)["compare"] == {"done": 0, "left": 1}  # the new one
    task = call(engine, store.next_compare_task, crew.bob)
    assert task.tampering_id == new and not salad_in(task)
    with Session(engine) as session:
        held = session.exec(
            select(Assignment).where(Assignment.item_id == old, Assignment.kind == "compare")
        ).one()
        assert held.status == "skipped"
        assert session.get(Draft, (crew.bob.id, "compare", old)) is None


# --- assisted writing ------------------------------------------------------------------------------


def test_an_assisted_write_never_starts_from_an_fsbs_critique(crew, client):
    """An old tampering's writers both write in mode human (assisted must mean started from a readable
    critique, for the per-origin report), while a newer tampering's assisted writer starts from its
    repair-search critique as before."""
    engine = crew.engine
    call(engine, store.set_writers, crew.admin, 2)
    old = tamper_with_fsbs(engine, crew.alice)
    new = tamper_with_critic(engine, crew.alice, CRITIC, REPAIRS_SETTINGS)

    first = call(engine, store.next_write_task, crew.bob)
    second = client.get("/api/write/next", headers=auth(client, "carol")).json()["task"]
    assert first.tampering_id == second["tampering_id"] == old
    assert not salad_in(first) and not salad_in(second)
    assert (first.mode, first.highlights, first.preamble) == ("human", [], "")
    assert (second["mode"], second["highlights"], second["preamble"]) == ("human", [], "")
    with Session(engine) as session:
        modes = session.exec(
            select(Assignment.mode).where(Assignment.kind == "write", Assignment.item_id == old)
        ).all()
    assert sorted(modes) == ["human", "human"]
    written = call(engine, store.submit_critique, crew.bob, old, [highlight(LOOP, "Stops one short.")])
    with Session(engine) as session:
        assert session.get(Critique, written).origin == "human"
        assert session.exec(
            select(HighlightEvent.action).where(HighlightEvent.critique_id == written)
        ).all() == ["added"]

    tasks = {
        task.mode: task for task in (call(engine, store.next_write_task, u) for u in (crew.dave, crew.erin))
    }
    assert {task.tampering_id for task in tasks.values()} == {new} and set(tasks) == {"human", "assisted"}
    start = parse_critique(CRITIC, tasks["assisted"].code)
    assert [(h["quote"], h["comment"]) for h in tasks["assisted"].highlights] == [
        (h.quote, h.comment) for h in start.highlights
    ]
    assert tasks["assisted"].preamble == start.preamble


def test_an_assisted_write_held_from_before_falls_back_to_human_and_drops_its_draft(crew, client):
    """A writer who claimed an old tampering in mode assisted before its FSBS critiques were hidden, and
    saved a draft holding that critique's text: a stale page can neither save nor submit it, the draft
    is never served again, and the task reloads as human, empty."""
    engine = crew.engine
    call(engine, store.set_writers, crew.admin, 1)
    t = tamper_with_fsbs(engine, crew.alice)
    quote, comment = SALADS[0].split("\n```\n")
    stale = {"highlights": [highlight(quote.removeprefix("```\n"), comment, 0)], "preamble": ""}
    with Session(engine) as session:
        session.add(Assignment(kind="write", user_id=crew.bob.id, item_id=t, mode="assisted"))
        session.add(Draft(user_id=crew.bob.id, kind="write", item_id=t, payload=stale))
        session.commit()

    with pytest.raises(store.AppError, match="no longer shown"):
        call(engine, store.save_draft, crew.bob, "write", t, stale)
    with pytest.raises(store.AppError, match="no longer shown"):
        call(engine, store.submit_critique, crew.bob, t, stale["highlights"])
    bob = auth(client, "bob")
    draft = client.get(f"/api/drafts/write/{t}", headers=bob)
    assert draft.status_code == 200 and draft.json() == {"payload": None}
    task = client.get("/api/write/next", headers=bob).json()["task"]
    assert (task["tampering_id"], task["mode"], task["highlights"], task["draft"]) == (t, "human", [], None)
    assert not salad_in(task)
    call(engine, store.save_draft, crew.bob, "write", t, {"highlights": [highlight(LOOP, "half")]})
    written = call(engine, store.submit_critique, crew.bob, t, [highlight(LOOP, "Stops one short.")])
    with Session(engine) as session:
        assert session.get(Critique, written).origin == "human"


# --- history ---------------------------------------------------------------------------------------


def test_ratings_of_fsbs_critiques_stay_in_the_report_and_the_export(crew):
    """Ratings given to FSBS critiques before they were hidden are historical data: the per-origin
    report still counts them under model, and the export (for ML engineers) still holds them."""
    engine = crew.engine
    t = tamper_with_fsbs(engine, crew.alice)
    with Session(engine) as session:
        critiques = session.exec(select(Critique).where(Critique.tampering_id == t)).all()
        session.add(Assignment(kind="compare", user_id=crew.bob.id, item_id=t, status="done"))
        values = vars(rating())
        session.add_all(Rating(critique_id=c.id, rater_id=crew.bob.id, **values) for c in critiques)
        session.commit()

    report = {row["origin"]: row for row in call(engine, store.origin_report, crew.admin)}
    assert (report["model"]["critiques"], report["model"]["ratings"]) == (len(SALADS), len(SALADS))
    dataset = call(engine, store.export_dataset, crew.admin)
    assert sorted(dataset["ratings"]["critique"]).count(SALADS[0]) == 1
    assert dataset["ratings"].num_rows == len(SALADS) + 1
    assert call(engine, store.next_compare_task, crew.carol) is None  # and nobody is shown them again
