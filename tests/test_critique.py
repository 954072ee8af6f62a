import random

import pytest

from critic.core.critique import (
    END_OF_TURN,
    HIGHLIGHT_FENCE,
    START_OF_TURN,
    Critique,
    Highlight,
    build_prompt,
    critique_completion_end,
    format_critique,
    highlight_overlaps,
    line_span_of,
    open_highlight,
    parse_critique,
    request,
    terminate_critique,
)
from critic.core.critique import _code_index as code_index

CODE = """\
import math


def mean(xs):
    total = 0
    for i in range(len(xs) - 1):
        total += xs[i]
    return total / len(xs)


def norm(v):
    return math.sqrt(sum(x * x for x in v))
"""


def spans(critique: Critique) -> list[tuple[int | None, int | None, str | None]]:
    return [(h.start_line, h.end_line, h.match) for h in critique.highlights]


# --- prompt ---


def test_prompt_is_a_gemma_user_turn_with_the_code():
    prompt = build_prompt(CODE)
    assert prompt.startswith(f"{START_OF_TURN}user\n")
    assert prompt.endswith(f"```{END_OF_TURN}\n{START_OF_TURN}model\n")
    assert f"\n\n```python\n{CODE.rstrip()}\n```{END_OF_TURN}" in prompt
    assert "verbatim" in prompt


def test_request_is_bos_then_the_prompt_and_names_no_file():
    """One prompt for training, sampling and review: code only, never a file name."""
    assert request(CODE) == "<bos>" + build_prompt(CODE)
    assert "File:" not in request(CODE)


def test_prompt_fence_outlasts_fences_in_the_code():
    code = 'DOC = """\n```python\nx = 1\n```\n"""\n'
    prompt = build_prompt(code)
    assert f"\n````python\n{code.rstrip()}\n````{END_OF_TURN}" in prompt
    # Nothing inside the code can close the four-backtick block.
    assert all(not line.startswith("````") for line in code.splitlines())


def test_prompt_normalises_crlf_code():
    assert "\r" not in build_prompt("a = 1\r\nb = 2\r\n")


# --- parsing and matching ---


def test_multiple_highlights_with_lines_and_comments():
    text = (
        "```\nfor i in range(len(xs) - 1):\n```\nSkips the last element.\n\n"
        "```\nreturn total / len(xs)\n```\nDivides by zero on an empty list.\n"
    )
    critique = parse_critique(text, CODE)
    assert [h.quote for h in critique.highlights] == [
        "for i in range(len(xs) - 1):",
        "return total / len(xs)",
    ]
    assert [h.comment for h in critique.highlights] == [
        "Skips the last element.",
        "Divides by zero on an empty list.",
    ]
    assert spans(critique) == [(6, 6, "exact"), (8, 8, "exact")]
    assert critique.preamble == ""
    assert critique.valid_highlights == critique.highlights
    assert not critique.hallucinated


def test_multiline_quote_spans_lines_3_to_5():
    code = "a = 1\nb = 2\nif a:\n    b = 3\n    c = 4\nprint(b)\n"
    critique = parse_critique("```\nif a:\n    b = 3\n    c = 4\n```\nc is unused.", code)
    assert spans(critique) == [(3, 5, "exact")]


def test_reindented_quote_matches_ignoring_whitespace():
    text = "```\ntotal = 0\nfor i in range(len(xs) - 1):\n    total += xs[i]\n```\nOff by one."
    critique = parse_critique(text, CODE)
    assert spans(critique) == [(5, 7, "whitespace")]


def test_reflowed_quote_matches_ignoring_line_breaks():
    code = "x = 0\nresult = compute(\n    alpha,\n    beta,\n)\n"
    assert line_span_of("compute(alpha, beta,)", code) == (2, 5, "whitespace")
    assert line_span_of("result = compute(alpha,", code) == (2, 3, "whitespace")


def test_respaced_quote_matches_but_changed_text_does_not():
    assert line_span_of("total+=xs[i]", CODE) == (7, 7, "whitespace")
    assert line_span_of("total += xs[i + 1]", CODE) is None


def test_fragment_of_one_line_matches_inside_that_line():
    assert line_span_of("len(xs) - 1", CODE) == (6, 6, "exact")
    # Same fragment with its spacing changed falls back to the whitespace match, still on line 6.
    assert line_span_of("range(len(xs)  -  1)", CODE) == (6, 6, "whitespace")


def test_first_occurrence_wins():
    code = "x = 1\ny = 2\nx = 1\n"
    assert line_span_of("x = 1", code) == (1, 1, "exact")


def test_hallucinated_quote():
    critique = parse_critique("```\nreturn statistics.mean(xs)\n```\nUse the stdlib.", CODE)
    (highlight,) = critique.highlights
    assert highlight.hallucinated
    assert (highlight.start_line, highlight.end_line, highlight.match) == (None, None, None)
    assert critique.hallucinated == [highlight]
    assert critique.valid_highlights == []


@pytest.mark.parametrize("quote", ["", "   ", "\n\n", " \t \n  "])
def test_empty_quote_is_hallucinated(quote):
    assert line_span_of(quote, CODE) is None
    critique = parse_critique(f"```\n{quote}\n```\nNothing quoted.", CODE)
    assert [h.hallucinated for h in critique.highlights] == [True]
    assert critique.highlights[0].comment == "Nothing quoted."


def test_unterminated_fence_is_kept_with_empty_comment():
    text = "```\nfor i in range(len(xs) - 1):\n```\nOff by one.\n\n```\nreturn total / len(xs)"
    critique = parse_critique(text, CODE)
    assert [(h.quote, h.comment) for h in critique.highlights] == [
        ("for i in range(len(xs) - 1):", "Off by one."),
        ("return total / len(xs)", ""),
    ]
    assert spans(critique)[1] == (8, 8, "exact")


def test_fence_cut_right_after_opening_is_a_hallucinated_highlight():
    critique = parse_critique("Looks wrong.\n\n```", CODE)
    assert [(h.quote, h.hallucinated) for h in critique.highlights] == [("", True)]


@pytest.mark.parametrize("tag", ["python", "py", "Python3", "c++"])
def test_language_tag_is_not_part_of_the_quote(tag):
    critique = parse_critique(f"```{tag}\nimport math\n```\nUnused?", CODE)
    assert [(h.quote, h.start_line) for h in critique.highlights] == [("import math", 1)]


def test_quote_on_the_opening_fence_line():
    # After FSBS appends a fence the model may continue on the same line.
    critique = parse_critique("```total += xs[i]\n```\nFine.", CODE)
    assert [(h.quote, h.start_line) for h in critique.highlights] == [("total += xs[i]", 7)]


def test_comment_on_the_closing_fence_line():
    critique = parse_critique("```\nimport math\n``` unused import\nmore", CODE)
    assert critique.highlights[0].comment == "unused import\nmore"


def test_crlf_critique_text():
    text = "Intro.\r\n\r\n```python\r\n    total = 0\r\n    for i in range(len(xs) - 1):\r\n```\r\nBug.\r\n"
    critique = parse_critique(text, CODE)
    assert critique.preamble == "Intro."
    assert [(h.quote, h.comment) for h in critique.highlights] == [
        ("    total = 0\n    for i in range(len(xs) - 1):", "Bug.")
    ]
    assert spans(critique) == [(5, 6, "exact")]
    assert "\r" not in critique.text


def test_crlf_code():
    assert line_span_of("b = 2\nc = 3", "a = 1\r\nb = 2\r\nc = 3\r\n") == (2, 3, "exact")


def test_blank_lines_inside_the_fence_are_ignored():
    critique = parse_critique("```\n\n  \nimport math\n\n```\nx", CODE)
    assert [(h.quote, h.start_line, h.match) for h in critique.highlights] == [("import math", 1, "exact")]


def test_preamble_and_comment_less_highlights():
    text = "The code has two issues.\nSee below.\n\n```\nimport math\n```\n```\ndef mean(xs):\n```"
    critique = parse_critique(text, CODE)
    assert critique.preamble == "The code has two issues.\nSee below."
    assert [(h.quote, h.comment) for h in critique.highlights] == [
        ("import math", ""),
        ("def mean(xs):", ""),
    ]


def test_no_highlights():
    critique = parse_critique(f"  I found no bugs.\n{END_OF_TURN}", CODE)
    assert critique.highlights == []
    assert critique.preamble == "I found no bugs."
    assert critique.text == "I found no bugs."


def test_inline_triple_backticks_do_not_open_a_block():
    critique = parse_critique("Use ```math.fsum``` instead.", CODE)
    assert critique.highlights == []


def test_end_of_turn_and_what_follows_are_dropped():
    text = f"```\nimport math\n```\nUnused import.\n{END_OF_TURN}<eos>\n```\nmore\n```\n"
    critique = parse_critique(text, CODE)
    assert [(h.quote, h.comment) for h in critique.highlights] == [("import math", "Unused import.")]
    assert END_OF_TURN not in critique.text


def test_quote_at_the_end_of_a_5000_line_file():
    lines = [f"value_{i} = compute({i}, scale={i % 7})" for i in range(5000)]
    lines[4998] = "    return finalize(total,  strict=False)"
    code = "\n".join(lines) + "\n"
    quotes = [lines[4999], "return finalize(total, strict=False)"]
    quotes += [f"missing_{i} = nowhere({i})" for i in range(8)]  # misses force the whitespace view
    text = format_critique([(q, "comment") for q in quotes])

    code_index.cache_clear()
    critique = parse_critique(text, code)

    assert spans(critique)[:2] == [(5000, 5000, "exact"), (4999, 4999, "whitespace")]
    assert len(critique.hallucinated) == 8


# --- helpers ---


def test_highlight_overlaps():
    highlight = Highlight("q", "c", start_line=3, end_line=5, match="exact")
    assert highlight_overlaps(highlight, [5, 9])
    assert highlight_overlaps(highlight, iter([3]))
    assert not highlight_overlaps(highlight, [2, 6])
    assert not highlight_overlaps(highlight, [])
    assert not highlight_overlaps(Highlight("q", "c"), [0, 1, 3])


def test_completion_end_and_termination():
    assert critique_completion_end("abc") is None
    assert critique_completion_end(f"abc{END_OF_TURN}x") == 3
    assert terminate_critique("Bug here.\n\n") == f"Bug here.{END_OF_TURN}"
    assert terminate_critique(terminate_critique("Bug.")) == f"Bug.{END_OF_TURN}"


@pytest.mark.parametrize("so_far", ["", "Intro.", "Intro.\n", "```\nimport math\n```\nUnused."])
def test_forced_highlight_opens_a_block(so_far):
    forced = open_highlight(so_far)
    assert forced.startswith(so_far) and forced.endswith(HIGHLIGHT_FENCE)
    critique = parse_critique(forced + "\ndef norm(v):\n```\nNo check for empty v.", CODE)
    assert critique.highlights[-1].quote == "def norm(v):"
    assert critique.highlights[-1].start_line == 11
    assert critique.highlights[-1].comment == "No check for empty v."


# --- writing and round trip ---


def test_format_layout():
    text = format_critique([("a = 1", "Why."), ("b", "")], preamble="Intro.")
    assert text == "Intro.\n\n```\na = 1\n```\nWhy.\n\n```\nb\n```"


def test_format_accepts_highlights_and_fences_quotes_containing_backticks():
    quote = "s = '''\n```\n'''"
    text = format_critique([Highlight(quote, "Odd string.")])
    assert text.startswith("````\n")
    assert [(h.quote, h.comment) for h in parse_critique(text, quote).highlights] == [(quote, "Odd string.")]
    assert parse_critique(text, quote).highlights[0].start_line == 1


@pytest.mark.parametrize("comment", ["```", "See:\n```python\nx = 2\n```", f"done{END_OF_TURN}", "  ````  "])
def test_format_rejects_comments_that_would_not_round_trip(comment):
    with pytest.raises(ValueError):
        format_critique([("x", comment)])
    with pytest.raises(ValueError):
        format_critique([], preamble=comment)


def test_format_rejects_end_of_turn_in_quote():
    with pytest.raises(ValueError):
        format_critique([(f"x{END_OF_TURN}", "c")])


QUOTE_TOKENS = ["x", "= 1", " ", "  ", "\t", "\n", "\n", "```", "`", "````py", "#", "(", ")", "\r\n", "é"]
PROSE_TOKENS = ["word", " ", "\n", "\n\n", "a```b", "`x`", ".", "\t", "-", "(", "\r\n", "lang"]


def _normalise_quote(quote: str) -> str:
    lines = quote.replace("\r\n", "\n").split("\n")
    while lines and not lines[0].strip():
        lines.pop(0)
    while lines and not lines[-1].strip():
        lines.pop()
    return "\n".join(lines)


def test_round_trip_many_random_critiques():
    rng = random.Random(1234)
    for _ in range(400):
        pairs = [
            (
                "".join(rng.choices(QUOTE_TOKENS, k=rng.randint(0, 12))),
                "".join(rng.choices(PROSE_TOKENS, k=rng.randint(0, 10))),
            )
            for _ in range(rng.randint(0, 4))
        ]
        preamble = "".join(rng.choices(PROSE_TOKENS, k=rng.randint(0, 6)))
        code = "\n".join(q for q, _ in pairs)
        critique = parse_critique(format_critique(pairs, preamble), code)
        expected = [(_normalise_quote(q), c.replace("\r\n", "\n").strip()) for q, c in pairs]
        assert [(h.quote, h.comment) for h in critique.highlights] == expected, pairs
        assert critique.preamble == preamble.replace("\r\n", "\n").strip()
        # Every non-blank quote was taken from the code, so it must be found there.
        assert all(h.hallucinated == (not h.quote.strip()) for h in critique.highlights)


def test_round_trip_is_exact_for_normalised_pairs():
    pairs = [
        ("    for i in range(len(xs) - 1):\n        total += xs[i]", "Off by one:\n\n- skips `xs[-1]`."),
        ("return total / len(xs)", ""),
        ("  # ```not a fence```", "Trailing text"),
    ]
    critique = parse_critique(terminate_critique(format_critique(pairs, "Intro")), CODE)
    assert [(h.quote, h.comment) for h in critique.highlights] == pairs
    assert critique.preamble == "Intro"
