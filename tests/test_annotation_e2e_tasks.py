"""The annotation app's shell, Tamper tab and Admin tab in a real headless browser.

A reload in the middle of a checked tampering loses nothing; the last tab used is where a login lands,
and logging in claims no task; admins manage users (passwords, roles, disabling, opting in to tasks),
settings that refuse bad input in one line, and exports to a folder or a zip download. The critic is a
fast stand-in with fixed critiques, so no model runs. Screenshots go to $CRITIC_TEST_ARTIFACTS.
"""

from __future__ import annotations

import re
import threading
import time
import zipfile

import pytest
from annotation_helpers import (
    BUG_LINES,
    DESCRIPTION,
    FixedCritic,
    fire,
    make_team,
    rate_task,
    seed_samples,
    tamper_next,
    tampered,
)
from browser import (
    PASSWORD,
    TIMEOUT_MS,
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

from critic.annotation_app import store
from critic.annotation_app.db import Assignment, Draft, Tampering, User

pytestmark = pytest.mark.slow  # a server and a browser per test
VIEWPORT = {"width": 1400, "height": 1000}
WRONG_LOGIN = "wrong user name or password"


class SlowFixedCritic(FixedCritic):
    """The stand-in critic (annotation_helpers.FixedCritic, which catches the off-by-one) taking SEARCH_S
    seconds per repair search: slow enough to see the check's progress and its disabled button, and
    counting every search it runs."""

    SEARCH_S = 4.0

    def __init__(self) -> None:
        self.searches = 0
        self._lock = threading.Lock()

    def locate(self, code, max_lines=10):
        with self._lock:
            self.searches += 1
        time.sleep(self.SEARCH_S)
        return super().locate(code, max_lines)


@pytest.fixture
def critic():
    return SlowFixedCritic()


@pytest.fixture
def app(tmp_path, critic):
    """The real app over a fresh SQLite file: an admin, annotators ann1 and ann2, three samples."""
    users = (("admin", "admin"), ("ann1", "annotator"), ("ann2", "annotator"))
    with serve_app(tmp_path, lambda: critic, users) as (url, engine):
        seed_samples(engine, user(engine, "admin"), tmp_path / "src", 3)
        yield url, engine


def user(engine, name: str) -> User:
    with Session(engine) as session:
        return store.authenticate(session, name, PASSWORD)


def assignments(engine, name: str) -> list[tuple[str, str]]:
    """(kind, status) of every assignment the user holds or held."""
    with Session(engine) as session:
        held = session.exec(
            select(Assignment).join(User, User.id == Assignment.user_id).where(User.name == name)
        )
        return sorted((a.kind, a.status) for a in held.all())


def shot(page, name: str) -> None:
    """A full-page screenshot for a human to look at (slow on a busy machine: the long timeout)."""
    page.screenshot(path=artifacts_dir() / name, full_page=True, timeout=TIMEOUT_MS)


def open_tab(page, name: str) -> None:
    page.get_by_role("tab", name=name).click()


def try_login(page, url: str, name: str, password: str) -> None:
    """Submit the login form (the outcome is for the caller to check)."""
    page.goto(url)
    page.locator("#login-name textarea, #login-name input").fill(name)
    page.locator("#login-password input").fill(password)
    page.locator("#login-button").click()


def paste(page, elem_id: str, text: str) -> None:
    """Replace the code editor's text with a paste (a paste event carrying `text`), no typing."""
    editor = page.locator(f"#{elem_id} .cm-content")
    editor.click()
    page.keyboard.press("ControlOrMeta+a")
    editor.evaluate(
        """(node, text) => {
            const data = new DataTransfer();
            data.setData("text/plain", text);
            const init = {clipboardData: data, bubbles: true, cancelable: true};
            node.dispatchEvent(new ClipboardEvent("paste", init));
        }""",
        text,
    )


def choose_option(page, elem_id: str, option: str) -> None:
    """Pick `option` in a Gradio dropdown."""
    page.locator(f"#{elem_id} input").click()
    page.get_by_role("option", name=option, exact=True).click()


@needs_browser
def test_reload_recovers_a_checked_tampering(app, critic) -> None:
    """Paste, mark, describe, check (button disabled, progress while the critic searches, three clicks run
    one check), reload: the Tamper tab comes back with the code, lines, description and the verdict, and
    Submit takes the stored check without checking again."""
    url, engine = app
    with browser() as chromium:
        page = chromium.new_context(viewport=VIEWPORT).new_page()
        log_in(page, url, "ann1")
        expect(page.locator("#home-progress")).to_contain_text("Tamper: 0 done, 3 left")
        open_tab(page, "Tamper")
        expect(page.locator("#tamper-info")).to_contain_text(re.compile(r"Sample \d+ ·"))
        expect(page.locator("#tamper-progress")).to_contain_text("0 done, 3 left")
        with Session(engine) as session:
            sample = store.next_tamper_sample(session, user(engine, "ann1"))
        code = tampered(sample.code)

        # A paste alone (no typing) is saved: a reload brings it back.
        paste(page, "tamper-code", code)
        expect(page.locator("#tamper-draft-status")).to_contain_text("Draft saved")
        page.reload()
        expect(page.locator("#tamper-code .cm-content")).to_contain_text("range(len(xs) - 1)")

        fill(page, "tamper-description", DESCRIPTION)
        button = page.locator("#tamper-check")
        status = page.locator("#tamper-status")
        # A refused check's message goes as the next check starts (issue 26, item 16).
        fill(page, "tamper-bug-lines", "99")
        button.click()
        expect(status).to_contain_text("bug line 99 is not a line of the code")
        fill(page, "tamper-bug-lines", ", ".join(map(str, BUG_LINES)))
        button.click(click_count=3)
        expect(button).to_be_disabled()
        expect(button).to_have_text("Checking…")
        # While the check still runs (the button disabled, no verdict yet), the old refusal is gone.
        page.wait_for_function(
            """() => document.querySelector('#tamper-check').disabled
                && !document.querySelector('#tamper-status').innerText.includes('bug line 99')
                && !document.querySelector('#tamper-status').innerText.includes('Checked')""",
            timeout=30_000,
        )
        expect(page.get_by_text("the critic is reviewing the code").first).to_be_visible()
        shot(page, "annotation-tamper-checking.png")
        result = page.locator("#tamper-check-result")
        expect(result).to_contain_text("The critic's critique")
        expect(result).to_contain_text("Not adversarial")
        expect(button).to_be_enabled()
        expect(button).to_have_text("Check against critic")
        page.wait_for_timeout(2 * SlowFixedCritic.SEARCH_S * 1000)
        assert critic.searches == 1  # one check, however often the button was clicked

        page.reload()
        expect(page.locator("#who")).to_contain_text("Logged in as ann1")
        expect(page.locator("#tamper-tab-button")).to_have_attribute("aria-selected", "true")
        expect(page.locator("#tamper-code .cm-content")).to_contain_text("range(len(xs) - 1)")
        expect(page.locator("#tamper-bug-lines input, #tamper-bug-lines textarea")).to_have_value("3")
        expect(page.locator("#tamper-description textarea")).to_have_value(DESCRIPTION)
        expect(result).to_contain_text("Not adversarial")
        expect(result).to_contain_text("The critic's critique")
        expect(page.locator("#tamper-draft-status")).to_contain_text("with its check against the critic")
        shot(page, "annotation-tamper-restored.png")
        assert_readable(page, "the Tamper tab")

        page.locator("#tamper-submit").click()
        expect(page.locator("#tamper-status")).to_contain_text("Submitted tampering")
        expect(page.locator("#tamper-progress")).to_contain_text("1 done, 2 left")
    assert critic.searches == 1  # submitted on the stored check
    with Session(engine) as session:
        (stored,) = session.exec(select(Tampering)).all()
    assert stored.code.rstrip("\n") == code.rstrip("\n")  # the editor keeps no trailing newline
    assert stored.bug_lines == BUG_LINES and stored.caught == 1


@needs_browser
def test_tamper_skip_opens_the_next_sample(app) -> None:
    """Skip gives the sample up and opens the next; the progress count follows."""
    url, engine = app
    with browser() as chromium:
        page = chromium.new_context(viewport=VIEWPORT).new_page()
        log_in(page, url, "ann1")
        open_tab(page, "Tamper")
        info = page.locator("#tamper-info")
        expect(info).to_contain_text("Sample 1")
        page.locator("#tamper-skip").click()
        expect(page.locator("#tamper-status")).to_contain_text("Skipped sample 1")
        expect(info).to_contain_text("Sample 2")
        expect(page.locator("#tamper-progress")).to_contain_text("0 done, 2 left")
    assert assignments(engine, "ann1") == [("tamper", "open"), ("tamper", "skipped")]


@needs_browser
def test_admin_manages_users(app) -> None:
    """Add a user, reset their password, change their role, disable and re-enable them; an admin gets a
    compare task only after opting in."""
    url, engine = app
    tamper_next(engine, user(engine, "ann1"))  # a tampering the admin could rate
    first, second = "first password", "second password"
    with browser() as chromium:
        admin = chromium.new_context(viewport=VIEWPORT).new_page()
        log_in(admin, url, "admin")
        open_tab(admin, "Compare")
        expect(admin.locator("#compare-info")).to_contain_text("No comparison is waiting for you")

        open_tab(admin, "Admin")
        status = admin.locator("#admin-users-status")
        fill(admin, "admin-new-name", "carol")
        fill(admin, "admin-new-password", "short")
        admin.locator("#admin-add-user").click()
        expect(status).to_contain_text("password must be at least 8 characters")
        fill(admin, "admin-new-password", first)
        admin.locator("#admin-add-user").click()
        expect(status).to_contain_text("Added annotator carol")
        expect(admin.locator("#admin-accounts")).to_contain_text("carol")
        assert_readable(admin, "the Admin tab")

        choose_option(admin, "admin-member", "carol")
        fill(admin, "admin-member-password", second)
        admin.locator("#admin-reset-password").click()
        expect(status).to_contain_text("New password set for carol")

        carol = chromium.new_context(viewport=VIEWPORT).new_page()
        try_login(carol, url, "carol", first)
        expect(carol.locator("#login-status")).to_contain_text(WRONG_LOGIN)
        try_login(carol, url, "carol", second)
        expect(carol.locator("#who")).to_contain_text("Logged in as carol (annotator)")

        choose_option(admin, "admin-member-role", "admin")
        admin.locator("#admin-set-role").click()
        expect(status).to_contain_text("carol is now an admin")
        try_login(carol, url, "carol", second)  # the role change ended carol's session
        expect(carol.locator("#who")).to_contain_text("Logged in as carol (admin)")

        admin.locator("#admin-disable").click()
        expect(status).to_contain_text("carol is disabled")
        carol.reload()  # a disabled user's session ends: back to the login panel
        expect(carol.locator("#login-button")).to_be_visible()
        try_login(carol, url, "carol", first)
        expect(carol.locator("#login-status")).to_contain_text(WRONG_LOGIN)  # no hint that carol exists
        try_login(carol, url, "carol", second)  # only her right password hears why
        expect(carol.locator("#login-status")).to_contain_text("this account is disabled")
        admin.locator("#admin-enable").click()
        expect(status).to_contain_text("carol is enabled again")
        try_login(carol, url, "carol", second)
        expect(carol.locator("#who")).to_contain_text("Logged in as carol (admin)")

        choose_option(admin, "admin-member", "admin")
        admin.locator("#admin-opt-in").click()
        expect(status).to_contain_text("admin is given rating and writing tasks")
        shot(admin, "annotation-admin-users.png")
        open_tab(admin, "Compare")  # the tab claims a task now
        expect(admin.locator("#compare-info")).to_contain_text(re.compile(r"Task \d+ ·"))
    with Session(engine) as session:
        carol_row = session.exec(select(User).where(User.name == "carol")).one()
        assert (carol_row.role, carol_row.disabled) == ("admin", False)
    assert ("compare", "open") in assignments(engine, "admin")


@needs_browser
def test_admin_settings_refuse_bad_input_and_export(app, tmp_path) -> None:
    """Overlap 0, -1, 2.5 and "abc" are refused in the status line (no "Error" badge) and the stored
    overlap stays shown; a non-empty export folder is refused; the zip download holds the dataset."""
    from datasets import load_from_disk

    url, engine = app
    tamper_next(engine, user(engine, "ann1"))
    rate_task(engine, user(engine, "ann2"), [7, 1])  # every split of the export has rows
    with browser() as chromium:
        page = chromium.new_context(viewport=VIEWPORT, accept_downloads=True).new_page()
        log_in(page, url, "admin")
        open_tab(page, "Admin")
        status = page.locator("#admin-status")
        overlap = page.locator("#admin-overlap input, #admin-overlap textarea")
        expect(overlap).to_have_value(str(store.DEFAULT_OVERLAP))
        expect(page.locator("#admin-samples")).to_contain_text("3 in all · 1 tampered")
        expect(page.locator("#admin-origins")).to_contain_text("reference")
        for typed, shown in (("0", "0"), ("-1", "-1"), ("2.5", "2.5"), ("abc", "'abc'")):
            overlap.fill(typed)
            page.locator("#admin-set-overlap").click()
            expect(status).to_contain_text(
                f"overlap must be a whole number from 1 to {store.MAX_OVERLAP}, got {shown}"
            )
            expect(overlap).to_have_value(str(store.DEFAULT_OVERLAP))  # the stored one
            expect(page.get_by_text(re.compile(r"^\s*Error\s*$"))).to_have_count(0)
        overlap.fill("3")
        page.locator("#admin-set-overlap").click()
        expect(status).to_contain_text("Overlap set to 3")
        fill(page, "admin-writers", "9")
        page.locator("#admin-set-writers").click()
        expect(status).to_contain_text(f"writers must be a whole number from 0 to {store.MAX_WRITERS}, got 9")
        fill(page, "admin-ttl", "0")
        page.locator("#admin-set-ttl").click()
        expect(status).to_contain_text("the assignment expiry must be a number of hours above 0")
        fill(page, "admin-ttl", "12")
        page.locator("#admin-set-ttl").click()
        expect(status).to_contain_text("expire after 12 hours")

        full = tmp_path / "full"
        full.mkdir()
        (full / "keep.txt").write_text("an earlier export")
        fill(page, "admin-export-dir", str(full))
        page.locator("#admin-export").click()
        expect(status).to_contain_text("exists and is not empty")
        fill(page, "admin-export-dir", "relative/folder")
        page.locator("#admin-export").click()
        expect(status).to_contain_text("give an absolute path")

        page.locator("#admin-zip").click()
        expect(status).to_contain_text("Zip ready")
        with page.expect_download(timeout=TIMEOUT_MS) as download:
            page.locator("#admin-download").click()
        archive = tmp_path / "download.zip"
        download.value.save_as(archive)
        shot(page, "annotation-admin-settings.png")
    with Session(engine) as session:
        assert store.get_overlap(session) == 3 and store.get_assignment_ttl(session) == 12
    assert sorted(p.name for p in full.iterdir()) == ["keep.txt"]
    with zipfile.ZipFile(archive) as zipped:
        zipped.extractall(tmp_path / "unzipped")
    (folder,) = (tmp_path / "unzipped").iterdir()
    dataset = load_from_disk(str(folder))
    assert dataset["tampering"].num_rows == 1 and dataset["ratings"].num_rows == store.CRITIQUES_PER_TASK
    assert dataset["preferences"].num_rows == 1


@needs_browser
def test_login_claims_nothing_and_lands_on_the_last_tab(app) -> None:
    """Logging in lands on Home and claims no task; a user who last used Compare lands there after a
    reload, with their task, and still holds no sample."""
    url, engine = app
    tamper_next(engine, user(engine, "ann2"))  # a tampering ann1 can rate
    with browser() as chromium:
        admin = chromium.new_context(viewport=VIEWPORT).new_page()
        admin.goto(url)
        expect(admin.locator("#login-button")).to_be_visible()
        assert_readable(admin, "the login page")
        log_in(admin, url, "admin")
        expect(admin.locator("#home-tab-button")).to_have_attribute("aria-selected", "true")
        assert_readable(admin, "the Home tab")
        page = chromium.new_context(viewport=VIEWPORT).new_page()
        log_in(page, url, "ann1")
        expect(page.locator("#home-tab-button")).to_have_attribute("aria-selected", "true")
        expect(page.locator("#home-progress")).to_contain_text("Rate: 0 done, 1 left")
        assert assignments(engine, "ann1") == [] and assignments(engine, "admin") == []

        open_tab(page, "Compare")
        expect(page.locator("#compare-info")).to_contain_text(re.compile(r"Task \d+ ·"))
        expect(page.locator("#compare-progress")).to_contain_text("0 done, 1 left")
        page.reload()
        expect(page.locator("#who")).to_contain_text("Logged in as ann1")
        expect(page.locator("#compare-tab-button")).to_have_attribute("aria-selected", "true")
        expect(page.locator("#compare-info")).to_contain_text(re.compile(r"Task \d+ ·"))
        shot(page, "annotation-landing-compare.png")

        page.locator("#logout").click()  # the next login on this browser lands on Home
        expect(page.locator("#login-button")).to_be_visible()
        log_in(page, url, "ann1")
        expect(page.locator("#home-tab-button")).to_have_attribute("aria-selected", "true")
    assert assignments(engine, "ann1") == [("compare", "open")]  # never a sample: Tamper was not opened


def test_a_late_autosave_or_skip_never_lands_on_the_next_sample(annotation_engine, tmp_path) -> None:
    """Issue 26, item 9, without a browser: the page's autosave and Skip of sample A are sent, then
    Submit of A runs first and opens sample B (a slow server). The late requests carry A's form; the
    server states already say B. Neither may touch B: no draft of A's code under B, B not skipped."""
    from critic.annotation_app.ui import AnnotationUI

    engine = annotation_engine
    _, alice, _, _ = make_team(engine, tmp_path / "src", samples=3)
    ui = AnnotationUI(engine, lambda: FixedCritic())
    tab = ui.tamper
    with Session(engine) as session:
        token = store.login(session, "alice", PASSWORD)
    page = tab.open_sample(token) | {ui.ctx.token: token}
    first = page[tab.sample]["id"]
    code = tampered(page[tab.code])
    page |= {tab.code: code, tab.bug_lines: "3", tab.description: DESCRIPTION}
    with Session(engine) as session:
        store.check_sample(session, alice, lambda: FixedCritic(), first, code, BUG_LINES, DESCRIPTION)
    server = dict(page)
    server |= fire(ui, tab.submit_button, page, server)
    second = server[tab.sample]["id"]
    assert second != first and "Submitted tampering" in server[tab.tamper_status]

    fire(ui, tab.tamper_timer, page, server, "tick")  # the autosave of A's form, run after Submit
    with Session(engine) as session:
        assert session.get(Draft, (alice.id, "tamper", second)) is None
    skipped = fire(ui, tab.skip_button, page, server)  # Skip clicked while A was still on the page
    assert tab.sample not in skipped  # nothing was skipped, no other sample opened
    assert ("tamper", "open") in assignments(engine, "alice")
    reopened = tab.open_sample(token)
    assert reopened[tab.sample]["id"] == second
    assert reopened[tab.code] != code and reopened[tab.tamper_draft] == ""  # no "Draft restored"
