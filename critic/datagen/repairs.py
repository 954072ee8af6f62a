"""Candidate repairs: every single edit that would undo a bug of a kind the tamperer plants.

A critic this small cannot write a fix, but it can choose one. The bug finders (critic.datagen.finders)
know, for any code, every place each bug kind can go and the edits that would plant it; most kinds
are their own inverse (`<` -> `>=` and back, `n` -> `n - 1` and back, `and` <-> `or`, a `not` added
or dropped), so running the finders on the code under review lists the edits that would *repair* a
planted bug, each as parse-checked replacement text. The critic's language model then says which
repaired code is likelier than the code as written (critic.inference.repair_scoring).

A repair is described the way the tamperer describes the bug it undoes: the finder is run again on
the repaired code, the edit that turns it back into the reviewed code is found, and its description
comes from the templates of critic.datagen.descriptions. So every comment is a well-formed sentence
by construction, and its inline code is code from the file or the fix.
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Sequence
from dataclasses import dataclass

from critic.datagen.analysis import Ctx
from critic.datagen.descriptions import inline_code, one_line
from critic.datagen.finders import BUG_KINDS, FINDERS
from critic.datagen.tamper import apply_edit, describe_edit

# A deleted statement cannot be put back by an edit of what is there, and deleting one is no repair.
REPAIR_KINDS: tuple[str, ...] = tuple(k for k in BUG_KINDS if k != "remove_statement")


@dataclass(frozen=True)
class Repair:
    kind: str  # the bug kind this repair undoes
    start: int  # code[start:end] is replaced by text
    end: int
    text: str
    code: str  # the repaired code
    line: int  # first and last line of the reviewed code the edit touches (1-based)
    end_line: int


def _line_of(code: str, offset: int) -> int:
    return code.count("\n", 0, offset) + 1


def candidate_repairs(code: str, kinds: Sequence[str] = REPAIR_KINDS) -> list[Repair]:
    """Every distinct repaired code one edit away, in the finders' order; [] for code that does not
    parse. Code with Windows or old Mac line endings is analysed as the finders see it (LF)."""
    try:
        ctx = Ctx(code)
    except (SyntaxError, ValueError, RecursionError):
        return []
    seen = {code}
    out: list[Repair] = []
    for kind in kinds:
        try:
            sites = list(FINDERS[kind](ctx))
        except RecursionError:
            continue
        for site in sites:
            for edit in site.edits:
                try:
                    applied = apply_edit(ctx, edit)
                except (RecursionError, ValueError):
                    applied = None
                if applied is None or applied[0] in seen:
                    continue
                repaired, text = applied
                seen.add(repaired)
                # apply_edit may have parenthesised the text: the replaced span is always [start, end).
                out.append(
                    Repair(
                        kind,
                        edit.start,
                        edit.end,
                        text,
                        repaired,
                        _line_of(code, edit.start),
                        _line_of(code, max(edit.start, edit.end - 1)),
                    )
                )
    return out


def _rng(repair: Repair, code: str) -> random.Random:
    """A phrasing that depends on what is replaced and how, not on where: findings stay the same when
    unrelated code moves them."""
    key = "\0".join((repair.kind, code[repair.start : repair.end], repair.text))
    return random.Random(int.from_bytes(hashlib.sha256(key.encode()).digest()[:8], "big"))


def describe_repair(code: str, repair: Repair) -> tuple[str, list[int]]:
    """A reviewer's comment on the bug `repair` undoes in `code`, and the lines of `code` it is on."""
    rng = _rng(repair, code)
    try:
        fixed = Ctx(repair.code)
        for site in FINDERS[repair.kind](fixed):
            for edit in site.edits:
                if fixed.src.text[: edit.start] + edit.text + fixed.src.text[edit.end :] != code:
                    continue
                applied = apply_edit(fixed, edit)
                if applied is not None and applied[0] == code:
                    tampering = describe_edit(fixed, repair.kind, edit, *applied, rng)
                    return tampering.description, tampering.bug_lines
    except (SyntaxError, ValueError, RecursionError):
        pass
    return _plain_comment(code, repair), list(range(repair.line, repair.end_line + 1))


def _plain_comment(code: str, repair: Repair) -> str:
    """For a repair the finders cannot describe as a bug (their kinds are not all symmetric)."""
    old = one_line(code[repair.start : repair.end], 60)
    new = one_line(repair.text, 60)
    if old and new:
        return f"{inline_code(old)} looks wrong here: {inline_code(new)} fits the code around it better."
    return "This line looks wrong: the suggested fix fits the code around it better."
