"""The annotation app's service layer: roles, queues, blind comparison, drafts, validation, export.

Every test runs on SQLite and, when CRITIC_TEST_POSTGRES_URL is set, on PostgreSQL (the
`annotation_engine` fixture in conftest.py).
"""

from __future__ import annotations

import json
import zipfile
from dataclasses import asdict, fields
from datetime import datetime
from typing import get_type_hints

import pytest
from annotation_helpers import (
    BUG_LINES,
    DESCRIPTION,
    ORIGIN,
    PASSWORD,
    FixedCritic,
    critique_for,
    fixed_check,
    make_team,
    make_users,
    rate_every_task,
    rate_task,
    rating,
    seed_samples,
    tamper_next,
    tampered,
    write_functions,
)
from sqlmodel import Session, func, select

from critic.annotation_app import store
from critic.annotation_app.db import (
    RATED_FIELDS,
    Assignment,
    CodeSample,
    Critique,
    Draft,
    Rating,
    Tampering,
    init_db,
    make_engine,
)
from critic.core.critique import request, terminate_critique
from critic.datagen.rating import RATING_FIELDS, gold_critique
from critic.datagen.rating import Rating as RubricRating
from critic.datagen.tamper_data import FIELDS


@pytest.fixture
def team(annotation_engine, tmp_path):
    """An admin, three annotators and three samples to tamper."""
    return annotation_engine, *make_team(annotation_engine, tmp_path / "src")


def count(engine, table, *where) -> int:
    with Session(engine) as session:
        return session.exec(select(func.count()).select_from(table).where(*where)).one()


# --- users and roles --------------------------------------------------------------------------------


def test_login_tokens_and_password_rules(annotation_engine):
    engine = annotation_engine
    (alice,) = make_users(engine, "alice")
    with Session(engine) as session:
        assert PASSWORD not in alice.password_hash and alice.password_hash.startswith("scrypt$")
        token = store.login(session, "alice", PASSWORD)
        assert store.user_for_token(session, token).name == "alice"
        assert store.login(session, " alice ", PASSWORD)  # the name as create_user stored it
        with pytest.raises(store.AppError, match="wrong user name or password"):
            store.login(session, "alice", PASSWORD + "x")
        with pytest.raises(store.AppError, match="wrong user name or password"):
            store.login(session, "nobody", PASSWORD)
        with pytest.raises(store.AppError, match="not logged in"):
            store.user_for_token(session, token[:-1])
        with pytest.raises(store.AppError, match="already exists"):
            store.create_user(session, "alice", "annotator", PASSWORD)
        with pytest.raises(store.AppError, match="at least 8"):
            store.create_user(session, "dave", "annotator", "short")
        with pytest.raises(store.AppError, match="unknown role"):
            store.create_user(session, "dave", "root", PASSWORD)
        store.logout(session, token)
        with pytest.raises(store.AppError, match="not logged in"):
            store.user_for_token(session, token)


def test_annotator_cannot_reach_admin_functions(team, tmp_path):
    engine, admin, alice, *_ = team
    admin_calls = [
        lambda s, u: store.import_samples(s, u, str(tmp_path / "src")),
        lambda s, u: store.set_overlap(s, u, 3),
        lambda s, u: store.progress(s, u),
        lambda s, u: store.agreement(s, u),
        lambda s, u: store.add_user(s, u, "mallory", "admin", PASSWORD),
        lambda s, u: store.export_dataset(s, u),
        lambda s, u: store.list_users(s, u),
        lambda s, u: store.update_user(s, u, "bob", takes_tasks=True),
        lambda s, u: store.set_assignment_ttl(s, u, 12),
    ]
    with Session(engine) as session:
        for call in admin_calls:
            with pytest.raises(store.Forbidden, match="only admins"):
                call(session, alice)
        for call in admin_calls[1:]:
            call(session, admin)  # the admin may
    assert count(engine, store.User) == 5  # mallory was added by the admin, never by alice


def test_import_sources_dedup(annotation_engine, tmp_path):
    engine = annotation_engine
    (admin,) = make_users(engine, "admin", role="admin")
    with Session(engine) as session:
        assert store.import_samples(session, admin, "humaneval") == 164
        assert store.import_samples(session, admin, "humaneval") == 0
        folder = write_functions(tmp_path / "src", 4)
        assert store.import_samples(session, admin, str(folder)) == 4
        assert store.import_samples(session, admin, str(folder)) == 0
        with pytest.raises(store.AppError, match="no such file"):
            store.import_samples(session, admin, str(tmp_path / "missing"))
        with pytest.raises(store.AppError, match="name a source"):
            store.import_samples(session, admin, "  ")  # not the current directory
    assert count(engine, CodeSample, CodeSample.test != "") == 164


def test_import_tamper_dataset(annotation_engine, tmp_path):
    """A `critic data tamper` dataset gives one sample per task: its original code and tests."""
    from critic.datagen.tamper_data import build_samples, directory_items, to_dataset_dict

    items = directory_items(write_functions(tmp_path / "src", 6, files=3))
    samples, _ = build_samples(items, per_item=2, seed=0)
    to_dataset_dict(samples, seed=0).save_to_disk(str(tmp_path / "ds"))
    (admin,) = make_users(annotation_engine, "admin", role="admin")
    with Session(annotation_engine) as session:
        assert store.import_samples(session, admin, str(tmp_path / "ds")) == len(
            {s["task_id"] for s in samples}
        )
        stored = session.exec(select(CodeSample)).all()
    assert {s.code for s in stored} == {s["original"] for s in samples}
    assert all(s.source.startswith("tamper:") for s in stored)


# --- tampering --------------------------------------------------------------------------------------


ORIGINAL = "def f(xs):\n    total = 0\n    for x in xs:\n        total += x\n    return total\n"


@pytest.mark.parametrize(
    ("code", "bug_lines", "description", "message"),
    [
        (ORIGINAL.replace("+=", "-="), [4], "   ", "description is empty"),
        (ORIGINAL.replace("+=", "-="), [], "Subtracts.", "no bug lines marked"),
        (ORIGINAL.replace("+=", "-="), [9], "Subtracts.", "bug line 9 is not a line of the code"),
        (ORIGINAL.replace("+=", "-=") + "\n\n", [7], "Subtracts.", "blank"),
        (ORIGINAL.replace("xs:", "xs"), [3], "Missing colon.", "does not parse: .* \\(line 3\\)"),
        (
            ORIGINAL.replace("total = 0", "total = 0  # start"),
            [2],
            "Comment.",
            "does the same as the original",
        ),
        (ORIGINAL + "#" * 20_000, [4], "Subtracts.", "the limit is 20000"),
        (ORIGINAL.replace("+=", "-="), [4], "x" * 5_001, "the limit is 5000"),
        ("", [1], "Subtracts.", "code is empty"),
    ],
)
def test_tampering_validation_messages(code, bug_lines, description, message):
    with pytest.raises(store.AppError, match=message) as err:
        store.validate_tampering(ORIGINAL, code, bug_lines, description)
    assert "\n" not in str(err.value)


def test_valid_tampering_passes_validation():
    store.validate_tampering(ORIGINAL, ORIGINAL.replace("+=", "-="), [4], "Subtracts instead of adding.")


def test_submit_tampering_stores_gold_and_model_critiques(team):
    engine, _, alice, *_ = team
    tampering_id = tamper_next(engine, alice)
    with Session(engine) as session:
        t = session.get(Tampering, tampering_id)
        crits = session.exec(select(Critique).where(Critique.tampering_id == tampering_id)).all()
        held = session.exec(select(Assignment).where(Assignment.user_id == alice.id)).one()
        assert sorted(c.position for c in crits) == [0, 1]
        by_origin = sorted(c.origin for c in crits)
        assert by_origin == ["gold", ORIGIN]
        gold = next(c for c in crits if c.origin == "gold")
        assert gold.text == gold_critique(t.code, BUG_LINES, DESCRIPTION)
        # ids follow display order, so an id never tells which critique is gold
        assert [c.id for c in sorted(crits, key=lambda c: c.position)] == sorted(c.id for c in crits)
        assert (t.caught, t.adversarial, t.author_id) == (1, False, alice.id)
        assert held.status == "done" and held.kind == "tamper"
        # the next sample is a different one, and the submitted one cannot be submitted again
        nxt = store.next_tamper_sample(session, alice)
        assert nxt is not None and nxt.sample_id != t.sample_id
        with pytest.raises(store.AppError, match="already submitted"):
            code = t.code
            store.submit_tampering(
                session, alice, t.sample_id, code, BUG_LINES, DESCRIPTION, fixed_check(code)
            )


def test_submit_tampering_refuses_stale_check_and_foreign_sample(team):
    engine, _, alice, bob, _ = team
    with Session(engine) as session:
        sample = store.next_tamper_sample(session, alice)
        code = tampered(sample.code)
        stale = fixed_check(code.replace("total = 0", "total = 0.0"))
        with pytest.raises(store.AppError, match="changed since the check"):
            store.submit_tampering(session, alice, sample.sample_id, code, BUG_LINES, DESCRIPTION, stale)
        with pytest.raises(store.Forbidden, match="not in your queue"):
            store.submit_tampering(
                session, bob, sample.sample_id, code, BUG_LINES, DESCRIPTION, fixed_check(code)
            )
    assert count(engine, Tampering) == 0


def test_skipped_sample_is_not_offered_again(team):
    engine, _, alice, bob, _ = team
    with Session(engine) as session:
        first = store.next_tamper_sample(session, alice)
        store.save_draft(session, alice, "tamper", first.sample_id, {"code": "x"})
        with pytest.raises(store.Forbidden, match="not in your queue"):
            store.skip_sample(session, bob, first.sample_id)
        store.skip_sample(session, alice, first.sample_id)
        assert store.load_draft(session, alice, "tamper", first.sample_id) is None
        offered = [store.next_tamper_sample(session, alice).sample_id]
        store.skip_sample(session, alice, offered[0])
        offered.append(store.next_tamper_sample(session, alice).sample_id)
        store.skip_sample(session, alice, offered[1])
        assert store.next_tamper_sample(session, alice) is None  # three samples, all skipped
        with pytest.raises(store.AppError, match="no longer open"):
            store.skip_sample(session, alice, first.sample_id)
    assert first.sample_id not in offered and len(set(offered)) == 2


def test_run_tests_in_sandbox(annotation_engine):
    engine = annotation_engine
    (admin,) = make_users(engine, "admin", role="admin")
    (alice,) = make_users(engine, "alice")
    with Session(engine) as session:
        store.import_samples(session, admin, "humaneval")
        sample = store.next_tamper_sample(session, alice)
        assert sample.task_id == "HumanEval/0" and sample.has_tests
        broken = sample.code.replace("distance < threshold", "distance > threshold")
        result = store.run_tests(session, alice, sample.sample_id, broken)
        assert result.original_passed and result.tampered_failed and result.verified
        assert "tampered: failed" in result.detail
        unchanged = store.run_tests(session, alice, sample.sample_id, sample.code)
        assert unchanged.original_passed and not unchanged.tampered_failed


def test_run_tests_refuses_code_that_does_not_parse(annotation_engine, monkeypatch):
    """The sandbox would report a SyntaxError as a failing test; the tamperer is told why instead."""
    engine = annotation_engine
    (admin,) = make_users(engine, "admin", role="admin")
    (alice,) = make_users(engine, "alice")
    with Session(engine) as session:
        store.import_samples(session, admin, "humaneval")
        sample = store.next_tamper_sample(session, alice)
    broken = sample.code.replace("):", ")", 1)
    with pytest.raises(store.AppError) as validated:
        store.validate_tampering(sample.code, broken, [1], "Missing colon.")
    monkeypatch.setattr(store, "run_sample_tests", lambda *a: pytest.fail("the sandbox ran"))
    with Session(engine) as session, pytest.raises(store.AppError) as err:
        store.run_tests(session, alice, sample.sample_id, broken)
    assert str(err.value) == str(validated.value)
    assert str(err.value).startswith("the tampered code does not parse: ") and "(line " in str(err.value)


def test_check_is_kept_on_the_assignment_and_used_on_submit(team):
    """check_sample stores its result: a reload shows it, and a submission without one uses it. A check
    the client puts in a draft is not trusted."""
    engine, _, alice, *_ = team
    with Session(engine) as session:
        sample = store.next_tamper_sample(session, alice)
        assert sample.check is None
        code = tampered(sample.code)
        forged = asdict(store.CheckResult([False], [critique_for(code)], True, {"origin": "forged"}, code))
        store.save_draft(session, alice, "tamper", sample.sample_id, {"code": code, "check": forged})
        with pytest.raises(store.AppError, match="check the tampering against the critic before submitting"):
            store.submit_tampering(session, alice, sample.sample_id, code, BUG_LINES, DESCRIPTION, None)
        result = store.check_sample(
            session, alice, FixedCritic, sample.sample_id, code, BUG_LINES, DESCRIPTION
        )
        again = store.next_tamper_sample(session, alice)  # a reload
        assert again.check == result and again.draft["check"] == forged
        other = code.replace("total = 0", "total = 0.0")
        with pytest.raises(store.AppError, match="the code changed since the check"):
            store.submit_tampering(session, alice, sample.sample_id, other, BUG_LINES, DESCRIPTION, None)
        tampering_id = store.submit_tampering(
            session, alice, sample.sample_id, code, BUG_LINES, DESCRIPTION, None
        )
        t = session.get(Tampering, tampering_id)
        origins = session.exec(select(Critique.origin).where(Critique.tampering_id == tampering_id)).all()
    assert (t.caught, t.adversarial) == (1, False)
    assert sorted(origins) == ["gold", "model:fixed"]  # the stored check's


def test_a_check_stored_by_the_fsbs_release_is_not_used(team):
    """A check kept on an assignment before the repair search (three FSBS critiques, FSBS settings) is
    neither shown nor submitted: its free text must not reach raters, so the tamperer checks again."""
    engine, _, alice, *_ = team
    with Session(engine) as session:
        sample = store.next_tamper_sample(session, alice)
        code = tampered(sample.code)
        fsbs = {"samples": 4, "rounds": 4, "keep": 2, "seeds": [0, 1, 2], "model": "default_critic"}
        old = store.CheckResult([True] * 3, [critique_for(code)] * 3, False, fsbs, code)
        held = session.exec(select(Assignment).where(Assignment.user_id == alice.id)).one()
        held.check_result = asdict(old)
        session.add(held)
        session.commit()
        assert store.next_tamper_sample(session, alice).check is None
        with pytest.raises(store.AppError, match="check the tampering against the critic before submitting"):
            store.submit_tampering(session, alice, sample.sample_id, code, BUG_LINES, DESCRIPTION, None)
        result = store.check_sample(
            session, alice, FixedCritic, sample.sample_id, code, BUG_LINES, DESCRIPTION
        )
        assert store.next_tamper_sample(session, alice).check == result
    assert result.settings["search"] == "repairs" and count(engine, Tampering) == 0


# --- comparison -------------------------------------------------------------------------------------


def test_compare_task_is_blind(team):
    engine, _, alice, bob, carol = team
    tamper_next(engine, alice)
    rate_task(engine, bob, [7, 3])
    with Session(engine) as session:
        task = store.next_compare_task(session, carol)
    assert {f.name for f in fields(task)} == {
        "tampering_id",
        "code",
        "original",
        "critiques",
        "draft",
        "bug_lines",
    }
    assert all({f.name for f in fields(c)} == {"critique_id", "text"} for c in task.critiques)
    assert task.draft is None
    payload = json.dumps(asdict(task))
    for leak in ("gold", ORIGIN, "alice", "bob", '"origin"', "rationale", "Quotes the right line"):
        assert leak not in payload
    with Session(engine) as session:
        positions = session.exec(
            select(Critique.id).where(Critique.tampering_id == task.tampering_id).order_by(Critique.position)
        ).all()
    assert [c.critique_id for c in task.critiques] == list(positions)  # every rater sees the same order


def test_no_self_rating(team):
    engine, _, alice, *_ = team
    tampering_id = tamper_next(engine, alice)
    with Session(engine) as session:
        assert store.next_compare_task(session, alice) is None
        crits = session.exec(select(Critique.id).where(Critique.tampering_id == tampering_id)).all()
        with pytest.raises(store.Forbidden, match="your own tampering"):
            store.submit_ratings(session, alice, tampering_id, {c: rating() for c in crits})
    assert count(engine, Rating) == 0


def test_overlap_assignment(team):
    engine, admin, alice, bob, carol = team
    (dave,) = make_users(engine, "dave")
    first = tamper_next(engine, alice)
    with Session(engine) as session:
        assert store.next_compare_task(session, bob).tampering_id == first
        # an open task is returned again (a reload), not a second claim
        assert store.next_compare_task(session, bob).tampering_id == first
        assert store.next_compare_task(session, carol).tampering_id == first
        assert store.next_compare_task(session, dave) is None  # two raters already: overlap 2
        store.set_overlap(session, admin, 3)
        assert store.next_compare_task(session, dave).tampering_id == first
        with pytest.raises(store.AppError, match="from 1 to 10"):
            store.set_overlap(session, admin, 0)
    rate_task(engine, bob, [4, 4])
    second = tamper_next(engine, carol)
    with Session(engine) as session:
        # bob rated the first task: he gets the second, never the first again
        assert store.next_compare_task(session, bob).tampering_id == second
        rows = store.progress(session, admin)["tasks"]
    assert [(r["tampering_id"], r["raters_done"], r["raters_open"]) for r in rows] == [
        (first, 1, 2),
        (second, 0, 1),
    ]


def test_drafts_survive_a_restart(annotation_url, tmp_path):
    engine = make_engine(annotation_url)
    init_db(engine)
    (admin,) = make_users(engine, "admin", role="admin")
    alice, bob = make_users(engine, "alice", "bob")
    seed_samples(engine, admin, tmp_path / "src", 2)
    tampering_id = tamper_next(engine, bob)
    with Session(engine) as session:
        sample = store.next_tamper_sample(session, alice)
        task = store.next_compare_task(session, alice)
        store.save_draft(session, alice, "tamper", sample.sample_id, {"code": "x = 1", "bug_lines": "1"})
        store.save_draft(session, alice, "tamper", sample.sample_id, {"code": "x = 2", "bug_lines": "1"})
        store.save_draft(session, alice, "compare", tampering_id, {"overall": [7, 1]})
        with pytest.raises(store.Forbidden, match="not assigned to you"):
            store.save_draft(session, alice, "compare", tampering_id + 1, {})
        with pytest.raises(store.AppError, match="limit is 100000"):
            store.save_draft(session, alice, "compare", tampering_id, {"x": "y" * 100_001})
    engine.dispose()  # the server stops

    engine = make_engine(annotation_url)
    init_db(engine)
    with Session(engine) as session:
        again = store.next_tamper_sample(session, alice)
        assert again.sample_id == sample.sample_id and again.draft == {"code": "x = 2", "bug_lines": "1"}
        task = store.next_compare_task(session, alice)
        assert task.tampering_id == tampering_id and task.draft == {"overall": [7, 1]}
        assert store.load_draft(session, alice, "compare", tampering_id) == {"overall": [7, 1]}
        assert store.load_draft(session, bob, "compare", tampering_id) is None  # never someone else's
    rate_task(engine, alice, [4, 4])
    assert count(engine, Draft, Draft.kind == "compare") == 0  # submission drops the draft
    engine.dispose()


def test_rating_submission_is_validated_and_atomic(team):
    engine, _, alice, bob, _ = team
    tamper_next(engine, alice)
    with Session(engine) as session:
        task = store.next_compare_task(session, bob)
    ids = [c.critique_id for c in task.critiques]
    good = {i: rating() for i in ids}
    bad = [
        ({i: rating() for i in ids[:1]}, "^critique 2: not rated$"),
        ({**good, ids[1]: rating(overall=8)}, "critique 2: overall must be an int from 1 to 7"),
        ({**good, ids[1]: rating(cbi=True)}, "critique 2: cbi must be an int"),
        ({**good, ids[0]: rating(rationale=" ")}, "^critique 1: no rationale$"),
        ({**good, ids[0]: rating(rationale="x" * 5_001)}, "over 5000 characters"),
        ({**good, 999_999: rating()}, "999999 is not part of this task"),
    ]
    with Session(engine) as session:
        for ratings, message in bad:
            with pytest.raises(store.AppError, match=message):
                store.submit_ratings(session, bob, task.tampering_id, ratings)
        assert count(engine, Rating) == 0
        assert session.exec(select(Assignment.status).where(Assignment.kind == "compare")).one() == "open"
        store.submit_ratings(session, bob, task.tampering_id, good)
        with pytest.raises(store.AppError, match="already submitted"):
            store.submit_ratings(session, bob, task.tampering_id, good)
    assert count(engine, Rating) == store.CRITIQUES_PER_TASK == 2


def test_every_rating_problem_is_listed_at_once(team):
    engine, _, alice, bob, _ = team
    tamper_next(engine, alice)
    with Session(engine) as session:
        task = store.next_compare_task(session, bob)
    answers = [
        {**vars(rating()), "cbi": None, "rationale": ""},
        vars(rating()),
        {**vars(rating()), "overall": None},
        {**vars(rating()), "conciseness": None, "overall": 9, "rationale": "  "},
    ]
    expected = [
        "critique 1: no CBI, no rationale",
        "critique 3: no overall",
        "critique 4: no conciseness, no rationale, overall must be an int from 1 to 7, got 9",
    ]
    assert store.rating_problems(answers) == expected
    assert store.rating_problems([vars(rating())] * 4) == []
    assert store.rating_problems([{}]) == [
        "critique 1: no CBI, no comprehensiveness, no conciseness, no overall, no rationale, "
        "nitpick must be a bool, got None"
    ]
    submitted = [answers[0], answers[3]]  # a task holds the critic's critique and the gold one
    ratings = {c.critique_id: store.RatingInput(**a) for c, a in zip(task.critiques, submitted, strict=True)}
    with Session(engine) as session, pytest.raises(store.AppError) as err:
        store.submit_ratings(session, bob, task.tampering_id, ratings)
    assert str(err.value) == "; ".join([expected[0], expected[2].replace("critique 4", "critique 2")])
    del ratings[task.critiques[1].critique_id]
    with Session(engine) as session, pytest.raises(store.AppError) as err:
        store.submit_ratings(session, bob, task.tampering_id, ratings)
    assert str(err.value) == "; ".join([expected[0], "critique 2: not rated"])
    assert count(engine, Rating) == 0


# --- admin views and export ------------------------------------------------------------------------


def test_admins_manage_users(team):
    engine, admin, alice, bob, _ = team
    with Session(engine) as session:
        rows = store.list_users(session, admin)
        assert [r["name"] for r in rows] == ["admin", "alice", "bob", "carol"]
        assert {k: v for k, v in rows[0].items() if k != "created_at"} == {
            "name": "admin",
            "role": "admin",
            "disabled": False,
            "takes_tasks": False,
        }
        assert rows[1]["takes_tasks"] is True and datetime.fromisoformat(rows[1]["created_at"])

        token = store.login(session, "alice", PASSWORD)
        store.update_user(session, admin, "alice", takes_tasks=False)  # no reason to log her out
        assert store.user_for_token(session, token).takes_tasks is False
        store.update_user(session, admin, "alice", disabled=True)
        with pytest.raises(store.AppError, match="not logged in"):
            store.user_for_token(session, token)
        with pytest.raises(store.AppError) as err:
            store.login(session, "alice", PASSWORD)
        assert str(err.value) == "this account is disabled: ask an admin to enable it"  # the right password
        with pytest.raises(store.AppError) as err:
            store.login(session, "alice", "not her password")
        assert str(err.value) == "wrong user name or password"  # a guesser learns nothing
        store.update_user(session, admin, "alice", disabled=False)
        token = store.login(session, "alice", PASSWORD)

        store.update_user(session, admin, "alice", password="a brand new password")
        with pytest.raises(store.AppError, match="not logged in"):
            store.user_for_token(session, token)
        with pytest.raises(store.AppError, match="wrong user name or password"):
            store.login(session, "alice", PASSWORD)
        token = store.login(session, "alice", "a brand new password")

        bob_token = store.login(session, "bob", PASSWORD)
        store.update_user(session, admin, "bob", role="admin")
        with pytest.raises(store.AppError, match="not logged in"):
            store.user_for_token(session, bob_token)
        promoted = store.user_for_token(session, store.login(session, "bob", PASSWORD))
        assert promoted.role == "admin" and promoted.takes_tasks is True  # a role change leaves it be
        assert store.user_for_token(session, token).name == "alice"  # others' sessions live on

        refused = [
            (dict(name="nobody", role="admin"), "no such user 'nobody'"),
            (dict(name="alice", role="root"), "unknown role 'root'"),
            (dict(name="alice", password="short"), "at least 8 characters"),
            (dict(name="alice", disabled="yes"), "disabled must be true or false"),
            (dict(name="admin", disabled=True), "you cannot disable yourself"),
            (dict(name="admin", role="annotator"), "you cannot remove your own admin role"),
        ]
        for change, message in refused:
            name = change.pop("name")
            with pytest.raises(store.AppError, match=message) as err:
                store.update_user(session, admin, name, **change)
            assert "\n" not in str(err.value)
        store.update_user(session, admin, "admin", role="admin", takes_tasks=True)  # no change of role
        assert store.user_for_token(session, store.login(session, "admin", PASSWORD)).takes_tasks is True
        assert store.login(session, "alice", "a brand new password")  # the refused changes wrote nothing
        with pytest.raises(store.Forbidden, match="only admins"):
            store.update_user(session, alice, "alice", role="admin")


def test_progress_counts_samples(team):
    engine, admin, alice, bob, carol = team
    tamper_next(engine, alice)
    with Session(engine) as session:
        skipped = store.next_tamper_sample(session, bob).sample_id
        store.skip_sample(session, bob, skipped)
        # a skipped claim holds no slot: carol gets bob's skipped sample before the untouched one
        assert store.next_tamper_sample(session, carol).sample_id == skipped
        samples = store.progress(session, admin)["samples"]
    assert samples == {"total": 3, "tampered": 1, "skipped": 1, "open": 1, "untouched": 1}


def test_my_progress(team):
    from critic.annotation_app import writing

    engine, admin, alice, bob, carol = team
    tamper_next(engine, alice)
    with Session(engine) as session:
        store.next_tamper_sample(session, alice)
        mine = store.my_progress(session, alice)
        assert mine["tamper"] == {"done": 1, "left": 2}  # one sample never held, plus her open one
        assert mine["compare"] == {"done": 0, "left": 0}  # her own tampering is not for her
        assert store.my_progress(session, bob)["compare"] == {"done": 0, "left": 1}
        assert store.my_progress(session, bob)["tamper"] == {"done": 0, "left": 3}
        store.next_compare_task(session, bob)
        assert store.my_progress(session, bob)["compare"] == {"done": 0, "left": 1}  # his open one
        store.next_compare_task(session, carol)  # the second of overlap 2
        (dave,) = make_users(engine, "dave")
        assert store.my_progress(session, dave)["compare"] == {"done": 0, "left": 0}
    rate_task(engine, bob, [4, 4])
    with Session(engine) as session:
        assert store.my_progress(session, bob)["compare"] == {"done": 1, "left": 0}
        left_to_write = writing.write_tasks_left(session, carol)
        assert store.my_progress(session, carol)["write"] == {"done": 0, "left": left_to_write}
        assert store.my_progress(session, admin) == {
            "tamper": {"done": 0, "left": 3},
            "compare": {"done": 0, "left": 0},  # admins take no compare or write tasks unless they opt in
            "write": {"done": 0, "left": 0},
        }


def test_overlap_takes_whole_numbers_only(team):
    engine, admin, *_ = team
    with Session(engine) as session:
        for bad in (0, -1, 2.5, 11, True, "2", float("nan"), float("inf")):
            with pytest.raises(store.AppError, match="overlap must be a whole number from 1 to 10") as err:
                store.set_overlap(session, admin, bad)
            assert "\n" not in str(err.value)
        assert store.get_overlap(session) == 2
        store.set_overlap(session, admin, 3.0)  # what a number field sends
        assert store.get_overlap(session) == 3


def test_export_saved_to_a_folder_and_a_zip(tmp_path):
    from datasets import Dataset, DatasetDict, load_from_disk

    from critic.annotation_app.export import save_to_folder, save_zip

    dsd = DatasetDict(tampering=Dataset.from_dict({"x": [1, 2]}), ratings=Dataset.from_dict({"y": ["a"]}))
    with pytest.raises(store.AppError, match="^give an absolute path on the server: export$"):
        save_to_folder(dsd, "export")
    with pytest.raises(store.AppError, match="^give an absolute path on the server: ~/export$"):
        save_to_folder(dsd, "~/export")  # the server's home is not the admin's
    up_and_over = f"{tmp_path}/made/../export"
    with pytest.raises(store.AppError, match=r"^give a path without '\.\.': "):
        save_to_folder(dsd, up_and_over)
    assert not (tmp_path / "made").exists() and not (tmp_path / "export").exists()  # nothing created
    out = tmp_path / "new" / "export"
    assert save_to_folder(dsd, str(out)) == {"tampering": 2, "ratings": 1}
    assert load_from_disk(str(out))["ratings"]["y"] == ["a"]
    with pytest.raises(store.AppError, match=f"^{out}: exists and is not empty$"):
        save_to_folder(dsd, out)
    assert save_to_folder(dsd, out, overwrite=True) == {"tampering": 2, "ratings": 1}
    (tmp_path / "file").write_text("x")
    with pytest.raises(store.AppError, match="exists and is not a folder"):
        save_to_folder(dsd, tmp_path / "file")

    downloads = tmp_path / "downloads"
    first, second = save_zip(dsd, downloads), save_zip(dsd, downloads)
    assert first != second and first.parent.parent == downloads and first.suffix == ".zip"
    with zipfile.ZipFile(first) as archive:
        archive.extractall(tmp_path / "unzipped")
    unzipped = load_from_disk(str(tmp_path / "unzipped" / first.stem))
    assert unzipped["tampering"]["x"] == [1, 2]
    assert sorted(p.name for p in first.parent.iterdir()) == [first.name]  # only the zip is left

    # Nothing rated yet: an empty split must load back too (datasets saves it with no shard otherwise).
    empty = DatasetDict(tampering=Dataset.from_dict({"x": [1]}), ratings=Dataset.from_dict({"y": []}))
    assert save_to_folder(empty, tmp_path / "empty") == {"tampering": 1, "ratings": 0}
    assert load_from_disk(str(tmp_path / "empty"))["ratings"].num_rows == 0


def test_preferences_and_export(team, tmp_path):
    """Mean overall per critique over raters; every pair with different means is a preference with
    the difference as margin, and a tie is two half-weight records, one each way."""
    from critic.rl.rate import PREFERENCE_COLUMNS, human_preferences

    engine, admin, alice, bob, carol = team
    tampering_id = tamper_next(engine, alice)
    task = rate_task(engine, bob, [7, 3])
    rate_task(engine, carol, [5, 2])  # means: 6, 2.5
    texts = [c.text for c in task.critiques]
    with Session(engine) as session:
        dsd = store.export_dataset(session, admin)
        t = session.get(Tampering, tampering_id)
        sample = session.get(CodeSample, t.sample_id)
    prefs = dsd["preferences"]
    got = sorted((row["chosen"], row["rejected"], row["margin"], row["weight"]) for row in prefs)
    expected = [(0, 1, 3.5)]
    assert got == sorted(
        (terminate_critique(texts[a]), terminate_critique(texts[b]), m, 1.0) for a, b, m in expected
    )
    assert set(prefs["prompt"]) == {request(t.code)} and set(prefs["task_id"]) == {sample.task_id}

    rate_tie = dsd["ratings"]
    assert len(rate_tie) == 4 and sorted(set(rate_tie["rater"])) == ["bob", "carol"]
    assert set(RATED_FIELDS) <= set(rate_tie.column_names)
    tampering = dsd["tampering"]
    assert tampering.column_names[: len(FIELDS)] == list(FIELDS)  # the shared schema, then the app's own
    assert tampering[0]["source"] == "human" and tampering[0]["original"] == sample.code
    assert tampering[0]["bug_lines"] == BUG_LINES and tampering[0]["description"] == DESCRIPTION

    dsd.save_to_disk(str(tmp_path / "export"))
    loaded = human_preferences(tmp_path / "export")  # the reward model's reader takes it as is
    assert sum(len(split) for split in loaded.values()) == 1
    assert loaded["train"].column_names == PREFERENCE_COLUMNS


def test_tied_critiques_give_half_weight_both_ways(team):
    engine, admin, alice, bob, _ = team
    tamper_next(engine, alice)
    task = rate_task(engine, bob, [4, 4])
    with Session(engine) as session:
        prefs = store.export_dataset(session, admin)["preferences"]
    a, b = (terminate_critique(c.text) for c in task.critiques)
    ties = [(row["chosen"], row["rejected"]) for row in prefs if row["weight"] == 0.5]
    assert sorted(ties) == sorted([(a, b), (b, a)])
    assert all(row["margin"] == 0.0 for row in prefs) and len(prefs) == 2  # 1 tie x 2 records


def test_agreement_over_overlapping_ratings(team):
    engine, admin, alice, bob, carol = team
    with Session(engine) as session:
        assert store.agreement(session, admin) == {
            "overall": None,
            "cbi": None,
            "units": 0,
            "metric": "ordinal",
        }
    tamper_next(engine, alice)
    rate_task(engine, bob, [7, 1])
    rate_task(engine, carol, [7, 1])
    with Session(engine) as session:
        result = store.agreement(session, admin)
    assert result["units"] == 2 and result["overall"] == pytest.approx(1.0)
    assert result["cbi"] is None  # every rating gave CBI 4: no variation to agree on


# --- one rubric, one line numbering -----------------------------------------------------------------


def test_rating_table_and_inputs_hold_exactly_the_rubric():
    """The `rating` table spells its rubric columns out (a new one is a schema change): they, and the
    store's RatingInput that the API and UI fill, are the rubric's fields with the rubric's types."""
    rubric = get_type_hints(RubricRating)
    assert set(RATED_FIELDS) | {"rater"} == set(RATING_FIELDS)
    own = {"id", "critique_id", "rater_id", "created_at"}
    assert {c.name for c in Rating.__table__.columns} - own == set(RATED_FIELDS)
    assert {name: f.annotation for name, f in Rating.model_fields.items() if name not in own} == {
        name: rubric[name] for name in RATED_FIELDS
    }
    assert get_type_hints(store.RatingInput) == {name: rubric[name] for name in RATED_FIELDS}


def test_lone_carriage_return_numbers_lines_alike_in_ui_and_store():
    """CR LF, CR and LF each end a line, in the store's bug lines and in the UI's quoted lines."""
    from critic.annotation_app.ui import render_critique

    original = "def f(xs):\r    total = 0\r\n    for x in xs:\n        total += x\r    return total\n"
    code = original.replace("+=", "-=")
    store.validate_tampering(original, code, [4], "Subtracts.")
    with pytest.raises(store.AppError, match=r"bug line 6 is not a line of the code \(1 to 5\)"):
        store.validate_tampering(original, code, [6], "Subtracts.")
    shown = render_critique(gold_critique(code, [4], "Subtracts instead of adding."), code)
    assert "**Line 4**" in shown and "4 │         total -= x" in shown


# --- the UI is a thin layer over the store -----------------------------------------------------------


def test_ui_check_goes_through_the_store(team):
    """*Check against critic* in the UI asks the store, which refuses a sample the user does not hold
    before the critic runs, exactly as the API does."""
    from critic.annotation_app.ui import AnnotationUI

    engine, _, alice, _, _ = team
    with Session(engine) as session:
        sample = store.next_tamper_sample(session, alice)
        alice_token = store.login(session, "alice", PASSWORD)
        bob_token = store.login(session, "bob", PASSWORD)
    loaded = []

    def critic_factory():
        loaded.append(True)
        return FixedCritic()

    ui = AnnotationUI(engine, critic_factory)
    state = {"id": sample.sample_id, "original": sample.code, "has_tests": False}
    code = tampered(sample.code)
    with pytest.raises(store.Forbidden, match="not in your queue"):
        ui.tamper.run_check(
            bob_token, state, code, "3", DESCRIPTION, state["id"]
        )  # alice's sample, bob's check
    with pytest.raises(store.AppError, match="description is empty"):
        ui.tamper.run_check(alice_token, state, code, "3", " ", state["id"])
    assert not loaded  # neither refused check loaded the critic
    result = ui.tamper.run_check(alice_token, state, code, "3", DESCRIPTION, state["id"])[ui.tamper.check]
    assert loaded and result.caught == [True] and result.code == code


# --- concurrency: the server's requests are threads, each with its own session ----------------------


def test_concurrent_claims_stay_exclusive(annotation_engine, tmp_path):
    """Twelve annotators claiming and rating at once: every tampering ends with exactly `overlap`
    raters, nobody rates a tampering twice, and no claim or submission fails (on SQLite, writers queue
    on the write gate rather than race SQLite's busy handler)."""
    import threading

    engine = annotation_engine
    admin, alice, _, _ = make_team(engine, tmp_path / "src", samples=4)
    tamperings = {tamper_next(engine, alice) for _ in range(4)}
    raters = make_users(engine, *(f"rater{i:02d}" for i in range(12)))
    with Session(engine) as session:
        store.set_overlap(session, admin, 3)
    start = threading.Barrier(len(raters))
    rated: dict[str, list[int]] = {}
    failures: list[BaseException] = []

    def work(rater) -> None:
        try:
            start.wait()
            rate_every_task(engine, rater, rated.setdefault(rater.name, []).append)
        except BaseException as err:  # reported below: an exception in a thread fails nothing by itself
            failures.append(err)

    threads = [threading.Thread(target=work, args=(rater,)) for rater in raters]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not any(thread.is_alive() for thread in threads) and not failures, failures
    claims = [t for ids in rated.values() for t in ids]
    assert sorted(claims) == sorted(list(tamperings) * 3)  # each tampering rated by exactly 3
    assert all(len(ids) == len(set(ids)) for ids in rated.values())  # nobody rated one twice
    assert count(engine, Rating) == len(claims) * store.CRITIQUES_PER_TASK
    assert count(engine, Assignment, Assignment.kind == "compare", Assignment.status == "open") == 0


def test_sqlite_reads_do_not_wait_for_a_writer(tmp_path):
    """On SQLite a session-token lookup (a `reading()` transaction) answers while another request
    holds the write lock; a second writer waits until the first commits, then goes through."""
    import threading

    engine = make_engine(f"sqlite:///{tmp_path / 'annotations.db'}")
    init_db(engine)
    (admin,) = make_users(engine, "admin", role="admin")
    with Session(engine) as session:
        token = store.login(session, "admin", PASSWORD)
    holding, release = threading.Event(), threading.Event()

    def hold_the_write_lock() -> None:
        with Session(engine) as session:
            session.connection()  # BEGIN IMMEDIATE: the write lock, until the commit
            holding.set()
            release.wait(timeout=60)
            session.commit()

    def run(fn) -> tuple[threading.Thread, list]:
        result: list = []
        thread = threading.Thread(target=lambda: result.append(fn()), daemon=True)
        thread.start()
        return thread, result

    writer = threading.Thread(target=hold_the_write_lock)
    writer.start()
    try:
        assert holding.wait(timeout=30)
        reader, found = run(lambda: store.user_for_token(Session(engine), token))
        reader.join(timeout=10)
        assert found and found[0].name == "admin"  # answered with the write lock held
        second, _ = run(lambda: store.set_overlap(Session(engine), admin, 3))
        second.join(timeout=1)
        assert second.is_alive()  # queued behind the first writer
    finally:
        release.set()
        writer.join(timeout=30)
    second.join(timeout=30)
    assert not second.is_alive()
    with Session(engine) as session:
        assert store.get_overlap(session) == 3
    engine.dispose()


# --- the UI shell, Tamper and Admin tabs: handlers called directly ---------------------------------


def _ui_tokens(engine, *names: str) -> list[str]:
    with Session(engine) as session:
        return [store.login(session, name, PASSWORD) for name in names]


def test_ui_entering_claims_a_task_only_where_it_lands(team):
    """A login or reload lands on the remembered tab (Home when there is none, or when the role may not
    land there) and claims a task only when that tab is Tamper; an admin never lands on a task tab."""
    from critic.annotation_app.ui import AnnotationUI
    from critic.annotation_app.ui.app import landing_tab

    engine, *_ = team
    assert [landing_tab("annotator", tab) for tab in (None, "compare", "write", "admin", "bogus")] == [
        "home", "compare", "write", "home", "home",
    ]  # fmt: skip
    assert [landing_tab("admin", tab) for tab in (None, "tamper", "compare", "admin")] == [
        "home", "home", "home", "admin",
    ]  # fmt: skip
    alice_token, admin_token = _ui_tokens(engine, "alice", "admin")
    ui = AnnotationUI(engine, FixedCritic)
    home = ui.enter(alice_token, None)
    assert home[ui.tabs].selected == "home" and "Tamper**: 0 done, 3 left" in home[ui.home.my_progress]
    assert home[ui.tamper.sample] is None
    admin_view = ui.enter(admin_token, "tamper")
    assert admin_view[ui.tabs].selected == "home"
    assert count(engine, Assignment) == 0
    landed = ui.enter(alice_token, "tamper")
    assert landed[ui.tabs].selected == "tamper" and landed[ui.tamper.sample]["id"] > 0
    assert count(engine, Assignment) == 1
    assert ui.enter("not a token", "tamper")[ui.login_panel].visible
    assert ui.do_logout(alice_token)[ui.last_tab] == "home"  # the next login here lands on Home


def test_ui_check_progress_restore_and_submit_on_the_stored_check(team):
    """The check shows progress while its one search runs, is kept with the draft, comes back on
    reopening while the code is the checked code, and Submit uses it without another check."""
    from critic.annotation_app.ui import AnnotationUI

    engine, _, alice, *_ = team
    (token,) = _ui_tokens(engine, "alice")
    searches: list[str] = []

    class CountingCritic(FixedCritic):
        def locate(self, code, max_lines=10):
            searches.append(code)
            return super().locate(code, max_lines)

    ui = AnnotationUI(engine, CountingCritic)
    state = ui.tamper.open_sample(token)[ui.tamper.sample]
    code = tampered(state["original"])
    steps: list[str] = []
    checked = ui.tamper.run_check(
        token, state, code, "3", DESCRIPTION, state["id"], lambda *_, desc: steps.append(desc)
    )
    assert steps == ["the critic is reviewing the code"] and searches == [code]
    shown = checked[ui.tamper.check_result]
    assert shown.startswith("✗ **Not adversarial**: the critic caught the bug.") and "**Line 3**" in shown
    assert checked[ui.tamper.saved]["code"] == code

    reopened = ui.tamper.open_sample(token)
    assert (reopened[ui.tamper.code], reopened[ui.tamper.bug_lines]) == (code, "3")
    assert reopened[ui.tamper.description] == DESCRIPTION
    assert reopened[ui.tamper.check] == checked[ui.tamper.check]
    assert reopened[ui.tamper.check_result] == checked[ui.tamper.check_result]
    assert "with its check against the critic" in reopened[ui.tamper.tamper_draft]

    edited = code.replace("total = 0", "total = 0.0")
    ui.tamper.save_tamper_draft(
        token, state, reopened[ui.tamper.saved], edited, "3", DESCRIPTION, state["id"]
    )
    stale = ui.tamper.open_sample(token)
    assert stale[ui.tamper.code] == edited and stale[ui.tamper.check] is None
    assert stale[ui.tamper.check_result] == ""
    with pytest.raises(store.AppError, match="the code changed since the check"):
        ui.tamper.submit_tampering(token, state, edited, "3", DESCRIPTION, state["id"])

    submitted = ui.tamper.submit_tampering(token, state, code, "3", DESCRIPTION, state["id"])
    assert "Submitted tampering" in submitted[ui.tamper.tamper_status]
    assert "1 done" in submitted[ui.tamper.tamper_progress] and searches == [code]
    with Session(engine) as session:
        (stored,) = session.exec(select(Tampering)).all()
    assert stored.code == code and stored.caught == 1


def test_ui_draft_is_saved_only_when_the_form_changed(team):
    """Autosave fires on every change, programmatic ones too: a form equal to what was restored (the
    editor drops a trailing newline) writes no draft."""
    from critic.annotation_app.ui import AnnotationUI

    engine, *_ = team
    (token,) = _ui_tokens(engine, "alice")
    ui = AnnotationUI(engine, FixedCritic)
    opened = ui.tamper.open_sample(token)
    state, saved = opened[ui.tamper.sample], opened[ui.tamper.saved]
    unchanged = ui.tamper.save_tamper_draft(
        token, state, saved, state["original"].rstrip("\n"), "", "", state["id"]
    )
    assert ui.tamper.saved not in unchanged and count(engine, Draft) == 0
    changed = ui.tamper.save_tamper_draft(token, state, saved, state["original"], "3", "", state["id"])
    assert changed[ui.tamper.saved]["bug_lines"] == "3" and count(engine, Draft) == 1
    assert ui.tamper.saved not in ui.tamper.save_tamper_draft(None, None, None, "", "", "", None)  # no sample


def test_ui_skip_opens_the_next_sample_and_counts(team):
    from critic.annotation_app.ui import AnnotationUI

    engine, *_ = team
    (token,) = _ui_tokens(engine, "alice")
    ui = AnnotationUI(engine, FixedCritic)
    opened = ui.tamper.open_sample(token)
    assert "0 done, 3 left" in opened[ui.tamper.tamper_progress]
    first = opened[ui.tamper.sample]["id"]
    skipped = ui.tamper.skip_sample(token, opened[ui.tamper.sample], opened[ui.tamper.sample]["id"])
    assert skipped[ui.tamper.tamper_status] == f"Skipped sample {first}."
    assert skipped[ui.tamper.sample]["id"] != first and "0 done, 2 left" in skipped[ui.tamper.tamper_progress]
    with pytest.raises(store.AppError, match="no sample is open"):
        ui.tamper.skip_sample(token, None, None)


@pytest.mark.parametrize(
    ("typed", "read"),
    [("3", 3), (" 3 ", 3), (3.0, 3), ("3.0", 3), ("2.5", 2.5), ("-1", -1), ("abc", "abc"), ("", "")],
)
def test_ui_number_fields_are_read_not_rounded(typed, read):
    from critic.annotation_app.ui.render import number_or_text

    assert number_or_text(typed) == read and type(number_or_text(typed)) is type(read)


def test_ui_admin_settings_refused_in_one_line_with_the_stored_value_shown(team):
    from critic.annotation_app.ui import AnnotationUI

    engine, *_ = team
    (token,) = _ui_tokens(engine, "admin")
    ui = AnnotationUI(engine, FixedCritic)
    admin = ui.admin
    for typed, shown in (("0", "0"), ("-1", "-1"), ("2.5", "2.5"), ("abc", "'abc'"), (True, "True")):
        refused = admin.set_overlap(token, typed)
        assert refused[admin.admin_status] == (
            f"⚠ overlap must be a whole number from 1 to {store.MAX_OVERLAP}, got {shown}"
        )
        assert refused[admin.overlap] == str(store.DEFAULT_OVERLAP)
    done = admin.set_overlap(token, "3")
    assert done[admin.admin_status] == "✓ Overlap set to 3 raters per tampering."
    assert done[admin.overlap] == "3"
    assert "got 9" in admin.set_writers(token, "9")[admin.admin_status]
    assert admin.set_writers(token, "2")[admin.writers] == "2"
    refused_ttl = admin.set_ttl(token, "0")
    assert refused_ttl[admin.admin_status].startswith("⚠ the assignment expiry must be")
    assert refused_ttl[admin.ttl] == f"{store.DEFAULT_ASSIGNMENT_TTL_HOURS:g}"
    assert admin.set_ttl(token, "1.5")[admin.ttl] == "1.5"
    view = admin.admin_refresh_view(token)
    assert "3 in all" in view[admin.sample_counts]
    assert list(view[admin.origins]["origin"]) == ["human", "assisted", "model", "reference"]
    with Session(engine) as session:
        assert store.get_overlap(session) == 3 and store.get_assignment_ttl(session) == 1.5


def test_ui_admin_manages_users_through_the_store(team):
    from critic.annotation_app.ui import AnnotationUI

    engine, admin_user, *_ = team
    (token,) = _ui_tokens(engine, "admin")
    ui = AnnotationUI(engine, FixedCritic)
    admin = ui.admin
    with pytest.raises(store.AppError, match="password must be at least"):
        admin.add_user(token, "dave", "annotator", "short")
    added = admin.add_user(token, "dave", "annotator", "first password")
    assert "Added annotator **dave**" in added[admin.users_status] and added[admin.member].value == "dave"
    assert "dave" in list(added[admin.accounts]["name"])
    with pytest.raises(store.AppError, match="choose a user first"):
        admin.reset_password(token, None, "second password")
    admin.reset_password(token, "dave", "second password")
    admin.set_role(token, "dave", "admin")
    admin.update_user(token, "dave", "{}", disabled=True)
    with Session(engine) as session:
        with pytest.raises(store.AppError, match="this account is disabled"):
            store.authenticate(session, "dave", "second password")  # disabled: the right password hears it
    admin.update_user(token, "dave", "{}", disabled=False)
    with Session(engine) as session:
        assert store.authenticate(session, "dave", "second password").role == "admin"
        with pytest.raises(store.AppError, match="wrong user name or password"):
            store.authenticate(session, "dave", "first password")

    tamper_next(engine, team[2])  # alice's tampering: the admin could rate it, once opted in
    assert "No comparison" in ui.compare.open_task(token)[ui.compare.task_info]
    opted = admin.update_user(token, "admin", "{} takes tasks.", takes_tasks=True)
    assert opted[admin.users_status] == "✓ admin takes tasks."
    assert ui.compare.open_task(token)[ui.compare.task] is not None


def test_ui_run_tests_on_code_that_does_not_parse_says_so(annotation_engine):
    from critic.annotation_app.ui import AnnotationUI

    engine = annotation_engine
    make_users(engine, "alice")
    code = "def one():\n    return 1\n"
    with Session(engine) as session:
        session.add(CodeSample(code=code, test="assert one() == 1\n", source="inline", task_id="one"))
        session.commit()
    (token,) = _ui_tokens(engine, "alice")
    ui = AnnotationUI(engine, FixedCritic)
    opened = ui.tamper.open_sample(token)
    assert opened[ui.tamper.tests_button].visible
    with pytest.raises(store.AppError, match=r"^the tampered code does not parse: .*\(line 2\)"):
        ui.tamper.run_tests(token, opened[ui.tamper.sample], "def one():\n    return (1\n")


def test_ui_admin_export_rules_and_zip(team, tmp_path):
    """The folder export follows the CLI's rules; the zip is the dataset, and its folder goes once
    Gradio has its copy."""
    from pathlib import Path

    from datasets import load_from_disk

    from critic.annotation_app.ui import AnnotationUI

    engine, _, alice, bob, _ = team
    tamper_next(engine, alice)
    rate_task(engine, bob, [7, 1])  # no empty split: datasets cannot load one saved with 0 shards
    (token,) = _ui_tokens(engine, "admin")
    admin = AnnotationUI(engine, FixedCritic).admin
    with pytest.raises(store.AppError, match="give an absolute path"):
        admin.export(token, "relative/folder")
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "old.txt").write_text("an earlier export")
    with pytest.raises(store.AppError, match="exists and is not empty"):
        admin.export(token, str(tmp_path / "full"))
    done = admin.export(token, f"  {tmp_path / 'new'}  ")
    assert done[admin.admin_status].startswith("✓ Exported to") and load_from_disk(str(tmp_path / "new"))
    built = admin.prepare_zip(token)
    path = built[admin.zip_path]
    with zipfile.ZipFile(path) as zipped:
        assert "critic-annotations/dataset_dict.json" in zipped.namelist()
    assert built[admin.download].visible and built[admin.admin_status].startswith("✓ Zip ready")
    admin.remove_zip(path)
    assert not Path(path).parent.exists()
