"""Bug insertion: real code plus exactly one subtle, realistic bug, where it is, and how a reviewer
would report it.

CriticGPT-style critics learn from *tampered* code. Bugs are inserted by AST transformation (as in
DeepBugs, BugLab and SWE-smith): every bug kind has one small finder that walks the parsed code and
yields candidate *sites*, each with the concrete edits that would plant the bug there.

Edits are surgical. Only the source segment of the mutated node changes (located through the node
positions, whose columns are UTF-8 byte offsets); comments, quotes, blank lines and every other byte
stay as they were, so the tampered code still looks hand-written. An edit is kept only when the
tampered code parses to exactly the intended AST (which catches precedence slips), compiles, and
differs from the original. Docstrings, annotations, decorators, default arguments and f-strings are
never touched.

Whether a bug changes behaviour is checked later by running tests in the sandbox; this module only
promises code that compiles. It is stdlib only and handles thousands of functions in seconds.

This module is the entry point: it draws sites, applies and checks their edits, and finds the bug lines.
The parsed code is critic.datagen.analysis, the finders (whose keys are the bug kinds, BUG_KINDS) are
critic.datagen.finders, and every word of the descriptions is in critic.datagen.descriptions.
"""

from __future__ import annotations

import ast
import difflib
import random
import warnings
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass

from critic.datagen.analysis import Ctx, Source, compiles, first_line, split_lines, strip_comment
from critic.datagen.descriptions import clip, describe, one_line, squash
from critic.datagen.finders import BUG_KINDS, FINDERS, Edit, Site

__all__ = ["Tampering", "apply_edit", "candidate_sites", "describe_edit", "tamper"]


@dataclass(frozen=True)
class Tampering:
    """One tampered version of a piece of code, carrying a single bug."""

    code: str  # the whole tampered source
    bug_kind: str  # one of BUG_KINDS (critic.datagen.finders)
    bug_lines: list[int]  # 1-based lines of `code` that carry the bug
    description: str  # reviewer-style description of the bug


# --- applying an edit ---


def _expected_dump(ctx: Ctx, edit: Edit, k: int | None) -> str:
    """The dump of top-level statement `k` (None: the module) with `edit.target` replaced by
    `edit.new_node`."""
    parent, field, index = ctx.parent[id(edit.target)]
    if index is None:
        setattr(parent, field, edit.new_node)
        try:
            return ast.dump(ctx.unit(k))
        finally:
            setattr(parent, field, edit.target)
    block = getattr(parent, field)
    if edit.new_node is None:
        del block[index]
    else:
        block[index] = edit.new_node
    try:
        return ast.dump(ctx.unit(k))
    finally:
        if edit.new_node is None:
            block.insert(index, edit.target)
        else:
            block[index] = edit.target


def apply_edit(ctx: Ctx, edit: Edit) -> tuple[str, str] | None:
    """The tampered code and the text that went in, if the edit parses to exactly the intended AST;
    otherwise None. Parenthesising the new text is tried when precedence needs it."""
    k = ctx.top_index(edit.target)
    expected = _expected_dump(ctx, edit, k)
    if expected == ctx.unit_dump(k):
        return None
    texts = [edit.text]
    if edit.new_node is not None and (edit.start, edit.end) == ctx.span(edit.target):
        texts.append(f"({edit.text})")
    for text in texts:
        code = ctx.src.text[: edit.start] + text + ctx.src.text[edit.end :]
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                tree = ast.parse(code)
            if k is None:
                unit: ast.AST = tree
            else:
                # The text around statement k is unchanged, so the rest of the module parses as before
                # as long as statement k still ends where the edit moved its end.
                unit = tree.body[k] if len(tree.body) == len(ctx.tree.body) else None
                end = ctx.span(ctx.tree.body[k])[1] + len(text) - (edit.end - edit.start)
                if unit is None or Source(code).offset(unit.end_lineno, unit.end_col_offset) != end:
                    continue
            if ast.dump(unit) != expected:
                continue
            if ctx.unit_compiles(k) and not compiles(unit if k is None else ast.Module([unit], [])):
                continue
            return code, text
        except (SyntaxError, ValueError, RecursionError):
            continue
    return None


_FULL_DIFF_LINES = 1000


def _bug_lines(ctx: Ctx, edit: Edit, code: str) -> tuple[list[int], list[str]]:
    """Lines of `code` that differ from the original, as difflib pairs them (so a diff viewer agrees).
    For a pure deletion, the line just before the deletion point, or just after it at the start of a
    block; the other neighbour, or the nearest non-blank line, when that one is blank, so the bug line
    holds code. Also returns the lines of `code`."""
    old_lines, new_lines = ctx.src.lines, split_lines(code)
    skip = 0  # difflib is quadratic-ish: on long files, diff only the part between common ends
    if len(old_lines) > _FULL_DIFF_LINES:
        skip = ctx.src.line_of(edit.start) - 1
        tail = len(old_lines) - ctx.src.line_of(edit.end)
        old_lines, new_lines = (
            old_lines[skip : len(old_lines) - tail],
            new_lines[skip : len(new_lines) - tail],
        )
    matcher = difflib.SequenceMatcher(None, old_lines, new_lines, autojunk=False)
    lines, deleted_at = [], 0
    for tag, _, _, j1, j2 in matcher.get_opcodes():
        if tag in ("replace", "insert"):
            lines.extend(range(skip + j1 + 1, skip + j2 + 1))
        elif tag == "delete":
            deleted_at = skip + j1  # the deletion point sits between lines j1 and j1 + 1 of `code`
    new_lines = split_lines(code)
    if not lines:  # pure deletion: one of the two lines around the deletion point
        before, after = deleted_at, deleted_at + 1
        at_block_start = ctx.parent[id(edit.target)][2] == 0
        order = [after, before] if at_block_start else [before, after]
        valid = [n for n in order if 1 <= n <= len(new_lines)]
        # Blank neighbours (difflib may put the deletion between blank lines): the nearest code line.
        widened = valid + [n for k in range(1, len(new_lines)) for n in (before - k, after + k)]
        lines = [
            next((n for n in widened if 1 <= n <= len(new_lines) and new_lines[n - 1].strip()), valid[0])
        ]
    return lines, new_lines


def _context(ctx: Ctx, edit: Edit, text: str, limit: int = 70) -> str:
    """The largest expression around the edit that still makes a short one-line quote, as it reads
    after the edit: `values[total]` rather than the whole line, or just `total`. Failing that, a
    piece of the edited line around the edit. Verbatim either way: descriptions quote it."""
    node, best = edit.target, ""
    while True:
        lo, hi = ctx.span(node)
        lo, hi = min(lo, edit.start), max(hi, edit.end)
        snippet = one_line(ctx.src.text[lo : edit.start] + text + ctx.src.text[edit.end : hi], limit)
        if snippet is None:
            break
        best = snippet
        parent = ctx.parent.get(id(node), (None,))[0]
        if not isinstance(parent, ast.expr):
            break
        node = parent
    if best:
        return best
    tampered = ctx.src.text[: edit.start] + text + ctx.src.text[edit.end :]
    begin = tampered.rfind("\n", 0, edit.start) + 1
    end = tampered.find("\n", edit.start)
    line = tampered[begin : end if end >= 0 else len(tampered)]
    at = edit.start - begin - (len(line) - len(line.lstrip()))
    return clip(strip_comment(line), limit, at)


def _tampering(ctx: Ctx, kind: str, edit: Edit, rng: random.Random) -> Tampering | None:
    applied = apply_edit(ctx, edit)
    if applied is None:
        return None
    return describe_edit(ctx, kind, edit, *applied, rng)


def describe_edit(ctx: Ctx, kind: str, edit: Edit, code: str, text: str, rng: random.Random) -> Tampering:
    """The tampering that `edit` (applied: `code`, with `text` put in) makes of ctx's code: its bug
    lines and a reviewer's description, phrased from the templates of critic.datagen.descriptions."""
    bug_lines, new_lines = _bug_lines(ctx, edit, code)
    line = strip_comment(new_lines[bug_lines[0] - 1]).strip() if bug_lines[0] <= len(new_lines) else ""
    quote = line if len(bug_lines) == 1 and len(line) <= 70 else _context(ctx, edit, text)
    old = ctx.src.text[edit.start : edit.end]
    info = {"q": quote, "new": one_line(text, 70), "old": squash(old, 60), **edit.info}
    return Tampering(code, kind, bug_lines, describe(kind, info, rng, code))


# --- public API ---


def _selected(kinds: Sequence[str] | None) -> list[str]:
    if kinds is None:
        return list(BUG_KINDS)
    if isinstance(kinds, str):
        kinds = [kinds]
    unknown = [k for k in kinds if k not in FINDERS]
    if unknown:
        raise ValueError(f"tamper: unknown bug kind(s) {unknown}; known kinds: {', '.join(BUG_KINDS)}")
    return [k for k in BUG_KINDS if k in kinds]


@contextmanager
def _deep_code_is_a_value_error() -> Iterator[None]:
    """ast.dump, ast.unparse and compile recurse; absurdly nested expressions exhaust the stack."""
    try:
        yield
    except RecursionError:
        raise ValueError("tamper: code is nested too deeply to analyse") from None


def candidate_sites(code: str, kinds: Sequence[str] | None = None) -> dict[str, int]:
    """Number of candidate sites per kind (before the compile check, which rejects a few)."""
    selected = _selected(kinds)
    with _deep_code_is_a_value_error():
        ctx = Ctx(code)
        return {kind: sum(1 for _ in FINDERS[kind](ctx)) for kind in selected}


def tamper(
    code: str,
    rng: random.Random,
    max_samples: int = 1,
    kinds: Sequence[str] | None = None,
    line_uniform: bool = False,
) -> list[Tampering]:
    """Up to `max_samples` distinct tamperings of `code`, each with one bug at its own site.

    Kinds are drawn round-robin in a random order among the kinds that have sites, then a random site
    of the drawn kind; a site whose edits do not compile is dropped and another one is tried. With
    `line_uniform`, the sites of all selected kinds are grouped by the line they sit on, and each draw
    takes a line uniformly among the lines that have sites, then a site uniformly on it: long lines,
    which hold more sites, are no likelier to carry the bug, so line length alone cannot say where it
    is. Deterministic for a given `rng` state.
    """
    selected = _selected(kinds)
    with _deep_code_is_a_value_error():
        return _tamper(Ctx(code), selected, rng, max_samples, line_uniform)


def _tamper(
    ctx: Ctx, selected: list[str], rng: random.Random, max_samples: int, line_uniform: bool = False
) -> list[Tampering]:
    pools = {kind: sites for kind in selected if (sites := list(FINDERS[kind](ctx)))}
    used: set[tuple[int, int]] = set()
    seen = {ctx.src.text}
    out: list[Tampering] = []
    if line_uniform:
        return _tamper_by_line(ctx, pools, rng, max_samples, used, seen)
    while len(out) < max_samples and pools:
        order = list(pools)
        rng.shuffle(order)
        for kind in order:
            if len(out) >= max_samples:
                break
            result = _draw(ctx, kind, pools[kind], used, seen, rng)
            if result is not None:
                out.append(result)
            if not pools[kind]:
                del pools[kind]
    return out


def _site_line(ctx: Ctx, site: Site) -> int:
    """The line a site sits on: its target's first line, else the first line its edits touch."""
    return first_line(site.target) or min((ctx.src.line_of(e.start) for e in site.edits), default=0)


def _tamper_by_line(
    ctx: Ctx,
    pools: dict[str, list[Site]],
    rng: random.Random,
    max_samples: int,
    used: set[tuple[int, int]],
    seen: set[str],
) -> list[Tampering]:
    """Draws a line uniformly among the lines with sites, then a site uniformly on it; a site that
    yields nothing new is dropped (and a line with no sites left) and the draw is repeated."""
    by_line: dict[int, list[tuple[str, Site]]] = {}
    for kind, sites in pools.items():
        for site in sites:
            by_line.setdefault(_site_line(ctx, site), []).append((kind, site))
    out: list[Tampering] = []
    while len(out) < max_samples and by_line:
        line = rng.choice(sorted(by_line))
        sites = by_line[line]
        kind, site = sites.pop(rng.randrange(len(sites)))
        if not sites:
            del by_line[line]
        result = _try_site(ctx, kind, site, used, seen, rng)
        if result is not None:
            out.append(result)
    return out


def _draw(
    ctx: Ctx, kind: str, sites: list[Site], used: set[tuple[int, int]], seen: set[str], rng: random.Random
) -> Tampering | None:
    """Pops random sites of one kind until one yields a new tampering."""
    while sites:
        result = _try_site(ctx, kind, sites.pop(rng.randrange(len(sites))), used, seen, rng)
        if result is not None:
            return result
    return None


def _try_site(
    ctx: Ctx, kind: str, site: Site, used: set[tuple[int, int]], seen: set[str], rng: random.Random
) -> Tampering | None:
    """The first of the site's edits, in random order, that yields a tampering not seen before."""
    key = ctx.span(site.target)
    if key in used:
        return None
    edits = list(site.edits)
    rng.shuffle(edits)
    for edit in edits:
        result = _tampering(ctx, kind, edit, rng)
        if result is not None and result.code not in seen:
            used.add(key)
            seen.add(result.code)
            return result
    return None
