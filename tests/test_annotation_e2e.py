"""The annotation app end to end, in a real headless browser: the whole human data loop through the UI.

An admin imports code, annotator 1 tampers it and checks it against a real (tiny, memorized) critic,
annotator 2 rates the two critiques, and the admin exports the tampering, the ratings and the preference
pairs. Drives Debian's /usr/bin/chromium with Playwright; screenshots of each tab are kept in
$CRITIC_TEST_ARTIFACTS (default: test-artifacts/ at the repository root) for a human to look at.
"""

from __future__ import annotations

import re

import pytest
from browser import PASSWORD, artifacts_dir, browser, choose, expect, fill, log_in, needs_browser, serve_app
from conftest import BUG_LINE, BUGGY_CODE
from sqlmodel import Session, select

# What annotator 1 is given: BUGGY_CODE without its bug. Tampering it back into BUGGY_CODE gives the
# memorized critic code it knows, so *Check against critic* runs a real FSBS that finishes in seconds.
ORIGINAL = BUGGY_CODE.replace("range(len(xs) - 1)", "range(len(xs))")
DESCRIPTION = "The loop stops one element early, so the last element is never added to the total."
OVERALL = (7, 1)  # annotator 2's overall scores of the critic's and the gold critique: a preference
TIMEOUT_MS = 60_000


@pytest.fixture
def app_url(tmp_path, known_critic):
    """The real app over a fresh SQLite file with an admin and two annotators, checking with the
    memorized critic."""
    from critic.annotation_app.server import lazy_critic

    users = (("admin", "admin"), ("ann1", "annotator"), ("ann2", "annotator"))
    with serve_app(tmp_path, lazy_critic(*known_critic), users) as served:
        yield served


def wait_for_draft(engine, field: str, value: str) -> None:
    """Until the saved tamper draft holds `value` in `field` (autosave runs a moment after typing)."""
    import time

    from critic.annotation_app.db import Draft

    deadline = time.monotonic() + TIMEOUT_MS / 1000
    while time.monotonic() < deadline:
        with Session(engine) as session:
            if any(d.payload.get(field) == value for d in session.exec(select(Draft)).all()):
                return
        time.sleep(0.2)
    raise AssertionError(f"no draft with {field} {value!r} was saved")


@needs_browser
def test_tamper_compare_export_in_a_browser(app_url, tmp_path) -> None:
    from datasets import load_from_disk

    url, engine = app_url
    shots = artifacts_dir()
    source = tmp_path / "samples"
    source.mkdir()
    (source / "stats.py").write_text(ORIGINAL)
    export_dir = tmp_path / "export"

    with browser() as chromium:
        viewport = {"width": 1400, "height": 1000}

        # The admin imports the code through the Admin tab.
        admin = chromium.new_context(viewport=viewport).new_page()
        log_in(admin, url, "admin")
        admin.get_by_role("tab", name="Admin").click()
        fill(admin, "admin-import-source", str(source))
        admin.locator("#admin-import").click()
        expect(admin.locator("#admin-status")).to_contain_text("Imported 1 new samples")

        # Annotator 1 has no Admin tab, lands on Home (logging in claims nothing), opens Tamper, tampers
        # the sample, checks it against the critic and submits.
        ann1 = chromium.new_context(viewport=viewport).new_page()
        log_in(ann1, url, "ann1")
        expect(ann1.locator("#home-progress")).to_contain_text("Tamper: 0 done, 1 left")
        expect(ann1.get_by_role("tab", name="Admin")).to_have_count(0)
        ann1.get_by_role("tab", name="Tamper").click()
        expect(ann1.locator("#tamper-info")).to_contain_text("stats.py::average")
        editor = ann1.locator("#tamper-code .cm-content")
        editor.click()
        ann1.keyboard.press("ControlOrMeta+a")
        ann1.keyboard.insert_text(BUGGY_CODE)
        fill(ann1, "tamper-bug-lines", str(BUG_LINE))
        ann1.locator("#tamper-description textarea").press_sequentially(DESCRIPTION[:20])
        expect(ann1.locator("#tamper-draft-status")).to_contain_text("Draft saved")
        wait_for_draft(engine, "description", DESCRIPTION[:20])  # the last keystrokes' save, too

        # A reload keeps the login (token in localStorage), lands on the Tamper tab again, and restores
        # the draft.
        ann1.reload()
        expect(ann1.locator("#who")).to_contain_text("Logged in as ann1")
        expect(ann1.locator("#tamper-description textarea")).to_have_value(DESCRIPTION[:20])
        expect(ann1.locator("#tamper-code .cm-content")).to_contain_text("range(len(xs) - 1)")
        fill(ann1, "tamper-description", DESCRIPTION)
        ann1.locator("#tamper-submit").click()  # refused: the critic has not seen this code yet
        expect(ann1.locator("#tamper-status")).to_contain_text("check the tampering against the critic")

        ann1.locator("#tamper-check").click()
        result = ann1.locator("#tamper-check-result")
        expect(result).to_contain_text("The critic's critique", timeout=4 * TIMEOUT_MS)
        expect(result).to_contain_text(re.compile(r"(Not adversarial|Adversarial)"))
        ann1.screenshot(path=shots / "annotation-tamper.png", full_page=True)
        ann1.locator("#tamper-submit").click()
        expect(ann1.locator("#tamper-status")).to_contain_text("Submitted tampering")
        expect(ann1.locator("#tamper-info")).to_contain_text("No sample is waiting for you")

        # Annotator 2 rates the two critiques, blind, one at a time, on the Compare tab: the bug is
        # the highlighted line of the code and the change beside it, never a description.
        ann2 = chromium.new_context(viewport=viewport).new_page()
        log_in(ann2, url, "ann2")
        ann2.get_by_role("tab", name="Compare").click()
        expect(ann2.locator("#compare-code .cmp-bug .cmp-ln")).to_have_text(str(BUG_LINE))
        expect(ann2.locator("#compare-diff .cmp-add")).to_contain_text("range(len(xs) - 1)")
        ann2.locator("#compare-submit").click()  # refused: nothing rated yet, every critique listed
        expect(ann2.locator("#compare-problems li")).to_have_count(len(OVERALL))
        expect(ann2.locator("#compare-problems")).to_contain_text("critique 1: no CBI")
        for i, overall in enumerate(OVERALL):
            ann2.locator(f'#compare-nav [data-cmp-goto="{i}"]').click()
            expect(ann2.locator(f"#critique-{i}-text .cmp-card")).to_be_visible()
            choose(ann2, f"critique-{i}-cbi", 7 if overall > 4 else 2)
            choose(ann2, f"critique-{i}-comprehensiveness", 5)
            choose(ann2, f"critique-{i}-conciseness", 6)
            choose(ann2, f"critique-{i}-overall", overall)
            fill(ann2, f"critique-{i}-rationale", f"critique {i + 1}: overall {overall}")
        ann2.locator("#critique-1-nitpick input").check()
        expect(ann2.locator("#compare-problems li")).to_have_count(0)  # the list follows the answers
        ann2.screenshot(path=shots / "annotation-compare.png", full_page=True)
        ann2.locator("#compare-submit").click()
        expect(ann2.locator("#compare-status")).to_contain_text("Submitted ratings")
        expect(ann2.locator("#compare-info")).to_contain_text("No comparison is waiting for you")

        # The admin sees the progress and exports the dataset.
        admin.locator("#admin-refresh").click()
        expect(admin.locator("#admin-tasks")).to_contain_text("ann1")
        fill(admin, "admin-export-dir", str(export_dir))
        admin.locator("#admin-export").click()
        expect(admin.locator("#admin-status")).to_contain_text("Exported")
        admin.screenshot(path=shots / "annotation-admin.png", full_page=True)

    dataset = load_from_disk(str(export_dir))
    assert dataset["tampering"].num_rows == 1
    tampering = dataset["tampering"][0]
    assert tampering["source"] == "human"
    assert tampering["code"].strip() == BUGGY_CODE.strip()  # typed into the editor exactly
    assert tampering["bug_lines"] == [BUG_LINE]
    assert dataset["ratings"].num_rows == len(OVERALL)
    assert sorted(dataset["ratings"]["overall"]) == sorted(OVERALL)
    assert set(dataset["ratings"]["rater"]) == {"ann2"}
    # The critic's critique and the gold one differ and were scored apart: one preference.
    assert dataset["preferences"].num_rows == 1
    assert all(row["margin"] > 0 and row["weight"] == 1.0 for row in dataset["preferences"])


def test_admin_actions_are_refused_to_annotators(tmp_path) -> None:
    """Hiding the Admin tab is not the guard: each admin handler asks the store, which checks the role."""
    from critic.annotation_app import store
    from critic.annotation_app.auth import Forbidden, create_user, login
    from critic.annotation_app.db import User, init_db, make_engine
    from critic.annotation_app.ui import AnnotationUI

    engine = make_engine(f"sqlite:///{tmp_path / 'annotations.db'}")
    init_db(engine)
    with Session(engine) as session:
        create_user(session, "ann1", "annotator", PASSWORD)
        token = login(session, "ann1", PASSWORD)
    ui = AnnotationUI(engine, critic_factory=lambda: None)
    actions = [
        lambda: ui.admin.import_code(token, "humaneval"),
        lambda: ui.admin.set_overlap(token, 3),
        lambda: ui.admin.export(token, str(tmp_path / "export")),
        lambda: ui.admin.prepare_zip(token),
        lambda: ui.admin.admin_refresh_view(token),
        lambda: ui.admin.set_writers(token, "2"),
        lambda: ui.admin.set_ttl(token, "1"),
        lambda: ui.admin.add_user(token, "mallory", "admin", PASSWORD),
        lambda: ui.admin.set_role(token, "ann1", "admin"),
        lambda: ui.admin.update_user(token, "ann1", "{}", takes_tasks=False),
        lambda: ui.admin.reset_password(token, "ann1", "a new password"),
    ]
    for action in actions:
        with pytest.raises(Forbidden):
            action()
    assert not (tmp_path / "export").exists()
    with Session(engine) as session:  # ann1 is still an annotator with the old password; no mallory
        assert store.authenticate(session, "ann1", PASSWORD).role == "annotator"
        assert [u.name for u in session.exec(select(User)).all()] == ["ann1"]
    engine.dispose()
