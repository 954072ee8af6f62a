"""Split a source file into pieces a critic can read in one prompt, and map them back to file lines.

Critics are trained on single functions, so chunks follow the code's own structure: top-level
functions and classes, the module-level statements between them, and a class's methods when the
class is too long. Small whole neighbours are merged up to the token budget (fewer prompts, same
lines); what still does not fit, or a file that does not parse, is cut into runs of whole lines. Each chunk
is dedented, as training functions were, and remembers how far, so columns map back exactly.
"""

from __future__ import annotations

import ast
from collections.abc import Callable
from dataclasses import dataclass

from critic.core.critique import code_lines

TokenCounter = Callable[[str], int]


@dataclass(frozen=True)
class Chunk:
    start_line: int  # 1-based line of the file where the chunk begins
    code: str  # the chunk's lines, dedented
    indent: int  # characters of leading whitespace removed from each line

    @property
    def end_line(self) -> int:
        return self.start_line + self.code.count("\n")

    @property
    def lines(self) -> range:
        return range(self.start_line, self.end_line + 1)


def chunk_source(
    source: str, max_tokens: int, count_tokens: TokenCounter, alone: bool = False
) -> list[Chunk]:
    """Chunks covering every non-blank line of `source`, each at most `max_tokens` (where a single
    line is not longer than that on its own). With `alone`, every unit is read on its own, never merged
    with its neighbours, and the comment lines above it are left out: what is said about a function then
    depends on that function only, so editing code elsewhere in the file changes nothing about it."""
    lines = code_lines(source)
    source = "\n".join(lines)
    try:
        tree = ast.parse(source)
    except (SyntaxError, ValueError):
        spans = [(1, len(lines))]
    else:
        spans = _spans(tree.body, 1, len(lines), lines, max_tokens, count_tokens)
    fitted: list[tuple[int, int, bool]] = []  # (first, last, whole unit?)
    for first, last in spans:
        if count_tokens(_text(lines, first, last)) <= max_tokens:
            fitted.append((first, last, True))
        else:
            fitted.extend((a, b, False) for a, b in _line_runs(lines, first, last, max_tokens, count_tokens))
    chunks = []
    units = [(a, b) for a, b, _ in fitted] if alone else _merge(fitted, lines, max_tokens, count_tokens)
    for first, last in units:
        first, last = _trim(lines, first, last, comments=alone)
        if first <= last:
            chunks.append(_dedented(lines, first, last))
    return chunks


def _spans(
    body, first: int, last: int, lines, max_tokens: int, count_tokens: TokenCounter
) -> list[tuple[int, int]]:
    """Line spans of the statements in `body` (which covers lines first..last): each function or class
    alone (a too-long class split into its members), other statements grouped."""
    starts = [_start(node) for node in body]
    spans = []
    for i, node in enumerate(body):
        begin = first if i == 0 else starts[i]
        end = starts[i + 1] - 1 if i + 1 < len(body) else last
        is_def = isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef)
        if (
            isinstance(node, ast.ClassDef)
            and count_tokens(_text(lines, begin, end)) > max_tokens
            and node.body
        ):
            header_end = _start(node.body[0]) - 1
            spans.append((begin, header_end, True))
            members = _spans(node.body, header_end + 1, end, lines, max_tokens, count_tokens)
            spans.extend((a, b, True) for a, b in members)
        elif is_def or not spans or spans[-1][2]:
            spans.append((begin, end, is_def))
        else:  # another plain statement: joins the group before it
            spans[-1] = (spans[-1][0], end, False)
    return [(s[0], s[1]) for s in spans]


def _start(node: ast.stmt) -> int:
    decorators = getattr(node, "decorator_list", [])
    return min([d.lineno for d in decorators] + [node.lineno])


def _line_runs(
    lines, first: int, last: int, max_tokens: int, count_tokens: TokenCounter
) -> list[tuple[int, int]]:
    runs, begin, size = [], first, 0
    for number in range(first, last + 1):
        cost = count_tokens(lines[number - 1]) + 1
        if size and size + cost > max_tokens:
            runs.append((begin, number - 1))
            begin, size = number, 0
        size += cost
    runs.append((begin, last))
    return runs


def _merge(spans, lines, max_tokens: int, count_tokens: TokenCounter) -> list[tuple[int, int]]:
    """Join neighbouring whole units while they fit; pieces of a cut statement stay alone."""
    merged: list[tuple[int, int, bool]] = []
    for first, last, whole in spans:
        if (
            merged
            and whole
            and merged[-1][2]
            and count_tokens(_text(lines, merged[-1][0], last)) <= max_tokens
        ):
            merged[-1] = (merged[-1][0], last, True)
        else:
            merged.append((first, last, whole))
    return [(first, last) for first, last, _ in merged]


def _trim(lines, first: int, last: int, comments: bool = False) -> tuple[int, int]:
    """Blank lines off both ends; with `comments`, comment-only lines off the front too."""
    while first <= last and (
        not lines[first - 1].strip() or (comments and lines[first - 1].lstrip()[:1] == "#")
    ):
        first += 1
    while last >= first and not lines[last - 1].strip():
        last -= 1
    return first, last


def _text(lines, first: int, last: int) -> str:
    return "\n".join(lines[first - 1 : last])


def _dedented(lines, first: int, last: int) -> Chunk:
    body = lines[first - 1 : last]
    indents = [len(line) - len(line.lstrip()) for line in body if line.strip()]
    cut = min(indents, default=0)
    # Only whitespace is cut: the common indent is a prefix of every non-blank line.
    return Chunk(first, "\n".join(line[cut:] if line.strip() else "" for line in body), cut)
