"""The Compare tab: rate every critique of a tampering on the CriticGPT rubric, blind.

The code and the change that put the bug in stay on the left; one critique at a time is on the right,
with the rubric under it. Which critique is shown, and the keyboard (digits, arrows, Enter, Ctrl+Enter),
are the page's script (static/compare.js): switching critiques needs no round trip. What the rater has
left to answer comes from the store (`store.rating_problems`) and is recomputed on every change once a
submission was refused, so the list stays until it is fixed and shrinks as it is.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import gradio as gr
from sqlmodel import Session

from critic.annotation_app import store
from critic.annotation_app.store import RATED_FIELDS, AppError
from critic.annotation_app.ui.base import AUTOSAVE_S, QUICK, Context, form_is_of, guard, open_form
from critic.annotation_app.ui.render import (
    render_code_view,
    render_critique_card,
    render_diff,
    render_navigator,
    render_problems,
    stamp,
)
from critic.datagen.rating import FLAG_FIELDS, SCORE_FIELDS, SCORE_MAX, SCORE_MIN

if TYPE_CHECKING:
    from critic.annotation_app.db import User

MAX_CRITIQUES = store.MAX_CRITIQUES  # one slot of controls each; a task shows as many as it has
SCORES = list(range(SCORE_MIN, SCORE_MAX + 1))
REQUIRED = " *"  # appended to the label of every answer the store requires (scores, rationale)

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
# What a jump button of the problem list says for each answer it can point at.
SHORT_LABELS = {field: SCORE_HELP[field][0].split(":")[0] for field in SCORE_FIELDS} | {
    "rationale": "Rationale"
}

COMPARE_HELP = (
    "Rate each critique on its own; *Overall* compares it with the other critiques of this task. "
    "The bug is the highlighted lines and the change shown under the code."
)
KEY_LEGEND = (
    '<p class="cmp-keys">Keys: <kbd>1</kbd>–<kbd>7</kbd> score · <kbd>←</kbd> <kbd>→</kbd> lower/raise · '
    "<kbd>Enter</kbd> or <kbd>↓</kbd> next question, <kbd>↑</kbd> back · <kbd>Space</kbd> flag · "
    "<kbd>Tab</kbd> out of the rationale · <kbd>Ctrl</kbd>+<kbd>Enter</kbd> submit · * required</p>"
)


class _CritiqueSlot:
    """The controls of one critique: its card, then one control per rubric field a rater fills in
    (store.RATED_FIELDS): a radio per score, a checkbox per flag, and the rationale. Every control is a
    `cmp-q` (a question, in the script's order); scores are also `cmp-score`, flags `cmp-flag`."""

    def __init__(self, index: int) -> None:
        with gr.Column(
            visible=False, elem_id=f"critique-{index}", elem_classes=["cmp-slot"], min_width=320
        ) as self.column:
            self.text = gr.HTML(elem_id=f"critique-{index}-text", elem_classes=["cmp-card-box"])
            self.controls: dict[str, gr.components.Component] = {}
            for field in SCORE_FIELDS:
                label, info = SCORE_HELP[field]
                self.controls[field] = gr.Radio(
                    SCORES,
                    label=label + REQUIRED,
                    info=info,
                    elem_id=f"critique-{index}-{field}",
                    elem_classes=["cmp-q", "cmp-score"],
                    interactive=True,
                )
            with gr.Row(elem_classes=["cmp-flags"]):
                for field in FLAG_FIELDS:
                    self.controls[field] = gr.Checkbox(
                        label=FLAG_LABELS[field],
                        elem_id=f"critique-{index}-{field}",
                        elem_classes=["cmp-q", "cmp-flag"],
                    )
            self.controls["rationale"] = gr.Textbox(
                label="Rationale" + REQUIRED,
                placeholder="Why these scores, in a sentence or two",
                lines=2,
                max_lines=6,
                elem_id=f"critique-{index}-rationale",
                elem_classes=["cmp-q", "cmp-rationale"],
                max_length=store.MAX_RATIONALE,
            )

    @property
    def inputs(self) -> list[gr.components.Component]:
        """The controls in RATED_FIELDS order (a KeyError here: the rubric has a field with no control)."""
        return [self.controls[field] for field in RATED_FIELDS]

    def fill(self, card: str | None, form: dict[str, Any] | None) -> dict[Any, Any]:
        """Updates showing a critique's card and form values (or hiding the slot when card is None)."""
        if card is None:
            return {self.column: gr.Column(visible=False)}
        updates: dict[Any, Any] = {self.column: gr.Column(visible=True), self.text: card}
        return updates | {self.controls[field]: value for field, value in (form or {}).items()}


def _form(draft: dict[str, Any] | None) -> dict[str, Any]:
    """One critique's answers as the form holds them (unanswered: None, unticked, ""), from its draft."""
    draft = draft or {}
    form: dict[str, Any] = {}
    for field in RATED_FIELDS:
        if field in FLAG_FIELDS:
            form[field] = bool(draft.get(field, False))
        elif field == "rationale":
            form[field] = str(draft.get(field) or "")
        else:
            form[field] = draft.get(field) if draft.get(field) in SCORES else None
    return form


def _unanswered(form: dict[str, Any]) -> list[str]:
    """The fields of one critique's form left empty (a score not chosen, a blank rationale)."""
    return [f for f, value in form.items() if value is None or (isinstance(value, str) and not value.strip())]


class CompareTab:
    """Its components, and the handlers behind them (each a thin call into the store)."""

    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx
        self.task = gr.State(None)  # {"id", "critique_ids"} of the open compare task
        self.checking = gr.State(False)  # a submission was refused: the problem list follows every change
        self.saved = gr.State(None)  # the draft payload last saved or restored: autosave skips repeats
        self.compare_timer = gr.Timer(AUTOSAVE_S, active=False)
        # The task the answers on the page belong to, held by the page (a State lives on the server): a
        # save sent before Submit and run after it carries this old id, so it never lands on the next task.
        self.form_of = gr.Number(None, visible=False, precision=0, elem_id="compare-form-of")
        with gr.Row(elem_id="compare-head", equal_height=True):
            self.task_info = gr.Markdown(elem_id="compare-info")
            self.compare_status = gr.Markdown(elem_id="compare-status")
            self.refresh_task = gr.Button(
                "Look for a new task", size="sm", scale=0, min_width=160, elem_id="compare-refresh"
            )
        with gr.Column(visible=False, elem_id="compare-task") as self.compare_panel:
            with gr.Row(equal_height=False, elem_id="compare-body"):
                with gr.Column(scale=5, min_width=360, elem_id="compare-left"):
                    gr.Markdown(COMPARE_HELP, elem_id="compare-help")
                    self.code_view = gr.HTML(elem_id="compare-code")
                    self.diff_view = gr.HTML(elem_id="compare-diff")
                    gr.HTML(KEY_LEGEND, elem_id="compare-keys")
                with gr.Column(scale=6, min_width=420, elem_id="compare-right"):
                    self.nav = gr.HTML(elem_id="compare-nav")
                    self.slots = [_CritiqueSlot(i) for i in range(MAX_CRITIQUES)]
                    self.problems = gr.HTML(elem_id="compare-problems")
                    with gr.Row(elem_id="compare-actions", equal_height=True):
                        self.compare_save = gr.Button(
                            "Save draft", size="sm", scale=0, elem_id="compare-save"
                        )
                        self.compare_submit = gr.Button(
                            "Submit ratings", variant="primary", size="sm", scale=0, elem_id="compare-submit"
                        )
                        self.compare_draft = gr.Markdown(elem_id="compare-draft-status")

    @property
    def _slot_inputs(self) -> list[gr.components.Component]:
        return [component for slot in self.slots for component in slot.inputs]

    def _open_task(self, session: Session, user: User) -> dict:
        """Updates for the user's next compare task, its draft restored."""
        task = store.next_compare_task(session, user)
        reset = {self.checking: False, self.problems: ""}
        if task is None:
            return reset | {
                self.task: None,
                self.form_of: None,
                self.saved: None,
                self.task_info: "**No comparison is waiting for you.** Tasks appear as others submit.",
                self.compare_panel: gr.Column(visible=False),
                self.nav: "",
                self.compare_draft: "",
            }
        n = len(task.critiques)
        if n > MAX_CRITIQUES:
            raise AppError(
                f"task {task.tampering_id} has {n} critiques; the UI shows at most {MAX_CRITIQUES}"
            )
        drafts = (task.draft or {}).get("ratings", {})
        forms = {str(c.critique_id): _form(drafts.get(str(c.critique_id))) for c in task.critiques}
        updates: dict[Any, Any] = reset | {
            self.task: {"id": task.tampering_id, "critique_ids": [c.critique_id for c in task.critiques]},
            self.form_of: task.tampering_id,
            self.saved: {"ratings": forms},
            self.task_info: f"**Task {task.tampering_id}** · {n} critiques",
            self.compare_panel: gr.Column(visible=True),
            self.code_view: render_code_view(task.code, task.bug_lines),
            self.diff_view: render_diff(task.original, task.code),
            self.nav: render_navigator(task.tampering_id, self._complete(list(forms.values()))),
            self.compare_draft: "Draft restored." if task.draft else "",
        }
        for i, slot in enumerate(self.slots):
            if i < n:
                critique = task.critiques[i]
                card = render_critique_card(critique.text, task.code)
                updates |= slot.fill(card, forms[str(critique.critique_id)])
            else:
                updates |= slot.fill(None, None)
        return updates

    def open_task(self, token: str | None) -> dict:
        with self.ctx.user(token) as (session, user):
            return self._open_task(session, user) | {self.compare_status: ""}

    def show_compare(self, token: str | None, task: dict | None) -> dict:
        """On showing the Compare tab: claim a task if none is open (an open one keeps its edits)."""
        return {self.compare_status: gr.skip()} if task is not None else self.open_task(token)

    def _forms(self, task: dict, values: tuple[Any, ...]) -> dict[str, dict[str, Any]]:
        """Each shown critique's form values by critique id (as a string: the draft is JSON)."""
        per_slot = len(self.slots[0].inputs)
        return {
            str(critique_id): dict(zip(RATED_FIELDS, values[i * per_slot : (i + 1) * per_slot], strict=True))
            for i, critique_id in enumerate(task["critique_ids"])
        }

    @staticmethod
    def _complete(forms: list[dict[str, Any]]) -> list[bool]:
        """Per critique, whether the store would take its answers as they are."""
        return [not store.rating_problems([form]) for form in forms]

    @staticmethod
    def _problems(forms: list[dict[str, Any]]) -> str:
        """The store's problem list for the whole task, each line with buttons to its empty answers."""
        messages = store.rating_problems(forms)
        flagged = [i for i, form in enumerate(forms) if store.rating_problems([form])]
        if len(flagged) != len(messages):  # not one message per critique: show them without jumps
            return render_problems([(message, None, []) for message in messages])
        return render_problems(
            [
                (message, i, [(f, SHORT_LABELS.get(f, f)) for f in _unanswered(forms[i])])
                for message, i in zip(messages, flagged, strict=True)
            ]
        )

    def recheck(self, task: dict | None, checking: bool, *values: Any) -> dict:
        """After any answer changes: the navigator's ✓ marks, and the problem list if it is showing."""
        if task is None:
            return {self.nav: gr.skip(), self.problems: gr.skip()}
        forms = list(self._forms(task, values).values())
        return {
            self.nav: render_navigator(task["id"], self._complete(forms)),
            self.problems: self._problems(forms) if checking else gr.skip(),
        }

    def _save(self, token: str | None, task: dict, values: tuple[Any, ...]) -> dict:
        payload = {"ratings": self._forms(task, values)}
        with self.ctx.user(token) as (session, user):
            store.save_draft(session, user, "compare", task["id"], payload)
        return {
            self.compare_draft: stamp("Draft saved"),
            self.compare_timer: gr.Timer(active=False),
            self.saved: payload,
        }

    def autosave(
        self, token: str | None, task: dict | None, saved: dict | None, form_of: float | None, *values: Any
    ) -> dict:
        """The timer's save: only what changed since the last save or the restored draft, and only the
        answers of the open task (a late save of a task submitted since is dropped). It touches nothing
        else, so a refusal shown on the page stays."""
        if not form_is_of(task, form_of) or saved == {"ratings": self._forms(task, values)}:
            return {self.compare_timer: gr.Timer(active=False)}
        return self._save(token, task, values)

    def save_compare_draft(
        self, token: str | None, task: dict | None, form_of: float | None, *values: Any
    ) -> dict:
        return self._save(token, open_form(task, form_of, "task"), values)

    def submit_ratings(
        self, token: str | None, task: dict | None, form_of: float | None, *values: Any
    ) -> dict:
        """Every problem of every critique at once, kept on the page until fixed; or, when there is
        none, the ratings in one transaction and the next task."""
        task = open_form(task, form_of, "task")
        forms = self._forms(task, values)
        if store.rating_problems(list(forms.values())):
            return {
                self.checking: True,
                self.problems: self._problems(list(forms.values())),
                self.compare_status: "",
            }
        ratings = {
            int(critique_id): store.RatingInput(**{**form, "rationale": form["rationale"].strip()})
            for critique_id, form in forms.items()
        }
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
            self.task, self.form_of, self.checking, self.saved, self.task_info, self.compare_panel,
            self.code_view, self.diff_view, self.nav, self.problems, self.compare_draft, self.compare_status,
            self.compare_timer, *slot_outputs,
        ]  # fmt: skip

    def cleared(self) -> dict:
        """What entering the app shows before the Compare tab is opened: no task is claimed yet."""
        return {
            self.task: None,
            self.form_of: None,
            self.checking: False,
            self.saved: None,
            self.task_info: "",
            self.compare_panel: gr.Column(visible=False),
            self.nav: "",
            self.problems: "",
            self.compare_status: "",
            self.compare_timer: gr.Timer(active=False),
        }

    def wire(self, tab: gr.Tab) -> None:
        token = self.ctx.token
        status = guard(self.compare_status)
        inputs = self._slot_inputs
        # Typing, pasting, a click, a key, leaving a field: each (re)starts the autosave countdown.
        edits = [
            event
            for c in inputs
            for event in (getattr(c, "input", None), getattr(c, "change", None), getattr(c, "blur", None))
            if event is not None
        ]
        gr.on(
            edits,
            lambda: gr.Timer(active=True),
            None,
            self.compare_timer,
            trigger_mode="always_last",
            show_progress="hidden",
            **QUICK,
        )
        gr.on(
            [c.change for c in inputs],
            self.recheck,
            [self.task, self.checking, *inputs],
            [self.nav, self.problems],
            trigger_mode="always_last",
            show_progress="hidden",
            **QUICK,
        )
        draft_outputs = [self.compare_draft, self.compare_timer, self.saved, self.compare_status]
        self.compare_timer.tick(
            status(self.autosave),
            [token, self.task, self.saved, self.form_of, *inputs],
            draft_outputs,
            **QUICK,
        )
        form = [token, self.task, self.form_of, *inputs]
        self.compare_save.click(status(self.save_compare_draft), form, draft_outputs, **QUICK)
        self.compare_submit.click(status(self.submit_ratings), form, self.outputs, **QUICK)
        tab.select(status(self.show_compare), [token, self.task], self.outputs, **QUICK)
        self.refresh_task.click(status(self.open_task), [token], self.outputs, **QUICK)
