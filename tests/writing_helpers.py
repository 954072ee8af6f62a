"""Set-up for the critique-writing and per-origin report tests: a tampering whose critic critique is
known, and written critiques."""

from __future__ import annotations

from annotation_helpers import BUG_LINES, DESCRIPTION, tampered
from sqlmodel import Session

from critic.annotation_app import store
from critic.annotation_app.checker import CheckResult

# The critic's critique: a preamble and three highlights of the tampered FUNCTION.
CRITIC = (
    "Two problems.\n\n"
    "```\ntotal = 0\n```\nShould start from a float.\n\n"
    "```\nfor i in range(len(xs) - 1):\n```\nOff-by-one: the last element is never added.\n\n"
    "```\nreturn total / len(xs)\n```\nDivides by zero on an empty list."
)
MODEL_ORIGIN = "model:test-critic"


def call(engine, fn, *args, **kwargs):
    """One store call in its own session, as a request makes it."""
    with Session(engine) as session:
        return fn(session, *args, **kwargs)


def tamper_with_critic(engine, author, critic: str = CRITIC) -> int:
    """The author tampers their next sample with the off-by-one bug; the check's search wrote `critic`.
    Returns the tampering id."""
    with Session(engine) as session:
        sample = store.next_tamper_sample(session, author)
        assert sample is not None
        code = tampered(sample.code)
        check = CheckResult([True], [critic], False, {"origin": MODEL_ORIGIN}, code)
        return store.submit_tampering(
            session, author, sample.sample_id, code, BUG_LINES, DESCRIPTION, check, verify_tests=False
        )


def highlight(quote: str, comment: str, source_index: int | None = None) -> dict:
    return {"quote": quote, "comment": comment, "source_index": source_index}


def write_next(engine, writer, comment: str = "The loop stops one short.") -> tuple[store.WriteTask, int]:
    """The writer claims their next write task and submits a one-highlight critique of the bug line."""
    task = call(engine, store.next_write_task, writer)
    assert task is not None
    quote = "for i in range(len(xs) - 1):"
    critique_id = call(engine, store.submit_critique, writer, task.tampering_id, [highlight(quote, comment)])
    return task, critique_id
