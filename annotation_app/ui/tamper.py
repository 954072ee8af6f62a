"""The Tamper tab: insert a subtle bug, mark and describe it, check it against the critic, submit."""

from __future__ import annotations

from typing import TYPE_CHECKING

import gradio as gr
from sqlmodel import Session

from critic.annotation_app import store
from critic.annotation_app.store import CHECK_SEARCHES, AppError
from critic.annotation_app.ui.base import AUTOSAVE_S, QUICK, Context, form_is_of, guard, open_form
from critic.annotation_app.ui.render import (
    parse_line_numbers,
    progress_count,
    render_check,
    render_tests,
    stamp,
)

if TYPE_CHECKING:
    from critic.annotation_app.db import User

TAMPER_HELP = """\
Insert a **subtle** bug into the code, the kind a careful reviewer could miss. Mark the lines you changed,
then describe the bug as if you had caught it in code review. *Check against critic* has the current
critic review your code: the tampering is adversarial (the data we most need) when it misses the bug.
*Skip* gives a sample up when no subtle bug fits in it.
"""
CHECK_LABEL = "Check against critic"
CHECKING_LABEL = "Checking…"


def _same_form(form: dict, saved: dict | None) -> bool:
    """Whether the form holds what was last saved or restored. The code editor drops a trailing
    newline when it shows a sample: that is no edit, and no reason for a draft."""
    if saved is None:
        return False
    code, saved_code = form["code"] or "", saved.get("code") or ""
    same_code = code == saved_code or code.rstrip("\n") == saved_code.rstrip("\n")
    return same_code and all(form[key] == saved.get(key) for key in ("bug_lines", "description"))


class TamperTab:
    """Its components, and the handlers behind them (each a thin call into the store)."""

    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx
        self.sample = gr.State(None)  # {"id", "original", "has_tests"} of the open sample
        self.check = gr.State(None)  # the last CheckResult of the open sample, as the store keeps it
        self.saved = gr.State(None)  # the draft as last saved or restored: an unchanged form is not saved
        # The sample the form on the page belongs to, held by the page (a State lives on the server): a
        # save sent before Submit or Skip and run after it carries the old form and this old id, so it
        # can never land on the sample opened in between.
        self.form_of = gr.Number(None, visible=False, precision=0, elem_id="tamper-form-of")
        self.tamper_timer = gr.Timer(AUTOSAVE_S, active=False)
        gr.Markdown(TAMPER_HELP)
        with gr.Row(equal_height=True):
            self.sample_info = gr.Markdown(elem_id="tamper-info")
            self.tamper_progress = gr.Markdown(elem_id="tamper-progress")
        self.tamper_status = gr.Markdown(elem_id="tamper-status")
        with gr.Column(visible=False, elem_id="tamper-editor") as self.tamper_editor:
            with gr.Row():
                with gr.Column(scale=3):
                    self.code = gr.Code(
                        language="python",
                        interactive=True,
                        label="Code (edit it)",
                        lines=16,
                        elem_id="tamper-code",
                    )
                with gr.Column(scale=2):
                    self.bug_lines = gr.Textbox(
                        label="Bug lines",
                        placeholder="e.g. 3, 5-6",
                        elem_id="tamper-bug-lines",
                        max_length=500,
                    )
                    self.description = gr.Textbox(
                        label="Bug description",
                        info="Describe the bug as if you had caught it in code review.",
                        lines=5,
                        elem_id="tamper-description",
                        max_length=store.MAX_DESCRIPTION,
                    )
                    with gr.Row():
                        self.check_button = gr.Button(CHECK_LABEL, elem_id="tamper-check")
                        self.tests_button = gr.Button("Run tests", elem_id="tamper-run-tests", visible=False)
                    with gr.Row():
                        self.save_button = gr.Button("Save draft", elem_id="tamper-save")
                        self.submit_button = gr.Button("Submit", variant="primary", elem_id="tamper-submit")
                        self.skip_button = gr.Button("Skip this sample", elem_id="tamper-skip")
                    self.tamper_draft = gr.Markdown(elem_id="tamper-draft-status")
                    self.test_result = gr.Markdown(elem_id="tamper-test-result")
            self.check_result = gr.Markdown(elem_id="tamper-check-result")
        self.refresh_sample = gr.Button("Look for a new sample", size="sm", elem_id="tamper-refresh")

    def _open_sample(self, session: Session, user: User) -> dict:
        """Updates for the user's next tamper sample, its draft and its last check restored."""
        view = store.next_tamper_sample(session, user)
        progress = f"Your tamperings: {progress_count(store.my_progress(session, user)['tamper'])}"
        cleared = {
            self.check: None,
            self.check_result: "",
            self.test_result: "",
            self.tamper_status: "",
            self.tamper_progress: progress,
        }
        if view is None:
            return cleared | {
                self.sample: None,
                self.form_of: None,
                self.saved: None,
                self.sample_info: "**No sample is waiting for you.** An admin can import more code.",
                self.tamper_editor: gr.Column(visible=False),
                self.tamper_draft: "",
            }
        form = {"code": view.code, "bug_lines": "", "description": ""} | (view.draft or {})
        # The stored check counts only for the code it checked: a draft edited since needs a new one.
        check = view.check if view.check is not None and view.check.code == form["code"] else None
        where = f"{view.source} / {view.task_id}" if view.task_id else view.source
        tests = "has tests" if view.has_tests else "no tests"
        restored = "Draft restored" + (" with its check against the critic." if check else ".")
        return cleared | {
            self.sample: {"id": view.sample_id, "original": view.code, "has_tests": view.has_tests},
            self.form_of: view.sample_id,
            self.saved: form,
            self.check: check,
            self.check_result: render_check(check) if check else "",
            self.sample_info: f"**Sample {view.sample_id}** · {where} · {tests}",
            self.tamper_editor: gr.Column(visible=True),
            self.code: form["code"],
            self.bug_lines: form["bug_lines"],
            self.description: form["description"],
            self.tests_button: gr.Button(visible=view.has_tests),
            self.tamper_draft: restored if view.draft else "",
        }

    def open_sample(self, token: str | None) -> dict:
        with self.ctx.user(token) as (session, user):
            return self._open_sample(session, user)

    def show_tamper(self, token: str | None, sample: dict | None) -> dict:
        """On showing the Tamper tab: look for a sample if none is open (an admin may have imported)."""
        return {self.tamper_status: gr.skip()} if sample is not None else self.open_sample(token)

    def save_tamper_draft(
        self,
        token: str | None,
        sample: dict | None,
        saved: dict | None,
        code: str,
        lines: str,
        text: str,
        form_of: float | None,
    ) -> dict:
        """Save the form as the sample's draft, unless it is what was last saved or restored (a tick
        after a programmatic change, a blur without an edit), or it is the form of a sample closed since
        (a late autosave: that sample's draft went with its submission)."""
        payload = {"code": code, "bug_lines": lines, "description": text}
        if not form_is_of(sample, form_of) or _same_form(payload, saved):
            return {self.tamper_timer: gr.Timer(active=False)}
        with self.ctx.user(token) as (session, user):
            store.save_draft(session, user, "tamper", sample["id"], payload)
        return {
            self.saved: payload,
            self.tamper_draft: stamp("Draft saved"),
            self.tamper_timer: gr.Timer(active=False),
        }

    def run_check(
        self,
        token: str | None,
        sample: dict | None,
        code: str,
        lines: str,
        text: str,
        form_of: float | None,
        progress: gr.Progress = gr.Progress(),  # noqa: B008 (Gradio reads the default to track progress)
    ) -> dict:
        """Check against the critic, with a progress display while it searches. The store keeps the
        result on the assignment; the form is saved as the draft too, so a reload restores both together."""
        sample = open_form(sample, form_of, "sample")
        bug_lines = parse_line_numbers(lines)

        def on_search(n: int) -> None:
            progress((n - 1, CHECK_SEARCHES), desc="the critic is reviewing the code")

        # The store checks that the sample is the user's and the tampering valid before the critic runs.
        with self.ctx.user(token) as (session, user):
            result = store.check_sample(
                session,
                user,
                self.ctx.critic_factory,
                sample["id"],
                code,
                bug_lines,
                text,
                on_search=on_search,
            )
            payload = {"code": code, "bug_lines": lines, "description": text}
            store.save_draft(session, user, "tamper", sample["id"], payload)
        return {
            self.check: result,
            self.check_result: render_check(result),
            self.saved: payload,
            self.tamper_draft: stamp("Draft saved"),
            self.tamper_status: "Checked against the critic; the result is below.",
        }

    def run_tests(self, token: str | None, sample: dict | None, code: str) -> dict:
        if sample is None:
            raise AppError("no sample is open")
        with self.ctx.user(token) as (session, user):
            result = store.run_tests(session, user, sample["id"], code)
        return {self.test_result: render_tests(result), self.tamper_status: ""}

    def submit_tampering(
        self, token: str | None, sample: dict | None, code: str, lines: str, text: str, form_of: float | None
    ) -> dict:
        sample = open_form(sample, form_of, "sample")
        bug_lines = parse_line_numbers(lines)
        # No check is passed: the store uses the one it kept from *Check against critic* (also after a
        # reload), re-rates its critiques against the submitted lines and description, and refuses it
        # for other code: the critic must have seen exactly what is submitted.
        with self.ctx.user(token) as (session, user):
            tampering_id = store.submit_tampering(session, user, sample["id"], code, bug_lines, text, None)
            updates = self._open_sample(session, user)
        done = f"✓ Submitted tampering {tampering_id}. Here is your next sample."
        return updates | {self.tamper_status: done, self.tamper_timer: gr.Timer(active=False)}

    def skip_sample(self, token: str | None, sample: dict | None, form_of: float | None) -> dict:
        """Give the open sample up (it is never offered to this user again) and open the next one: the
        one the page shows, never one opened after the click."""
        sample = open_form(sample, form_of, "sample")
        with self.ctx.user(token) as (session, user):
            store.skip_sample(session, user, sample["id"])
            updates = self._open_sample(session, user)
        skipped = f"Skipped sample {sample['id']}."
        return updates | {self.tamper_status: skipped, self.tamper_timer: gr.Timer(active=False)}

    @property
    def outputs(self) -> list:
        return [
            self.sample, self.form_of, self.check, self.saved, self.sample_info, self.tamper_progress,
            self.tamper_editor,
            self.code, self.bug_lines, self.description, self.tests_button, self.tamper_draft,
            self.check_result, self.test_result, self.tamper_status, self.tamper_timer,
        ]  # fmt: skip

    def cleared(self) -> dict:
        """Nothing of this user's stays on the page for the next one to see; no sample is claimed until
        the Tamper tab is opened."""
        return {
            self.sample: None,
            self.form_of: None,
            self.check: None,
            self.saved: None,
            self.sample_info: "",
            self.tamper_progress: "",
            self.tamper_editor: gr.Column(visible=False),
            self.code: "",
            self.bug_lines: "",
            self.description: "",
            self.tamper_draft: "",
            self.check_result: "",
            self.test_result: "",
            self.tamper_status: "",
            self.tamper_timer: gr.Timer(active=False),
        }

    def wire(self, tab: gr.Tab) -> None:
        token = self.ctx.token
        form = [token, self.sample, self.code, self.bug_lines, self.description, self.form_of]
        status = guard(self.tamper_status)
        save = status(self.save_tamper_draft)
        save_form = [token, self.sample, self.saved, *form[2:]]
        draft_outputs = [self.saved, self.tamper_draft, self.tamper_timer, self.tamper_status]
        quiet = dict(show_progress="hidden", **QUICK)
        for field in (self.code, self.bug_lines, self.description):
            # Typing and pasting (.input), and any other change of the value (.change: a paste the
            # editor reports only as a change), save AUTOSAVE_S later; leaving the field saves now.
            for edited in (field.input, field.change):
                edited(
                    lambda: gr.Timer(active=True),
                    None,
                    self.tamper_timer,
                    trigger_mode="always_last",
                    **quiet,
                )
            field.blur(save, save_form, draft_outputs, trigger_mode="always_last", **quiet)
        self.tamper_timer.tick(save, save_form, draft_outputs, **quiet)
        self.save_button.click(save, save_form, draft_outputs, **QUICK)
        # The button is disabled for the whole check, so clicks during it queue nothing; it comes back
        # afterwards whatever happened (`.then` runs after an error too). The last check's refusal
        # leaves the status line as the new check starts: it is about a form that may have changed.
        self.check_button.click(
            lambda: (gr.Button(value=CHECKING_LABEL, interactive=False), ""),
            None,
            [self.check_button, self.tamper_status],
            **quiet,
        ).then(
            status(self.run_check),
            form,
            [self.check, self.check_result, self.saved, self.tamper_draft, self.tamper_status],
            concurrency_id="critic",  # one search at a time: they share the model and the CPU
            concurrency_limit=1,
            show_progress_on=[self.code, self.check_result],  # the code being checked, under the progress
        ).then(lambda: gr.Button(value=CHECK_LABEL, interactive=True), None, self.check_button, **quiet)
        self.tests_button.click(
            status(self.run_tests),
            [token, self.sample, self.code],
            [self.test_result, self.tamper_status],
            concurrency_limit=2,
        )
        self.submit_button.click(status(self.submit_tampering), form, self.outputs, **QUICK)
        self.skip_button.click(
            status(self.skip_sample), [token, self.sample, self.form_of], self.outputs, **QUICK
        )
        tab.select(status(self.show_tamper), [token, self.sample], self.outputs, **QUICK)
        self.refresh_sample.click(status(self.open_sample), [token], self.outputs, **QUICK)
