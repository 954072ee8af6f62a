"""The Compare page in a real headless browser: keyboard-only rating, a problem list that stays until it
is fixed, blindness (no critique's text outside its own card), and the layout at 1280×800.

Each test gets its own tampering, seeded through the store with a fixed critique (no critic runs), and
its own rater; the overlap is 1, so the rater's task is exactly that tampering. Screenshots go to
artifacts_dir().
"""

from __future__ import annotations

import itertools
import time

import pytest
from annotation_helpers import fire
from browser import (
    PASSWORD,
    artifacts_dir,
    assert_readable,
    browser,
    choose,
    expect,
    log_in,
    needs_browser,
    serve_app,
)
from sqlmodel import Session, col, select

from critic.annotation_app import store
from critic.annotation_app.checker import CheckResult
from critic.annotation_app.db import Critique, Draft, Rating, Tampering
from critic.annotation_app.ui.base import AUTOSAVE_S
from critic.core.critique import parse_critique

# ~10 lines, so the page must fit 1280×800 without scrolling.
SAMPLE = '''def running_mean_{k}(xs, window):
    """Mean of each full window of xs."""
    if window <= 0:
        raise ValueError("window must be positive")
    total = sum(xs[:window])
    means = [total / window]
    for i in range(window, len(xs)):
        total += xs[i] - xs[i - window]
        means.append(total / window)
    return means
'''
BUG_LINES = [7]
DESCRIPTION = "The loop stops one step early, so the mean of the last window is never computed."
# The critic's critique: a preamble, a fragment quote, a quote over two lines, a quote of code that is
# not there.
CRITIQUE = (
    "Two loop bounds look off.\n\n"
    "```\n    return \n```\nReturns the list even when the window is larger than the input.\n\n"
    "```\nfor i in range(window, len(xs) - 1):\n        total\n```\n"
    "The range stops one short, so the last window is skipped.\n\n"
    "```\nif not xs:\n    return []\n```\nThis early return hides empty input from callers."
)
FIELDS = ("cbi", "comprehensiveness", "conciseness", "overall")
FLAGS = ("nitpick", "fake_problem", "hallucinated_quote")
VIEWPORT = {"width": 1280, "height": 800}
PHONE = {"width": 390, "height": 844}
_RATERS = itertools.count(1)


def tampered(code: str) -> str:
    return code.replace("range(window, len(xs))", "range(window, len(xs) - 1)")


def seed_samples(engine, folder) -> None:
    """Samples to tamper, imported by the admin; overlap 1, so each tampering is one rater's task."""
    folder.mkdir()
    for k in range(6):
        (folder / f"mean{k}.py").write_text(SAMPLE.format(k=k))
    with Session(engine) as session:
        admin = store.authenticate(session, "admin", PASSWORD)
        store.import_samples(session, admin, str(folder))
        store.set_overlap(session, admin, 1)


def seed_task(engine) -> tuple[int, str]:
    """alice tampers the next sample (the fixed critique stands in for the critic's check); a new
    rater, whose next task it is. Returns the tampering id and the rater's name."""
    rater = f"rater{next(_RATERS)}"
    with Session(engine) as session:
        alice = store.authenticate(session, "alice", PASSWORD)
        sample = store.next_tamper_sample(session, alice)
        code = tampered(sample.code)
        check = CheckResult([False], [CRITIQUE], True, {"origin": "test:fixed"}, code)
        tampering_id = store.submit_tampering(
            session, alice, sample.sample_id, code, BUG_LINES, DESCRIPTION, check
        )
        store.create_user(session, rater, "annotator", PASSWORD)
    return tampering_id, rater


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    """One server for the module: an admin, a tamperer, samples to tamper."""
    tmp = tmp_path_factory.mktemp("compare")
    with serve_app(tmp, lambda: None, (("admin", "admin"), ("alice", "annotator"))) as (url, engine):
        seed_samples(engine, tmp / "samples")
        yield url, engine


@pytest.fixture(scope="module")
def chromium():
    with browser() as launched:
        yield launched


@pytest.fixture
def task(served):
    """A fresh tampering and a fresh rater whose next task it is."""
    url, engine = served
    return url, engine, *seed_task(engine)


def critiques_of(engine, tampering_id: int) -> list[Critique]:
    with Session(engine) as session:
        query = select(Critique).where(Critique.tampering_id == tampering_id).order_by(col(Critique.position))
        return list(session.exec(query).all())


@pytest.fixture
def page(task, chromium):
    """The rater's browser page (a 1280×800 window) with the Compare tab open on their task."""
    url, _engine, tampering_id, rater = task
    context = chromium.new_context(viewport=VIEWPORT)
    try:
        page = context.new_page()
        log_in(page, url, rater)
        page.get_by_role("tab", name="Compare").click()
        expect(page.locator("#compare-info")).to_contain_text(f"Task {tampering_id}")
        expect(page.locator("#critique-0-text .cmp-card")).to_be_visible()
        yield page
    finally:
        context.close()


def focused_in(page, elem_id: str) -> None:
    """Wait until the keyboard focus is inside the element `elem_id`."""
    page.wait_for_function(
        "id => document.activeElement && document.activeElement.closest('#' + id) !== null", arg=elem_id
    )


def answers(n: int) -> list[dict]:
    """Different answers for each of n critiques: every score, flag and rationale varies."""
    return [
        {
            "cbi": 7 - i,
            "comprehensiveness": 1 + (i + 2) % 7,
            "conciseness": 1 + (i * 3 + 1) % 7,
            "overall": 1 + (i * 2 + 5) % 7,
            "nitpick": i % 2 == 1,
            "fake_problem": i % 3 == 2,
            "hallucinated_quote": i == 2,
            "rationale": f"Critique {i + 1}: rated by keyboard, score {7 - i}.",
        }
        for i in range(n)
    ]


def type_score(page, value: int, use_arrow: bool) -> None:
    """A score by its digit, or by a neighbouring digit and an arrow key."""
    if not use_arrow:
        page.keyboard.press(str(value))
    elif value < 7:
        page.keyboard.press(str(value + 1))
        page.keyboard.press("ArrowLeft")
    else:
        page.keyboard.press(str(value - 1))
        page.keyboard.press("ArrowRight")


def draft_of(engine, rater: str, tampering_id: int) -> dict | None:
    with Session(engine) as session:
        return store.load_draft(
            session, store.authenticate(session, rater, PASSWORD), "compare", tampering_id
        )


def wait_for(condition, timeout: float = 60.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.25)


@needs_browser
def test_rating_a_whole_task_with_the_keyboard_only(task, page) -> None:
    _url, engine, tampering_id, rater = task
    critiques = critiques_of(engine, tampering_id)
    wanted = answers(len(critiques))
    focused_in(page, "critique-0-cbi")  # a task opens with the focus on critique 1's first question

    for i, answer in enumerate(wanted):
        focused_in(page, f"critique-{i}-cbi")
        expect(page.locator(f"#critique-{i}")).to_be_visible()
        for k, field in enumerate(FIELDS):
            type_score(page, answer[field], use_arrow=(i + k) % 2 == 1)
            page.keyboard.press("Enter" if k % 2 == 0 else "ArrowDown")
        for k, flag in enumerate(FLAGS):
            focused_in(page, f"critique-{i}-{flag}")
            if answer[flag]:
                page.keyboard.press("Space")
            page.keyboard.press("Enter" if k % 2 == 0 else "ArrowDown")
        focused_in(page, f"critique-{i}-rationale")
        page.keyboard.type(answer["rationale"])
        if i + 1 < len(wanted):
            page.keyboard.press("Tab")  # on to the next critique's first question
    for i, answer in enumerate(wanted):  # the form holds what was typed
        for field in FIELDS:
            expect(page.locator(f"#critique-{i}-{field} input:checked")).to_have_value(str(answer[field]))
        for flag in FLAGS:
            expect(page.locator(f"#critique-{i}-{flag} input")).to_be_checked(checked=answer[flag])

    # Gradio received every value: the autosaved draft holds exactly the answers.
    expected_draft = {str(c.id): answer for c, answer in zip(critiques, wanted, strict=True)}
    wait_for(
        lambda: (draft_of(engine, rater, tampering_id) or {}).get("ratings") == expected_draft,
        what=f"the draft to hold the typed answers (last: {draft_of(engine, rater, tampering_id)})",
    )
    page.screenshot(path=artifacts_dir() / "compare-keyboard.png")
    page.keyboard.press("Control+Enter")
    expect(page.locator("#compare-status")).to_contain_text(f"Submitted ratings for task {tampering_id}")
    expect(page.locator("#compare-info")).to_contain_text("No comparison is waiting for you")

    with Session(engine) as session:
        rows = {r.critique_id: r for r in session.exec(select(Rating)).all()}
    for critique, answer in zip(critiques, wanted, strict=True):
        row = rows[critique.id]
        assert {name: getattr(row, name) for name in answer} == answer


@needs_browser
def test_the_problem_list_stays_until_every_answer_is_given(task, page) -> None:
    _url, engine, tampering_id, rater = task
    n = len(critiques_of(engine, tampering_id))
    problems = page.locator("#compare-problems li")

    page.locator("#compare-submit").click()  # nothing answered: every field of every critique is listed
    expect(problems).to_have_count(n)
    for i in range(n):
        expect(problems.nth(i)).to_contain_text(f"critique {i + 1}: no CBI, no comprehensiveness")
        expect(problems.nth(i).locator("button")).to_have_count(5)  # 4 scores and the rationale

    # One answer, then autosave runs (twice over): the list is still there, one field shorter.
    page.locator("#compare-problems li").first.locator("button", has_text="CBI").click()
    focused_in(page, "critique-0-cbi")
    page.keyboard.press("5")
    expect(problems.first.locator("button")).to_have_count(4)
    expect(page.locator("#compare-draft-status")).to_contain_text("Draft saved")
    page.wait_for_timeout(2 * AUTOSAVE_S * 1000 + 1500)
    expect(problems).to_have_count(n)
    page.screenshot(path=artifacts_dir() / "compare-problems.png")

    # A jump button shows its critique and focuses the field; fixing critiques shrinks the list.
    wanted = answers(n)
    for i in range(n):
        item = page.locator("#compare-problems li").first
        expect(item).to_contain_text(f"critique {i + 1}:")
        item.locator("button").first.click()
        expect(page.locator(f"#critique-{i}")).to_be_visible()
        focused_in(page, f"critique-{i}-{'cbi' if i else 'comprehensiveness'}")
        for field in FIELDS[1:] if i == 0 else FIELDS:
            page.keyboard.press(str(wanted[i][field]))
            page.keyboard.press("Enter")
        page.locator(f"#critique-{i}-rationale textarea").fill(wanted[i]["rationale"])
        expect(problems).to_have_count(n - i - 1)
    expect(page.locator("#compare-problems .cmp-problems")).to_have_count(0)  # all fixed: it is gone

    page.locator("#compare-submit").click()
    expect(page.locator("#compare-status")).to_contain_text(f"Submitted ratings for task {tampering_id}")
    with Session(engine) as session:
        held = store.next_compare_task(session, store.authenticate(session, rater, PASSWORD))
    assert held is None  # the task is done


@needs_browser
def test_no_critique_text_appears_outside_its_own_card(task, page) -> None:
    _url, engine, tampering_id, rater = task
    critiques = critiques_of(engine, tampering_id)
    with Session(engine) as session:
        tampering = session.get(Tampering, tampering_id)
        code, description = tampering.code, tampering.description
    count = """([text, card, visible]) => {
        const n = (s) => s.split(text).length - 1;
        const text_of = (el) => (visible ? el.innerText : el.textContent);
        const [body, mine] = [text_of(document.body), text_of(document.querySelector(card))];
        return [n(body), n(mine)];
    }"""
    assert len(critiques) == store.CRITIQUES_PER_TASK
    for i, critique in enumerate(critiques):
        page.locator(f'#compare-nav [data-cmp-goto="{i}"]').click()
        expect(page.locator(f"#critique-{i}-text")).to_be_visible()
        parsed = parse_critique(critique.text, code)
        pieces = [parsed.preamble] if parsed.preamble else []
        pieces += [h.comment for h in parsed.highlights if h.comment]
        assert pieces, f"critique {i + 1} has no text of its own to look for"
        for piece in pieces:
            on_page, in_card = page.evaluate(count, [piece, f"#critique-{i}-text", True])
            assert on_page == in_card >= 1, (i, piece)
            everywhere, in_card_dom = page.evaluate(count, [piece, f"#critique-{i}-text", False])
            assert everywhere == in_card_dom, (i, piece)  # nor hidden anywhere else in the page
        # The tamperer's description is the reference critique's comment: it may appear only there.
        shown = page.evaluate("() => document.body.innerText")
        if critique.origin == "gold":
            assert shown.count(description) == 1
        else:
            assert description not in shown
    page.screenshot(path=artifacts_dir() / "compare-blind.png")


# The innermost visible elements that end below `limit` px: what a failed fit check names.
BELOW_THE_FOLD = """limit => [...document.querySelectorAll('body *')]
    .filter(e => e.children.length == 0 && e.getBoundingClientRect().height > 0
                 && e.getBoundingClientRect().bottom > limit)
    .slice(0, 12)
    .map(e => `${e.tagName}#${e.id}.${e.className} ${Math.round(e.getBoundingClientRect().top)}px `
              + (e.innerText || '').slice(0, 60))"""


def settled_height(page, timeout_s: float = 10.0) -> int:
    """The page's height once the layout has stopped moving (the same for 1 s), or after `timeout_s`:
    on a busy machine fonts and Gradio's late widgets still move it for a while after the content shows."""
    deadline = time.monotonic() + timeout_s
    heights: list[int] = []
    while time.monotonic() < deadline:
        heights.append(page.evaluate("() => document.documentElement.scrollHeight"))
        if len(heights) >= 5 and len(set(heights[-5:])) == 1:
            break
        page.wait_for_timeout(250)
    return heights[-1]


@needs_browser
def test_the_page_fits_1280x800_and_the_code_stays_in_view(task, page) -> None:
    _url, engine, tampering_id, rater = task
    n = len(critiques_of(engine, tampering_id))
    expect(page.locator("#compare-code .cmp-bug")).to_have_count(len(BUG_LINES))
    expect(page.locator("#compare-code .cmp-bug")).to_contain_text("range(window, len(xs) - 1)")
    expect(page.locator("#compare-diff .cmp-del")).to_contain_text("range(window, len(xs)):")
    expect(page.locator("#compare-diff .cmp-add")).to_contain_text("range(window, len(xs) - 1):")
    # Every critique in turn: their order is shuffled per tampering, and a long one must fit as well.
    for i in range(n):
        page.locator(f'#compare-nav [data-cmp-goto="{i}"]').click()
        expect(page.locator(f"#critique-{i}")).to_be_visible()
        height = settled_height(page)
        page.screenshot(path=artifacts_dir() / f"compare-1280x800-critique-{i + 1}.png")
        if height > VIEWPORT["height"] + 8:
            page.screenshot(path=artifacts_dir() / "compare-1280x800-full.png", full_page=True)
            below = page.evaluate(BELOW_THE_FOLD, VIEWPORT["height"])
            raise AssertionError(
                f"with critique {i + 1} the page is {height}px tall at 1280×800; below the fold: {below}"
            )

    page.locator(f'#compare-nav [data-cmp-goto="{n - 1}"]').click()
    expect(page.locator(f"#critique-{n - 1}")).to_be_visible()
    expect(page.locator("#critique-0")).to_be_hidden()
    # One Tab stop per score, as a native radio group has (Gradio names each radio apart).
    tab_stops = page.locator(f"#critique-{n - 1} input[type=radio]:not([tabindex='-1'])")
    expect(tab_stops).to_have_count(len(FIELDS))
    page.locator(f"#critique-{n - 1}-rationale textarea").focus()
    expect(page.locator("#compare-code")).to_be_in_viewport()
    expect(page.locator("#compare-code .cmp-bug")).to_be_in_viewport()
    page.screenshot(path=artifacts_dir() / "compare-last-critique.png")
    assert_readable(page, "the Compare tab")


# Layout facts of the phone page: no sideways scrolling; the code column above the rating column, and
# each as wide as the page.
PHONE_LAYOUT = """() => {
  const left = document.querySelector('#compare-left').getBoundingClientRect();
  const right = document.querySelector('#compare-right').getBoundingClientRect();
  return {overflow: document.documentElement.scrollWidth - window.innerWidth,
          stacked: left.bottom <= right.top + 1, left: left.width, right: right.width};
}"""


@needs_browser
def test_a_whole_task_is_rated_on_a_phone(task, chromium) -> None:
    """Issue 26, item 11: at 390×844 the code stacks above the ratings, nothing scrolls sideways, and a
    whole task is rated and submitted by tapping (Playwright clicks only what is visible and on top)."""
    url, engine, tampering_id, rater = task
    context = chromium.new_context(viewport=PHONE, is_mobile=True, has_touch=True)
    try:
        page = context.new_page()
        log_in(page, url, rater)
        page.get_by_role("tab", name="Compare").click()
        expect(page.locator("#critique-0-text .cmp-card")).to_be_visible()
        layout = page.evaluate(PHONE_LAYOUT)
        assert layout["overflow"] <= 0 and layout["stacked"], layout
        assert min(layout["left"], layout["right"]) >= 0.8 * PHONE["width"], layout  # not a sliver
        wanted = answers(len(critiques_of(engine, tampering_id)))
        for i, answer in enumerate(wanted):
            page.locator(f'#compare-nav [data-cmp-goto="{i}"]').click()
            expect(page.locator(f"#critique-{i}")).to_be_visible()
            for field in FIELDS:
                choose(page, f"critique-{i}-{field}", answer[field])
            page.locator(f"#critique-{i}-rationale textarea").fill(answer["rationale"])
            assert page.evaluate(PHONE_LAYOUT)["overflow"] <= 0
        page.screenshot(path=artifacts_dir() / "compare-390x844.png", full_page=True)
        assert_readable(page, "the Compare tab on a phone")
        page.locator("#compare-submit").click()
        expect(page.locator("#compare-status")).to_contain_text(f"Submitted ratings for task {tampering_id}")
    finally:
        context.close()
    with Session(engine) as session:
        rows = session.exec(
            select(Rating).where(
                col(Rating.critique_id).in_([c.id for c in critiques_of(engine, tampering_id)])
            )
        ).all()
    assert sorted(r.overall for r in rows) == sorted(a["overall"] for a in wanted)


def seeded_engine(tmp_path):
    """A fresh SQLite database with an admin, an annotator and samples (for the handler-level tests)."""
    from critic.annotation_app.db import init_db, make_engine

    engine = make_engine(f"sqlite:///{tmp_path / 'annotations.db'}")
    init_db(engine)
    with Session(engine) as session:
        store.create_user(session, "admin", "admin", PASSWORD)
        store.create_user(session, "alice", "annotator", PASSWORD)
    seed_samples(engine, tmp_path / "samples")
    return engine


def test_a_refused_submission_lists_every_problem_and_autosave_leaves_it(tmp_path) -> None:
    """The handlers behind the page: a refusal lists every unanswered field at once; the autosave's
    updates never touch the list or the status line; each change recomputes the list."""
    from critic.annotation_app.ui import AnnotationUI

    engine = seeded_engine(tmp_path)
    tampering_id, rater = seed_task(engine)
    with Session(engine) as session:
        token = store.login(session, rater, PASSWORD)
    tab = AnnotationUI(engine, critic_factory=lambda: None).compare

    opened = tab.open_task(token)
    task = opened[tab.task]
    assert task["id"] == tampering_id
    n = len(task["critique_ids"])
    values = [opened.get(c) for c in tab._slot_inputs]  # as the page sends them: hidden slots too
    per_slot = len(tab.slots[0].inputs)

    refused = tab.submit_ratings(token, task, task["id"], *values)
    assert refused[tab.checking] is True and tab.task not in refused  # the task stays open
    assert refused[tab.problems].count("<li>") == n
    assert refused[tab.problems].count("data-cmp-field=") == n * 5  # 4 scores and a rationale each

    for i, answer in enumerate(answers(n)):
        for field, value in answer.items():
            values[i * per_slot + list(store.RATED_FIELDS).index(field)] = value
        saved = tab.autosave(token, task, opened[tab.saved], task["id"], *values)
        assert set(saved) == {tab.compare_draft, tab.compare_timer, tab.saved}  # the list stays
        checked = tab.recheck(task, True, *values)
        assert checked[tab.problems].count("<li>") == n - i - 1
        assert checked[tab.nav].count("cmp-done") == i + 1
    assert checked[tab.problems] == ""  # all answered: the list is gone

    done = tab.submit_ratings(token, task, task["id"], *values)
    assert f"Submitted ratings for task {tampering_id}" in done[tab.compare_status]
    assert done[tab.task] is None and done[tab.problems] == ""
    with Session(engine) as session:
        assert len(session.exec(select(Rating)).all()) == n
    engine.dispose()


def test_a_late_autosave_never_lands_on_the_next_task(tmp_path) -> None:
    """Issue 26, item 9, on the Compare tab: the autosave of task A's answers is sent, then Submit of A
    runs first and opens task B (a slow server). The late save carries A's answers while the server's
    state already says B: it must not become B's draft (A's answers under B's critiques)."""
    from critic.annotation_app.ui import AnnotationUI

    engine = seeded_engine(tmp_path)
    first, rater = seed_task(engine)
    second, _ = seed_task(engine)  # the next task of the same rater (overlap 1)
    with Session(engine) as session:
        token = store.login(session, rater, PASSWORD)
        rater_id = store.authenticate(session, rater, PASSWORD).id
    ui = AnnotationUI(engine, critic_factory=lambda: None)
    tab = ui.compare
    opened = tab.open_task(token)
    assert opened[tab.task]["id"] == first
    page = {c: opened.get(c) for c in tab._slot_inputs} | opened | {ui.ctx.token: token}
    for slot, answer in zip(tab.slots, answers(len(opened[tab.task]["critique_ids"])), strict=False):
        page |= {slot.controls[field]: value for field, value in answer.items()}
    server = dict(page)
    server |= fire(ui, tab.compare_submit, page, server)
    assert server[tab.task]["id"] == second

    fire(ui, tab.compare_timer, page, server, "tick")  # A's answers, saved after Submit opened B
    with Session(engine) as session:
        assert session.get(Draft, (rater_id, "compare", second)) is None
    assert tab.open_task(token)[tab.compare_draft] == ""  # no "Draft restored" on B
    engine.dispose()
