"""The Admin tab: import code, settings (session limits included), users, progress and agreement, the
per-origin report, export, and the audit log (newest first, with a CSV download).

Every field is read as typed and handed to the store, whose one-line refusal lands in a status line: no
field has Gradio-side limits (a number box's own validation would show an "Error" badge instead).
"""

from __future__ import annotations

import json
import shutil
import tempfile
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

import gradio as gr
from sqlmodel import Session

from critic.annotation_app import audit, export, report, store, writing
from critic.annotation_app.store import AppError, Forbidden
from critic.annotation_app.ui.base import QUICK, Context, as_text, guard
from critic.annotation_app.ui.render import number_or_text, render_sample_counts, table

if TYPE_CHECKING:
    from critic.annotation_app.db import User

# Zips for browser downloads are built here (the system temp dir, which Gradio serves from), and removed
# as soon as Gradio has copied them into its cache.
ZIP_DIR = Path(tempfile.gettempdir()) / "critic-annotation-exports"
USER_COLUMNS = {"name": "name", "role": "role", "disabled": "disabled", "takes_tasks": "takes tasks"}
AUDIT_ROWS = 500  # the latest events the tab shows; the CSV holds them all


def _stored_settings(session: Session) -> dict[str, str]:
    """The settings as stored, as the fields show them."""
    return {
        "overlap": str(store.get_overlap(session)),
        "writers": str(writing.get_writers(session)),
        "ttl": f"{store.get_assignment_ttl(session):g}",
        **dict(zip(("idle", "lifetime"), (f"{v:g}" for v in store.get_session_limits(session)), strict=True)),
    }


def _audit_rows(session: Session, user: User) -> list[dict[str, Any]]:
    """The latest audit events, newest first, as the table shows them."""
    return [
        {
            "at": event["at"].replace("T", " ")[:19],
            "actor": event["actor"],
            "action": event["action"],
            "target": event["target"],
            "detail": json.dumps(event["detail"], sort_keys=True) if event["detail"] is not None else "",
            "client": event["client"],
        }
        for event in audit.events(session, user, limit=AUDIT_ROWS)
    ]


class AdminTab:
    """Its components, and the handlers behind them; the store refuses every action to non-admins."""

    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx
        self.zip_path = gr.State(None)  # the zip just built, removed once Gradio has cached it
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
                gr.Markdown("### Settings")
                with gr.Row(elem_classes="admin-field-row"):
                    self.overlap = gr.Textbox(
                        label="Raters per tampering",
                        info=f"1 to {store.MAX_OVERLAP}",
                        elem_id="admin-overlap",
                        max_lines=1,
                    )
                    self.overlap_button = gr.Button("Set", scale=0, elem_id="admin-set-overlap")
                with gr.Row(elem_classes="admin-field-row"):
                    self.writers = gr.Textbox(
                        label="Written critiques per tampering",
                        info=f"0 (no writing) to {store.MAX_WRITERS}",
                        elem_id="admin-writers",
                        max_lines=1,
                    )
                    self.writers_button = gr.Button("Set", scale=0, elem_id="admin-set-writers")
                with gr.Row(elem_classes="admin-field-row"):
                    self.ttl = gr.Textbox(
                        label="Assignment expiry (hours)",
                        info="a task left this long without activity goes back to the pool",
                        elem_id="admin-ttl",
                        max_lines=1,
                    )
                    self.ttl_button = gr.Button("Set", scale=0, elem_id="admin-set-ttl")
                with gr.Row(equal_height=True):
                    self.idle = gr.Textbox(
                        label="Session idle limit (minutes)",
                        info="a login unused this long ends",
                        elem_id="admin-idle",
                        max_lines=1,
                    )
                    self.lifetime = gr.Textbox(
                        label="Session lifetime (hours)",
                        info="a login ends this long after it began",
                        elem_id="admin-lifetime",
                        max_lines=1,
                    )
                    self.sessions_button = gr.Button("Set", scale=0, elem_id="admin-set-sessions")
            with gr.Column():
                gr.Markdown("### Export")
                self.export_dir = gr.Textbox(
                    label="Folder on the server",
                    info="an absolute path to a new or empty folder",
                    elem_id="admin-export-dir",
                )
                self.export_button = gr.Button("Export to the folder", elem_id="admin-export")
                self.zip_button = gr.Button("Prepare a zip to download", elem_id="admin-zip")
                self.download = gr.DownloadButton(
                    "Download the zip", visible=False, variant="primary", elem_id="admin-download"
                )
        self.admin_status = gr.Markdown(elem_id="admin-status")

        gr.Markdown("### Users")
        self.accounts = gr.Dataframe(label="Users", interactive=False, elem_id="admin-accounts")
        with gr.Row():
            with gr.Column():
                gr.Markdown("#### Add a user")
                self.new_name = gr.Textbox(label="Name", elem_id="admin-new-name", max_length=store.MAX_NAME)
                self.new_role = gr.Dropdown(
                    list(store.ROLES), value="annotator", label="Role", elem_id="admin-new-role"
                )
                self.new_password = gr.Textbox(
                    label="Password",
                    type="password",
                    info=f"at least {store.MIN_PASSWORD} characters",
                    elem_id="admin-new-password",
                    max_length=1024,
                )
                self.add_button = gr.Button("Add user", elem_id="admin-add-user")
            with gr.Column():
                gr.Markdown("#### Change a user")
                self.member = gr.Dropdown([], label="User", elem_id="admin-member")
                with gr.Row(elem_classes="admin-field-row"):
                    self.member_role = gr.Dropdown(
                        list(store.ROLES), label="Role", elem_id="admin-member-role"
                    )
                    self.role_button = gr.Button("Set role", scale=0, elem_id="admin-set-role")
                with gr.Row():
                    self.disable_button = gr.Button("Disable", elem_id="admin-disable")
                    self.enable_button = gr.Button("Enable", elem_id="admin-enable")
                    self.opt_in_button = gr.Button("Give rating and writing tasks", elem_id="admin-opt-in")
                    self.opt_out_button = gr.Button("No rating or writing tasks", elem_id="admin-opt-out")
                with gr.Row(elem_classes="admin-field-row"):
                    self.member_password = gr.Textbox(
                        label="New password",
                        type="password",
                        elem_id="admin-member-password",
                        max_length=1024,
                    )
                    self.password_button = gr.Button(
                        "Reset password", scale=0, elem_id="admin-reset-password"
                    )
        self.users_status = gr.Markdown(elem_id="admin-users-status")

        with gr.Row():
            gr.Markdown("### Progress")
            self.admin_refresh = gr.Button("Refresh", size="sm", scale=0, elem_id="admin-refresh")
        self.sample_counts = gr.Markdown(elem_id="admin-samples")
        self.agreement = gr.Markdown(elem_id="admin-agreement")
        self.users_table = gr.Dataframe(label="Annotators", interactive=False, elem_id="admin-users")
        self.tasks_table = gr.Dataframe(label="Tasks", interactive=False, elem_id="admin-tasks")
        self.origins = gr.Dataframe(
            label="Critiques by origin (mean rubric scores)", interactive=False, elem_id="admin-origins"
        )

        with gr.Row():
            gr.Markdown("### Audit log")
            self.audit_csv_button = gr.Button("Prepare CSV", size="sm", scale=0, elem_id="admin-audit-csv")
            self.audit_download = gr.DownloadButton(
                "Download the audit log", visible=False, size="sm", scale=0, elem_id="admin-audit-download"
            )
        self.audit_csv_path = gr.State(None)  # the CSV just written, removed once Gradio has cached it
        self.audit_table = gr.Dataframe(
            label=f"Admin actions and login attempts, newest first (the latest {AUDIT_ROWS})",
            interactive=False,
            elem_id="admin-audit",
        )

    # --- views ------------------------------------------------------------------------------------

    def _users_view(self, session: Session, user: User, chosen: str | None = None) -> dict:
        users = store.list_users(session, user)
        names = [u["name"] for u in users]
        rows = [{label: u[key] for key, label in USER_COLUMNS.items()} for u in users]
        return {
            self.accounts: table(rows),
            self.member: gr.Dropdown(
                choices=[(audit.visible(name), name) for name in names],
                value=chosen if chosen in names else None,
            ),
        }

    def _admin_view(self, session: Session, user: User) -> dict:
        progress = store.progress(session, user)
        agreement = store.agreement(session, user)
        origins = report.origin_report(session, user)
        settings = _stored_settings(session)

        def show(value: float | None) -> str:
            return "n/a" if value is None else f"{value:.3f}"

        metric = agreement.get("metric", "ordinal")
        return self._users_view(session, user) | {
            self.users_table: table(progress["users"]),
            self.tasks_table: table(progress["tasks"]),
            self.origins: table(origins),
            self.sample_counts: render_sample_counts(progress["samples"]),
            self.overlap: settings["overlap"],
            self.writers: settings["writers"],
            self.ttl: settings["ttl"],
            self.idle: settings["idle"],
            self.lifetime: settings["lifetime"],
            self.audit_table: table(_audit_rows(session, user)),
            self.agreement: (
                f"Krippendorff's α ({metric}): overall **{show(agreement['overall'])}**, "
                f"CBI **{show(agreement['cbi'])}** ({agreement['units']} critiques rated by 2+ annotators)"
            ),
        }

    def admin_refresh_view(self, token: str | None) -> dict:
        with self.ctx.user(token) as (session, user):
            return self._admin_view(session, user)

    # --- import and settings ----------------------------------------------------------------------

    def import_code(self, token: str | None, source: str) -> dict:
        with self.ctx.user(token) as (session, user):
            added = store.import_samples(session, user, source)
            return self._admin_view(session, user) | {self.admin_status: f"✓ Imported {added} new samples."}

    def _set(self, token: str | None, field: str, value: Any) -> dict:
        """Hand a setting to the store as typed (`number_or_text`). Refused: the store's message in the
        status line and the field showing the stored value again, so what is shown is what holds."""
        setters: dict[str, tuple[Callable[[Session, User, Any], None], str]] = {
            "overlap": (store.set_overlap, "Overlap set to {} raters per tampering."),
            "writers": (writing.set_writers, "Written critiques per tampering set to {}."),
            "ttl": (store.set_assignment_ttl, "Assignments now expire after {} hours without activity."),
        }
        setter, done = setters[field]
        component = {"overlap": self.overlap, "writers": self.writers, "ttl": self.ttl}[field]
        value = number_or_text(value)
        with self.ctx.user(token) as (session, user):
            try:
                setter(session, user, value)
            except Forbidden:
                raise
            except AppError as err:
                return {self.admin_status: f"⚠ {err}", component: _stored_settings(session)[field]}
            return self._admin_view(session, user) | {self.admin_status: "✓ " + done.format(value)}

    def set_overlap(self, token: str | None, overlap: Any) -> dict:
        return self._set(token, "overlap", overlap)

    def set_writers(self, token: str | None, writers: Any) -> dict:
        return self._set(token, "writers", writers)

    def set_ttl(self, token: str | None, hours: Any) -> dict:
        return self._set(token, "ttl", hours)

    def set_session_limits(self, token: str | None, idle_minutes: Any, lifetime_hours: Any) -> dict:
        """Both limits at once (the store checks them together: idle within the lifetime). Refused: the
        message, and both fields showing the stored values again."""
        idle, lifetime = number_or_text(idle_minutes), number_or_text(lifetime_hours)
        with self.ctx.user(token) as (session, user):
            try:
                store.set_session_limits(session, user, idle, lifetime)
            except Forbidden:
                raise
            except AppError as err:
                stored = _stored_settings(session)
                return {
                    self.admin_status: f"⚠ {err}",
                    self.idle: stored["idle"],
                    self.lifetime: stored["lifetime"],
                }
            done = f"✓ Sessions now end after {idle} minutes without use, or {lifetime} hours after login."
            return self._admin_view(session, user) | {self.admin_status: done}

    def prepare_audit_csv(self, token: str | None) -> dict:
        """The whole audit log as CSV for the Download button (`audit.export_csv`, which records the
        export itself); the table is refreshed to show that."""
        with self.ctx.user(token) as (session, user):
            text = audit.export_csv(session, user)
            rows = _audit_rows(session, user)
        ZIP_DIR.mkdir(parents=True, exist_ok=True)
        path = Path(tempfile.mkdtemp(dir=ZIP_DIR)) / "audit-log.csv"
        path.write_text(text, encoding="utf-8")
        return {
            self.audit_download: gr.DownloadButton(value=str(path), visible=True),
            self.audit_csv_path: str(path),
            self.audit_table: table(rows),
            self.admin_status: "✓ Audit log ready: click *Download the audit log*.",
        }

    # --- users ------------------------------------------------------------------------------------

    def add_user(self, token: str | None, name: str, role: str | None, password: str) -> dict:
        with self.ctx.user(token) as (session, user):
            added = store.add_user(session, user, name, role or "", password)
            return self._users_view(session, user, added.name) | {
                self.new_name: "",
                self.new_password: "",
                self.users_status: f"✓ Added {added.role} **{as_text(added.name)}**.",
            }

    def update_user(self, token: str | None, name: str | None, done: str, **change: Any) -> dict:
        """One change to the chosen user through `store.update_user`; `done` is the message, with the
        user's name for {}."""
        if not name:
            raise AppError("choose a user first")
        with self.ctx.user(token) as (session, user):
            store.update_user(session, user, name, **change)
            shown = "✓ " + done.format(as_text(name))
            return self._users_view(session, user, name) | {self.users_status: shown}

    def set_role(self, token: str | None, name: str | None, role: str | None) -> dict:
        if not role:
            raise AppError("choose a role")
        return self.update_user(token, name, f"{{}} is now an {role}.", role=role)

    def reset_password(self, token: str | None, name: str | None, password: str) -> dict:
        updates = self.update_user(
            token, name, "New password set for {}; their open sessions ended.", password=password
        )
        return updates | {self.member_password: ""}

    # --- export -----------------------------------------------------------------------------------

    def export(self, token: str | None, directory: str) -> dict:
        """Save the dataset into a folder on the server, by the CLI's rules (`export.save_to_folder`)."""
        directory = (directory or "").strip()
        with self.ctx.user(token) as (session, user):
            dataset = store.export_dataset(session, user)  # admins only
        try:
            counts = export.save_to_folder(dataset, directory)
        except OSError as err:  # a path the server cannot write: the admin's typo, not a crash
            raise AppError(f"cannot write {directory}: {err.strerror or err}") from None
        with self.ctx.user(token) as (session, user):  # only now: a refused export records nothing
            store.record_export(session, user, directory, counts)
        rows = ", ".join(f"{split} {n}" for split, n in counts.items())
        return {self.admin_status: f"✓ Exported to `{directory}`: {rows} rows."}

    def prepare_zip(self, token: str | None) -> dict:
        """The dataset as a zip for the Download button (`export.save_zip`)."""
        with self.ctx.user(token) as (session, user):
            dataset = store.export_dataset(session, user)
        path = export.save_zip(dataset, ZIP_DIR)
        with self.ctx.user(token) as (session, user):
            store.record_export(session, user, "zip download", {k: len(v) for k, v in dataset.items()})
        rows = ", ".join(f"{split} {len(split_rows)}" for split, split_rows in dataset.items())
        return {
            self.download: gr.DownloadButton(f"Download {path.name}", value=str(path), visible=True),
            self.zip_path: str(path),
            self.admin_status: f"✓ Zip ready ({rows} rows): click *Download*.",
        }

    @staticmethod
    def remove_zip(path: str | None) -> None:
        """Remove a built zip's folder: the Download button serves Gradio's cached copy of it."""
        if path:
            shutil.rmtree(Path(path).parent, ignore_errors=True)

    # --- wiring -----------------------------------------------------------------------------------

    @property
    def _view_outputs(self) -> list:
        return [
            self.accounts, self.member, self.users_table, self.tasks_table, self.origins,
            self.sample_counts, self.overlap, self.writers, self.ttl, self.agreement,
            self.idle, self.lifetime, self.audit_table,
        ]  # fmt: skip

    @property
    def outputs(self) -> list:
        return [*self._view_outputs, self.admin_status, self.users_status, self.download, self.audit_download]

    def cleared(self) -> dict:
        """Nothing of this admin's view stays on the page for the next user to see."""
        return {
            self.accounts: None,
            self.member: gr.Dropdown(choices=[], value=None),
            self.users_table: None,
            self.tasks_table: None,
            self.origins: None,
            self.sample_counts: "",
            self.agreement: "",
            self.admin_status: "",
            self.users_status: "",
            self.download: gr.DownloadButton(value=None, visible=False),
            self.audit_table: None,
            self.audit_download: gr.DownloadButton(value=None, visible=False),
        }

    def wire(self, tab: gr.Tab) -> None:
        token = self.ctx.token
        admin = guard(self.admin_status)
        view = [*self._view_outputs, self.admin_status]
        tab.select(admin(self.admin_refresh_view), [token], view, **QUICK)
        self.admin_refresh.click(admin(self.admin_refresh_view), [token], view, **QUICK)
        self.import_button.click(admin(self.import_code), [token, self.import_source], view)
        for button, handler, field in (
            (self.overlap_button, self.set_overlap, self.overlap),
            (self.writers_button, self.set_writers, self.writers),
            (self.ttl_button, self.set_ttl, self.ttl),
        ):
            for trigger in (button.click, field.submit):
                trigger(admin(handler), [token, field], view, **QUICK)
        self.export_button.click(admin(self.export), [token, self.export_dir], [self.admin_status])
        self.zip_button.click(
            admin(self.prepare_zip), [token], [self.download, self.zip_path, self.admin_status]
        ).then(self.remove_zip, [self.zip_path], None, **QUICK)
        for trigger in (self.sessions_button.click, self.idle.submit, self.lifetime.submit):
            trigger(admin(self.set_session_limits), [token, self.idle, self.lifetime], view, **QUICK)
        self.audit_csv_button.click(
            admin(self.prepare_audit_csv),
            [token],
            [self.audit_download, self.audit_csv_path, self.audit_table, self.admin_status],
            **QUICK,
        ).then(self.remove_zip, [self.audit_csv_path], None, **QUICK)

        users = guard(self.users_status)
        user_view = [self.accounts, self.member, self.users_status]
        self.add_button.click(
            users(self.add_user),
            [token, self.new_name, self.new_role, self.new_password],
            [*user_view, self.new_name, self.new_password],
            **QUICK,
        )
        self.role_button.click(
            users(self.set_role), [token, self.member, self.member_role], user_view, **QUICK
        )
        for button, done, change in (
            (self.disable_button, "{} is disabled: they cannot log in.", {"disabled": True}),
            (self.enable_button, "{} is enabled again.", {"disabled": False}),
            (self.opt_in_button, "{} is given rating and writing tasks.", {"takes_tasks": True}),
            (self.opt_out_button, "{} is given no rating or writing tasks.", {"takes_tasks": False}),
        ):
            button.click(
                users(partial(self.update_user, done=done, **change)),
                [token, self.member],
                user_view,
                **QUICK,
            )
        self.password_button.click(
            users(self.reset_password),
            [token, self.member, self.member_password],
            [*user_view, self.member_password],
            **QUICK,
        )
