"""What the annotation UI shows, as text: critiques tied to the code, check verdicts, test results.

Pure functions of their inputs (no Gradio, no database), so they are tested directly.
"""

from __future__ import annotations

import difflib
import html
import re
from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

from critic.annotation_app import store
from critic.annotation_app.store import AppError, CheckResult, TestResult
from critic.core.critique import Highlight, code_lines, line_span_of, parse_critique

__all__ = [
    "numbered_code",
    "line_range",
    "number_or_text",
    "parse_line_numbers",
    "progress_count",
    "quote_span",
    "quote_from_lines",
    "quote_lines",
    "quote_place",
    "render_check",
    "render_code_view",
    "render_critique",
    "render_critique_card",
    "render_diff",
    "render_my_progress",
    "render_navigator",
    "render_problems",
    "render_sample_counts",
    "render_tests",
    "stamp",
    "table",
]


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
    """The *Check against critic* verdict: whether the critic's critique caught the bug (the tampering is
    adversarial when it did not), and that critique."""
    if result.adversarial:
        verdict = "✓ **Adversarial**: the critic missed the bug."
    else:
        verdict = "✗ **Not adversarial**: the critic caught the bug. Try a subtler bug."
    parts = [verdict]
    for text in result.critiques:
        parts.append("#### The critic's critique")
        parts.append(render_critique(text, result.code))
    return "\n\n".join(parts)


def render_tests(result: TestResult) -> str:
    original = "✓ passes" if result.original_passed else "✗ fails"
    tampered = "✓ fails" if result.tampered_failed else "✗ passes"
    verdict = "the tests see your bug" if result.verified else "the tests do not confirm the bug"
    return f"Original {original} · tampered {tampered}: {verdict}.\n\n{_fence(result.detail)}"


def stamp(what: str) -> str:
    return f"{what} at {datetime.now().strftime('%H:%M:%S')}"


def table(rows: list[dict[str, Any]]) -> Any:
    """A Dataframe's value (its cells are plain text), every control character written out (`visible`):
    the audit log's names are whatever a login attempt sent."""
    import pandas as pd

    from critic.annotation_app.audit import visible

    return pd.DataFrame(
        [{k: visible(v) if isinstance(v, str) else v for k, v in row.items()} for row in rows]
    )


# --- critique writing (the Write tab) ---------------------------------------------------------------

_LINE_RANGE = re.compile(r"\s*(\d+)\s*(?:[-–]\s*(\d+)\s*)?")


def numbered_code(code: str) -> str:
    """The code as HTML, one numbered row per line (numbered as the store numbers lines), escaped: a
    writer reads the line numbers off it to fill a highlight's *Lines*."""
    rows = "".join(
        f'<tr><td class="ln">{n}</td><td class="src">{html.escape(line)}</td></tr>'
        for n, line in enumerate(code_lines(code), start=1)
    )
    return f'<div class="numbered-code"><table>{rows}</table></div>'


def line_range(code: str, text: str) -> tuple[int, int]:
    """The first and last line of "3" or "3-4"; AppError when `text` is not one line or one run of lines
    of the code (a quote is one contiguous piece of code)."""
    match = _LINE_RANGE.fullmatch(text)
    if match is None:
        raise AppError(f"cannot read lines {text.strip()!r}: write one line or a range, like 3 or 3-4")
    count = len(code_lines(code))
    start = int(match[1])
    end = int(match[2]) if match[2] else start
    if not 1 <= start <= end <= count:
        raise AppError(f"lines {text.strip()!r} are not lines of the code (1 to {count})")
    return start, end


def quote_from_lines(code: str, text: str) -> str:
    """Exactly the lines "3" or "3-4" of the code, as a highlight's quote (see `line_range`)."""
    start, end = line_range(code, text)
    return "\n".join(code_lines(code)[start - 1 : end])


def quote_lines(quote: str, code: str) -> str:
    """The *Lines* text ("3" or "3-4") of a quote of the code; "" when it is not in the code."""
    span = line_span_of(quote, code) if quote.strip() else None
    if span is None:
        return ""
    start, end, _ = span
    return str(start) if start == end else f"{start}-{end}"


def quote_place(quote: str, code: str) -> str:
    """Where a highlight's quote is in the code, or a warning that it is not there (the store refuses
    such a quote): shown next to the quote as the writer edits it."""
    if not quote.strip():
        return "*(no quote yet)*"
    span = line_span_of(quote, code)
    if span is None:
        return "⚠ **the quote is not in the code**: copy it exactly from the code"
    start, end, match = span
    return _span(start, end) + (" (spacing differs from the code)" if match == "whitespace" else "")


# --- personal progress, the Admin tab's numbers -----------------------------------------------------

TASK_NAMES = {"tamper": "Tamper", "compare": "Rate", "write": "Write"}


def progress_count(counts: dict[str, int]) -> str:
    """One task kind of `store.my_progress`: "3 done, 161 left"."""
    return f"{counts['done']} done, {counts['left']} left"


def render_my_progress(mine: dict[str, dict[str, int]]) -> str:
    """`store.my_progress` on one line: "Tamper: 3 done, 161 left · Rate: … · Write: …"."""
    return " · ".join(f"**{name}**: {progress_count(mine[kind])}" for kind, name in TASK_NAMES.items())


def render_sample_counts(samples: dict[str, int]) -> str:
    """`store.progress(...)["samples"]` on one line, for the admin."""
    return (
        f"**Samples**: {samples['total']} in all · {samples['tampered']} tampered · "
        f"{samples['skipped']} skipped · {samples['open']} being tampered now · "
        f"{samples['untouched']} never assigned"
    )


def number_or_text(value: Any) -> Any:
    """A settings field as the number it spells ("3" and 3.0 give 3, "2.5" gives 2.5), or as typed
    (stripped) when it spells none: the store refuses what is not a valid setting, in its own words,
    so the UI neither rounds nor clamps."""
    if isinstance(value, str):
        text = value.strip()
        try:
            value = int(text)
        except ValueError:
            try:
                value = float(text)
            except ValueError:
                return text
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


# --- the Compare tab ---------------------------------------------------------------------------------
# HTML, not markdown: a quote is shown exactly as quoted (a fragment is marked inside its line), and every
# piece of text, code and critique alike, goes through html.escape.


def _numbered_rows(numbered: Iterable[tuple[int, str, str]]) -> str:
    """Rows of (line number, already-escaped HTML of the line, extra CSS class)."""
    return "".join(
        f'<div class="cmp-line{" " + css if css else ""}"><span class="cmp-ln">{n}</span>'
        f'<span class="cmp-src">{source}</span></div>'
        for n, source, css in numbered
    )


def render_code_view(code: str, bug_lines: Iterable[int]) -> str:
    """The code of a compare task, one numbered row per line, the reference bug's lines highlighted."""
    bugs = set(bug_lines)
    rows = _numbered_rows(
        (n, html.escape(line), "cmp-bug" if n in bugs else "")
        for n, line in enumerate(code_lines(code), start=1)
    )
    return f'<div class="cmp-code" aria-label="The code, bug lines highlighted">{rows}</div>'


def render_diff(original: str, code: str) -> str:
    """What the tamperer changed: each changed hunk's removed lines (`-`, numbered in the original) and
    added lines (`+`, numbered in the code), and nothing that stayed the same."""
    before, after = code_lines(original), code_lines(code)
    hunks = []
    matcher = difflib.SequenceMatcher(None, before, after, autojunk=False)
    for tag, i1, i2, j1, j2 in matcher.get_opcodes():
        if tag == "equal":
            continue
        rows = [(n, f"- {html.escape(before[n - 1])}", "cmp-del") for n in range(i1 + 1, i2 + 1)]
        rows += [(n, f"+ {html.escape(after[n - 1])}", "cmp-add") for n in range(j1 + 1, j2 + 1)]
        hunks.append(f'<div class="cmp-hunk">{_numbered_rows(rows)}</div>')
    body = "".join(hunks) or '<p class="cmp-note">No line changed.</p>'
    return f'<div class="cmp-diff"><div class="cmp-caption">The change that put the bug in</div>{body}</div>'


def quote_span(code: str, highlight: Highlight) -> tuple[int, int] | None:
    """Where a highlight's quote is, as character offsets into the code's lines joined by "\\n": the
    exact span of an exact match (the occurrence `parse_critique` located), or None when the quote was
    matched only with whitespace ignored, or not at all."""
    if highlight.match != "exact" or highlight.start_line is None:
        return None
    text = "\n".join(code_lines(code))
    at = text.find(highlight.quote)
    if at < 0 or text.count("\n", 0, at) + 1 != highlight.start_line:
        return None
    return at, at + len(highlight.quote)


def _quoted_rows(code: str, highlight: Highlight) -> str:
    """The lines a highlight quotes, with exactly the quoted characters in <mark> (whole lines when the
    quote matched only with whitespace ignored)."""
    lines = code_lines(code)
    span = quote_span(code, highlight)
    offset = sum(len(line) + 1 for line in lines[: highlight.lines.start - 1])
    rows = []
    for n in highlight.lines:
        line = lines[n - 1]
        start, end = (0, len(line)) if span is None else (span[0] - offset, span[1] - offset)
        start, end = max(start, 0), min(end, len(line))
        if start < end:
            marked = (
                f"{html.escape(line[:start])}<mark>{html.escape(line[start:end])}</mark>"
                f"{html.escape(line[end:])}"
            )
        else:
            marked = html.escape(line)
        rows.append((n, marked, ""))
        offset += len(line) + 1
    return _numbered_rows(rows)


def _prose(text: str) -> str:
    return f'<div class="cmp-prose">{html.escape(text)}</div>'


def render_critique_card(text: str, code: str) -> str:
    """A critique for rating: its preamble, then each highlight as the numbered lines it quotes with
    the quoted text marked, or a warning and the quote as written when it is not in the code, and its
    comment. Only the critique's own text: nothing says where it came from."""
    critique = parse_critique(text, code)
    parts = [_prose(critique.preamble)] if critique.preamble else []
    for highlight in critique.highlights:
        if highlight.hallucinated:
            where = '<div class="cmp-where cmp-warn">⚠ Quote not found in the code; as quoted:</div>'
            quoted = (
                f'<pre class="cmp-missing">{html.escape(highlight.quote)}</pre>'
                if highlight.quote.strip()
                else '<p class="cmp-note">(empty quote)</p>'
            )
        else:
            note = (
                ' <span class="cmp-note">(matches only with spacing ignored)</span>'
                if highlight.match == "whitespace"
                else ""
            )
            where = f'<div class="cmp-where">{_span(highlight.start_line, highlight.end_line)}{note}</div>'
            quoted = f'<div class="cmp-quote">{_quoted_rows(code, highlight)}</div>'
        comment = _prose(highlight.comment) if highlight.comment else ""
        parts.append(f'<div class="cmp-highlight">{where}{quoted}{comment}</div>')
    body = "".join(parts) or '<p class="cmp-note">(empty critique)</p>'
    return f'<div class="cmp-card">{body}</div>'


def render_navigator(task_id: int, complete: Sequence[bool]) -> str:
    """Buttons for critique 1 … N (✓ once every answer it needs is given) and Previous/Next. The page's
    script (static/compare.js) shows the critique a button names; `data-task` tells it a new task opened."""
    buttons = "".join(
        f'<button type="button" class="cmp-goto{" cmp-done" if done else ""}" data-cmp-goto="{i}" '
        f'title="Critique {i + 1}{": complete" if done else ""}">{i + 1}{" ✓" if done else ""}</button>'
        for i, done in enumerate(complete)
    )
    return (
        f'<nav class="cmp-nav" data-task="{int(task_id)}" data-count="{len(complete)}">'
        '<button type="button" class="cmp-step" data-cmp-step="-1">‹ Previous</button>'
        f'<span class="cmp-nav-label">Critique</span>{buttons}'
        '<button type="button" class="cmp-step" data-cmp-step="1">Next ›</button></nav>'
    )


def render_problems(problems: Sequence[tuple[str, int | None, Sequence[tuple[str, str]]]]) -> str:
    """Why the ratings cannot be submitted yet, one line per critique: the store's message and a button
    per unanswered field (field name, label) that shows that critique and focuses the field. "" when
    there is no problem, so the list disappears."""
    if not problems:
        return ""
    items = []
    for message, index, fields_ in problems:
        jumps = "".join(
            f'<button type="button" class="cmp-jump" data-cmp-goto="{index}" '
            f'data-cmp-field="{html.escape(field_)}">{html.escape(label)}</button>'
            for field_, label in fields_
            if index is not None
        )
        items.append(f"<li><span>{html.escape(message)}</span>{jumps}</li>")
    return (
        '<div class="cmp-problems" role="alert"><strong>Not submitted: answer these first.</strong>'
        f"<ul>{''.join(items)}</ul></div>"
    )
