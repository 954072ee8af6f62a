"""The annotation UI's shell: login, the tabs, logout. Each tab lives in its own module.

Every handler is a thin call into `critic.annotation_app.store`, which enforces the rules (roles,
validation, queues), so the UI holds no rule of its own beyond reading form fields. Handlers return dicts
of component updates: an `AppError` becomes a one-line message in the tab's status line (and a toast),
leaving every other field as it was. The login token lives in the browser's localStorage
(`gr.BrowserState`), so a page reload keeps the user logged in; every request re-resolves it to a user.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import gradio as gr
from sqlalchemy.engine import Engine
from sqlmodel import Session

from critic.annotation_app import store
from critic.annotation_app.store import AppError
from critic.annotation_app.ui.admin import AdminTab
from critic.annotation_app.ui.base import QUICK, Context, guard
from critic.annotation_app.ui.compare import CompareTab
from critic.annotation_app.ui.tamper import TamperTab


class AnnotationUI:
    """The Blocks, the login panel and the tabs; build with `build_ui`."""

    def __init__(self, engine: Engine, critic_factory: Callable[[], Any]) -> None:
        with gr.Blocks(title="critic annotation", fill_width=True) as self.blocks:
            token = gr.BrowserState(None, storage_key="critic-annotation-token")
            self.ctx = Context(engine, critic_factory, token)
            self._login_panel()
            with gr.Column(visible=False, elem_id="app-panel") as self.app_panel:
                with gr.Row(equal_height=True):
                    self.who = gr.Markdown(elem_id="who")
                    self.logout_button = gr.Button("Log out", elem_id="logout", size="sm", scale=0)
                with gr.Tabs(elem_id="tabs") as self.tabs:
                    with gr.Tab("Tamper", id="tamper", elem_id="tamper-tab") as self.tamper_tab:
                        self.tamper = TamperTab(self.ctx)
                    with gr.Tab("Compare", id="compare", elem_id="compare-tab") as self.compare_tab:
                        self.compare = CompareTab(self.ctx)
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

    def do_login(self, name: str, password: str) -> dict:
        with Session(self.ctx.engine) as session:
            token = store.login(session, name, password)
        return {self.token: token, self.password: "", self.login_status: ""}

    def do_logout(self, token: str | None) -> dict:
        if token:
            with Session(self.ctx.engine) as session:
                store.logout(session, token)
        # Nothing of this user's stays on the page for the next one to see.
        return (
            {
                self.token: None,
                self.login_panel: gr.Column(visible=True),
                self.app_panel: gr.Column(visible=False),
                self.admin_tab: gr.Tab(visible=False),
            }
            | self.tamper.cleared()
            | self.compare.cleared()
            | self.admin.cleared()
        )

    def enter(self, token: str | None) -> dict:
        """Show the app for a valid token (after login or a page reload) on the Tamper tab.

        Only the tamper sample is opened here; the compare task is claimed when the Compare tab is
        first shown, so annotators who only tamper never hold a rating slot another annotator needs.
        The previous user's task, if this page had one, is dropped.
        """
        if not token:
            return {self.login_panel: gr.Column(visible=True), self.app_panel: gr.Column(visible=False)}
        with Session(self.ctx.engine) as session:
            try:
                user = store.user_for_token(session, token)
            except AppError:  # logged out elsewhere, or a database that was reset
                return {self.token: None, self.login_panel: gr.Column(visible=True)}
            return (
                self.tamper._open_sample(session, user)
                | self.compare.cleared()
                | {
                    self.login_panel: gr.Column(visible=False),
                    self.app_panel: gr.Column(visible=True),
                    self.tabs: gr.Tabs(selected="tamper"),
                    self.admin_tab: gr.Tab(visible=user.role == "admin"),
                    self.who: f"Logged in as **{user.name}** ({user.role})",
                }
            )

    # --- events -----------------------------------------------------------------------------------

    def _wire(self) -> None:
        app_outputs = [self.login_panel, self.app_panel, self.tabs, self.admin_tab, self.who, self.token]
        enter_outputs = app_outputs + self.tamper.outputs + self.compare.outputs
        login = guard(self.login_status)(self.do_login)
        for trigger in (self.login_button.click, self.password.submit):
            trigger(
                login, [self.name, self.password], [self.token, self.password, self.login_status], **QUICK
            ).then(self.enter, [self.token], enter_outputs, **QUICK)
        self.blocks.load(self.enter, [self.token], enter_outputs, **QUICK)
        self.logout_button.click(
            self.do_logout,
            [self.token],
            [*app_outputs, *self.tamper.outputs, *self.compare.outputs, *self.admin.outputs],
            **QUICK,
        )
        self.tamper.wire(self.tamper_tab)
        self.compare.wire(self.compare_tab)
        self.admin.wire(self.admin_tab)


def build_ui(engine: Engine, critic_factory: Callable[[], Any]) -> gr.Blocks:
    """The annotation UI over `engine`'s database; `critic_factory()` returns the (cached) critic that
    *Check against critic* runs, loaded on first use so the UI starts without a model."""
    return AnnotationUI(engine, critic_factory).blocks
