"""Open assignments expire after the TTL without activity and go back to the pool; done ones never do.

The app's clock (`db.now`) is moved by the tests, so an expiry of a day takes no time. Every test runs
on SQLite and, when CRITIC_TEST_POSTGRES_URL is set, on PostgreSQL (the `annotation_engine` fixture).
"""

from __future__ import annotations

import pytest
from annotation_helpers import (
    BUG_LINES,
    DESCRIPTION,
    fixed_check,
    make_team,
    make_users,
    rate_task,
    rating,
    tamper_next,
    tampered,
)
from sqlmodel import Session, select

from critic.annotation_app import store
from critic.annotation_app.db import Assignment, Draft

EXPIRED = "your hold on this task expired after {} without activity; it went back to the pool"


@pytest.fixture
def team(annotation_engine, clock, tmp_path):
    """An admin, three annotators and dave, and two samples to tamper, on the test's clock."""
    engine = annotation_engine
    admin, alice, bob, carol = make_team(engine, tmp_path / "src", samples=2)
    (dave,) = make_users(engine, "dave")
    return engine, admin, alice, bob, carol, dave


def no_critic():
    raise AssertionError("this test must not run the critic")


def status(engine, kind: str, user, item_id: int) -> str:
    with Session(engine) as session:
        return session.exec(
            select(Assignment.status).where(
                Assignment.kind == kind, Assignment.user_id == user.id, Assignment.item_id == item_id
            )
        ).one()


def test_open_tamper_assignment_expires_and_goes_to_another_user(team, clock):
    engine, _, alice, bob, carol, _ = team
    with Session(engine) as session:
        held = store.next_tamper_sample(session, alice)
        store.save_draft(session, alice, "tamper", held.sample_id, {"code": "x = 1"})
        clock.advance(12)
        other = store.next_tamper_sample(session, bob)
        assert other.sample_id != held.sample_id  # alice's sample has a live claim, the other has none
        clock.advance(12.5)  # alice idle 24.5 h, bob 12.5 h
        taken = store.next_tamper_sample(session, carol)
        assert taken.sample_id == held.sample_id  # back in the pool: no live claim on it any more
        assert taken.draft is None  # carol never sees alice's draft
    assert status(engine, "tamper", alice, held.sample_id) == "expired"
    assert status(engine, "tamper", bob, other.sample_id) == "open"

    code = tampered(held.code)
    message = EXPIRED.format("24 hours")
    with Session(engine) as session:
        assert session.get(Draft, (alice.id, "tamper", held.sample_id)) is None  # expiry drops the draft
        with pytest.raises(store.AppError) as err:
            store.submit_tampering(
                session, alice, held.sample_id, code, BUG_LINES, DESCRIPTION, fixed_check(code)
            )
        assert str(err.value) == message
        with pytest.raises(store.AppError, match="expired after 24 hours"):
            store.save_draft(session, alice, "tamper", held.sample_id, {"code": "x = 2"})
        with pytest.raises(store.AppError, match="expired after 24 hours"):
            store.skip_sample(session, alice, held.sample_id)
        with pytest.raises(store.AppError, match="expired after 24 hours"):  # before the critic loads
            store.check_sample(session, alice, no_critic, held.sample_id, code, BUG_LINES, DESCRIPTION)
        # alice's next sample is the one she never held; the expired one is not offered to her again
        assert store.next_tamper_sample(session, alice).sample_id == other.sample_id
    assert status(engine, "tamper", carol, held.sample_id) == "open"


def test_activity_keeps_a_tamper_assignment(team, clock):
    engine, _, alice, bob, carol, _ = team
    with Session(engine) as session:
        held = store.next_tamper_sample(session, alice)
        clock.advance(20)
        store.save_draft(session, alice, "tamper", held.sample_id, {"code": "x = 1"})
        clock.advance(20)  # 40 h after the claim, 20 h after the draft
        assert store.next_tamper_sample(session, bob).sample_id != held.sample_id
        clock.advance(3)
        assert store.next_tamper_sample(session, alice).sample_id == held.sample_id  # a reload: activity
        clock.advance(20)  # 23 h after the draft, 20 h after the reload
        assert store.next_tamper_sample(session, carol) is not None  # a claim, which expires stale ones
        again = store.next_tamper_sample(session, alice)
    assert again.sample_id == held.sample_id and again.draft == {"code": "x = 1"}
    assert status(engine, "tamper", alice, held.sample_id) == "open"


def test_open_compare_assignment_expires_and_goes_to_another_user(team, clock):
    """Needs next_compare_task to expire stale claims and count only live ones against the overlap."""
    engine, _, alice, bob, carol, dave = team
    tampering_id = tamper_next(engine, alice)
    with Session(engine) as session:
        assert store.next_compare_task(session, bob).tampering_id == tampering_id
        clock.advance(12)
        task = store.next_compare_task(session, carol)
        assert task.tampering_id == tampering_id
        clock.advance(8)
        store.save_draft(session, carol, "compare", tampering_id, {"overall": [7, 1]})
        assert store.next_compare_task(session, dave) is None  # two raters hold it: overlap 2
        clock.advance(5)  # bob idle 25 h; carol saved a draft 5 h ago
        assert store.next_compare_task(session, dave).tampering_id == tampering_id
    assert status(engine, "compare", bob, tampering_id) == "expired"
    assert status(engine, "compare", carol, tampering_id) == "open"

    ratings = {c.critique_id: rating() for c in task.critiques}
    with Session(engine) as session:
        with pytest.raises(store.AppError) as err:
            store.submit_ratings(session, bob, tampering_id, ratings)
        assert str(err.value) == EXPIRED.format("24 hours")
        store.submit_ratings(session, carol, tampering_id, ratings)  # the draft kept hers
        assert store.next_compare_task(session, bob) is None  # not offered again to the one who let it go


def test_done_assignments_never_expire(team, clock):
    engine, admin, alice, bob, carol, dave = team
    tampering_id = tamper_next(engine, alice)
    with Session(engine) as session:
        store.set_overlap(session, admin, 1)
    rate_task(engine, bob, [7, 1])
    clock.advance(24 * 365)
    with Session(engine) as session:
        assert store.next_compare_task(session, dave) is None  # bob's done rating still fills the slot
        store.next_tamper_sample(session, carol)  # a claim: expires whatever is stale
        tamper_done = session.exec(select(Assignment).where(Assignment.user_id == alice.id)).one()
    assert tamper_done.status == "done"
    assert status(engine, "compare", bob, tampering_id) == "done"


def test_ttl_is_configurable(team, clock):
    engine, admin, alice, bob, *_ = team
    with Session(engine) as session:
        assert store.get_assignment_ttl(session) == 24
        store.set_assignment_ttl(session, admin, 2)
        assert store.get_assignment_ttl(session) == 2
        held = store.next_tamper_sample(session, alice)
        clock.advance(1.5)
        store.next_tamper_sample(session, bob)
        assert status(engine, "tamper", alice, held.sample_id) == "open"
        clock.advance(2.5)
        store.next_tamper_sample(session, bob)
        assert status(engine, "tamper", alice, held.sample_id) == "expired"
        with pytest.raises(store.AppError) as err:
            store.skip_sample(session, alice, held.sample_id)
        assert str(err.value) == EXPIRED.format("2 hours")
        store.set_assignment_ttl(session, admin, 0.5)
        with pytest.raises(store.AppError, match="expired after 0.5 hours"):
            store.skip_sample(session, alice, held.sample_id)
        store.set_assignment_ttl(session, admin, 1.0)
        with pytest.raises(store.AppError, match="expired after 1 hour without"):
            store.skip_sample(session, alice, held.sample_id)


@pytest.mark.parametrize("hours", [0, -1, 0.0, float("inf"), float("nan"), True, "2", None, 24 * 365 + 1])
def test_ttl_out_of_range_is_refused(team, hours):
    engine, admin, alice, *_ = team
    with Session(engine) as session:
        with pytest.raises(store.AppError) as err:
            store.set_assignment_ttl(session, admin, hours)
        assert "above 0 and at most 8760" in str(err.value) and "\n" not in str(err.value)
        with pytest.raises(store.Forbidden, match="only admins"):
            store.set_assignment_ttl(session, alice, 2)
        assert store.get_assignment_ttl(session) == 24
        store.set_assignment_ttl(session, admin, 24 * 365)
        assert store.get_assignment_ttl(session) == 24 * 365
