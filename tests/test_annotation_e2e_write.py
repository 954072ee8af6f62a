"""Critique writing end to end, in a real headless browser: CriticGPT's human and human + critic teams.

Seeded through the store (writers = 2, one sample, one tampering whose critic critique has three
highlights), then in the browser bob writes the assisted critique (keeps one of the critic's
highlights, edits one, removes one, adds one by its line number, across a reload that restores the
draft) and carol the unaided one; dave rates all four critiques and the admin exports. The export's
ratings and `origins` report have all four origins, and the highlight log holds exactly what bob did.
Screenshots of the Write tab go to $CRITIC_TEST_ARTIFACTS (default: test-artifacts/).
"""

from __future__ import annotations

import json
import time

import pytest
from annotation_helpers import DESCRIPTION, rating, tampered, write_functions
from browser import (
    PASSWORD,
    artifacts_dir,
    assert_readable,
    browser,
    expect,
    fill,
    log_in,
    needs_browser,
    serve_app,
)
from sqlmodel import Session, select
from test_annotation_write_ui import DIVIDE, INIT, LOOP, check_with_highlights

from critic.annotation_app import store, writing
from critic.annotation_app.db import Critique, HighlightEvent

pytestmark = pytest.mark.slow

USERS = (("admin", "admin"), *((name, "annotator") for name in ("alice", "bob", "carol", "dave")))
EDITED = "Divides by zero when xs is empty: return 0.0 (or raise) for an empty list."
ADDED_QUOTE = "        total += xs[i]"  # line 4, filled in from its line number
ADDED = "Indexing by position: iterate over xs directly."
HUMAN = "The loop stops one element early, so the last element is never added."


def user(engine, name: str):
    with Session(engine) as session:
        return store.user_for_token(session, store.login(session, name, PASSWORD))


def seed(engine, folder) -> int:
    """The admin turns writing on (2 per tampering) and imports one function; alice tampers it with a
    fixed check whose critic critique has three highlights. Returns the tampering id."""
    admin, alice = user(engine, "admin"), user(engine, "alice")
    with Session(engine) as session:
        writing.set_writers(session, admin, 2)
        assert store.import_samples(session, admin, str(write_functions(folder, 1))) == 1
        sample = store.next_tamper_sample(session, alice)
        code = tampered(sample.code)
        return store.submit_tampering(
            session, alice, sample.sample_id, code, [3], DESCRIPTION, check_with_highlights(code)
        )


def value(page, elem_id: str):
    return page.locator(f"#{elem_id} textarea, #{elem_id} input").first


def wait_for_draft(engine, name: str, tampering_id: int, text: str, timeout_s: float = 60) -> dict:
    """The user's write draft once the autosave has stored `text` in it."""
    who = user(engine, name)
    deadline = time.monotonic() + timeout_s
    while True:
        with Session(engine) as session:
            draft = store.load_draft(session, who, "write", tampering_id)
        if draft is not None and text in json.dumps(draft):
            return draft
        assert time.monotonic() < deadline, f"no draft with {text!r} was saved"
        time.sleep(0.5)


def slot(page, index: int):
    """Highlight slot `index` (a Gradio group carries its id on two nested elements; hidden: neither)."""
    return page.locator(f"#write-h{index}").first


@needs_browser
def test_assisted_and_human_critiques_from_writing_to_export(tmp_path) -> None:
    from datasets import load_from_disk

    shots = artifacts_dir()
    with serve_app(tmp_path, lambda: None, USERS) as (url, engine):
        tampering_id = seed(engine, tmp_path / "src")
        # Writer k of tampering t writes in MODES[(t + k) % 2]: bob, the first writer, is assisted.
        assert tampering_id % 2 == 1, "a fresh database's first tampering has id 1"

        with browser() as chromium:
            viewport = {"width": 1400, "height": 1100}
            bob = chromium.new_context(viewport=viewport).new_page()
            log_in(bob, url, "bob")
            bob.get_by_role("tab", name="Write").click()
            expect(bob.locator("#write-info")).to_contain_text(f"Task {tampering_id}")
            expect(bob.locator("#write-info")).to_contain_text("human + critic")
            expect(bob.locator("#write-instruction")).to_contain_text("The critic's critique is below")
            expect(bob.locator("#write-code")).to_contain_text("return total / len(xs)")
            expect(bob.locator("#write-code")).not_to_contain_text(DESCRIPTION)  # not told the bug
            expect(bob.locator("#write-progress")).to_contain_text("1 left to write")
            expect(value(bob, "write-preamble")).to_have_value("Two problems and a style point.")
            for i, quote in enumerate((LOOP, DIVIDE, INIT)):
                expect(value(bob, f"write-h{i}-quote")).to_have_value(quote)
                expect(bob.locator(f"#write-h{i}-heading")).to_contain_text("from the critic")
            expect(slot(bob, 3)).to_be_hidden()
            assert_readable(bob, "the Write tab")

            # Keep highlight 1, edit 2, remove 3, add one of his own by its line number.
            fill(bob, "write-h1-comment", EDITED)
            bob.locator("#write-h2-remove").click()
            expect(slot(bob, 2)).to_be_hidden()
            bob.locator("#write-add").click()
            expect(bob.locator("#write-h2-heading")).to_contain_text("yours")
            expect(value(bob, "write-h2-quote")).to_have_value("")
            fill(bob, "write-h2-quote", "total += xs[j]")  # not in the code: flagged as typed
            expect(bob.locator("#write-h2-place")).to_contain_text("not in the code")
            value(bob, "write-h2-lines").fill("4")
            value(bob, "write-h2-lines").press("Enter")
            expect(value(bob, "write-h2-quote")).to_have_value(ADDED_QUOTE)
            expect(bob.locator("#write-h2-place")).to_contain_text("Line 4")
            fill(bob, "write-h2-comment", ADDED[:-1])
            value(bob, "write-h2-comment").press_sequentially(ADDED[-1])  # typing: the autosave runs
            draft = wait_for_draft(engine, "bob", tampering_id, ADDED)
            assert [h["source_index"] for h in draft["highlights"]] == [0, 1, None]
            expect(bob.locator("#write-draft-status")).to_contain_text("Draft saved")

            # A reload keeps the login; opening Write again restores the draft, sources included.
            bob.reload()
            expect(bob.locator("#who")).to_contain_text("Logged in as bob")
            bob.get_by_role("tab", name="Write").click()
            expect(bob.locator("#write-draft-status")).to_contain_text("Draft restored")
            expect(value(bob, "write-h1-comment")).to_have_value(EDITED)
            expect(value(bob, "write-h2-quote")).to_have_value(ADDED_QUOTE)
            expect(bob.locator("#write-h2-heading")).to_contain_text("yours")
            expect(bob.locator("#write-h1-heading")).to_contain_text("from the critic")
            bob.screenshot(path=shots / "annotation-write-assisted.png", full_page=True)
            bob.locator("#write-submit").click()
            expect(bob.locator("#write-status")).to_contain_text(
                f"Submitted your critique of task {tampering_id}"
            )
            expect(bob.locator("#write-info")).to_contain_text("No critique to write")

            # Carol writes the unaided critique: no critic highlights to start from.
            carol = chromium.new_context(viewport=viewport).new_page()
            log_in(carol, url, "carol")
            carol.get_by_role("tab", name="Write").click()
            expect(carol.locator("#write-info")).to_contain_text("on your own")
            expect(carol.locator("#write-instruction")).to_contain_text("Find the problems in this code")
            expect(slot(carol, 0)).to_be_hidden()
            carol.locator("#write-add").click()
            value(carol, "write-h0-lines").fill("3")
            value(carol, "write-h0-lines").press("Enter")
            expect(value(carol, "write-h0-quote")).to_have_value("    for i in range(len(xs) - 1):")
            fill(carol, "write-h0-comment", HUMAN)
            carol.screenshot(path=shots / "annotation-write-human.png", full_page=True)
            carol.locator("#write-submit").click()
            expect(carol.locator("#write-status")).to_contain_text("Submitted your critique")

        # Dave rates the task, which now shows the two written critiques next to the critic's and the
        # reference; the admin exports.
        dave, admin = user(engine, "dave"), user(engine, "admin")
        with Session(engine) as session:
            task = store.next_compare_task(session, dave)
            assert task is not None and task.tampering_id == tampering_id
            assert len(task.critiques) == store.CRITIQUES_PER_TASK + 2
            ratings = {c.critique_id: rating(overall=1 + i) for i, c in enumerate(task.critiques)}
            store.submit_ratings(session, dave, tampering_id, ratings)
            store.export_dataset(session, admin).save_to_disk(str(tmp_path / "export"))
            assisted = session.exec(select(Critique).where(Critique.origin == "assisted")).one()
            human = session.exec(select(Critique).where(Critique.origin == "human")).one()
            events = session.exec(
                select(HighlightEvent).where(HighlightEvent.critique_id == assisted.id)
            ).all()
            by_action = {e.action: e for e in events}
        bob_id, carol_id = user(engine, "bob").id, user(engine, "carol").id

    assert assisted.author_id == bob_id and human.author_id == carol_id
    assert len(events) == 4 and sorted(by_action) == ["added", "edited", "kept", "removed"]
    assert (by_action["kept"].before_quote, by_action["kept"].after_quote) == (LOOP, LOOP)
    assert by_action["edited"].before_quote == DIVIDE and by_action["edited"].after_comment == EDITED
    assert by_action["removed"].before_quote == INIT and by_action["removed"].after_quote is None
    assert (
        by_action["added"].after_quote == ADDED_QUOTE.strip("\n") and by_action["added"].before_quote is None
    )
    assert ADDED in assisted.text and HUMAN in human.text

    dataset = load_from_disk(str(tmp_path / "export"))
    assert set(dataset["ratings"]["origin_group"]) == {"human", "assisted", "model", "reference"}
    assert dataset["ratings"].num_rows == 4 and set(dataset["ratings"]["rater"]) == {"dave"}
    origins = {row["origin"]: row for row in dataset["origins"]}
    assert origins["assisted"]["critiques"] == 1 and origins["assisted"]["ratings"] == 1
    assert origins["human"]["critiques"] == 1 and origins["model"]["ratings"] == 1
