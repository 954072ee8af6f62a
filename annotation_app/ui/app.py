"""The annotation UI's shell: login, the tabs, logout. Each tab lives in its own module.

Every handler is a thin call into `critic.annotation_app.store`, which enforces the rules (roles,
validation, queues), so the UI holds no rule of its own beyond reading form fields. Handlers return dicts
of component updates: an `AppError` becomes a one-line message in the tab's status line (and a toast),
leaving every other field as it was. The login token lives in the browser's localStorage
(`gr.BrowserState`), so a page reload keeps the user logged in; every request re-resolves it to a user.
The last tab the user opened is kept there too, and a login or reload lands on it (or on Home). A task is
claimed only when its tab is opened, never by logging in.

A login that stops holding (expired, or ended by an admin) sends the page back to the login form with the
reason, wherever the user was (`end_sessions`); the tabs keep what the user had typed, and when the same
user logs in again the page resumes as it was and its autosave stores that work as the draft.
"""

from __future__ import annotations

import functools
import secrets
from collections.abc import Callable
from typing import Any

import gradio as gr
from sqlalchemy.engine import Engine
from sqlmodel import Session

from critic.annotation_app import store
from critic.annotation_app.auth import FIRST_ADMIN, SessionExpired, has_users
from critic.annotation_app.middleware import SESSION_COOKIE_JS
from critic.annotation_app.store import AppError
from critic.annotation_app.ui.admin import AdminTab
from critic.annotation_app.ui.base import QUICK, Context, SessionEnded, as_text, guard
from critic.annotation_app.ui.compare import CompareTab
from critic.annotation_app.ui.home import HomeTab, ProgressLine
from critic.annotation_app.ui.tamper import TamperTab
from critic.annotation_app.ui.write import WriteTab

TOKEN_KEY = "critic-annotation-token"
TAB_KEY = "critic-annotation-tab"
HOME = "home"
# Where a login or reload may land, by role: an admin lands on Home or Admin, so logging in never
# claims them a task; an annotator lands on the task tab they last used.
LANDINGS = {"admin": (HOME, "admin"), "annotator": (HOME, "tamper", "compare", "write")}
CACHE_S = 3600  # Gradio's copies of served files (export zips) are deleted after this long
FIRST_RUN = (
    "**No users yet.** Create the first admin on the server, then log in with that name and password:\n\n"
    f"```bash\n{FIRST_ADMIN}\n```"
)


def landing_tab(role: str, remembered: str | None) -> str:
    """The tab a login or reload shows: the remembered one where the role may land there, else Home."""
    return remembered if remembered in LANDINGS.get(role, (HOME,)) else HOME


class AnnotationUI:
    """The Blocks, the login panel and the tabs; build with `build_ui`."""

    def __init__(self, engine: Engine, critic_factory: Callable[[], Any]) -> None:
        with gr.Blocks(
            title="critic annotation", fill_width=True, delete_cache=(CACHE_S, CACHE_S)
        ) as self.blocks:
            token = gr.BrowserState(None, storage_key=TOKEN_KEY)
            self.last_tab = gr.BrowserState(None, storage_key=TAB_KEY)
            self.shown_user = gr.State(None)  # whose work the tabs show
            self.paused_for = gr.State(None)  # the user whose session ended with their work on the page
            self.ended = gr.State(None)  # (reason, nonce): set by any handler whose login stopped holding
            self.ctx = Context(engine, critic_factory, token)
            self._login_panel()
            with gr.Column(visible=False, elem_id="app-panel") as self.app_panel:
                with gr.Row(equal_height=True):
                    self.who = gr.Markdown(elem_id="who")
                    self.logout_button = gr.Button("Log out", elem_id="logout", size="sm", scale=0)
                with gr.Tabs(elem_id="tabs") as self.tabs:
                    with gr.Tab("Home", id=HOME, elem_id="home-tab") as self.home_tab:
                        self.home = HomeTab(self.ctx)
                    with gr.Tab("Tamper", id="tamper", elem_id="tamper-tab") as self.tamper_tab:
                        self.tamper = TamperTab(self.ctx)
                    with gr.Tab("Compare", id="compare", elem_id="compare-tab") as self.compare_tab:
                        self.compare_progress = ProgressLine(self.ctx, "compare", "compare-progress")
                        self.compare = CompareTab(self.ctx)
                    with gr.Tab("Write", id="write", elem_id="write-tab") as self.write_tab:
                        self.write = WriteTab(self.ctx)
                    with gr.Tab("Admin", id="admin", elem_id="admin-tab", visible=False) as self.admin_tab:
                        self.admin = AdminTab(self.ctx)
            self._wire()

    @property
    def token(self) -> gr.BrowserState:
        return self.ctx.token

    # --- login ------------------------------------------------------------------------------------

    def _login_panel(self) -> None:
        with gr.Column(elem_id="login-panel") as self.login_panel:
            gr.Markdown("## critic annotation\nLog in with the name and password your admin gave you.")
            with gr.Row():
                self.name = gr.Textbox(label="Name", elem_id="login-name", max_length=store.MAX_NAME)
                self.password = gr.Textbox(
                    label="Password", type="password", elem_id="login-password", max_length=1024
                )
            self.login_button = gr.Button("Log in", variant="primary", elem_id="login-button")
            self.login_status = gr.Markdown(elem_id="login-status")
            self.first_run = gr.Markdown(elem_id="login-first-run")  # FIRST_RUN, while nobody can log in

    def do_login(
        self,
        name: str,
        password: str,
        last_tab: str | None,
        paused_for: str | None,
        shown_user: str | None,
        request: gr.Request,
    ) -> dict:
        """Throttled per account and per client address (the proxy's X-Forwarded-For, when uvicorn
        trusts it); a lock answers with the wait in the login status. A login shows the app in the same
        answer (`enter`): as a separate step, a refused try's step could land after the next try's and
        show the login form again."""
        client = request.client.host if request is not None and request.client is not None else ""
        with Session(self.ctx.engine) as session:
            token = store.login(session, name, password, client=client or "")
        entered = self.enter(token, last_tab, paused_for, shown_user)
        return entered | {self.token: token, self.password: "", self.login_status: ""}

    def do_logout(self, token: str | None) -> dict:
        if token:
            with Session(self.ctx.engine) as session:
                store.logout(session, token)
        # Nothing of this user's stays on the page for the next one to see, nor decides where they land.
        # (A BrowserState keeps its last truthy value: None would leave the old tab there.)
        return self._cleared() | {
            self.token: None,
            self.shown_user: None,
            self.paused_for: None,
            self.last_tab: HOME,
            self.login_panel: gr.Column(visible=True),
            self.app_panel: gr.Column(visible=False),
            self.admin_tab: gr.Tab(visible=False),
            self.who: "",
            self.tabs: gr.Tabs(selected=HOME),
        }

    def _cleared(self) -> dict:
        """Every tab as before anyone logged in: no task claimed, no one's work or numbers shown."""
        return (
            self.home.cleared()
            | self.tamper.cleared()
            | self.compare.cleared()
            | self.write.cleared()
            | self.admin.cleared()
            | {self.compare_progress.line: ""}
        )

    def _openers(self) -> dict[str, Callable[[str], dict]]:
        """Per tab, what opening it does (its `.select` handler's work), for a login that lands there:
        a programmatic `gr.Tabs(selected=...)` does not reliably fire the tab's `.select`."""
        return {
            HOME: guard(self.home.home_status)(self.home.show_home),
            "tamper": guard(self.tamper.tamper_status)(self.tamper.open_sample),
            "compare": guard(self.compare.compare_status)(self.compare.open_task),
            "write": guard(self.write.write_status)(self.write.open_task),
            "admin": guard(self.admin.admin_status)(self.admin.admin_refresh_view),
        }

    def enter(
        self,
        token: str | None,
        last_tab: str | None = None,
        paused_for: str | None = None,
        shown_user: str | None = "",
    ) -> dict:
        """Show the app for a valid token (after login or a page reload) on the tab the user last opened
        (`landing_tab`), opening that tab's task as opening the tab would; no other task is claimed, so
        annotators never hold a sample or a rating slot they did not ask for. The previous user's
        work, if this page showed any, is dropped, unless it is this user's, left on the page when
        their session ended (`paused_for`): then the page resumes as it was, and the autosave timers
        store what they had typed as the draft. A page that shows nobody's work (`shown_user` None: just
        loaded, or logged out, which cleared it) is not cleared again: each cleared field fires its
        `.change` handlers, 23 round trips that made every login and reload seconds slower."""
        with Session(self.ctx.engine) as session:
            first_run = "" if has_users(session) else FIRST_RUN
        logged_out = {
            self.login_panel: gr.Column(visible=True),
            self.app_panel: gr.Column(visible=False),
            self.first_run: first_run,
        }
        if not token:
            return logged_out
        with Session(self.ctx.engine) as session:
            try:
                user = store.user_for_token(session, token)
            except SessionExpired as err:  # a reload after the idle limit: say why the form is back
                return logged_out | {self.token: None, self.login_status: f"⚠ {err}"}
            except AppError:  # logged out elsewhere, disabled, or a database that was reset
                return logged_out | {self.token: None}
        shown = {
            self.login_panel: gr.Column(visible=False),
            self.app_panel: gr.Column(visible=True),
            self.admin_tab: gr.Tab(visible=user.role == "admin"),
            self.who: f"Logged in as **{as_text(user.name)}** ({user.role})",
            self.first_run: "",
            self.shown_user: user.name,
            self.paused_for: None,
        }
        if paused_for is not None and paused_for == user.name:
            return shown | {timer: gr.Timer(active=True) for timer in self._timers}
        landing = landing_tab(user.role, last_tab)
        cleared = {} if shown_user is None else self._cleared()
        return cleared | shown | {self.tabs: gr.Tabs(selected=landing)} | self._openers()[landing](token)

    @property
    def _timers(self) -> list[gr.Timer]:
        """The tabs' autosave timers: each saves its form as the draft if it changed, then stops."""
        return [self.tamper.tamper_timer, self.compare.compare_timer, self.write.write_timer]

    def session_ended(
        self,
        ended: tuple[str, str] | None,
        shown_user: str | None,
        paused: str | None,
        token: str | None = None,
    ) -> dict:
        """Back to the login form with the reason, the tabs left as they are (their autosave stopped,
        as it would only fail) and the user noted, so that their next login resumes the page. A
        second signal (a request already on its way) leaves the first reason in place, and one that
        arrives after a new login on the page (`token` holds) is of the old login: it changes nothing."""
        if not ended or self._holds(token):
            return {}
        updates = {
            self.login_panel: gr.Column(visible=True),
            self.app_panel: gr.Column(visible=False),
            self.token: None,
            **{timer: gr.Timer(active=False) for timer in self._timers},
        }
        if paused is not None:
            return updates
        return updates | {self.login_status: f"⚠ {ended[0]}", self.paused_for: shown_user}

    def _holds(self, token: str | None) -> bool:
        with Session(self.ctx.engine) as session:
            return store.role_for_token(session, token) is not None

    def end_sessions(self) -> None:
        """Make every guarded handler of every tab (`base.guard`) send the page to the login form when
        its login no longer holds (`SessionEnded`): each also outputs `ended`, whose change shows the
        form. Done here, once all the tabs are wired, so no tab has to list the shell's components."""
        for block_fn in self.blocks.fns.values():
            if getattr(block_fn.fn, "session_guarded", False) and self.ended not in block_fn.outputs:
                block_fn.fn = self._ending(block_fn.fn)
                block_fn.outputs = [*block_fn.outputs, self.ended]
        self.ended.change(
            self.session_ended,
            [self.ended, self.shown_user, self.paused_for, self.token],
            [
                self.login_panel, self.app_panel, self.token, self.login_status, self.paused_for,
                *self._timers,
            ],
            **QUICK,
        )  # fmt: skip

    def _ending(self, handler: Callable[..., dict]) -> Callable[..., dict]:
        @functools.wraps(handler)
        def ending(*args: Any) -> dict:
            try:
                return handler(*args)
            except SessionEnded as err:  # a fresh value each time, so that `ended` changes
                return {self.ended: (str(err), secrets.token_hex(8))}

        return ending

    # --- events -----------------------------------------------------------------------------------

    def _wire(self) -> None:
        app_outputs = [
            self.login_panel, self.app_panel, self.tabs, self.admin_tab, self.who, self.token,
            self.shown_user, self.paused_for, self.login_status, self.first_run,
        ]  # fmt: skip
        every_tab = [
            *self.home.outputs,
            *self.tamper.outputs,
            *self.compare.outputs,
            self.compare_progress.line,
            *self.write.outputs,
            *self.admin.outputs,
        ]
        login = guard(self.login_status)(self.do_login)
        entering = [self.token, self.last_tab, self.paused_for, self.shown_user]
        # A click while the last try still runs waits for it and then counts (Gradio's default for a
        # click, "once", would drop it): a quick retry after a refusal is not lost.
        for trigger in (self.login_button.click, self.password.submit):
            trigger(
                login,
                [self.name, self.password, *entering[1:]],
                [self.password, *app_outputs, *every_tab],
                trigger_mode="always_last",
                **QUICK,
            )
        self.blocks.load(self.enter, entering, app_outputs + every_tab, **QUICK)
        # Downloads reach only an admin's session cookie (middleware.SessionGate): the page sets it.
        for trigger in (self.blocks.load, self.token.change):
            trigger(None, [self.token], None, js=SESSION_COOKIE_JS, **QUICK)
        self.logout_button.click(
            self.do_logout, [self.token], [*app_outputs, self.last_tab, *every_tab], **QUICK
        )
        for tab in self.tabs.children:  # remember the tab the user opens, for the next login or reload
            tab.select(lambda tab_id=tab.id: tab_id, None, self.last_tab, show_progress="hidden", **QUICK)
        self.home.wire(self.home_tab)
        self.tamper.wire(self.tamper_tab)
        self.compare.wire(self.compare_tab)
        self.compare_progress.wire(self.compare.task)
        self.write.wire(self.write_tab)
        self.admin.wire(self.admin_tab)
        self.end_sessions()


def build_ui(engine: Engine, critic_factory: Callable[[], Any]) -> gr.Blocks:
    """The annotation UI over `engine`'s database; `critic_factory()` returns the (cached) critic that
    *Check against critic* runs, loaded on first use so the UI starts without a model."""
    return AnnotationUI(engine, critic_factory).blocks
