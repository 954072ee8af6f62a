"""The Admin tab: import code, set the overlap, watch progress and agreement, export the dataset."""

from __future__ import annotations

from typing import TYPE_CHECKING

import gradio as gr
from sqlmodel import Session

from critic.annotation_app import store
from critic.annotation_app.store import AppError
from critic.annotation_app.ui.base import QUICK, Context, guard
from critic.annotation_app.ui.render import table

if TYPE_CHECKING:
    from critic.annotation_app.db import User


class AdminTab:
    """Its components, and the handlers behind them; the store refuses every action to non-admins."""

    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx
        with gr.Row():
            with gr.Column():
                gr.Markdown("### Import code")
                self.import_source = gr.Textbox(
                    label="Source",
                    info="`humaneval`, a datasets directory, or a folder of Python files",
                    elem_id="admin-import-source",
                )
                self.import_button = gr.Button("Import", elem_id="admin-import")
            with gr.Column():
                gr.Markdown("### Overlap")
                self.overlap = gr.Number(
                    label="Raters per tampering",
                    value=store.DEFAULT_OVERLAP,
                    precision=0,
                    minimum=1,
                    maximum=store.MAX_OVERLAP,
                    elem_id="admin-overlap",
                )
                self.overlap_button = gr.Button("Set overlap", elem_id="admin-set-overlap")
            with gr.Column():
                gr.Markdown("### Export")
                self.export_dir = gr.Textbox(label="Directory on the server", elem_id="admin-export-dir")
                self.export_button = gr.Button("Export dataset", elem_id="admin-export")
        self.admin_status = gr.Markdown(elem_id="admin-status")
        with gr.Row():
            gr.Markdown("### Progress")
            self.admin_refresh = gr.Button("Refresh", size="sm", scale=0, elem_id="admin-refresh")
        self.agreement = gr.Markdown(elem_id="admin-agreement")
        self.users_table = gr.Dataframe(label="Annotators", interactive=False, elem_id="admin-users")
        self.tasks_table = gr.Dataframe(label="Tasks", interactive=False, elem_id="admin-tasks")

    def _admin_view(self, session: Session, user: User) -> dict:
        progress = store.progress(session, user)
        agreement = store.agreement(session, user)

        def show(value: float | None) -> str:
            return "n/a" if value is None else f"{value:.3f}"

        metric = agreement.get("metric", "ordinal")
        return {
            self.users_table: table(progress["users"]),
            self.tasks_table: table(progress["tasks"]),
            self.overlap: progress.get("overlap", self.overlap.value),
            self.agreement: (
                f"Krippendorff's α ({metric}): overall **{show(agreement['overall'])}**, "
                f"CBI **{show(agreement['cbi'])}** ({agreement['units']} critiques rated by 2+ annotators)"
            ),
        }

    def admin_refresh_view(self, token: str | None) -> dict:
        with self.ctx.user(token) as (session, user):
            return self._admin_view(session, user)

    def import_code(self, token: str | None, source: str) -> dict:
        with self.ctx.user(token) as (session, user):
            added = store.import_samples(session, user, source)
            return self._admin_view(session, user) | {self.admin_status: f"✓ Imported {added} new samples."}

    def set_overlap(self, token: str | None, overlap: float | None) -> dict:
        # A whole float (the number box's 3.0) is the number of raters; anything else, the store refuses.
        if isinstance(overlap, float) and overlap.is_integer():
            overlap = int(overlap)
        with self.ctx.user(token) as (session, user):
            store.set_overlap(session, user, overlap)
            return self._admin_view(session, user) | {self.admin_status: f"✓ Overlap set to {overlap}."}

    def export(self, token: str | None, directory: str) -> dict:
        if not directory.strip():
            raise AppError("name a directory on the server to export to")
        directory = directory.strip()
        with self.ctx.user(token) as (session, user):
            dataset = store.export_dataset(session, user)
        try:
            dataset.save_to_disk(directory)
        except OSError as err:  # a path the server cannot write: the admin's typo, not a crash
            raise AppError(f"cannot write {directory}: {err.strerror or err}") from None
        counts = ", ".join(f"{split} {split_rows.num_rows}" for split, split_rows in dataset.items())
        return {self.admin_status: f"✓ Exported to `{directory}`: {counts} rows."}

    @property
    def outputs(self) -> list:
        return [self.users_table, self.tasks_table, self.overlap, self.agreement, self.admin_status]

    def cleared(self) -> dict:
        return {self.users_table: None, self.tasks_table: None}

    def wire(self, tab: gr.Tab) -> None:
        token = self.ctx.token
        admin = guard(self.admin_status)
        tab.select(admin(self.admin_refresh_view), [token], self.outputs, **QUICK)
        self.admin_refresh.click(admin(self.admin_refresh_view), [token], self.outputs, **QUICK)
        self.import_button.click(admin(self.import_code), [token, self.import_source], self.outputs)
        self.overlap_button.click(admin(self.set_overlap), [token, self.overlap], self.outputs, **QUICK)
        self.export_button.click(admin(self.export), [token, self.export_dir], self.outputs)
