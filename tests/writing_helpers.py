"""Set-up for the critique-writing and per-origin report tests: a tampering whose critic critique is
known, one as the FSBS checks stored it, and written critiques."""

from __future__ import annotations

from typing import Any

from annotation_helpers import BUG_LINES, DESCRIPTION, tampered
from sqlmodel import Session, func, select

from critic.annotation_app import store
from critic.annotation_app.checker import SEARCH, CheckResult
from critic.annotation_app.db import Critique

# The critic's critique: a preamble and three highlights of the tampered FUNCTION.
CRITIC = (
    "Two problems.\n\n"
    "```\ntotal = 0\n```\nShould start from a float.\n\n"
    "```\nfor i in range(len(xs) - 1):\n```\nOff-by-one: the last element is never added.\n\n"
    "```\nreturn total / len(xs)\n```\nDivides by zero on an empty list."
)
MODEL_ORIGIN = "model:test-critic"
# What a check stores with its critique now, and what the FSBS checks stored (FSBSSettings, the seeds).
REPAIRS_SETTINGS = {"search": SEARCH, "min_score": 0.2, "max_findings": 5, "model": "policy"}
FSBS_SETTINGS = {
    "samples": 4, "rounds": 4, "keep": 2, "length_modifier": 0.0, "max_new_tokens": 64,
    "temperature": 1.0, "constrain_quotes": True, "constrain_code_spans": True,
    "seeds": [0, 1, 2], "model": "policy",
}  # fmt: skip
# The FSBS searches' critiques (seeds 0..2) of a 2M-parameter critic: quotes of the code, word salad.
SALADS = (
    "```\ntotal = 0\n```\nThe call self.q.IUM(r, 5.5, 3), y(r3)) is missing after `s.`",
    "```\nreturn total / len(xs)\n```\nThe len of xs]] is total after before the len( len.",
    "```\ntotal += xs[i]\n```\nIUM r3 the y(r3 is)) missing `s.` xs xs.",
)


def call(engine, fn, *args, **kwargs):
    """One store call in its own session, as a request makes it."""
    with Session(engine) as session:
        return fn(session, *args, **kwargs)


def tamper_with_critic(engine, author, critic: str = CRITIC, settings: dict[str, Any] | None = None) -> int:
    """The author tampers their next sample with the off-by-one bug; the check's search wrote `critic`
    (stored with `settings`, default a fixed origin and no search). Returns the tampering id."""
    with Session(engine) as session:
        sample = store.next_tamper_sample(session, author)
        assert sample is not None
        code = tampered(sample.code)
        check = CheckResult([True], [critic], False, settings or {"origin": MODEL_ORIGIN}, code)
        return store.submit_tampering(
            session, author, sample.sample_id, code, BUG_LINES, DESCRIPTION, check, verify_tests=False
        )


def tamper_with_fsbs(engine, author) -> int:
    """A tampering as a database made before the repair search holds it: three model critiques that the
    FSBS checks wrote (SALADS, with FSBS_SETTINGS) and the gold one. Returns the tampering id."""
    t = tamper_with_critic(engine, author, SALADS[0], FSBS_SETTINGS)
    with Session(engine) as session:
        last = session.exec(select(func.max(Critique.position)).where(Critique.tampering_id == t)).one()
        for n, text in enumerate(SALADS[1:], start=1):
            session.add(
                Critique(
                    tampering_id=t,
                    text=text,
                    origin="model:policy",
                    fsbs_settings=FSBS_SETTINGS,
                    position=last + n,
                )
            )
        session.commit()
    return t


def highlight(quote: str, comment: str, source_index: int | None = None) -> dict:
    return {"quote": quote, "comment": comment, "source_index": source_index}


def write_next(engine, writer, comment: str = "The loop stops one short.") -> tuple[store.WriteTask, int]:
    """The writer claims their next write task and submits a one-highlight critique of the bug line."""
    task = call(engine, store.next_write_task, writer)
    assert task is not None
    quote = "for i in range(len(xs) - 1):"
    critique_id = call(engine, store.submit_critique, writer, task.tampering_id, [highlight(quote, comment)])
    return task, critique_id
