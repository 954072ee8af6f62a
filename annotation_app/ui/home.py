"""The Home tab, where a login lands by default: the user's own progress and what each task is. Opening it
claims nothing, so a login never takes a sample another annotator could have had."""

from __future__ import annotations

import gradio as gr

from critic.annotation_app import store
from critic.annotation_app.ui.base import QUICK, Context, guard
from critic.annotation_app.ui.render import progress_count, render_my_progress

HOME_HELP = """\
- **Tamper**: insert a subtle bug into working code and describe it; the critic should miss it.
- **Compare** (rate): score every critique of someone else's tampering on the rubric, blind to who wrote it.
- **Write**: write a critique of a tampered sample, on your own or starting from the critic's.

A task is given to you when you open its tab; unfinished work is saved as you type.
"""


class HomeTab:
    """The user's progress on every task kind (`store.my_progress`)."""

    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx
        gr.Markdown("### Your progress")
        self.my_progress = gr.Markdown(elem_id="home-progress")
        gr.Markdown(HOME_HELP)
        self.home_status = gr.Markdown(elem_id="home-status")

    def show_home(self, token: str | None) -> dict:
        if not token:  # the tab is shown again on logout: nobody's progress to show
            return {self.my_progress: ""}
        with self.ctx.user(token) as (session, user):
            mine = store.my_progress(session, user)
        return {self.my_progress: render_my_progress(mine), self.home_status: ""}

    @property
    def outputs(self) -> list:
        return [self.my_progress, self.home_status]

    def cleared(self) -> dict:
        return {self.my_progress: "", self.home_status: ""}

    def wire(self, tab: gr.Tab) -> None:
        tab.select(guard(self.home_status)(self.show_home), [self.ctx.token], self.outputs, **QUICK)


class ProgressLine:
    """One task kind's "3 done, 161 left" for the user, in a tab whose module does not show it itself;
    refreshed whenever the tab's open task (a `gr.State`) changes: a submit, a skip, a new claim."""

    def __init__(self, ctx: Context, kind: str, elem_id: str) -> None:
        self.ctx = ctx
        self.kind = kind
        self.line = gr.Markdown(elem_id=elem_id)

    def refresh(self, token: str | None) -> dict:
        if not token:
            return {self.line: ""}
        with self.ctx.user(token) as (session, user):
            counts = store.my_progress(session, user)[self.kind]
        return {self.line: f"Your progress: {progress_count(counts)}"}

    def wire(self, task: gr.State) -> None:
        task.change(
            guard(self.line)(self.refresh), [self.ctx.token], [self.line], show_progress="hidden", **QUICK
        )
