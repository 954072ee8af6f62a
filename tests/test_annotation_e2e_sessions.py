"""Sessions, login throttling and the audit log in the annotation UI.

Handlers called directly: a request whose login no longer holds returns the page to the login form
(wherever it came from), the same user's next login resumes the page, and the Admin tab shows the audit
log, its CSV and the session limits. In a real browser, on a clock the test moves (`db.set_clock`): a
disabled user's next action lands on the login form; an idle session expires with its message and the
unsaved form becomes the draft after the next login; the 6th rapid failed login shows the wait.
"""

from __future__ import annotations

import csv
import io
import time

import pytest
from annotation_helpers import DESCRIPTION, handler_for, make_team, seed_samples
from browser import PASSWORD, TIMEOUT_MS, browser, expect, fill, log_in, needs_browser, serve_app
from sqlmodel import Session, select

from critic.annotation_app import audit, store
from critic.annotation_app.db import AuditEvent, Draft, User
from critic.annotation_app.ui import AnnotationUI

EXPIRED = "your session expired: log in again"
IDLE_MINUTES = 120


def login(engine, name: str) -> str:
    with Session(engine) as session:
        return store.login(session, name, PASSWORD, client="10.0.0.7")


def admin_of(engine) -> User:
    with Session(engine) as session:
        return store.authenticate(session, "admin", PASSWORD)


# --- handlers called directly ---------------------------------------------------------------------


def test_an_ended_session_returns_the_page_to_the_login_form_and_resumes_it(
    annotation_engine, tmp_path, clock
):
    engine = annotation_engine
    make_team(engine, tmp_path / "src")
    ui = AnnotationUI(engine, lambda: None)
    token = login(engine, "alice")
    entered = ui.enter(token, "tamper")
    sample = entered[ui.tamper.sample]
    assert entered[ui.shown_user] == "alice" and sample is not None

    # Every tab's guarded handler now also signals the shell, and nothing else does.
    save = handler_for(ui, ui.tamper.save_button)
    assert ui.ended in save.outputs and ui.ended not in handler_for(ui, ui.logout_button).outputs
    clock.advance(minutes=IDLE_MINUTES + 2)
    typed = "typed after the last save"
    result = save.fn(token, sample, None, "x = 1\n", "1", typed, sample["id"])
    assert set(result) == {ui.ended} and result[ui.ended][0] == EXPIRED
    again = save.fn(token, sample, None, "x = 1\n", "1", typed, sample["id"])
    assert again[ui.ended][1] != result[ui.ended][1]  # a new value: the state's change fires again

    ended = ui.session_ended(result[ui.ended], "alice", None)
    assert ended[ui.login_panel].visible and not ended[ui.app_panel].visible
    assert ended[ui.login_status] == f"⚠ {EXPIRED}" and ended[ui.paused_for] == "alice"
    assert all(not ended[timer].active for timer in ui._timers)
    late = ui.session_ended(again[ui.ended], "alice", "alice")  # a second signal keeps the first reason
    assert ui.login_status not in late and late[ui.login_panel].visible

    # The same user logs in again: the page resumes as it was, its autosave on; nothing is cleared.
    resumed = ui.enter(login(engine, "alice"), "home", "alice")
    assert resumed[ui.app_panel].visible and resumed[ui.paused_for] is None
    assert all(resumed[timer].active for timer in ui._timers)
    assert ui.tamper.sample not in resumed and ui.tabs not in resumed
    # Someone else logs in on that page: the previous user's work is dropped as after a logout.
    bob = login(engine, "bob")
    other = ui.enter(bob, None, "alice")
    assert other[ui.tamper.sample] is None and other[ui.shown_user] == "bob"
    # A signal of alice's request, sent before bob logged in and handled after: bob stays logged in.
    assert ui.session_ended(again[ui.ended], "bob", None, bob) == {}

    # A reload with the expired token says why the form is back.
    stale = login(engine, "carol")
    clock.advance(hours=25)
    reloaded = ui.enter(stale, None)
    assert reloaded[ui.login_panel].visible and reloaded[ui.login_status] == f"⚠ {EXPIRED}"


def test_login_passes_the_client_address_and_shows_the_lock(annotation_engine, tmp_path, clock):
    engine = annotation_engine
    make_team(engine, tmp_path / "src")
    ui = AnnotationUI(engine, lambda: None)
    login_fn = handler_for(ui, ui.login_button).fn
    request = type("Request", (), {"client": type("Client", (), {"host": "192.0.2.9"})()})()
    tries = [login_fn("alice", "wrong password", None, None, None, request) for _ in range(6)]
    statuses = [answer[ui.login_status] for answer in tries]
    assert statuses[:5] == ["⚠ wrong user name or password"] * 5
    assert statuses[5] == "⚠ too many failed logins: try again in 30 s"
    with Session(engine) as session:
        clients = {
            e.client for e in session.exec(select(AuditEvent).where(AuditEvent.action == "login_failed"))
        }
    assert clients == {"192.0.2.9"}


def test_admin_tab_shows_the_audit_log_and_sets_session_limits(annotation_engine, tmp_path, clock):
    engine = annotation_engine
    make_team(engine, tmp_path / "src")
    ui = AnnotationUI(engine, lambda: None)
    token = login(engine, "admin")
    clock.advance(seconds=1)
    login(engine, "alice")
    view = ui.admin.admin_refresh_view(token)
    assert (view[ui.admin.idle], view[ui.admin.lifetime]) == ("120", "24")
    rows = view[ui.admin.audit_table].to_dict("records")
    assert [(r["action"], r["target"]) for r in rows[:2]] == [("login", "alice"), ("login", "admin")]
    assert rows[0]["client"] == "10.0.0.7"

    refused = ui.admin.set_session_limits(token, "600", "2")  # idle longer than the lifetime
    assert "cannot be longer" in refused[ui.admin.admin_status]
    assert (refused[ui.admin.idle], refused[ui.admin.lifetime]) == ("120", "24")
    done = ui.admin.set_session_limits(token, "30", "8")
    assert done[ui.admin.admin_status].startswith("✓") and (done[ui.admin.idle], done[ui.admin.lifetime]) == (
        "30",
        "8",
    )
    with Session(engine) as session:
        assert store.get_session_limits(session) == (30.0, 8.0)
    assert done[ui.admin.audit_table].to_dict("records")[0]["action"] == "set_session_limits"

    ready = ui.admin.prepare_audit_csv(token)
    path = ready[ui.admin.audit_csv_path]
    with open(path, encoding="utf-8") as f:
        exported = list(csv.DictReader(f))
    assert [e["action"] for e in exported][-1] == "export"  # the export is itself in the log
    assert {"login", "set_session_limits"} <= {e["action"] for e in exported}
    assert ready[ui.admin.audit_download].visible
    with Session(engine) as session:
        assert exported == list(csv.DictReader(io.StringIO(audit.export_csv(session, None))))[: len(exported)]
    ui.admin.remove_zip(path)

    annotator = ui.admin.admin_refresh_view  # an annotator is refused by the store, in the status line
    with pytest.raises(store.Forbidden):
        annotator(login(engine, "bob"))


# --- in a browser ---------------------------------------------------------------------------------


@pytest.fixture
def app(tmp_path, clock):
    """The real app over a fresh SQLite file, on the test's clock: an admin, ann1 and ann2, 3 samples."""
    users = (("admin", "admin"), ("ann1", "annotator"), ("ann2", "annotator"))
    with serve_app(tmp_path, lambda: None, users) as (url, engine):
        seed_samples(engine, admin_of(engine), tmp_path / "src", 3)
        yield url, engine


def draft_description(engine, name: str) -> str | None:
    with Session(engine) as session:
        user = session.exec(select(User).where(User.name == name)).one()
        draft = session.exec(select(Draft).where(Draft.user_id == user.id, Draft.kind == "tamper")).first()
        return None if draft is None else draft.payload.get("description")


def wait_until(condition, what: str, seconds: float = TIMEOUT_MS / 1000) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, what
        time.sleep(0.2)


def open_tamper(page) -> None:
    page.get_by_role("tab", name="Tamper").click()
    expect(page.locator("#tamper-description textarea")).to_be_visible()


@needs_browser
@pytest.mark.slow  # a server, a proxy or a browser, or CLI processes
def test_disabling_a_user_ends_their_open_session(app) -> None:
    url, engine = app
    with browser() as chromium:
        page = chromium.new_page()
        log_in(page, url, "ann1")
        open_tamper(page)
        with Session(engine) as session:
            store.update_user(session, admin_of(engine), "ann1", disabled=True)
        page.get_by_role("tab", name="Home").click()  # their next action
        expect(page.locator("#login-panel")).to_be_visible()
        expect(page.locator("#app-panel")).to_be_hidden()
        expect(page.locator("#login-status")).to_contain_text("not logged in")
        page.locator("#login-name textarea, #login-name input").fill("ann1")
        page.locator("#login-password input").fill(PASSWORD)
        page.locator("#login-button").click()
        expect(page.locator("#login-status")).to_contain_text("this account is disabled")  # right password
        expect(page.locator("#app-panel")).to_be_hidden()

        # A name an older release accepted is shown as typed: no link, its controls written out.
        with Session(engine) as session:
            legacy = session.exec(select(User).where(User.name == "ann2")).one()
            legacy.name = "[phish](http://evil.example)\u202e"
            session.add(legacy)
            session.commit()
        page.locator("#login-name textarea, #login-name input").fill("[phish](http://evil.example)\u202e")
        page.locator("#login-button").click()
        who = page.locator("#who")
        expect(who).to_contain_text("Logged in as [phish](http://evil.example)\\u202e (annotator)")
        assert who.locator("a").count() == 0


@needs_browser
@pytest.mark.slow  # a server, a proxy or a browser, or CLI processes
def test_an_idle_session_expires_and_the_unsaved_draft_survives_the_next_login(app, clock) -> None:
    url, engine = app
    with browser() as chromium:
        page = chromium.new_page()
        log_in(page, url, "ann1")
        open_tamper(page)
        # Typed, then the clock runs past the idle limit before the autosave's tick: the save fails.
        fill(page, "tamper-description", DESCRIPTION)
        clock.advance(minutes=IDLE_MINUTES + 2)
        expect(page.locator("#login-panel")).to_be_visible()
        expect(page.locator("#login-status")).to_contain_text(EXPIRED)
        assert draft_description(engine, "ann1") != DESCRIPTION  # the work was not saved before
        page.locator("#login-name textarea, #login-name input").fill("ann1")
        page.locator("#login-password input").fill(PASSWORD)
        page.locator("#login-button").click()
        expect(page.locator("#who")).to_contain_text("Logged in as ann1")
        expect(page.locator("#tamper-description textarea")).to_have_value(DESCRIPTION)
        wait_until(lambda: draft_description(engine, "ann1") == DESCRIPTION, "the draft was not saved")
        page.reload()  # the draft is what a reload restores
        expect(page.locator("#tamper-description textarea")).to_have_value(DESCRIPTION)


@needs_browser
@pytest.mark.slow  # a server, a proxy or a browser, or CLI processes
def test_a_retry_clicked_while_the_refused_login_still_runs_is_not_lost(app) -> None:
    """The second click lands while the first try's password check and page update still run; Gradio's
    default for a click would drop it, and the user would wait on a page that never answers."""
    url, _ = app
    with browser() as chromium:
        page = chromium.new_page()
        page.goto(url)
        page.locator("#login-name textarea, #login-name input").fill("ann1")
        page.locator("#login-password input").fill("not the password")
        page.locator("#login-button").click()
        page.locator("#login-password input").fill(PASSWORD)
        page.locator("#login-button").click()
        expect(page.locator("#who")).to_contain_text("Logged in as ann1")


@needs_browser
@pytest.mark.slow  # a server, a proxy or a browser, or CLI processes
def test_the_sixth_rapid_failed_login_shows_the_wait(app) -> None:
    url, engine = app

    def failures() -> int:
        with Session(engine) as session:
            return len(session.exec(select(AuditEvent).where(AuditEvent.action == "login_failed")).all())

    with browser() as chromium:
        page = chromium.new_page()
        page.goto(url)
        page.locator("#login-name textarea, #login-name input").fill("ann2")
        for attempt in range(1, 7):
            page.locator("#login-password input").fill("not the password")
            page.locator("#login-button").click()
            wait_until(lambda n=attempt: failures() >= n, f"login attempt {attempt} was not recorded")
            if attempt < 6:
                expect(page.locator("#login-status")).to_contain_text("wrong user name or password")
        expect(page.locator("#login-status")).to_contain_text("too many failed logins: try again in 30 s")
        expect(page.locator("#app-panel")).to_be_hidden()
    with Session(engine) as session:
        events = session.exec(select(AuditEvent).where(AuditEvent.action == "login_failed")).all()
    assert {e.client for e in events} == {"127.0.0.1"}  # the UI passes the client address
