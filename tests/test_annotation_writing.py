"""Critique writing (human and human + critic teams): modes, the critic's start, the highlight log,
validation, the compare gate, who may take which task, and the HTTP endpoints.

Every test runs on SQLite and, when CRITIC_TEST_POSTGRES_URL is set, on PostgreSQL.
"""

from __future__ import annotations

import json
import re
from dataclasses import asdict, fields
from datetime import timedelta
from types import SimpleNamespace

import pytest
from annotation_helpers import DESCRIPTION, PASSWORD, rating, tamper_next
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlmodel import Session, col, func, select
from writing_helpers import CRITIC, MODEL_ORIGIN, call, highlight, tamper_with_critic, write_next

from critic.annotation_app import db, store, writing
from critic.annotation_app.db import Assignment, Critique, HighlightEvent, User
from critic.core.critique import format_critique, parse_critique

LOOP = "for i in range(len(xs) - 1):"


@pytest.fixture
def clock():
    """The app's clock, moved by hand: `clock.now += timedelta(...)`."""
    state = SimpleNamespace(now=db.now())
    db.set_clock(lambda: state.now)
    yield state
    db.set_clock(None)


def count(engine, table, *where) -> int:
    with Session(engine) as session:
        return session.exec(select(func.count()).select_from(table).where(*where)).one()


def set_writers(crew, n: int) -> None:
    call(crew.engine, store.set_writers, crew.admin, n)


def claim(crew, *users) -> list[store.WriteTask | None]:
    return [call(crew.engine, store.next_write_task, user) for user in users]


# --- settings and modes ----------------------------------------------------------------------------


def test_writers_setting_is_validated_and_off_by_default(crew):
    engine = crew.engine
    assert call(engine, store.get_writers) == 0
    tamper_next(engine, crew.alice)
    assert claim(crew, crew.bob) == [None]  # off: nobody writes, compare tasks open at once
    assert len(call(engine, store.next_compare_task, crew.carol).critiques) == store.CRITIQUES_PER_TASK
    with pytest.raises(store.Forbidden, match="only admins"):
        call(engine, store.set_writers, crew.bob, 1)
    for bad in (-1, store.MAX_WRITERS + 1, True, 2.5, "2", None):
        with pytest.raises(
            store.AppError, match=f"writers must be a whole number from 0 to {store.MAX_WRITERS}"
        ):
            call(engine, store.set_writers, crew.admin, bad)
    call(engine, store.set_writers, crew.admin, 2.0)
    assert call(engine, store.get_writers) == 2


def test_writers_take_turns_in_mode(crew):
    """Writer k of tampering t writes in MODES[(t + k) % 2]: writers=2 gives one of each, writers=1
    alternates across tamperings."""
    set_writers(crew, 2)
    t = tamper_with_critic(crew.engine, crew.alice)
    first, second = claim(crew, crew.bob, crew.carol)
    assert first.tampering_id == second.tampering_id == t
    assert [first.mode, second.mode] == [writing.MODES[t % 2], writing.MODES[(t + 1) % 2]]
    assert claim(crew, crew.dave, crew.alice) == [None, None]  # both slots taken; alice is its author
    assert claim(crew, crew.bob)[0].tampering_id == t  # the held task again, not a new claim

    set_writers(crew, 1)
    t2, t3 = (tamper_with_critic(crew.engine, crew.alice) for _ in range(2))
    dave, erin = claim(crew, crew.dave, crew.erin)
    assert (dave.tampering_id, erin.tampering_id) == (t2, t3)
    assert [dave.mode, erin.mode] == [writing.MODES[t2 % 2], writing.MODES[t3 % 2]]
    assert {dave.mode, erin.mode} == set(writing.MODES)


def test_an_expired_writer_is_replaced_in_the_same_mode(crew, clock):
    engine = crew.engine
    set_writers(crew, 2)
    t = tamper_with_critic(engine, crew.alice)
    (bob,) = claim(crew, crew.bob)
    clock.now += timedelta(hours=2)
    (carol,) = claim(crew, crew.carol)
    clock.now += timedelta(hours=23)  # bob idle 25 h, past the default 24 h; carol 23 h
    (dave,) = claim(crew, crew.dave)
    assert dave.tampering_id == t and dave.mode == bob.mode != carol.mode
    with pytest.raises(store.AppError, match="expired after 24 hours without activity"):
        call(engine, store.submit_critique, crew.bob, t, [highlight(LOOP, "Too short.")])
    assert count(engine, Critique, Critique.origin == bob.mode) == 0


# --- the task --------------------------------------------------------------------------------------


def test_assisted_starts_from_the_critics_critique_and_human_from_nothing(crew):
    engine = crew.engine
    set_writers(crew, 2)
    tamper_with_critic(engine, crew.alice)
    tasks = {task.mode: task for task in claim(crew, crew.bob, crew.carol)}
    assisted, human = tasks["assisted"], tasks["human"]
    parsed = parse_critique(CRITIC, assisted.code)
    assert assisted.highlights == [
        {"quote": h.quote, "comment": h.comment, "source_index": i} for i, h in enumerate(parsed.highlights)
    ]
    assert len(assisted.highlights) == 3 and assisted.preamble == "Two problems."
    assert (human.highlights, human.preamble) == ([], "")
    # Blind: the code only, not the bug's description, lines or the original.
    assert {f.name for f in fields(store.WriteTask)} == {
        "tampering_id", "code", "mode", "highlights", "preamble", "draft",
    }  # fmt: skip
    assert DESCRIPTION not in json.dumps(asdict(assisted))


def test_the_critics_critique_is_the_lowest_id_model_critique(crew):
    """Assisted writers start from the model critique stored first: the check's one (a tampering
    checked before the repair search holds three, and every writer gets the same one of them)."""
    engine = crew.engine
    t = tamper_next(engine, crew.alice)  # the critic's critique and the gold one, shuffled
    with Session(engine) as session:
        rows = session.exec(
            select(Critique).where(Critique.tampering_id == t).order_by(col(Critique.id))
        ).all()
        first_model = next(c.text for c in rows if c.fsbs_settings is not None)
        assert writing._critic_critique(session, t) == first_model


def test_a_write_draft_is_kept_and_dropped_on_submit(crew):
    engine = crew.engine
    set_writers(crew, 1)
    t = tamper_with_critic(engine, crew.alice)
    (task,) = claim(crew, crew.bob)
    assert task.draft is None
    call(engine, store.save_draft, crew.bob, "write", t, {"highlights": [highlight(LOOP, "half")]})
    (again,) = claim(crew, crew.bob)
    assert again.draft == {"highlights": [highlight(LOOP, "half")]}
    call(engine, store.submit_critique, crew.bob, t, [highlight(LOOP, "Skips the last element.")])
    assert call(engine, store.load_draft, crew.bob, "write", t) is None


# --- submission ------------------------------------------------------------------------------------


def test_every_highlight_is_logged_with_before_and_after(crew):
    """Assisted: each of the critic's highlights kept (whitespace aside), edited or removed, and the
    writer's own added. Human: only added ones. The log follows its critique through the reshuffle."""
    engine = crew.engine
    set_writers(crew, 2)
    t = tamper_with_critic(engine, crew.alice)
    tasks = {
        task.mode: (user, task)
        for user, task in zip((crew.bob, crew.carol), claim(crew, crew.bob, crew.carol), strict=True)
    }
    human_writer, _ = tasks["human"]
    assisted_writer, assisted = tasks["assisted"]
    critic = assisted.highlights
    human_id = call(
        engine, store.submit_critique, human_writer, t, [highlight("total += xs[i]", "Looks fine.")]
    )

    submitted = [
        highlight("total  =  0", "  Should start from a float. ", 0),  # kept: only whitespace differs
        highlight(LOOP, "Skips the last element of xs.", 1),  # edited: a new comment
        highlight("total += xs[i]", "Adds every element but the last.", None),  # added
    ]  # the critic's third highlight is removed
    assisted_id = call(engine, store.submit_critique, assisted_writer, t, submitted, "One real bug.")
    with Session(engine) as session:
        log = session.exec(select(HighlightEvent).order_by(col(HighlightEvent.id))).all()
        authored = select(Critique).where(col(Critique.author_id).is_not(None))
        written = {c.origin: c for c in session.exec(authored).all()}
    assert {e.critique_id for e in log} <= {written["human"].id, written["assisted"].id}
    human_log = [
        (e.action, e.after_quote, e.after_comment) for e in log if e.critique_id == written["human"].id
    ]
    assert human_log == [("added", "total += xs[i]", "Looks fine.")]
    assisted_log = [
        (e.action, e.before_quote, e.before_comment, e.after_quote, e.after_comment)
        for e in log
        if e.critique_id == written["assisted"].id
    ]
    assert assisted_log == [
        ("kept", critic[0]["quote"], critic[0]["comment"], "total  =  0", "Should start from a float."),
        ("edited", LOOP, critic[1]["comment"], LOOP, "Skips the last element of xs."),
        ("added", None, None, "total += xs[i]", "Adds every element but the last."),
        ("removed", critic[2]["quote"], critic[2]["comment"], None, None),
    ]
    assisted_row = written["assisted"]
    assert assisted_id == assisted_row.id and human_id != written["human"].id  # re-inserted by the reshuffle
    assert assisted_row.text == format_critique(
        [(h["quote"], h["comment"]) for h in submitted], "One real bug."
    )
    assert (assisted_row.author_id, assisted_row.fsbs_settings) == (assisted_writer.id, None)
    assert written["human"].author_id == human_writer.id


def test_a_bad_critique_is_refused_and_nothing_is_written(crew):
    engine = crew.engine
    set_writers(crew, 1)
    t = tamper_with_critic(engine, crew.alice)
    (task,) = claim(crew, crew.bob)
    good = highlight(LOOP, "Skips the last element.")
    cases = [
        ([good, highlight("total = 1", "Wrong start.")], "", "highlight 2: the quote is not in the code"),
        ([], "  \n", "the critique is empty: write at least one highlight or an overall remark"),
        ([highlight(" \n ", "Empty quote.")], "", "highlight 1: the quote is empty"),
        ([good, highlight(LOOP, "  ")], "", "highlight 2: the comment is empty"),
        ([good] * 21, "", "21 highlights; the limit is 20"),
        (
            [good],
            "x" * (store.MAX_RATIONALE + 1),
            f"the overall remark is {store.MAX_RATIONALE + 1} characters",
        ),
        (
            [highlight(LOOP, "y" * (store.MAX_RATIONALE + 1))],
            "",
            "highlight 1: the comment is 5001 characters",
        ),
        (
            [highlight(LOOP, "Bad.", 7)],
            "",
            "highlight 1: source_index 7 is not one of the critic's highlights",
        ),
        ([highlight(LOOP, "Bad.", True)], "", "highlight 1: source_index must be a whole number or null"),
        ([highlight(LOOP, "see\n```\nx")], "", "highlight 1: a comment line would open a fenced block"),
        (["not a highlight"], "", "highlight 1: not a highlight"),
    ]
    if task.mode == "assisted":  # two highlights cannot both be the critic's first
        cases.append(([highlight(LOOP, "a", 0), highlight(LOOP, "b", 0)], "", "highlight 2: comes from"))
    for highlights, preamble, message in cases:
        with pytest.raises(store.AppError, match=re.escape(message)):
            call(engine, store.submit_critique, crew.bob, t, highlights, preamble)
    assert count(engine, Critique) == store.CRITIQUES_PER_TASK and count(engine, HighlightEvent) == 0
    assert count(engine, Assignment, Assignment.kind == "write", Assignment.status == "open") == 1

    with pytest.raises(store.Forbidden, match="not in your writing queue"):
        call(engine, store.submit_critique, crew.carol, t, [good])
    critique_id = call(engine, store.submit_critique, crew.bob, t, [good])
    assert count(engine, Critique, Critique.id == critique_id, Critique.origin == task.mode) == 1
    with pytest.raises(store.AppError, match="already submitted"):
        call(engine, store.submit_critique, crew.bob, t, [good])


# --- the compare gate and who takes what -----------------------------------------------------------


def test_compare_opens_after_the_writers_and_shows_their_critiques_blind(crew):
    engine = crew.engine
    set_writers(crew, 2)
    t = tamper_with_critic(engine, crew.alice)
    assert call(engine, store.next_compare_task, crew.dave) is None  # nothing written yet
    write_next(engine, crew.bob, "Bob: the loop stops one short.")
    assert call(engine, store.next_compare_task, crew.dave) is None  # one of two
    write_next(engine, crew.carol, "Carol: the last element is skipped.")
    task = call(engine, store.next_compare_task, crew.dave)
    assert task.tampering_id == t and len(task.critiques) == store.CRITIQUES_PER_TASK + 2
    texts = [c.text for c in task.critiques]
    assert (
        sum("Bob: the loop" in text for text in texts)
        == sum("Carol: the last" in text for text in texts)
        == 1
    )
    assert all({f.name for f in fields(c)} == {"critique_id", "text"} for c in task.critiques)
    payload = json.dumps(asdict(task))
    for leak in ("human", "assisted", "bob", "carol", MODEL_ORIGIN, "gold"):
        assert leak not in payload
    with Session(engine) as session:
        stored = session.exec(
            select(Critique).where(Critique.tampering_id == t).order_by(col(Critique.position))
        ).all()
    assert [c.position for c in stored] == list(range(store.CRITIQUES_PER_TASK + 2))
    assert [c.id for c in stored] == sorted(c.id for c in stored)  # ids in display order: they tell nothing
    assert [c.critique_id for c in task.critiques] == [c.id for c in stored]
    # Writers never rate it; the rater finishes it with all its critiques.
    assert call(engine, store.next_compare_task, crew.bob) is None
    assert call(engine, store.next_compare_task, crew.carol) is None
    call(engine, store.submit_ratings, crew.dave, t, {c.critique_id: rating() for c in task.critiques})
    assert claim(crew, crew.erin) == [None]  # its slots are done
    set_writers(crew, 3)
    assert claim(crew, crew.erin) == [None]  # and once rating has begun, its critiques are fixed


def test_turning_writing_on_lets_a_tampering_being_rated_finish(crew):
    """A tampering whose rating began before `writers` was raised keeps its critiques: nobody writes
    for it, and its second rater still gets it."""
    engine = crew.engine
    t = tamper_with_critic(engine, crew.alice)
    first = call(engine, store.next_compare_task, crew.dave)
    set_writers(crew, 1)
    assert claim(crew, crew.bob) == [None]
    second = call(engine, store.next_compare_task, crew.erin)
    assert first.tampering_id == second.tampering_id == t
    assert len(second.critiques) == store.CRITIQUES_PER_TASK
    t2 = tamper_with_critic(engine, crew.alice)  # a new one waits for its writer
    assert call(engine, store.next_compare_task, crew.carol) is None
    write_next(engine, crew.bob)
    assert call(engine, store.next_compare_task, crew.carol).tampering_id == t2


def test_a_rater_never_writes_for_the_tampering(crew, clock):
    """Dave held its compare task (then let it expire): he is never offered to write for it."""
    engine = crew.engine
    t = tamper_with_critic(engine, crew.alice)
    assert call(engine, store.next_compare_task, crew.dave).tampering_id == t  # writers 0: open at once
    clock.now += timedelta(hours=25)
    set_writers(crew, 1)
    assert claim(crew, crew.dave) == [None]  # his compare claim expired; he still may not write
    assert call(engine, store.write_tasks_left, crew.dave) == 0
    assert call(engine, store.write_tasks_left, crew.erin) == 1
    assert claim(crew, crew.erin)[0].tampering_id == t


def test_a_writer_who_skips_frees_the_slot_and_never_sees_the_tampering_again(crew):
    engine = crew.engine
    set_writers(crew, 1)
    t = tamper_with_critic(engine, crew.alice)
    claim(crew, crew.bob)
    assert claim(crew, crew.carol) == [None]
    call(engine, store.skip_write_task, crew.bob, t)
    with pytest.raises(store.AppError, match="no longer open"):
        call(engine, store.skip_write_task, crew.bob, t)
    assert claim(crew, crew.bob) == [None]
    write_next(engine, crew.carol)
    assert call(engine, store.next_compare_task, crew.bob) is None  # he held a write task of it
    assert call(engine, store.next_compare_task, crew.dave).tampering_id == t


def test_write_tasks_left_counts_what_the_user_could_still_claim(crew):
    engine = crew.engine
    set_writers(crew, 1)
    tamper_with_critic(engine, crew.alice)
    tamper_with_critic(engine, crew.alice)
    assert call(engine, store.write_tasks_left, crew.bob) == 2
    assert call(engine, store.write_tasks_left, crew.alice) == 0  # both hers
    claim(crew, crew.bob)
    assert call(engine, store.write_tasks_left, crew.bob) == 2  # the held one and the other
    assert call(engine, store.write_tasks_left, crew.carol) == 1  # bob holds the first's only slot
    write_next(engine, crew.bob)
    assert call(engine, store.write_tasks_left, crew.bob) == 1


def test_admins_get_no_tasks_unless_they_opt_in(crew):
    engine = crew.engine
    set_writers(crew, 1)
    t = tamper_with_critic(engine, crew.alice)
    assert claim(crew, crew.admin) == [None]
    assert call(engine, store.write_tasks_left, crew.admin) == 0
    write_next(engine, crew.bob)
    assert call(engine, store.next_compare_task, crew.admin) is None
    with Session(engine) as session:
        admin = session.get(User, crew.admin.id)
        admin.takes_tasks = True
        session.add(admin)
        session.commit()
    assert call(engine, store.next_compare_task, crew.admin).tampering_id == t


# --- HTTP ------------------------------------------------------------------------------------------


def test_writing_over_http(crew):
    from critic.annotation_app import api

    def unused_critic():
        raise AssertionError("writing must not run the critic")

    app = FastAPI()
    api.install(app, crew.engine, unused_critic)
    t = tamper_with_critic(crew.engine, crew.alice)
    with TestClient(app) as client:

        def auth(name: str) -> dict:
            token = client.post("/api/login", json={"name": name, "password": PASSWORD}).json()["token"]
            return {"Authorization": f"Bearer {token}"}

        admin, bob = auth("admin"), auth("bob")
        assert client.put("/api/admin/writers", json={"writers": 1}, headers=bob).status_code == 403
        assert client.put("/api/admin/writers", json={"writers": "1"}, headers=admin).status_code == 422
        assert client.put("/api/admin/writers", json={"writers": 1}, headers=admin).json() == {"writers": 1}
        task = client.get("/api/write/next", headers=bob).json()["task"]
        assert task["tampering_id"] == t and set(task) == {f.name for f in fields(store.WriteTask)}
        bad = {"highlights": [highlight("total = 1", "Wrong start.")], "preamble": ""}
        response = client.post(f"/api/write/{t}", json=bad, headers=bob)
        assert response.status_code == 400
        assert response.json() == {"detail": "highlight 1: the quote is not in the code"}
        extra = {"highlights": [{**highlight(LOOP, "Short."), "origin": "human"}]}
        assert client.post(f"/api/write/{t}", json=extra, headers=bob).status_code == 422
        good = {"highlights": [highlight(LOOP, "Skips the last element.")]}
        critique_id = client.post(f"/api/write/{t}", json=good, headers=bob).json()["critique_id"]
        assert (
            count(crew.engine, Critique, Critique.id == critique_id, Critique.author_id == crew.bob.id) == 1
        )
        assert client.post(f"/api/write/{t}/skip", headers=auth("carol")).status_code == 403
        origins = client.get("/api/admin/origins", headers=admin)
        assert [row["origin"] for row in origins.json()["origins"]] == list(store.ORIGINS)
        assert client.get("/api/admin/origins", headers=bob).status_code == 403
