"""A finding's fix: replacement text for a region of the file, and applying fixes to a file's text.

Regions are in file coordinates the way SARIF and editors count them: 1-based lines and columns,
`end_column` exclusive (the column just after the last replaced character). Columns count characters
of the line, not bytes. A fix never spans a line ending it does not replace: the replaced text is
exactly `region(text, fix)`, so applying it to the text it was computed on gives the repaired code.
A region whose column lies past its line's end (in or after the line ending) is not in the text: the
fix was made for other code, and applying it would cut a line ending it does not mean to.
"""

from __future__ import annotations

import re
from bisect import bisect_right
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, replace

_NEWLINE = re.compile(r"\r\n|\r|\n")


@dataclass(frozen=True)
class Fix:
    line: int
    column: int
    end_line: int
    end_column: int  # exclusive
    text: str  # what replaces the region

    @property
    def where(self) -> str:
        """The region as line:column-end_line:end_column, for messages."""
        return f"{self.line}:{self.column}-{self.end_line}:{self.end_column}"

    def as_dict(self) -> dict:
        return {
            "line": self.line,
            "column": self.column,
            "end_line": self.end_line,
            "end_column": self.end_column,
            "text": self.text,
        }


def _line_starts(text: str) -> list[int]:
    """Offset of each line's first character (CR LF, CR and LF end lines, as code_lines counts them)."""
    return [0, *(m.end() for m in _NEWLINE.finditer(text))]


def _line_end(text: str, starts: list[int], index: int) -> int:
    """Offset just after the last character of line `index` (0-based), before its line ending."""
    if index + 1 == len(starts):
        return len(text)
    nxt = starts[index + 1]
    return nxt - (2 if text[nxt - 2 : nxt] == "\r\n" else 1)


def _offset(text: str, starts: list[int], line: int, column: int) -> int | None:
    """The offset of 1-based (line, column), or None when it is not a position of `text`."""
    if not (1 <= line <= len(starts)) or column < 1:
        return None
    at = starts[line - 1] + column - 1
    return at if at <= _line_end(text, starts, line - 1) else None


def _offsets(text: str, starts: list[int], fix: Fix) -> tuple[int, int]:
    start = _offset(text, starts, fix.line, fix.column)
    end = _offset(text, starts, fix.end_line, fix.end_column)
    if start is None or end is None or start > end:
        raise ValueError(f"fix region {fix.where} is not in the text")
    return start, end


def offsets(text: str, fix: Fix) -> tuple[int, int]:
    """The fix's region as [start, end) character offsets of `text`; ValueError when it is not in it."""
    return _offsets(text, _line_starts(text), fix)


def region(text: str, fix: Fix) -> str:
    """The text the fix replaces."""
    start, end = offsets(text, fix)
    return text[start:end]


def fix_at(text: str, start: int, end: int, replacement: str, first_line: int = 1, indent: int = 0) -> Fix:
    """The Fix replacing text[start:end] by `replacement`, for `text` that starts at file line
    `first_line` with `indent` characters cut from the front of each of its lines (a chunk's code).
    `replacement` goes into the file verbatim: lines after its first need the file's indentation."""
    if not 0 <= start <= end <= len(text):
        raise ValueError(f"[{start}, {end}) is not a span of the text")
    starts = _line_starts(text)

    def position(offset: int) -> tuple[int, int]:
        line = bisect_right(starts, offset) - 1
        return first_line + line, indent + offset - starts[line] + 1

    (line, column), (end_line, end_column) = position(start), position(end)
    return Fix(line, column, end_line, end_column, replacement)


def apply_each(text: str, fixes: Sequence[Fix]) -> tuple[str, list[bool]]:
    """`text` with the fixes applied, and for each fix whether it was. Fixes apply from the end of the
    text back; one that overlaps a fix already applied is skipped (ruff skips overlapping fixes the
    same way), except an exact duplicate of it, which counts as applied (two findings, one repair).
    ValueError when a fix's region is not in the text."""
    starts = _line_starts(text)
    spans = sorted(((*_offsets(text, starts, f), i) for i, f in enumerate(fixes)), key=lambda s: s[:2])
    spans.reverse()
    applied = [False] * len(fixes)
    limit, last = len(text) + 1, None
    for start, end, i in spans:
        if last is not None and (start, end, fixes[i].text) == last:
            applied[i] = True
            continue
        if end > limit:
            continue
        text = text[:start] + fixes[i].text + text[end:]
        limit, last = start, (start, end, fixes[i].text)
        applied[i] = True
    return text, applied


def apply_fixes(text: str, fixes: Iterable[Fix]) -> tuple[str, int]:
    """`text` with every fix applied, and how many were (see `apply_each`)."""
    fixed, applied = apply_each(text, list(fixes))
    return fixed, sum(applied)


def newline(text: str) -> str:
    """The text's line ending (its first one), LF for a text of one line."""
    match = _NEWLINE.search(text)
    return match.group() if match else "\n"


def with_newline(fix: Fix, ending: str) -> Fix:
    """The fix with every line ending of its text made `ending`, so a repair keeps the file's style."""
    return replace(fix, text=_NEWLINE.sub(ending, fix.text))


def rebase(text: str, applied: Iterable[Fix]) -> Callable[[int, int], tuple[int, int]]:
    """Maps a (line, column) of `text` to the same place in `text` with the `applied` fixes applied
    (none overlapping), so findings the fixes left can be reported on the repaired file. A column past
    its line's end is taken as the line's end; a place inside a replaced region maps to the start of
    its replacement, and one where text was inserted to just after the insertion."""
    starts = _line_starts(text)
    applied = list(applied)
    unique = {(*_offsets(text, starts, f), f.text) for f in applied}  # an exact duplicate applied once
    spans = sorted((start, end, len(replacement)) for start, end, replacement in unique)
    new_text, _ = apply_fixes(text, applied)
    new_starts = _line_starts(new_text)

    def moved(line: int, column: int) -> tuple[int, int]:
        index = min(max(line, 1), len(starts)) - 1
        at = min(starts[index] + max(column, 1) - 1, _line_end(text, starts, index))
        shift = 0
        for start, end, size in spans:
            if end <= at:
                shift += size - (end - start)
            elif start < at:
                at = start  # inside a replaced region
        at += shift
        row = bisect_right(new_starts, at) - 1
        return row + 1, at - new_starts[row] + 1

    return moved
