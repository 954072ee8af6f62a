"""Shared set-up for the annotation app's tests: users, samples, a tampering, a full rating."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from sqlmodel import Session

from critic.annotation_app import store
from critic.annotation_app.checker import CheckResult
from critic.datagen.repairs import candidate_repairs, describe_repair
from critic.inference.localizer import LocatedBug

PASSWORD = "correct horse battery"
FUNCTION = """def average_{k}(xs):
    total = 0
    for i in range(len(xs)):
        total += xs[i]
    return total / len(xs)
"""
BUG_LINES = [3]
DESCRIPTION = "Off-by-one: the loop stops before the last element, so the total misses it."
ORIGIN = "test:fixed-critiques"


def handler_for(ui, component, event: str = "click"):
    """The registered function (as Gradio calls it) of `component`'s `event` in the AnnotationUI `ui`."""
    for block_fn in ui.blocks.fns.values():
        if any(target == component._id and name == event for target, name in block_fn.targets):
            return block_fn
    raise AssertionError(f"no {event} handler on {component}")


def sent(block_fn, page: dict, server: dict) -> list:
    """The arguments Gradio passes `block_fn`: each gr.State from `server` (a State lives on the server,
    so it is what the last handler left), every other input as the page held it when the event fired
    (`page`). A request sent before one handler and run after it sees the page of before and the states
    of after: a race this builds without a browser."""
    import gradio as gr

    return [server[c] if isinstance(c, gr.State) else page[c] for c in block_fn.inputs]


def fire(ui, component, page: dict, server: dict, event: str = "click") -> dict:
    """Run `component`'s `event` handler on a request sent from `page` and handled when the server's
    states are `server` (see `sent`); its updates."""
    block_fn = handler_for(ui, component, event)
    return block_fn.fn(*sent(block_fn, page, server))


def tampered(code: str) -> str:
    return code.replace("range(len(xs))", "range(len(xs) - 1)")


def critique_for(code: str) -> str:
    """The critic's critique of the tampered code: it quotes the bug line and says what is wrong."""
    return "```\nfor i in range(len(xs) - 1):\n```\nOff-by-one: the last element is never added."


def fixed_check(code: str) -> CheckResult:
    """A check whose one search (CHECK_SEARCHES) wrote `critique_for(code)`, which catches the bug."""
    return CheckResult([True], [critique_for(code)], False, {"origin": ORIGIN}, code)


def located(code: str, old: str, new: str, score: float) -> LocatedBug:
    """The suspect line the repair search (critic.inference.localizer.locate) reports for the repair
    `old` -> `new` of `code`, at confidence `score`: a real repair and its real description."""
    (repair,) = [r for r in candidate_repairs(code) if (code[r.start : r.end], r.text) == (old, new)]
    comment, lines = describe_repair(code, repair)
    return LocatedBug(
        repair.kind, min(lines), max(lines), repair.start, repair.end, repair.text, comment, score
    )


class FixedCritic:
    """A stand-in for the critic whose repair search is sure of the off-by-one in `tampered` code."""

    name = "fixed"

    def locate(self, code: str, max_lines: int = 10) -> list[LocatedBug]:
        return [located(code, "len(xs) - 1", "len(xs)", 0.9)][:max_lines]


def make_team(engine, folder: Path, samples: int = 3):
    """An admin and three annotators (alice, bob, carol), and `samples` samples to tamper."""
    (admin,) = make_users(engine, "admin", role="admin")
    alice, bob, carol = make_users(engine, "alice", "bob", "carol")
    seed_samples(engine, admin, folder, samples)
    return admin, alice, bob, carol


def make_users(engine, *names: str, role: str = "annotator"):
    with Session(engine) as session:
        return [store.create_user(session, name, role, PASSWORD) for name in names]


def write_functions(folder: Path, n: int, files: int = 1) -> Path:
    """n functions spread over `files` modules (a tamper dataset splits by file)."""
    folder.mkdir(parents=True, exist_ok=True)
    for f in range(files):
        code = "\n\n".join(FUNCTION.format(k=k) for k in range(f, n, files))
        (folder / f"funcs{f}.py").write_text(code)
    return folder


def seed_samples(engine, admin, folder: Path, n: int = 3) -> int:
    with Session(engine) as session:
        return store.import_samples(session, admin, str(write_functions(folder, n)))


def tamper_next(engine, author) -> int:
    """The author tampers their next sample with the off-by-one bug; returns the tampering id."""
    with Session(engine) as session:
        sample = store.next_tamper_sample(session, author)
        assert sample is not None
        code = tampered(sample.code)
        return store.submit_tampering(
            session, author, sample.sample_id, code, BUG_LINES, DESCRIPTION, fixed_check(code)
        )


def rating(overall: int = 4, cbi: int = 4, rationale: str = "Quotes the right line.") -> store.RatingInput:
    return store.RatingInput(
        cbi=cbi,
        comprehensiveness=4,
        conciseness=4,
        overall=overall,
        nitpick=False,
        fake_problem=False,
        hallucinated_quote=False,
        rationale=rationale,
    )


def rate_every_task(engine, rater, on_submit: Callable[[int], None]) -> None:
    """Claim and rate compare tasks as `rater` until none is left, calling `on_submit(tampering_id)`
    after each submission: one annotator of a concurrency test."""
    while True:
        with Session(engine) as session:
            task = store.next_compare_task(session, rater)
            if task is None:
                return
            store.submit_ratings(
                session, rater, task.tampering_id, {c.critique_id: rating() for c in task.critiques}
            )
            on_submit(task.tampering_id)


def rate_task(engine, rater, overall_by_position: list[int]) -> store.CompareTask:
    """The rater claims their next task and rates critique i (display order) with overall[i]."""
    with Session(engine) as session:
        task = store.next_compare_task(session, rater)
        assert task is not None
        ratings = {c.critique_id: rating(o) for c, o in zip(task.critiques, overall_by_position, strict=True)}
        store.submit_ratings(session, rater, task.tampering_id, ratings)
        return task
