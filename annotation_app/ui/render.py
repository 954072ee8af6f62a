"""What the annotation UI shows, as text: critiques tied to the code, check verdicts, test results.

Pure functions of their inputs (no Gradio, no database), so they are tested directly.
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any

from critic.annotation_app import store
from critic.annotation_app.store import AppError, CheckResult, TestResult
from critic.core.critique import code_lines, parse_critique

__all__ = ["parse_line_numbers", "render_check", "render_critique", "render_tests", "stamp", "table"]


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
    """The *Check against critic* verdict: caught or missed per search, each critique, and whether the
    tampering will count as adversarial."""
    n = len(result.caught)
    missed = n - sum(result.caught)
    if result.adversarial:
        verdict = f"✓ **Adversarial**: the critic missed the bug in {missed} of {n} searches."
    else:
        verdict = f"✗ **Not adversarial**: the critic caught the bug in all {n} searches. Try a subtler bug."
    parts = [verdict]
    for i, (hit, text) in enumerate(zip(result.caught, result.critiques, strict=True), start=1):
        mark = "✓ caught" if hit else "✗ missed"
        parts.append(f"#### Search {i}: {mark}")
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
    import pandas as pd

    return pd.DataFrame(rows)
