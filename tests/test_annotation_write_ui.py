"""The Write tab's handlers, called directly (no browser): the form is a thin skin over
critic.annotation_app.writing, so every refusal is the store's and a refused submission stores nothing.
"""

from __future__ import annotations

import pytest
from annotation_helpers import (
    DESCRIPTION,
    PASSWORD,
    fire,
    make_team,
    tamper_next,
    tampered,
)
from sqlmodel import Session, col, func, select

from critic.annotation_app import store, writing
from critic.annotation_app.checker import CheckResult
from critic.annotation_app.db import Assignment, Critique, Draft, HighlightEvent
from critic.annotation_app.ui.render import (
    line_range,
    numbered_code,
    quote_from_lines,
    quote_lines,
    quote_place,
)

# The critic's critique every assisted writer starts from: a preamble and three highlights of the
# tampered helper function (annotation_helpers.FUNCTION with its off-by-one).
LOOP = "for i in range(len(xs) - 1):"
DIVIDE = "return total / len(xs)"
INIT = "total = 0"
CRITIC = (
    "Two problems and a style point.\n\n"
    f"```\n{LOOP}\n```\nOff-by-one: the last element is never added.\n\n"
    f"```\n{DIVIDE}\n```\nDivides by zero.\n\n"
    f"```\n{INIT}\n```\nShould be a float."
)


def check_with_highlights(code: str) -> CheckResult:
    """A fixed *Check against critic* whose critique is CRITIC, with its three highlights."""
    return CheckResult([True], [CRITIC], False, {"origin": "test:three-highlights"}, code)


@pytest.fixture
def writing_team(annotation_engine, tmp_path):
    """Writers = 2; alice has tampered one sample (tampering t). Returns the engine, t, the users, and the
    first and second writer of t in the order that makes `first` the assisted one."""
    engine = annotation_engine
    admin, alice, bob, carol = make_team(engine, tmp_path / "src", samples=1)
    with Session(engine) as session:
        writing.set_writers(session, admin, 2)
        sample = store.next_tamper_sample(session, alice)
        code = tampered(sample.code)
        tampering_id = store.submit_tampering(
            session, alice, sample.sample_id, code, [3], DESCRIPTION, check_with_highlights(code)
        )
    # Writer k of tampering t writes in MODES[(t + k) % 2]: the assisted one claims first when t is odd.
    assisted, human = (bob, carol) if tampering_id % 2 else (carol, bob)
    return engine, tampering_id, code, assisted, human


def write_tab(engine):
    """A Write tab over `engine`, outside any server: its handlers are plain methods."""
    import gradio as gr

    from critic.annotation_app.ui.base import Context
    from critic.annotation_app.ui.write import WriteTab

    with gr.Blocks():
        return WriteTab(Context(engine, lambda: None, gr.BrowserState(None)))


def token_of(engine, user) -> str:
    with Session(engine) as session:
        return store.login(session, user.name, PASSWORD)


def form(tab, updates: dict) -> tuple[dict, list, str, list[str]]:
    """What the browser would send back after `updates`: task, sources, preamble and slot values."""
    sources = updates[tab.sources]
    values = [updates[field] for slot in tab.slots for field in slot.inputs]
    return updates[tab.task], sources, updates[tab.preamble], values


def rows_of(tab, updates: dict) -> list[tuple[str, str]]:
    return [(updates[s.quote], updates[s.comment]) for s in tab.slots[: len(updates[tab.sources])]]


def written(engine) -> int:
    with Session(engine) as session:
        return session.exec(select(func.count()).where(col(Critique.origin).in_(("human", "assisted")))).one()


def test_assisted_writer_starts_from_the_critic_and_the_store_logs_each_highlight(writing_team):
    engine, tampering_id, code, assisted, _ = writing_team
    tab = write_tab(engine)
    token = token_of(engine, assisted)
    opened = tab.open_task(token)
    task, sources, preamble, values = form(tab, opened)
    assert task == {"id": tampering_id, "code": code, "mode": "assisted"}
    assert "The critic's critique is below" in opened[tab.instruction]
    assert DESCRIPTION not in str(opened.values())  # the writer is not told the bug
    assert sources == [0, 1, 2] and preamble == "Two problems and a style point."
    assert rows_of(tab, opened) == [
        (LOOP, "Off-by-one: the last element is never added."),
        (DIVIDE, "Divides by zero."),
        (INIT, "Should be a float."),
    ]
    assert [opened[s.lines] for s in tab.slots[:3]] == ["3", "5", "2"]
    assert "from the critic" in opened[tab.slots[0].heading]
    assert '<td class="ln">5</td><td class="src">    return total / len(xs)</td>' in opened[tab.code_view]

    # Keep the first, edit the second's comment, remove the third, add one by its line number.
    values[1 * 3 + 2] = "Divides by zero when xs is empty."
    removed = tab.remove_highlight(2, task, sources, *values)
    task, sources, _, values = form(tab, removed | {tab.task: task, tab.preamble: preamble})
    assert sources == [0, 1] and removed[tab.slots[2].box].visible is False
    added = tab.add_highlight(task, sources, *values)
    task, sources, _, values = form(tab, added | {tab.task: task, tab.preamble: preamble})
    assert sources == [0, 1, None] and "yours" in added[tab.slots[2].heading]
    filled = tab.fill_lines(2, task, "4", values[2 * 3 + 1])
    assert filled[tab.slots[2].quote] == "        total += xs[i]"
    values[2 * 3 : 2 * 3 + 3] = ["4", filled[tab.slots[2].quote], "Indexing by position is unidiomatic."]

    done = tab.submit_critique(token, task, task["id"], sources, preamble, *values)
    assert done[tab.write_status] == f"✓ Submitted your critique of task {tampering_id}."
    assert done[tab.task] is None and "No critique to write" in done[tab.write_info]
    with Session(engine) as session:
        critique = session.exec(select(Critique).where(Critique.origin == "assisted")).one()
        assert critique.author_id == assisted.id
        events = session.exec(select(HighlightEvent).where(HighlightEvent.critique_id == critique.id)).all()
        by_action = {e.action: e for e in events}
        assert sorted(by_action) == ["added", "edited", "kept", "removed"] and len(events) == 4
        assert by_action["kept"].after_quote == LOOP
        assert by_action["edited"].after_comment == "Divides by zero when xs is empty."
        assert by_action["removed"].before_quote == INIT and by_action["removed"].after_quote is None
        assert by_action["added"].after_quote.strip() == "total += xs[i]"


def test_a_quote_not_in_the_code_is_flagged_then_refused_by_the_store_and_nothing_is_stored(writing_team):
    engine, tampering_id, code, assisted, _ = writing_team
    tab = write_tab(engine)
    token = token_of(engine, assisted)
    task, sources, preamble, values = form(tab, tab.open_task(token))
    values[1] = "for i in range(len(ys)):"  # the first highlight's quote, edited into code that is not there
    assert "not in the code" in tab.check_quote(0, task, values[1])[tab.slots[0].place]
    with pytest.raises(store.AppError, match=r"^highlight 1: the quote is not in the code$"):
        tab.submit_critique(token, task, task["id"], sources, preamble, *values)
    assert written(engine) == 0
    with Session(engine) as session:
        assert session.exec(select(func.count()).select_from(HighlightEvent)).one() == 0
        held = session.exec(select(Assignment).where(Assignment.kind == "write")).one()
        assert held.status == "open" and held.item_id == tampering_id


def test_human_writer_starts_empty_and_blank_added_rows_are_not_highlights(writing_team):
    engine, tampering_id, _, assisted, human = writing_team
    tab = write_tab(engine)
    tab.open_task(token_of(engine, assisted))  # the first slot: assisted
    token = token_of(engine, human)
    opened = tab.open_task(token)
    task, sources, preamble, values = form(tab, opened)
    assert task["mode"] == "human" and sources == [] and preamble == ""
    assert "Find the problems in this code" in opened[tab.instruction]
    assert all(opened[slot.box].visible is False for slot in tab.slots)
    blank = tab.add_highlight(task, sources, *values)
    _, blank_sources, _, blank_values = form(tab, blank | {tab.task: task, tab.preamble: ""})
    # The refusal names the field as the page labels it ("Overall remark"), not the store's "preamble".
    with pytest.raises(store.AppError, match="the critique is empty") as refused:
        tab.submit_critique(token, task, task["id"], blank_sources, "", *blank_values)
    assert "overall remark" in str(refused.value) and "preamble" not in str(refused.value)
    assert tab.preamble.label.lower().startswith("overall remark")
    assert written(engine) == 0
    added = tab.add_highlight(task, sources, *values)
    task, sources, _, values = form(tab, added | {tab.task: task, tab.preamble: ""})
    values[0:3] = ["3", quote_from_lines(task["code"], "3"), "Stops one element early."]
    tab.submit_critique(token, task, task["id"], sources, "", *values)
    with Session(engine) as session:
        critique = session.exec(select(Critique).where(Critique.origin == "human")).one()
        actions = session.exec(
            select(HighlightEvent.action).where(HighlightEvent.critique_id == critique.id)
        ).all()
    assert actions == ["added"]


def test_drafts_keep_rows_and_their_sources_across_a_reload(writing_team):
    engine, tampering_id, _, assisted, _ = writing_team
    tab = write_tab(engine)
    token = token_of(engine, assisted)
    opened = tab.open_task(token)
    task, sources, preamble, values = form(tab, opened)
    removed = tab.remove_highlight(0, task, sources, *values)
    task, sources, _, values = form(tab, removed | {tab.task: task, tab.preamble: preamble})
    values[2] = "Divides by zero on []."
    saved = tab.save_write_draft(token, task, task["id"], sources, "My remark.", *values)
    assert saved[tab.write_draft].startswith("Draft saved")
    with Session(engine) as session:
        assert session.get(Draft, (assisted.id, "write", tampering_id)) is not None

    tab2 = write_tab(engine)  # a new page: the draft comes back from the store
    reopened = tab2.open_task(token)
    assert reopened[tab2.write_draft] == "Draft restored."
    assert reopened[tab2.sources] == [1, 2] and reopened[tab2.preamble] == "My remark."
    assert rows_of(tab2, reopened) == [(DIVIDE, "Divides by zero on []."), (INIT, "Should be a float.")]


def test_skip_and_no_task(writing_team):
    engine, tampering_id, _, assisted, _ = writing_team
    tab = write_tab(engine)
    token = token_of(engine, assisted)
    task = tab.open_task(token)[tab.task]
    skipped = tab.skip_task(token, task, task["id"])
    assert skipped[tab.write_status] == f"Skipped task {tampering_id}."
    assert "No critique to write" in skipped[tab.write_info] and skipped[tab.task] is None
    assert "You have written **0** critiques" in skipped[tab.write_progress]
    with pytest.raises(store.AppError, match="no task is open"):
        tab.submit_critique(token, None, None, [], "")


def test_writing_off_means_no_critique_to_write(annotation_engine, tmp_path):
    admin, alice, bob, _ = make_team(annotation_engine, tmp_path / "src", samples=1)
    with Session(annotation_engine) as session:
        sample = store.next_tamper_sample(session, alice)
        code = tampered(sample.code)
        store.submit_tampering(
            session, alice, sample.sample_id, code, [3], DESCRIPTION, check_with_highlights(code)
        )
    tab = write_tab(annotation_engine)
    opened = tab.open_task(token_of(annotation_engine, bob))  # writers is 0 by default
    assert opened[tab.task] is None and "No critique to write" in opened[tab.write_info]
    assert opened[tab.write_panel].visible is False


def test_lines_fill_the_quote_and_a_trimmed_quote_survives_tabbing_through(writing_team):
    engine, _, code, assisted, _ = writing_team
    tab = write_tab(engine)
    task = tab.open_task(token_of(engine, assisted))[tab.task]
    filled = tab.fill_lines(0, task, "3-4", "")
    assert filled[tab.slots[0].quote] == "    for i in range(len(xs) - 1):\n        total += xs[i]"
    assert filled[tab.slots[0].place] == "Lines 3–4"
    kept = tab.fill_lines(0, task, "3", "len(xs) - 1")  # a fragment of line 3 stays as it is
    assert tab.slots[0].quote not in kept and kept[tab.slots[0].place] == "Line 3"
    with pytest.raises(store.AppError, match="write one line or a range"):
        tab.fill_lines(0, task, "3, 5", "")
    with pytest.raises(store.AppError, match="are not lines of the code"):
        tab.fill_lines(0, task, "4-99", "")


def test_render_helpers_for_writing():
    code = "def f(a):\n    return a < 1 and '<b>'\n"
    html = numbered_code(code)
    assert "<b>" not in html and "&lt;b&gt;" in html and html.count("<tr>") == 2
    assert line_range(code, " 2 ") == (2, 2) and line_range(code, "1–2") == (1, 2)
    assert quote_from_lines(code, "1-2") == "def f(a):\n    return a < 1 and '<b>'"
    assert quote_lines("return a", code) == "2" and quote_lines("nope", code) == ""
    assert quote_place("return  a <  1", code) == "Line 2 (spacing differs from the code)"
    assert "not in the code" in quote_place("return b", code)
    with pytest.raises(store.AppError):
        line_range(code, "2-1")


def test_a_late_autosave_never_lands_on_the_next_task(annotation_engine, tmp_path):
    """Issue 26, item 9, on the Write tab: the autosave of task A's critique is sent, then Submit of A
    runs first and opens task B (a slow server). The late save carries A's critique while the server's
    state already says B: it must not become B's draft."""
    from critic.annotation_app.ui import AnnotationUI

    engine = annotation_engine
    admin, alice, bob, _ = make_team(engine, tmp_path / "src", samples=2)
    with Session(engine) as session:
        writing.set_writers(session, admin, 1)
    second = max(tamper_next(engine, alice), tamper_next(engine, alice))
    ui = AnnotationUI(engine, lambda: None)
    tab = ui.write
    token = token_of(engine, bob)
    page = tab.open_task(token) | {ui.ctx.token: token, tab.preamble: "Off by one in the loop."}
    server = dict(page)
    server |= fire(ui, tab.submit_button, page, server)
    assert server[tab.task]["id"] == second

    fire(ui, tab.write_timer, page, server, "tick")  # A's critique, saved after Submit opened B
    with Session(engine) as session:
        assert session.get(Draft, (bob.id, "write", second)) is None
    assert tab.open_task(token)[tab.write_draft] == ""  # no "Draft restored" on B
