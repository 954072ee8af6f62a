"""The Compare page's HTML: exact quotes marked inside their lines, bug lines, the diff, escaping."""

from __future__ import annotations

import html
import re

from critic.annotation_app.ui.render import (
    quote_span,
    render_code_view,
    render_critique_card,
    render_diff,
    render_navigator,
    render_problems,
)
from critic.core.critique import parse_critique

CODE = """def mean(xs):
    total = 0
    for i in range(len(xs) - 1):
        total += xs[i]
    return total / len(xs)
"""


def marks(rendered: str) -> list[str]:
    """The text inside each <mark>, unescaped."""
    return [html.unescape(m) for m in re.findall(r"<mark>(.*?)</mark>", rendered)]


def rows(rendered: str) -> list[tuple[str, str, str]]:
    """(css classes, line number, source as text) of each numbered row."""
    row = (
        r'<div class="cmp-line([^"]*)"><span class="cmp-ln">(\d+)</span>'
        r'<span class="cmp-src">(.*?)</span></div>'
    )
    found = re.findall(row, rendered)
    return [(css.strip(), n, html.unescape(re.sub(r"</?mark>", "", src))) for css, n, src in found]


def test_a_fragment_quote_is_marked_exactly_inside_its_line() -> None:
    card = render_critique_card("```\n    return \n```\nReturns too early.", CODE)
    assert marks(card) == ["    return "]
    assert "<mark>    return </mark>total / len(xs)" in card
    assert rows(card) == [("", "5", "    return total / len(xs)")]  # the whole line, numbered
    assert "Line 5" in card and "Returns too early." in card
    highlight = parse_critique("```\n    return \n```\n", CODE).highlights[0]
    start, end = quote_span(CODE, highlight)
    assert "\n".join(CODE.splitlines())[start:end] == "    return "


def test_a_multi_line_quote_marks_from_where_it_starts_to_where_it_ends() -> None:
    text = "```\nrange(len(xs) - 1):\n        total\n```\nSkips the last element."
    card = render_critique_card(text, CODE)
    assert marks(card) == ["range(len(xs) - 1):", "        total"]
    assert rows(card) == [
        ("", "3", "    for i in range(len(xs) - 1):"),
        ("", "4", "        total += xs[i]"),
    ]
    assert "    for i in <mark>range(len(xs) - 1):</mark>" in card
    assert "<mark>        total</mark> += xs[i]" in card
    assert "Lines 3–4" in card


def test_a_repeated_fragment_is_marked_where_the_parser_found_it() -> None:
    code = "x = 1\ny = x\nx = 1\n"
    card = render_critique_card("```\nx = 1\n```\nTwice.", code)
    assert rows(card) == [("", "1", "x = 1")] and marks(card) == ["x = 1"]


def test_a_quote_matched_only_with_spacing_ignored_marks_whole_lines() -> None:
    card = render_critique_card("```\nfor i in range(len(xs)-1):\n```\nOff by one.", CODE)
    highlight = parse_critique("```\nfor i in range(len(xs)-1):\n```\n", CODE).highlights[0]
    assert highlight.match == "whitespace" and quote_span(CODE, highlight) is None
    assert marks(card) == ["    for i in range(len(xs) - 1):"]
    assert "spacing ignored" in card


def test_a_quote_not_in_the_code_is_flagged_and_shown_as_quoted() -> None:
    card = render_critique_card("```\nif not xs:\n    return 0\n```\nGuard is wrong.", CODE)
    assert "Quote not found in the code" in card
    assert '<pre class="cmp-missing">if not xs:\n    return 0</pre>' in card
    assert marks(card) == [] and rows(card) == []
    assert "Guard is wrong." in card


def test_preamble_and_empty_critiques() -> None:
    card = render_critique_card("No bugs found.", CODE)
    assert '<div class="cmp-prose">No bugs found.</div>' in card
    assert "(empty critique)" in render_critique_card("", CODE)
    assert "(empty quote)" in render_critique_card("```\n\n```\nEmpty.", CODE)


def test_everything_is_escaped() -> None:
    code = 'def f():\n    s = "<script>alert(1)</script>"\n    return s\n'
    original = code.replace("return s", "return None")
    text = (
        "<script>alert(2)</script> & <b>\n\n```\n<script>alert(1)</script>\n```\n<img src=x onerror=alert(3)>"
    )
    rendered = [
        render_code_view(code, [2]),
        render_critique_card(text, code),
        render_diff(original, code),
        render_problems([("critique 1: <script>", 0, [("cbi", "<b>CBI</b>")])]),
    ]
    for out in rendered:
        assert "<script>" not in out and "<img" not in out and "<b>" not in out
    assert "&lt;script&gt;alert(2)&lt;/script&gt; &amp; &lt;b&gt;" in rendered[1]
    assert marks(rendered[1]) == ["<script>alert(1)</script>"]
    assert "&lt;img src=x onerror=alert(3)&gt;" in rendered[1]
    assert "&lt;script&gt;" in rendered[0] and "&lt;script&gt;" in rendered[3]


def test_the_code_view_numbers_every_line_and_highlights_the_bug_lines() -> None:
    view = render_code_view(CODE.replace("\n", "\r\n"), [3, 4])
    found = rows(view)
    assert [n for _, n, _ in found] == ["1", "2", "3", "4", "5"]
    assert [n for css, n, _ in found if css == "cmp-bug"] == ["3", "4"]
    assert [src for _, _, src in found] == CODE.splitlines()


def test_the_diff_shows_only_changed_lines_numbered_in_their_own_file() -> None:
    original = CODE.replace("range(len(xs) - 1)", "range(len(xs))")
    tampered = CODE.replace("    total = 0\n", "    count = 0\n    total = 0\n")
    diff = render_diff(original, tampered)
    assert rows(diff) == [
        ("cmp-add", "2", "+     count = 0"),  # an added line: numbered in the tampered code
        ("cmp-del", "3", "-     for i in range(len(xs)):"),  # a change: the original's line 3 ...
        ("cmp-add", "4", "+     for i in range(len(xs) - 1):"),  # ... became line 4
    ]
    assert diff.count('<div class="cmp-hunk">') == 2
    assert "def mean" not in diff and "return total" not in diff  # unchanged lines are not shown
    assert "No line changed." in render_diff(CODE, CODE)


def test_the_navigator_marks_complete_critiques() -> None:
    nav = render_navigator(12, [True, False, True])
    assert 'data-task="12"' in nav and 'data-count="3"' in nav
    assert re.findall(r'data-cmp-goto="(\d)"', nav) == ["0", "1", "2"]
    assert re.findall(r'class="cmp-goto( cmp-done)?"', nav) == [" cmp-done", "", " cmp-done"]
    assert 'data-cmp-step="-1"' in nav and 'data-cmp-step="1"' in nav


def test_the_problem_list_has_a_jump_per_unanswered_field() -> None:
    assert render_problems([]) == ""
    out = render_problems(
        [
            ("critique 1: no CBI, no rationale", 0, [("cbi", "CBI"), ("rationale", "Rationale")]),
            ("critique 3: the rationale is over 5000 characters", 2, []),
            ("a problem of no one critique", None, [("cbi", "CBI")]),
        ]
    )
    jumps = re.findall(r'data-cmp-goto="(\d)" data-cmp-field="(\w+)">(\w+)<', out)
    assert jumps == [("0", "cbi", "CBI"), ("0", "rationale", "Rationale")]
    assert out.count("<li>") == 3 and "over 5000 characters" in out and 'role="alert"' in out
