"""The per-origin report (human, assisted, model, reference critiques) on hand-made ratings, and the
export's columns for origins, authors and checks: the `origins` split round-trips equal to the report.

Every database test runs on SQLite and, when CRITIC_TEST_POSTGRES_URL is set, on PostgreSQL.
"""

from __future__ import annotations

import subprocess
import sys

import pytest
from annotation_helpers import PASSWORD, make_team, make_users
from sqlmodel import Session, col, select
from writing_helpers import call, highlight, tamper_with_critic

from critic.annotation_app import store
from critic.annotation_app.db import Critique, Tampering
from critic.annotation_app.export import HUMAN_TAMPERING_COLUMNS
from critic.annotation_app.report import origin_of
from critic.core.critique import terminate_critique
from critic.datagen.tamper_data import FIELDS

LOOP = "for i in range(len(xs) - 1):"
# Per grouped origin, per rater (dave, erin): (cbi, comprehensiveness, overall, fake_problem,
# hallucinated_quote) of each critique of that origin, critiques in id order.
SCORES = {
    "reference": {"dave": [(7, 6, 7, False, False)], "erin": [(6, 6, 6, False, False)]},
    "human": {"dave": [(5, 4, 4, True, False)], "erin": [(4, 3, 4, False, False)]},
    "assisted": {"dave": [(6, 5, 5, False, False)], "erin": [(6, 4, 6, False, True)]},
    "model": {"dave": [(2, 2, 2, True, True)], "erin": [(2, 3, 2, False, False)]},
}
# SCORES worked out by hand (means and fractions of ratings, 3 decimals).
EXPECTED = [
    dict(origin="human", critiques=1, ratings=2, mean_cbi=4.5, mean_comprehensiveness=3.5,
         fake_problem_rate=0.5, hallucinated_quote_rate=0.0),
    dict(origin="assisted", critiques=1, ratings=2, mean_cbi=6.0, mean_comprehensiveness=4.5,
         fake_problem_rate=0.0, hallucinated_quote_rate=0.5),
    dict(origin="model", critiques=1, ratings=2, mean_cbi=2.0, mean_comprehensiveness=2.5,
         fake_problem_rate=0.5, hallucinated_quote_rate=0.5),
    dict(origin="reference", critiques=1, ratings=2, mean_cbi=6.5, mean_comprehensiveness=6.0,
         fake_problem_rate=0.0, hallucinated_quote_rate=0.0),
]  # fmt: skip


@pytest.fixture
def rated(annotation_engine, tmp_path):
    """alice's tampering with the critic's critique and the reference one, a human and an assisted
    critique written by bob and carol, all four rated by dave and erin as SCORES says."""
    engine = annotation_engine
    admin, alice, bob, carol = make_team(engine, tmp_path / "src")
    dave, erin = make_users(engine, "dave", "erin")
    call(engine, store.set_writers, admin, 2)
    t = tamper_with_critic(engine, alice)
    for writer in (bob, carol):
        task = call(engine, store.next_write_task, writer)
        comment = f"{task.mode}: the loop skips the last element."
        call(engine, store.submit_critique, writer, t, [highlight(LOOP, comment)])
    before = call(engine, store.origin_report, admin)
    for rater in (dave, erin):
        task = call(engine, store.next_compare_task, rater)
        with Session(engine) as session:
            critiques = session.exec(
                select(Critique).where(Critique.tampering_id == t).order_by(col(Critique.id))
            )
            origins = [(c.id, origin_of(c.origin)) for c in critiques]
        ratings = {}
        for group, given in SCORES.items():
            ids = [critique_id for critique_id, origin in origins if origin == group]
            for critique_id, (cbi, comprehensiveness, overall, fake, hallucinated) in zip(
                ids, given[rater.name], strict=True
            ):
                ratings[critique_id] = store.RatingInput(
                    cbi=cbi, comprehensiveness=comprehensiveness, conciseness=4, overall=overall,
                    nitpick=False, fake_problem=fake, hallucinated_quote=hallucinated, rationale="As seen.",
                )  # fmt: skip
        call(engine, store.submit_ratings, rater, task.tampering_id, ratings)
    return engine, admin, bob, t, before


def test_origin_of_groups_stored_origins():
    assert [origin_of(o) for o in ("human", "assisted", "model:default_critic", "gold")] == list(
        store.ORIGINS
    )
    assert origin_of("test:fixed-critiques") == "model"  # a check's critiques, whatever it named itself


def test_origin_report_on_hand_made_ratings(rated):
    engine, admin, bob, _, before = rated
    assert before == [
        dict(origin=origin, critiques=0, ratings=0, mean_cbi=None, mean_comprehensiveness=None,
             fake_problem_rate=None, hallucinated_quote_rate=None)
        for origin in store.ORIGINS
    ]  # fmt: skip
    assert call(engine, store.origin_report, admin) == EXPECTED
    assert call(engine, store.origin_report, None) == EXPECTED  # the local CLI
    with pytest.raises(store.Forbidden, match="only admins"):
        call(engine, store.origin_report, bob)


def test_export_columns_and_the_origins_split_round_trip(rated, tmp_path):
    from datasets import load_from_disk

    from critic.datagen.tamper_data import load_dataset
    from critic.rl.rate import PREFERENCE_COLUMNS, human_preferences

    engine, admin, _, t, _ = rated
    with Session(engine) as session:
        dsd = store.export_dataset(session, admin)
        tampering = session.get(Tampering, t)
    assert list(dsd) == ["tampering", "ratings", "preferences", "origins"]

    assert dsd["tampering"].column_names == [*FIELDS, *HUMAN_TAMPERING_COLUMNS]
    row = dsd["tampering"][0]
    assert (row["tampering_id"], row["author"], row["adversarial"]) == (t, "alice", tampering.adversarial)
    assert tampering.caught is not None and row["caught"] == tampering.caught
    assert row["tests_verified"] is None  # no tests ran

    ratings = dsd["ratings"]
    assert ratings["origin_group"] == [origin_of(o) for o in ratings["origin"]]
    assert sorted(set(ratings["origin_group"])) == sorted(store.ORIGINS) and len(ratings) == 8

    # Mean overall: reference 6.5, assisted 5.5, human 4, model 2.
    prefs = dsd["preferences"]
    got = sorted(zip(prefs["chosen_origin"], prefs["rejected_origin"], prefs["margin"], strict=True))
    assert got == sorted(
        [("reference", "model", 4.5), ("assisted", "model", 3.5), ("human", "model", 2.0)]
        + [("reference", "assisted", 1.0), ("reference", "human", 2.5), ("assisted", "human", 1.5)]
    )
    by_text = {terminate_critique(r["critique"]): r["origin_group"] for r in ratings}
    assert all(by_text[r["chosen"]] == r["chosen_origin"] for r in prefs)
    assert all(by_text[r["rejected"]] == r["rejected_origin"] for r in prefs)

    out = tmp_path / "export"
    dsd.save_to_disk(str(out))
    assert (
        load_from_disk(str(out))["origins"].to_list() == call(engine, store.origin_report, admin) == EXPECTED
    )
    # The readers of an export take it as before.
    assert human_preferences(out)["train"].column_names == PREFERENCE_COLUMNS
    assert load_dataset(out, "tampering")["tampering"][0]["source"] == "human"


def test_export_command_prints_the_origin_table(rated, annotation_url, tmp_path):
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "critic.cli",
            "data",
            "export",
            "--db",
            annotation_url,
            "--out",
            str(tmp_path / "x"),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    lines = done.stderr.splitlines()
    assert lines[-4:] == [
        "human: 1 critique, 2 ratings, mean CBI 4.50, comprehensiveness 3.50, fake problem 50.0%, "
        "hallucinated quote 0.0%",
        "assisted: 1 critique, 2 ratings, mean CBI 6.00, comprehensiveness 4.50, fake problem 0.0%, "
        "hallucinated quote 50.0%",
        "model: 1 critique, 2 ratings, mean CBI 2.00, comprehensiveness 2.50, fake problem 50.0%, "
        "hallucinated quote 50.0%",
        "reference: 1 critique, 2 ratings, mean CBI 6.50, comprehensiveness 6.00, fake problem 0.0%, "
        "hallucinated quote 0.0%",
    ]


def test_the_admin_tab_shows_the_exported_origins_table(rated, tmp_path):
    """The per-origin table an admin sees in the Admin tab is, row for row, the export's `origins`
    split after a save and a load (what `critic data export` writes)."""
    from datasets import load_from_disk

    from critic.annotation_app.ui import AnnotationUI

    engine, admin, _, _, _ = rated
    with Session(engine) as session:
        token = store.login(session, admin.name, PASSWORD)
        store.export_dataset(session, admin).save_to_disk(str(tmp_path / "export"))
    ui = AnnotationUI(engine, critic_factory=lambda: None)
    shown = ui.admin.admin_refresh_view(token)[ui.admin.origins]
    exported = load_from_disk(str(tmp_path / "export"))["origins"].to_list()
    assert shown.to_dict("records") == exported == EXPECTED
