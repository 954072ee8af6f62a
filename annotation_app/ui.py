"""The annotators' and admins' web UI: login, then Tamper, Compare and (admins only) Admin tabs.

Every handler is a thin call into `critic.annotation_app.store`, which enforces the rules (roles, validation,
queues), so the UI holds no rule of its own beyond reading form fields. Handlers return dicts of
component updates: an `AppError` becomes a one-line message in the tab's status line (and a toast),
leaving every other field as it was. The login token lives in the browser's localStorage
(`gr.BrowserState`), so a page reload keeps the user logged in; every request re-resolves it to a user.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import TYPE_CHECKING, Any

import gradio as gr
from sqlalchemy.engine import Engine
from sqlmodel import Session

from critic.annotation_app import store
from critic.annotation_app.store import RATED_FIELDS, AppError, CheckResult, TestResult
from critic.core.critique import code_lines, parse_critique
from critic.datagen.rating import FLAG_FIELDS, SCORE_FIELDS, SCORE_MAX, SCORE_MIN

if TYPE_CHECKING:
    from critic.annotation_app.db import User

__all__ = ["MAX_CRITIQUES", "build_ui", "parse_line_numbers", "render_check", "render_critique"]

MAX_CRITIQUES = store.CRITIQUES_PER_TASK  # critiques per compare task: one column of controls each
SCORES = list(range(SCORE_MIN, SCORE_MAX + 1))
AUTOSAVE_S = 2.0  # a draft is saved this long after an edit (and every this long while typing)

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

TAMPER_HELP = """\
Insert a **subtle** bug into the code, the kind a careful reviewer could miss. Mark the lines you changed,
then describe the bug as if you had caught it in code review. *Check against critic* runs the current
critic three times: the tampering is adversarial (the data we most need) when at least one run misses it.
"""
COMPARE_HELP = """\
Rate each critique of the code below. The reference bug is what the tamperer inserted; judge every
critique independently, except *Overall*, which compares it with the other critiques of this task.
"""


# --- pure helpers ------------------------------------------------------------------------------------


def parse_line_numbers(text: str) -> list[int]:
    """Sorted line numbers from "3, 5-6"; AppError names the part that cannot be read."""
    numbers: set[int] = set()
    for part in re.split(r"[,;\s]+", re.sub(r"\s*[-–]\s*", "-", text.strip())):
        if not part:
            continue
        match = re.fullmatch(r"(\d+)(?:-(\d+))?", part)
        if match is None:
            raise AppError(f"bug lines: cannot read {part!r}; write line numbers like 3, 5-6")
        low = int(match[1])
        high = int(match[2]) if match[2] else low
        if high < low or high - low > store.MAX_CODE:  # no code has more lines than characters
            raise AppError(f"bug lines: {part!r} is not a range of lines")
        numbers.update(range(low, high + 1))
    return sorted(numbers)


def _fence(text: str) -> str:
    """A markdown code block that no backtick run inside `text` can close early."""
    longest = max((len(run) for run in re.findall(r"`+", text)), default=0)
    fence = "`" * max(3, longest + 1)
    return f"{fence}\n{text}\n{fence}"


def _span(start: int, end: int) -> str:
    return f"Line {start}" if start == end else f"Lines {start}–{end}"


def render_critique(text: str, code: str) -> str:
    """A critique as markdown with each highlight tied to the code: the line numbers it quotes and
    those lines as they are in the code, or a warning when the quote is not in the code at all."""
    critique = parse_critique(text, code)
    lines = code_lines(code)  # numbered as the store numbers bug lines
    width = len(str(len(lines)))
    parts = [critique.preamble] if critique.preamble else []
    for highlight in critique.highlights:
        if highlight.start_line is None or highlight.end_line is None:
            parts.append("**⚠ Quote not found in the code:**")
            parts.append(_fence(highlight.quote) if highlight.quote.strip() else "*(empty quote)*")
        else:
            quoted = [f"{n:>{width}} │ {lines[n - 1]}" for n in highlight.lines if 0 < n <= len(lines)]
            parts.append(f"**{_span(highlight.start_line, highlight.end_line)}**")
            parts.append(_fence("\n".join(quoted)))
        if highlight.comment:
            parts.append(highlight.comment)
    return "\n\n".join(parts) if parts else "*(empty critique)*"


def render_check(result: CheckResult) -> str:
    """The *Check against critic* verdict: caught or missed per search, each critique, and whether the
    tampering will count as adversarial."""
    n = len(result.caught)
    missed = n - sum(result.caught)
    if result.adversarial:
        verdict = f"✓ **Adversarial**: the critic missed the bug in {missed} of {n} searches."
    else:
        verdict = f"✗ **Not adversarial**: the critic caught the bug in all {n} searches. Try a subtler bug."
    parts = [verdict]
    for i, (hit, text) in enumerate(zip(result.caught, result.critiques, strict=True), start=1):
        mark = "✓ caught" if hit else "✗ missed"
        parts.append(f"#### Search {i}: {mark}")
        parts.append(render_critique(text, result.code))
    return "\n\n".join(parts)


def render_tests(result: TestResult) -> str:
    original = "✓ passes" if result.original_passed else "✗ fails"
    tampered = "✓ fails" if result.tampered_failed else "✗ passes"
    verdict = "the tests see your bug" if result.verified else "the tests do not confirm the bug"
    return f"Original {original} · tampered {tampered}: {verdict}.\n\n{_fence(result.detail)}"


def _stamp(what: str) -> str:
    return f"{what} at {datetime.now().strftime('%H:%M:%S')}"


def _table(rows: list[dict[str, Any]]) -> Any:
    import pandas as pd

    return pd.DataFrame(rows)


# --- the UI ------------------------------------------------------------------------------------------


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


class AnnotationUI:
    """The Blocks and their handlers; build with `build_ui`."""

    def __init__(self, engine: Engine, critic_factory: Callable[[], Any]) -> None:
        self.engine = engine
        self.critic_factory = critic_factory
        with gr.Blocks(title="critic annotation", fill_width=True) as self.blocks:
            self.token = gr.BrowserState(None, storage_key="critic-annotation-token")
            self._login_panel()
            with gr.Column(visible=False, elem_id="app-panel") as self.app_panel:
                with gr.Row(equal_height=True):
                    self.who = gr.Markdown(elem_id="who")
                    self.logout_button = gr.Button("Log out", elem_id="logout", size="sm", scale=0)
                with gr.Tabs(elem_id="tabs") as self.tabs:
                    with gr.Tab("Tamper", id="tamper", elem_id="tamper-tab") as self.tamper_tab:
                        self._tamper_tab()
                    with gr.Tab("Compare", id="compare", elem_id="compare-tab") as self.compare_tab:
                        self._compare_tab()
                    with gr.Tab("Admin", id="admin", elem_id="admin-tab", visible=False) as self.admin_tab:
                        self._admin_tab()
            self._wire()

    # --- plumbing ---------------------------------------------------------------------------------

    @contextmanager
    def _user(self, token: str | None) -> Iterator[tuple[Session, User]]:
        """A database session and the user `token` belongs to (AppError if there is none)."""
        if not token:
            raise AppError("not logged in")
        with Session(self.engine) as session:
            yield session, store.user_for_token(session, token)

    @staticmethod
    def _guard(status: gr.Markdown) -> Callable[[Callable[..., dict]], Callable[..., dict]]:
        """Turn an AppError of the handler into a message in `status`; every other field keeps its value."""

        def wrap(handler: Callable[..., dict]) -> Callable[..., dict]:
            @functools.wraps(handler)
            def guarded(*args: Any) -> dict:
                try:
                    return handler(*args)
                except AppError as err:
                    gr.Warning(str(err), duration=5)  # the status line keeps the message
                    return {status: f"⚠ {err}"}

            return guarded

        return wrap

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
        with Session(self.engine) as session:
            token = store.login(session, name, password)
        return {self.token: token, self.password: "", self.login_status: ""}

    def do_logout(self, token: str | None) -> dict:
        if token:
            with Session(self.engine) as session:
                store.logout(session, token)
        # Nothing of this user's stays on the page for the next one to see.
        return {
            self.token: None,
            self.login_panel: gr.Column(visible=True),
            self.app_panel: gr.Column(visible=False),
            self.admin_tab: gr.Tab(visible=False),
            self.sample: None,
            self.check: None,
            self.code: "",
            self.description: "",
            self.check_result: "",
            self.tamper_timer: gr.Timer(active=False),
            self.compare_timer: gr.Timer(active=False),
            self.users_table: None,
            self.tasks_table: None,
        }

    def enter(self, token: str | None) -> dict:
        """Show the app for a valid token (after login or a page reload) on the Tamper tab.

        Only the tamper sample is opened here; the compare task is claimed when the Compare tab is
        first shown, so annotators who only tamper never hold a rating slot another annotator needs.
        The previous user's task, if this page had one, is dropped.
        """
        if not token:
            return {self.login_panel: gr.Column(visible=True), self.app_panel: gr.Column(visible=False)}
        with Session(self.engine) as session:
            try:
                user = store.user_for_token(session, token)
            except AppError:  # logged out elsewhere, or a database that was reset
                return {self.token: None, self.login_panel: gr.Column(visible=True)}
            return self._open_sample(session, user) | {
                self.login_panel: gr.Column(visible=False),
                self.app_panel: gr.Column(visible=True),
                self.tabs: gr.Tabs(selected="tamper"),
                self.admin_tab: gr.Tab(visible=user.role == "admin"),
                self.who: f"Logged in as **{user.name}** ({user.role})",
                self.task: None,
                self.task_info: "",
                self.compare_panel: gr.Column(visible=False),
                self.compare_status: "",
                self.compare_timer: gr.Timer(active=False),
            }

    # --- Tamper -----------------------------------------------------------------------------------

    def _tamper_tab(self) -> None:
        self.sample = gr.State(None)  # {"id", "original", "has_tests"} of the open sample
        self.check = gr.State(None)  # the last CheckResult of the open sample
        self.tamper_timer = gr.Timer(AUTOSAVE_S, active=False)
        gr.Markdown(TAMPER_HELP)
        self.sample_info = gr.Markdown(elem_id="tamper-info")
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
                        self.check_button = gr.Button("Check against critic", elem_id="tamper-check")
                        self.tests_button = gr.Button("Run tests", elem_id="tamper-run-tests", visible=False)
                    with gr.Row():
                        self.save_button = gr.Button("Save draft", elem_id="tamper-save")
                        self.submit_button = gr.Button("Submit", variant="primary", elem_id="tamper-submit")
                    self.tamper_draft = gr.Markdown(elem_id="tamper-draft-status")
                    self.test_result = gr.Markdown(elem_id="tamper-test-result")
            self.check_result = gr.Markdown(elem_id="tamper-check-result")
        self.refresh_sample = gr.Button("Look for a new sample", size="sm", elem_id="tamper-refresh")

    def _open_sample(self, session: Session, user: User) -> dict:
        """Updates for the user's next tamper sample, its draft restored."""
        view = store.next_tamper_sample(session, user)
        cleared = {self.check: None, self.check_result: "", self.test_result: "", self.tamper_status: ""}
        if view is None:
            return cleared | {
                self.sample: None,
                self.sample_info: "**No sample is waiting for you.** An admin can import more code.",
                self.tamper_editor: gr.Column(visible=False),
                self.tamper_draft: "",
            }
        draft = view.draft or {}
        where = f"{view.source} / {view.task_id}" if view.task_id else view.source
        tests = "has tests" if view.has_tests else "no tests"
        return cleared | {
            self.sample: {"id": view.sample_id, "original": view.code, "has_tests": view.has_tests},
            self.sample_info: f"**Sample {view.sample_id}** · {where} · {tests}",
            self.tamper_editor: gr.Column(visible=True),
            self.code: draft.get("code", view.code),
            self.bug_lines: draft.get("bug_lines", ""),
            self.description: draft.get("description", ""),
            self.tests_button: gr.Button(visible=view.has_tests),
            self.tamper_draft: "Draft restored." if view.draft else "",
        }

    def open_sample(self, token: str | None) -> dict:
        with self._user(token) as (session, user):
            return self._open_sample(session, user)

    def save_tamper_draft(
        self, token: str | None, sample: dict | None, code: str, lines: str, text: str
    ) -> dict:
        if sample is None:
            return {self.tamper_timer: gr.Timer(active=False)}
        payload = {"code": code, "bug_lines": lines, "description": text}
        with self._user(token) as (session, user):
            store.save_draft(session, user, "tamper", sample["id"], payload)
        return {self.tamper_draft: _stamp("Draft saved"), self.tamper_timer: gr.Timer(active=False)}

    def run_check(self, token: str | None, sample: dict | None, code: str, lines: str, text: str) -> dict:
        if sample is None:
            raise AppError("no sample is open")
        bug_lines = parse_line_numbers(lines)
        # The store checks that the sample is the user's and the tampering valid before the critic runs.
        with self._user(token) as (session, user):
            result = store.check_sample(
                session, user, self.critic_factory, sample["id"], code, bug_lines, text
            )
        return {
            self.check: result,
            self.check_result: render_check(result),
            self.tamper_status: "Checked against the critic; the result is below.",
        }

    def run_tests(self, token: str | None, sample: dict | None, code: str) -> dict:
        if sample is None:
            raise AppError("no sample is open")
        with self._user(token) as (session, user):
            result = store.run_tests(session, user, sample["id"], code)
        return {self.test_result: render_tests(result), self.tamper_status: ""}

    def submit_tampering(
        self,
        token: str | None,
        sample: dict | None,
        check: CheckResult | None,
        code: str,
        lines: str,
        text: str,
    ) -> dict:
        if sample is None:
            raise AppError("no sample is open")
        bug_lines = parse_line_numbers(lines)
        # The store re-rates the check's critiques against the submitted lines and description, and
        # refuses a check of other code: the critic must have seen exactly what is submitted.
        with self._user(token) as (session, user):
            tampering_id = store.submit_tampering(session, user, sample["id"], code, bug_lines, text, check)
            updates = self._open_sample(session, user)
        done = f"✓ Submitted tampering {tampering_id}. Here is your next sample."
        return updates | {self.tamper_status: done, self.tamper_timer: gr.Timer(active=False)}

    # --- Compare ----------------------------------------------------------------------------------

    def _compare_tab(self) -> None:
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
        with self._user(token) as (session, user):
            return self._open_task(session, user) | {self.compare_status: ""}

    def show_compare(self, token: str | None, task: dict | None) -> dict:
        """On showing the Compare tab: claim a task if none is open (an open one keeps its edits)."""
        return {self.compare_status: gr.skip()} if task is not None else self.open_task(token)

    def show_tamper(self, token: str | None, sample: dict | None) -> dict:
        """On showing the Tamper tab: look for a sample if none is open (an admin may have imported)."""
        return {self.tamper_status: gr.skip()} if sample is not None else self.open_sample(token)

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
        with self._user(token) as (session, user):
            store.save_draft(
                session, user, "compare", task["id"], {"ratings": self._slot_values(task, values)}
            )
        return {
            self.compare_draft: _stamp("Draft saved"),
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
        with self._user(token) as (session, user):
            store.submit_ratings(session, user, task["id"], ratings)
            updates = self._open_task(session, user)
        return updates | {
            self.compare_status: f"✓ Submitted ratings for task {task['id']}.",
            self.compare_timer: gr.Timer(active=False),
        }

    # --- Admin ------------------------------------------------------------------------------------

    def _admin_tab(self) -> None:
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
            self.users_table: _table(progress["users"]),
            self.tasks_table: _table(progress["tasks"]),
            self.overlap: progress.get("overlap", self.overlap.value),
            self.agreement: (
                f"Krippendorff's α ({metric}): overall **{show(agreement['overall'])}**, "
                f"CBI **{show(agreement['cbi'])}** ({agreement['units']} critiques rated by 2+ annotators)"
            ),
        }

    def admin_refresh_view(self, token: str | None) -> dict:
        with self._user(token) as (session, user):
            return self._admin_view(session, user)

    def import_code(self, token: str | None, source: str) -> dict:
        with self._user(token) as (session, user):
            added = store.import_samples(session, user, source)
            return self._admin_view(session, user) | {self.admin_status: f"✓ Imported {added} new samples."}

    def set_overlap(self, token: str | None, overlap: float | None) -> dict:
        # A whole float (the number box's 3.0) is the number of raters; anything else, the store refuses.
        if isinstance(overlap, float) and overlap.is_integer():
            overlap = int(overlap)
        with self._user(token) as (session, user):
            store.set_overlap(session, user, overlap)
            return self._admin_view(session, user) | {self.admin_status: f"✓ Overlap set to {overlap}."}

    def export(self, token: str | None, directory: str) -> dict:
        if not directory.strip():
            raise AppError("name a directory on the server to export to")
        directory = directory.strip()
        with self._user(token) as (session, user):
            dataset = store.export_dataset(session, user)
        try:
            dataset.save_to_disk(directory)
        except OSError as err:  # a path the server cannot write: the admin's typo, not a crash
            raise AppError(f"cannot write {directory}: {err.strerror or err}") from None
        counts = ", ".join(f"{split} {split_rows.num_rows}" for split, split_rows in dataset.items())
        return {self.admin_status: f"✓ Exported to `{directory}`: {counts} rows."}

    # --- events -----------------------------------------------------------------------------------

    def _wire(self) -> None:
        quick = {"concurrency_limit": None}  # database work only: never queue users behind each other
        app_outputs = [self.login_panel, self.app_panel, self.tabs, self.admin_tab, self.who, self.token]
        tamper_outputs = [
            self.sample, self.check, self.sample_info, self.tamper_editor, self.code, self.bug_lines,
            self.description, self.tests_button, self.tamper_draft, self.check_result, self.test_result,
            self.tamper_status, self.tamper_timer,
        ]  # fmt: skip
        slot_outputs = [c for slot in self.slots for c in (slot.column, slot.text, *slot.inputs)]
        compare_outputs = [
            self.task, self.task_info, self.compare_panel, self.compare_code, self.reference,
            self.compare_draft, self.compare_status, self.compare_timer, *slot_outputs,
        ]  # fmt: skip
        admin_outputs = [self.users_table, self.tasks_table, self.overlap, self.agreement, self.admin_status]
        enter_outputs = app_outputs + tamper_outputs + compare_outputs

        guard = self._guard
        login_guarded = guard(self.login_status)(self.do_login)
        for trigger in (self.login_button.click, self.password.submit):
            trigger(
                login_guarded,
                [self.name, self.password],
                [self.token, self.password, self.login_status],
                **quick,
            ).then(self.enter, [self.token], enter_outputs, **quick)
        self.blocks.load(self.enter, [self.token], enter_outputs, **quick)
        self.logout_button.click(
            self.do_logout,
            [self.token],
            [*app_outputs, *tamper_outputs, self.compare_timer, *admin_outputs],
            **quick,
        )

        # Tamper
        form = [self.token, self.sample, self.code, self.bug_lines, self.description]
        save = guard(self.tamper_status)(self.save_tamper_draft)
        for field in (self.code, self.bug_lines, self.description):
            field.input(
                lambda: gr.Timer(active=True),
                None,
                self.tamper_timer,
                trigger_mode="always_last",
                show_progress="hidden",
                **quick,
            )
        self.tamper_timer.tick(
            save, form, [self.tamper_draft, self.tamper_timer, self.tamper_status], **quick
        )
        self.save_button.click(
            save, form, [self.tamper_draft, self.tamper_timer, self.tamper_status], **quick
        )
        self.check_button.click(
            guard(self.tamper_status)(self.run_check),
            form,
            [self.check, self.check_result, self.tamper_status],
            concurrency_id="critic",  # one search at a time: they share the model and the CPU
            concurrency_limit=1,
        )
        self.tests_button.click(
            guard(self.tamper_status)(self.run_tests),
            [self.token, self.sample, self.code],
            [self.test_result, self.tamper_status],
            concurrency_limit=2,
        )
        self.submit_button.click(
            guard(self.tamper_status)(self.submit_tampering),
            [self.token, self.sample, self.check, self.code, self.bug_lines, self.description],
            tamper_outputs,
            **quick,
        )
        self.tamper_tab.select(
            guard(self.tamper_status)(self.show_tamper), [self.token, self.sample], tamper_outputs, **quick
        )
        self.refresh_sample.click(
            guard(self.tamper_status)(self.open_sample), [self.token], tamper_outputs, **quick
        )

        # Compare
        task_form = [self.token, self.task, *self._slot_inputs]
        save_task = guard(self.compare_status)(self.save_compare_draft)
        for field in self._slot_inputs:
            field.input(
                lambda: gr.Timer(active=True),
                None,
                self.compare_timer,
                trigger_mode="always_last",
                show_progress="hidden",
                **quick,
            )
        draft_outputs = [self.compare_draft, self.compare_timer, self.compare_status]
        self.compare_timer.tick(save_task, task_form, draft_outputs, **quick)
        self.compare_save.click(save_task, task_form, draft_outputs, **quick)
        self.compare_submit.click(
            guard(self.compare_status)(self.submit_ratings), task_form, compare_outputs, **quick
        )
        self.compare_tab.select(
            guard(self.compare_status)(self.show_compare), [self.token, self.task], compare_outputs, **quick
        )
        self.refresh_task.click(
            guard(self.compare_status)(self.open_task), [self.token], compare_outputs, **quick
        )

        # Admin: every action goes through the store, which refuses non-admins (Forbidden)
        admin = guard(self.admin_status)
        self.admin_tab.select(admin(self.admin_refresh_view), [self.token], admin_outputs, **quick)
        self.admin_refresh.click(admin(self.admin_refresh_view), [self.token], admin_outputs, **quick)
        self.import_button.click(admin(self.import_code), [self.token, self.import_source], admin_outputs)
        self.overlap_button.click(admin(self.set_overlap), [self.token, self.overlap], admin_outputs, **quick)
        self.export_button.click(admin(self.export), [self.token, self.export_dir], admin_outputs)


def build_ui(engine: Engine, critic_factory: Callable[[], Any]) -> gr.Blocks:
    """The annotation UI over `engine`'s database; `critic_factory()` returns the (cached) critic that
    *Check against critic* runs, loaded on first use so the UI starts without a model."""
    return AnnotationUI(engine, critic_factory).blocks
