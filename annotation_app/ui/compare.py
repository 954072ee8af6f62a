"""The Compare tab: rate every critique of a tampering on the CriticGPT rubric, blind."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import gradio as gr
from sqlmodel import Session

from critic.annotation_app import store
from critic.annotation_app.store import RATED_FIELDS, AppError
from critic.annotation_app.ui.base import AUTOSAVE_S, QUICK, Context, guard
from critic.annotation_app.ui.render import render_critique, stamp
from critic.datagen.rating import FLAG_FIELDS, SCORE_FIELDS, SCORE_MAX, SCORE_MIN

if TYPE_CHECKING:
    from critic.annotation_app.db import User

MAX_CRITIQUES = store.CRITIQUES_PER_TASK  # critiques per compare task: one column of controls each
SCORES = list(range(SCORE_MIN, SCORE_MAX + 1))

SCORE_HELP = {
    "cbi": (
        "CBI: did it point out the inserted bug?",
        "1 definitely missed · 4 unsure · 7 definitely included",
    ),
    "comprehensiveness": ("Comprehensiveness", "1 misses clear, severe problems · 7 misses none"),
    "conciseness": ("Conciseness", "1 rambling or padded · 7 says exactly what matters"),
    "overall": ("Overall", "relative to the other critiques of this task: 1 worst · 7 best"),
}
FLAG_LABELS = {
    "nitpick": "Contains a nitpick",
    "fake_problem": "Claims a problem that is not real",
    "hallucinated_quote": "Quotes code that is not there",
}

COMPARE_HELP = """\
Rate each critique of the code below. The reference bug is what the tamperer inserted; judge every
critique independently, except *Overall*, which compares it with the other critiques of this task.
"""


class _CritiqueSlot:
    """The controls of one critique in the Compare tab: one per rubric field a rater fills in
    (store.RATED_FIELDS): a radio per score, a checkbox per flag, and the rationale."""

    def __init__(self, index: int) -> None:
        with gr.Column(visible=False, elem_id=f"critique-{index}", min_width=320) as self.column:
            gr.Markdown(f"### Critique {index + 1}")
            self.text = gr.Markdown(elem_id=f"critique-{index}-text")
            self.controls: dict[str, gr.components.Component] = {}
            for field in SCORE_FIELDS:
                label, info = SCORE_HELP[field]
                self.controls[field] = gr.Radio(
                    SCORES, label=label, info=info, elem_id=f"critique-{index}-{field}", interactive=True
                )
            for field in FLAG_FIELDS:
                self.controls[field] = gr.Checkbox(
                    label=FLAG_LABELS[field], elem_id=f"critique-{index}-{field}"
                )
            self.controls["rationale"] = gr.Textbox(
                label="Rationale",
                lines=3,
                elem_id=f"critique-{index}-rationale",
                max_length=store.MAX_RATIONALE,
            )

    @property
    def inputs(self) -> list[gr.components.Component]:
        """The controls in RATED_FIELDS order (a KeyError here: the rubric has a field with no control)."""
        return [self.controls[field] for field in RATED_FIELDS]

    def fill(self, text: str | None, draft: dict[str, Any] | None) -> dict[Any, Any]:
        """Updates showing a critique (or hiding the slot when text is None), restoring its draft."""
        if text is None:
            return {self.column: gr.Column(visible=False)}
        draft = draft or {}
        updates: dict[Any, Any] = {self.column: gr.Column(visible=True), self.text: text}
        for field, control in self.controls.items():
            if field in FLAG_FIELDS:
                updates[control] = bool(draft.get(field, False))
            else:
                updates[control] = draft.get(field, "" if field == "rationale" else None)
        return updates


def _values(values: list[Any]) -> dict[str, Any]:
    """One slot's form values (in _CritiqueSlot.inputs order) by field name."""
    return dict(zip(RATED_FIELDS, values, strict=True))


class CompareTab:
    """Its components, and the handlers behind them (each a thin call into the store)."""

    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx
        self.task = gr.State(None)  # {"id", "critique_ids"} of the open compare task
        self.compare_timer = gr.Timer(AUTOSAVE_S, active=False)
        gr.Markdown(COMPARE_HELP)
        self.task_info = gr.Markdown(elem_id="compare-info")
        with gr.Column(visible=False, elem_id="compare-task") as self.compare_panel:
            with gr.Row():
                with gr.Column(scale=3):
                    self.compare_code = gr.Code(
                        language="python", interactive=False, label="Code", elem_id="compare-code"
                    )
                with gr.Column(scale=2):
                    gr.Markdown("### Reference bug")
                    self.reference = gr.Markdown(elem_id="compare-description")
            self.slots: list[_CritiqueSlot] = []
            for row in range(0, MAX_CRITIQUES, 2):
                with gr.Row(equal_height=False):
                    self.slots.extend(_CritiqueSlot(i) for i in range(row, min(row + 2, MAX_CRITIQUES)))
            with gr.Row():
                self.compare_save = gr.Button("Save draft", elem_id="compare-save")
                self.compare_submit = gr.Button("Submit ratings", variant="primary", elem_id="compare-submit")
            self.compare_draft = gr.Markdown(elem_id="compare-draft-status")
        self.compare_status = gr.Markdown(elem_id="compare-status")
        self.refresh_task = gr.Button("Look for a new task", size="sm", elem_id="compare-refresh")

    @property
    def _slot_inputs(self) -> list[gr.components.Component]:
        return [component for slot in self.slots for component in slot.inputs]

    def _open_task(self, session: Session, user: User) -> dict:
        """Updates for the user's next compare task, its draft restored."""
        task = store.next_compare_task(session, user)
        if task is None:
            return {
                self.task: None,
                self.task_info: "**No comparison is waiting for you.** Tasks appear as others submit.",
                self.compare_panel: gr.Column(visible=False),
                self.compare_draft: "",
            }
        if len(task.critiques) > MAX_CRITIQUES:
            raise AppError(f"task {task.tampering_id} has {len(task.critiques)} critiques; the UI shows 4")
        ratings = (task.draft or {}).get("ratings", {})
        updates: dict[Any, Any] = {
            self.task: {"id": task.tampering_id, "critique_ids": [c.critique_id for c in task.critiques]},
            self.task_info: f"**Task {task.tampering_id}** · {len(task.critiques)} critiques",
            self.compare_panel: gr.Column(visible=True),
            self.compare_code: task.code,
            self.reference: f"**Line(s) {', '.join(map(str, task.bug_lines))}**",
            self.compare_draft: "Draft restored." if task.draft else "",
        }
        for i, slot in enumerate(self.slots):
            if i < len(task.critiques):
                critique = task.critiques[i]
                text = render_critique(critique.text, task.code)
                updates |= slot.fill(text, ratings.get(str(critique.critique_id)))
            else:
                updates |= slot.fill(None, None)
        return updates

    def open_task(self, token: str | None) -> dict:
        with self.ctx.user(token) as (session, user):
            return self._open_task(session, user) | {self.compare_status: ""}

    def show_compare(self, token: str | None, task: dict | None) -> dict:
        """On showing the Compare tab: claim a task if none is open (an open one keeps its edits)."""
        return {self.compare_status: gr.skip()} if task is not None else self.open_task(token)

    def _slot_values(self, task: dict, values: tuple[Any, ...]) -> dict[str, dict[str, Any]]:
        """Each shown critique's form values by critique id (as a string: the draft is JSON)."""
        per_slot = len(self.slots[0].inputs)
        return {
            str(critique_id): _values(list(values[i * per_slot : (i + 1) * per_slot]))
            for i, critique_id in enumerate(task["critique_ids"])
        }

    def save_compare_draft(self, token: str | None, task: dict | None, *values: Any) -> dict:
        if task is None:
            return {self.compare_timer: gr.Timer(active=False)}
        with self.ctx.user(token) as (session, user):
            store.save_draft(
                session, user, "compare", task["id"], {"ratings": self._slot_values(task, values)}
            )
        return {
            self.compare_draft: stamp("Draft saved"),
            self.compare_timer: gr.Timer(active=False),
            self.compare_status: "",  # a refusal of the last submit is stale once the ratings change
        }

    def submit_ratings(self, token: str | None, task: dict | None, *values: Any) -> dict:
        if task is None:
            raise AppError("no task is open")
        ratings = {}
        for i, (critique_id, form) in enumerate(self._slot_values(task, values).items()):
            missing = [SCORE_HELP[f][0].split(":")[0] for f in SCORE_FIELDS if form[f] is None]
            if missing:
                raise AppError(f"critique {i + 1}: choose a score for {', '.join(missing)}")
            ratings[int(critique_id)] = store.RatingInput(**{**form, "rationale": form["rationale"].strip()})
        with self.ctx.user(token) as (session, user):
            store.submit_ratings(session, user, task["id"], ratings)
            updates = self._open_task(session, user)
        return updates | {
            self.compare_status: f"✓ Submitted ratings for task {task['id']}.",
            self.compare_timer: gr.Timer(active=False),
        }

    @property
    def outputs(self) -> list:
        slot_outputs = [c for slot in self.slots for c in (slot.column, slot.text, *slot.inputs)]
        return [
            self.task, self.task_info, self.compare_panel, self.compare_code, self.reference,
            self.compare_draft, self.compare_status, self.compare_timer, *slot_outputs,
        ]  # fmt: skip

    def cleared(self) -> dict:
        """What entering the app shows before the Compare tab is opened: no task is claimed yet."""
        return {
            self.task: None,
            self.task_info: "",
            self.compare_panel: gr.Column(visible=False),
            self.compare_status: "",
            self.compare_timer: gr.Timer(active=False),
        }

    def wire(self, tab: gr.Tab) -> None:
        token = self.ctx.token
        status = guard(self.compare_status)
        task_form = [token, self.task, *self._slot_inputs]
        save_task = status(self.save_compare_draft)
        for field in self._slot_inputs:
            field.input(
                lambda: gr.Timer(active=True),
                None,
                self.compare_timer,
                trigger_mode="always_last",
                show_progress="hidden",
                **QUICK,
            )
        draft_outputs = [self.compare_draft, self.compare_timer, self.compare_status]
        self.compare_timer.tick(save_task, task_form, draft_outputs, **QUICK)
        self.compare_save.click(save_task, task_form, draft_outputs, **QUICK)
        self.compare_submit.click(status(self.submit_ratings), task_form, self.outputs, **QUICK)
        tab.select(status(self.show_compare), [token, self.task], self.outputs, **QUICK)
        self.refresh_task.click(status(self.open_task), [token], self.outputs, **QUICK)
