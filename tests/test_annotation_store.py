"""The annotation app's service layer: roles, queues, blind comparison, drafts, validation, export.

Every test runs on SQLite and, when CRITIC_TEST_POSTGRES_URL is set, on PostgreSQL (the
`annotation_engine` fixture in conftest.py).
"""

from __future__ import annotations

import json
from dataclasses import asdict, fields
from types import SimpleNamespace
from typing import get_type_hints

import pytest
from annotation_helpers import (
    BUG_LINES,
    DESCRIPTION,
    ORIGIN,
    PASSWORD,
    critiques_for,
    fixed_check,
    make_team,
    make_users,
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
        assert sorted(c.position for c in crits) == [0, 1, 2, 3]
        by_origin = sorted(c.origin for c in crits)
        assert by_origin == ["gold", ORIGIN, ORIGIN, ORIGIN]
        gold = next(c for c in crits if c.origin == "gold")
        assert gold.text == gold_critique(t.code, BUG_LINES, DESCRIPTION)
        # ids follow display order, so an id never tells which critique is gold
        assert [c.id for c in sorted(crits, key=lambda c: c.position)] == sorted(c.id for c in crits)
        assert (t.caught, t.adversarial, t.author_id) == (1, True, alice.id)
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


# --- comparison -------------------------------------------------------------------------------------


def test_compare_task_is_blind(team):
    engine, _, alice, bob, carol = team
    tamper_next(engine, alice)
    rate_task(engine, bob, [7, 5, 3, 3])
    with Session(engine) as session:
        task = store.next_compare_task(session, carol)
    assert {f.name for f in fields(task)} == {
        "tampering_id",
        "code",
        "description",
        "critiques",
        "draft",
        "bug_lines",
    }
    assert all({f.name for f in fields(c)} == {"critique_id", "text"} for c in task.critiques)
    assert task.draft is None
    payload = json.dumps(asdict(task))
    for leak in ("gold", ORIGIN, "alice", "bob", "origin", "rationale", "Quotes the right line"):
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
    rate_task(engine, bob, [4, 4, 4, 4])
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
        store.save_draft(session, alice, "compare", tampering_id, {"overall": [7, 1, 4, 4]})
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
        assert task.tampering_id == tampering_id and task.draft == {"overall": [7, 1, 4, 4]}
        assert store.load_draft(session, alice, "compare", tampering_id) == {"overall": [7, 1, 4, 4]}
        assert store.load_draft(session, bob, "compare", tampering_id) is None  # never someone else's
    rate_task(engine, alice, [4, 4, 4, 4])
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
        ({i: rating() for i in ids[:3]}, "critique 4 has no rating"),
        ({**good, ids[1]: rating(overall=8)}, "critique 2: overall must be an int from 1 to 7"),
        ({**good, ids[2]: rating(cbi=True)}, "critique 3: cbi must be an int"),
        ({**good, ids[0]: rating(rationale=" ")}, "critique 1: rationale must be a non-empty string"),
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
    assert count(engine, Rating) == 4


# --- admin views and export ------------------------------------------------------------------------


def test_preferences_and_export(team, tmp_path):
    """Mean overall per critique over raters; every pair with different means is a preference with
    the difference as margin, and a tie is two half-weight records, one each way."""
    from critic.rl.rate import PREFERENCE_COLUMNS, human_preferences

    engine, admin, alice, bob, carol = team
    tampering_id = tamper_next(engine, alice)
    task = rate_task(engine, bob, [7, 5, 3, 3])
    rate_task(engine, carol, [5, 5, 3, 2])  # means: 6, 5, 3, 2.5
    texts = [c.text for c in task.critiques]
    with Session(engine) as session:
        dsd = store.export_dataset(session, admin)
        t = session.get(Tampering, tampering_id)
        sample = session.get(CodeSample, t.sample_id)
    prefs = dsd["preferences"]
    got = sorted((row["chosen"], row["rejected"], row["margin"], row["weight"]) for row in prefs)
    expected = [(0, 1, 1.0), (0, 2, 3.0), (0, 3, 3.5), (1, 2, 2.0), (1, 3, 2.5), (2, 3, 0.5)]
    assert got == sorted(
        (terminate_critique(texts[a]), terminate_critique(texts[b]), m, 1.0) for a, b, m in expected
    )
    assert set(prefs["prompt"]) == {request(t.code)} and set(prefs["task_id"]) == {sample.task_id}

    rate_tie = dsd["ratings"]
    assert len(rate_tie) == 8 and sorted(set(rate_tie["rater"])) == ["bob", "carol"]
    assert set(RATED_FIELDS) <= set(rate_tie.column_names)
    tampering = dsd["tampering"]
    assert tampering.column_names == list(FIELDS)
    assert tampering[0]["source"] == "human" and tampering[0]["original"] == sample.code
    assert tampering[0]["bug_lines"] == BUG_LINES and tampering[0]["description"] == DESCRIPTION

    dsd.save_to_disk(str(tmp_path / "export"))
    loaded = human_preferences(tmp_path / "export")  # the reward model's reader takes it as is
    assert sum(len(split) for split in loaded.values()) == 6
    assert loaded["train"].column_names == PREFERENCE_COLUMNS


def test_tied_critiques_give_half_weight_both_ways(team):
    engine, admin, alice, bob, _ = team
    tamper_next(engine, alice)
    task = rate_task(engine, bob, [4, 4, 6, 6])
    with Session(engine) as session:
        prefs = store.export_dataset(session, admin)["preferences"]
    a, b = (terminate_critique(task.critiques[i].text) for i in (0, 1))
    ties = [(row["chosen"], row["rejected"]) for row in prefs if row["weight"] == 0.5]
    assert sorted(ties) == sorted([(a, b), (b, a), *_pairs(task, 2, 3)])
    assert all(row["margin"] == 0.0 for row in prefs if row["weight"] == 0.5)
    assert len(prefs) == 4 + 4  # 4 strict pairs, 2 ties x 2 records


def _pairs(task, i, j):
    x, y = (terminate_critique(task.critiques[k].text) for k in (i, j))
    return [(x, y), (y, x)]


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
    rate_task(engine, bob, [7, 5, 3, 1])
    rate_task(engine, carol, [7, 5, 3, 1])
    with Session(engine) as session:
        result = store.agreement(session, admin)
    assert result["units"] == 4 and result["overall"] == pytest.approx(1.0)
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


class FixedCritic:
    """A stand-in for the critic: its search with seed i finds critiques_for(code)[i]."""

    name = "fixed"

    def prompt_ids(self, code: str) -> list[int]:
        return []

    def search(self, prompts, codes, settings, seed):
        return [SimpleNamespace(best=SimpleNamespace(critique=critiques_for(codes[0])[seed]))]


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
        ui.tamper.run_check(bob_token, state, code, "3", DESCRIPTION)  # alice's sample, bob's check
    with pytest.raises(store.AppError, match="description is empty"):
        ui.tamper.run_check(alice_token, state, code, "3", " ")
    assert not loaded  # neither refused check loaded the critic
    result = ui.tamper.run_check(alice_token, state, code, "3", DESCRIPTION)[ui.tamper.check]
    assert loaded and result.caught == [True, False, False] and result.code == code
