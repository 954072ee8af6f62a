"""The Write tab: write a critique of someone else's tampering, alone (`human`) or starting from the
critic's own critique (`assisted`): CriticGPT's human and human + critic teams.

The writer is not told the bug: they see the code, line-numbered, and review it fresh. A critique is a
list of highlights (an exact quote of the code and a comment on it) and an optional overall remark. The
form has a fixed number of highlight slots (the store's limit), the unused ones hidden; each shown row
remembers which of the critic's highlights it started from (`source_index`, None for the writer's own),
so the store can log what was kept, edited, removed (missing) or added. Every rule (quotes in the code,
non-empty comments, who may write what) is the store's: the form only flags a quote that is not in the
code as it is typed, so the writer learns it before submitting.
"""

from __future__ import annotations

from functools import partial
from typing import TYPE_CHECKING, Any

import gradio as gr
from sqlmodel import Session

from critic.annotation_app import store, writing
from critic.annotation_app.store import AppError
from critic.annotation_app.ui.base import AUTOSAVE_S, QUICK, Context, form_is_of, guard, open_form
from critic.annotation_app.ui.render import (
    line_range,
    numbered_code,
    quote_from_lines,
    quote_lines,
    quote_place,
    stamp,
)
from critic.core.critique import line_span_of

if TYPE_CHECKING:
    from critic.annotation_app.db import User

MAX_SLOTS = writing.MAX_HIGHLIGHTS  # highlight rows in the form: as many as the store accepts
ROW_FIELDS = ("lines", "quote", "comment")  # one slot's inputs, in order

WRITE_HELP = """\
Write a critique of code someone else changed. You are **not** told what is wrong with it: review it as
you would a colleague's pull request. Each highlight quotes the code (type its *Lines*, e.g. `3` or
`3-4`, to fill in the quote, then trim the quote to the exact fragment if you like) and says what is
wrong there.
"""
INSTRUCTIONS = {
    "human": "**Find the problems in this code and write a critique.** Add a highlight for each problem.",
    "assisted": (
        "**The critic's critique is below; keep, edit, remove or add highlights.** Keep what is right, "
        "fix what is off, remove what is wrong, and add what the critic missed."
    ),
}
NO_TASK = "**No critique to write.** Writing tasks appear when others submit tamperings and writing is on."


class _HighlightSlot:
    """One highlight row: its lines, quote and comment, where the quote is in the code, and *Remove*."""

    def __init__(self, index: int) -> None:
        with gr.Group(visible=False, elem_id=f"write-h{index}") as self.box:
            with gr.Row(equal_height=True):
                self.heading = gr.Markdown(elem_id=f"write-h{index}-heading")
                self.lines = gr.Textbox(
                    label="Lines",
                    placeholder="3 or 3-4",
                    elem_id=f"write-h{index}-lines",
                    max_length=40,
                    scale=0,
                    min_width=120,
                )
                self.place = gr.Markdown(elem_id=f"write-h{index}-place")
                self.remove = gr.Button(
                    "Remove", size="sm", scale=0, min_width=90, elem_id=f"write-h{index}-remove"
                )
            self.quote = gr.Textbox(
                label="Quote (exact code)",
                lines=2,
                max_lines=12,
                elem_id=f"write-h{index}-quote",
                max_length=store.MAX_CODE,
            )
            self.comment = gr.Textbox(
                label="Comment",
                lines=2,
                elem_id=f"write-h{index}-comment",
                max_length=store.MAX_RATIONALE,
            )

    @property
    def inputs(self) -> list[gr.components.Component]:
        return [self.lines, self.quote, self.comment]

    @property
    def outputs(self) -> list[gr.components.Component]:
        return [self.box, self.heading, self.place, *self.inputs]

    def fill(self, number: int, row: dict[str, Any] | None, code: str) -> dict[Any, Any]:
        """Updates showing `row` as highlight `number`, or hiding (and blanking) the slot for None."""
        if row is None:
            return {self.box: gr.Group(visible=False), self.heading: "", self.place: ""} | {
                field: "" for field in self.inputs
            }
        whose = "yours" if row["source_index"] is None else "from the critic"
        return {
            self.box: gr.Group(visible=True),
            self.heading: f"**Highlight {number}** · {whose}",
            self.place: quote_place(row["quote"], code),
            self.lines: row["lines"],
            self.quote: row["quote"],
            self.comment: row["comment"],
        }


def _row(quote: str, comment: str, source_index: int | None, code: str, lines: str | None = None) -> dict:
    """A highlight row of the form; its *Lines* are those the quote covers unless given."""
    return {
        "lines": quote_lines(quote, code) if lines is None else lines,
        "quote": quote,
        "comment": comment,
        "source_index": source_index,
    }


def _draft_rows(draft: dict, code: str) -> list[dict]:
    """The rows a draft saved (the user's own JSON, read defensively)."""
    rows = []
    for item in draft.get("highlights") or []:
        if not isinstance(item, dict):
            continue
        source = item.get("source_index")
        source = source if isinstance(source, int) and not isinstance(source, bool) else None
        lines = item.get("lines")
        rows.append(
            _row(
                str(item.get("quote") or ""),
                str(item.get("comment") or ""),
                source,
                code,
                str(lines) if isinstance(lines, str) else None,
            )
        )
    return rows


class WriteTab:
    """Its components, and the handlers behind them (each a thin call into the store)."""

    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx
        self.task = gr.State(None)  # {"id", "code", "mode"} of the open write task
        self.sources = gr.State([])  # per shown row: the critic's highlight it started from, or None
        # The task the critique on the page belongs to, held by the page (see `form_is_of`).
        self.form_of = gr.Number(None, visible=False, precision=0, elem_id="write-form-of")
        self.write_timer = gr.Timer(AUTOSAVE_S, active=False)
        gr.Markdown(WRITE_HELP)
        self.write_info = gr.Markdown(elem_id="write-info")
        self.write_progress = gr.Markdown(elem_id="write-progress")
        with gr.Column(visible=False, elem_id="write-task") as self.write_panel:
            self.instruction = gr.Markdown(elem_id="write-instruction")
            with gr.Row(equal_height=False):
                with gr.Column(scale=2, min_width=360):
                    self.code_view = gr.HTML(elem_id="write-code", js_on_load=None)
                with gr.Column(scale=3, min_width=420):
                    self.preamble = gr.Textbox(
                        label="Overall remark (optional)",
                        lines=2,
                        elem_id="write-preamble",
                        max_length=store.MAX_RATIONALE,
                    )
                    self.slots = [_HighlightSlot(i) for i in range(MAX_SLOTS)]
                    self.add_button = gr.Button("Add highlight", size="sm", elem_id="write-add")
                    with gr.Row():
                        self.save_button = gr.Button("Save draft", elem_id="write-save")
                        self.submit_button = gr.Button(
                            "Submit critique", variant="primary", elem_id="write-submit"
                        )
                        self.skip_button = gr.Button("Skip this task", elem_id="write-skip")
                    self.write_draft = gr.Markdown(elem_id="write-draft-status")
        self.write_status = gr.Markdown(elem_id="write-status")
        self.refresh_task = gr.Button("Look for a new task", size="sm", elem_id="write-refresh")

    # --- the form ---------------------------------------------------------------------------------

    @property
    def _slot_inputs(self) -> list[gr.components.Component]:
        return [field for slot in self.slots for field in slot.inputs]

    def _rows(self, task: dict, sources: list[int | None], values: tuple[Any, ...]) -> list[dict]:
        """The shown rows' form values (slot inputs in `_slot_inputs` order), with their sources."""
        width = len(ROW_FIELDS)
        rows = []
        for i, source in enumerate(sources):
            lines, quote, comment = (value or "" for value in values[i * width : (i + 1) * width])
            rows.append(_row(quote, comment, source, task["code"], lines))
        return rows

    def _show(self, rows: list[dict], code: str) -> dict:
        """Updates showing `rows` in the first slots (the rest hidden) and remembering their sources."""
        if len(rows) > MAX_SLOTS:
            raise AppError(f"a critique has at most {MAX_SLOTS} highlights")
        updates: dict[Any, Any] = {self.sources: [row["source_index"] for row in rows]}
        for i, slot in enumerate(self.slots):
            updates |= slot.fill(i + 1, rows[i] if i < len(rows) else None, code)
        return updates

    def _progress(self, session: Session, user: User) -> str:
        mine = store.my_progress(session, user)["write"]
        return f"You have written **{mine['done']}** critiques · {mine['left']} left to write."

    # --- handlers ---------------------------------------------------------------------------------

    def _open_task(self, session: Session, user: User) -> dict:
        """Updates for the user's next write task, its draft restored, or "No critique to write"."""
        task = writing.next_write_task(session, user)
        progress = self._progress(session, user)
        if task is None:
            return self._show([], "") | {
                self.task: None,
                self.form_of: None,
                self.write_info: NO_TASK,
                self.write_progress: progress,
                self.write_panel: gr.Column(visible=False),
                self.code_view: "",
                self.preamble: "",
                self.write_draft: "",
                self.write_timer: gr.Timer(active=False),
            }
        if task.draft is not None:
            rows = _draft_rows(task.draft, task.code)
            preamble = str(task.draft.get("preamble") or "")
        else:
            rows = [
                _row(str(h["quote"]), str(h["comment"]), int(h["source_index"]), task.code)
                for h in task.highlights
            ]
            preamble = task.preamble
        instruction = INSTRUCTIONS[task.mode]
        if len(rows) > MAX_SLOTS:  # a critic with more highlights than a critique may have
            instruction += f" The critic wrote {len(rows)} highlights; the first {MAX_SLOTS} are shown."
            rows = rows[:MAX_SLOTS]
        mode = "human + critic" if task.mode == "assisted" else "on your own"
        return self._show(rows, task.code) | {
            self.task: {"id": task.tampering_id, "code": task.code, "mode": task.mode},
            self.form_of: task.tampering_id,
            self.write_info: f"**Task {task.tampering_id}** · writing {mode}",
            self.write_progress: progress,
            self.write_panel: gr.Column(visible=True),
            self.instruction: instruction,
            self.code_view: numbered_code(task.code),
            self.preamble: preamble,
            self.write_draft: "Draft restored." if task.draft is not None else "",
        }

    def open_task(self, token: str | None) -> dict:
        with self.ctx.user(token) as (session, user):
            return self._open_task(session, user) | {self.write_status: ""}

    def show_write(self, token: str | None, task: dict | None) -> dict:
        """On showing the Write tab: claim a task if none is open (an open one keeps its edits)."""
        return {self.write_status: gr.skip()} if task is not None else self.open_task(token)

    def add_highlight(self, task: dict | None, sources: list[int | None], *values: Any) -> dict:
        """A blank highlight of the writer's own after the shown ones."""
        if task is None:
            raise AppError("no task is open")
        rows = self._rows(task, sources, values)
        if len(rows) >= MAX_SLOTS:
            raise AppError(f"a critique has at most {MAX_SLOTS} highlights")
        rows.append(_row("", "", None, task["code"], ""))
        return self._show(rows, task["code"]) | {self.write_timer: gr.Timer(active=True)}

    def remove_highlight(
        self, index: int, task: dict | None, sources: list[int | None], *values: Any
    ) -> dict:
        """Drop row `index`; the rows after it move up. A critic's highlight that is no longer submitted is
        logged as removed by the store."""
        if task is None:
            raise AppError("no task is open")
        rows = self._rows(task, sources, values)
        if index < len(rows):
            rows.pop(index)
        return self._show(rows, task["code"]) | {self.write_timer: gr.Timer(active=True)}

    def fill_lines(self, index: int, task: dict | None, lines: str, quote: str) -> dict:
        """Fill row `index`'s quote with exactly the lines typed ("3" or "3-4"), unless it already quotes
        those lines: a quote trimmed to a fragment survives tabbing through *Lines*."""
        slot = self.slots[index]
        if task is None or not (lines or "").strip():
            return {slot.place: gr.skip()}
        code = task["code"]
        span = line_span_of(quote, code) if (quote or "").strip() else None
        if span is not None and span[:2] == line_range(code, lines):
            return {slot.place: quote_place(quote, code)}
        quote = quote_from_lines(code, lines)
        return {
            slot.quote: quote,
            slot.place: quote_place(quote, code),
            self.write_timer: gr.Timer(active=True),
        }

    def check_quote(self, index: int, task: dict | None, quote: str) -> dict:
        """Where row `index`'s quote is in the code, or the warning that it is not there."""
        if task is None:
            return {self.slots[index].place: gr.skip()}
        return {self.slots[index].place: quote_place(quote or "", task["code"])}

    def _payload(self, task: dict, sources: list[int | None], preamble: str, values: tuple) -> dict:
        return {"highlights": self._rows(task, sources, values), "preamble": preamble or ""}

    def save_write_draft(
        self,
        token: str | None,
        task: dict | None,
        form_of: float | None,
        sources: list[int | None],
        preamble: str,
        *values: Any,
    ) -> dict:
        """Save the critique as the task's draft, unless it is of a task closed since (a late save)."""
        if not form_is_of(task, form_of):
            return {self.write_timer: gr.Timer(active=False)}
        with self.ctx.user(token) as (session, user):
            store.save_draft(
                session, user, "write", task["id"], self._payload(task, sources, preamble, values)
            )
        return {
            self.write_draft: stamp("Draft saved"),
            self.write_timer: gr.Timer(active=False),
            self.write_status: "",  # a refusal of the last submit is stale once the critique changes
        }

    def submit_critique(
        self,
        token: str | None,
        task: dict | None,
        form_of: float | None,
        sources: list[int | None],
        preamble: str,
        *values: Any,
    ) -> dict:
        task = open_form(task, form_of, "task")
        highlights = [
            {"quote": row["quote"], "comment": row["comment"], "source_index": row["source_index"]}
            for row in self._rows(task, sources, values)
            # an added row left blank is no highlight; the store judges everything else
            if row["source_index"] is not None or row["quote"].strip() or row["comment"].strip()
        ]
        with self.ctx.user(token) as (session, user):
            writing.submit_critique(session, user, task["id"], highlights, preamble or "")
            updates = self._open_task(session, user)
        return updates | {
            self.write_status: f"✓ Submitted your critique of task {task['id']}.",
            self.write_timer: gr.Timer(active=False),
        }

    def skip_task(self, token: str | None, task: dict | None, form_of: float | None) -> dict:
        """Give the task the page shows up, never one opened after the click."""
        task = open_form(task, form_of, "task")
        with self.ctx.user(token) as (session, user):
            writing.skip_write_task(session, user, task["id"])
            updates = self._open_task(session, user)
        return updates | {
            self.write_status: f"Skipped task {task['id']}.",
            self.write_timer: gr.Timer(active=False),
        }

    # --- wiring -----------------------------------------------------------------------------------

    @property
    def outputs(self) -> list:
        slot_outputs = [c for slot in self.slots for c in slot.outputs]
        return [
            self.task, self.form_of, self.sources, self.write_info, self.write_progress, self.write_panel,
            self.instruction, self.code_view, self.preamble, self.write_draft, self.write_status,
            self.write_timer, *slot_outputs,
        ]  # fmt: skip

    def cleared(self) -> dict:
        """Nothing of this user's stays on the page for the next one; no task is claimed until the Write
        tab is opened."""
        return self._show([], "") | {
            self.task: None,
            self.form_of: None,
            self.write_info: "",
            self.write_progress: "",
            self.write_panel: gr.Column(visible=False),
            self.code_view: "",
            self.preamble: "",
            self.write_draft: "",
            self.write_status: "",
            self.write_timer: gr.Timer(active=False),
        }

    def wire(self, tab: gr.Tab) -> None:
        token = self.ctx.token
        status = guard(self.write_status)
        form = [self.task, self.sources, *self._slot_inputs]
        task_form = [token, self.task, self.form_of, self.sources, self.preamble, *self._slot_inputs]
        rows_outputs = [self.sources, self.write_timer, self.write_status] + [
            c for slot in self.slots for c in slot.outputs
        ]
        timer_on = dict(trigger_mode="always_last", show_progress="hidden", **QUICK)
        # Typing starts the autosave timer; so does leaving a field, for text pasted with the mouse
        # (which may fire no input event).
        for field in (self.preamble, *self._slot_inputs):
            for trigger in (field.input, field.blur):
                trigger(lambda: gr.Timer(active=True), None, self.write_timer, **timer_on)
        for i, slot in enumerate(self.slots):
            place = guard(slot.place)  # a line range that cannot be read is flagged in its own row
            fill = [slot.quote, slot.place, self.write_timer]
            for trigger in (slot.lines.submit, slot.lines.blur):
                trigger(
                    place(partial(self.fill_lines, i)), [self.task, slot.lines, slot.quote], fill, **timer_on
                )
            # On any change of the quote (typed, pasted, filled from its lines), not only on typing.
            slot.quote.change(partial(self.check_quote, i), [self.task, slot.quote], slot.place, **timer_on)
            slot.remove.click(status(partial(self.remove_highlight, i)), form, rows_outputs, **QUICK)
        self.add_button.click(status(self.add_highlight), form, rows_outputs, **QUICK)
        save = status(self.save_write_draft)
        draft_outputs = [self.write_draft, self.write_timer, self.write_status]
        self.write_timer.tick(save, task_form, draft_outputs, show_progress="hidden", **QUICK)
        self.save_button.click(save, task_form, draft_outputs, **QUICK)
        self.submit_button.click(status(self.submit_critique), task_form, self.outputs, **QUICK)
        self.skip_button.click(
            status(self.skip_task), [token, self.task, self.form_of], self.outputs, **QUICK
        )
        tab.select(status(self.show_write), [token, self.task], self.outputs, **QUICK)
        self.refresh_task.click(status(self.open_task), [token], self.outputs, **QUICK)
