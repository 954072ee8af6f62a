"""Fix regions and applying them (critic.review.fixes): the coordinates SARIF and editors use, on every
line ending, and the rules that keep a repair from corrupting a file (overlaps skipped, regions that
are not in the text refused)."""

from __future__ import annotations

import pytest

from critic.review.fixes import (
    Fix,
    apply_each,
    apply_fixes,
    fix_at,
    newline,
    offsets,
    rebase,
    region,
    with_newline,
)

CODE = "def f(a, b):\n    if a < b:\n        return 1\n    return 2\n"


@pytest.mark.parametrize("ending", ["\n", "\r\n", "\r"])
def test_regions_count_lines_and_columns_on_every_line_ending(ending):
    text = CODE.replace("\n", ending)
    fix = Fix(2, 10, 2, 11, "<=")
    assert region(text, fix) == "<"
    start, end = offsets(text, fix)
    assert text[start:end] == "<" and start == text.index("<")
    fixed, applied = apply_fixes(text, [fix])
    assert applied == 1 and fixed == CODE.replace("a < b", "a <= b").replace("\n", ending)


@pytest.mark.parametrize("ending", ["\n", "\r\n", "\r"])
def test_multi_line_regions_replace_the_line_endings_they_span(ending):
    text = CODE.replace("\n", ending)
    # From `if` on line 2 to the end of line 3: two lines become one.
    fix = Fix(2, 5, 3, 17, "return 1 if a < b else 2")
    assert region(text, fix) == f"if a < b:{ending}        return 1"
    fixed, _ = apply_fixes(text, [fix])
    assert fixed == ending.join(["def f(a, b):", "    return 1 if a < b else 2", "    return 2", ""])
    # A whole line, its line ending included: from its column 1 to column 1 of the next line.
    fixed, _ = apply_fixes(text, [Fix(3, 1, 4, 1, "")])
    assert fixed == ending.join(["def f(a, b):", "    if a < b:", "    return 2", ""])


def test_the_end_of_the_text_is_a_position():
    assert region(CODE, Fix(5, 1, 5, 1, "")) == ""
    assert apply_fixes(CODE, [Fix(5, 1, 5, 1, "print(f(1, 2))\n")])[0] == CODE + "print(f(1, 2))\n"
    assert apply_fixes("x = 1", [Fix(1, 6, 1, 6, "\n")])[0] == "x = 1\n"  # no final line ending


@pytest.mark.parametrize(
    "fix",
    [
        Fix(6, 1, 6, 1, ""),  # past the last line
        Fix(0, 1, 1, 1, ""),
        Fix(1, 0, 1, 2, ""),
        Fix(2, 5, 2, 1, ""),  # ends before it starts
        Fix(3, 2, 2, 1, ""),
        Fix(1, 14, 1, 14, ""),  # past the end of line 1 ("def f(a, b):" has 12 characters)
        Fix(1, 1, 1, 20, ""),  # would run on into line 2
        Fix(5, 2, 5, 2, ""),  # the empty last line has only column 1
    ],
)
def test_a_region_outside_the_text_raises(fix):
    with pytest.raises(ValueError, match="not in the text"):
        offsets(CODE, fix)
    with pytest.raises(ValueError):
        region(CODE, fix)
    with pytest.raises(ValueError):
        apply_fixes(CODE, [Fix(2, 10, 2, 11, "<="), fix])


def test_a_column_inside_a_crlf_is_not_a_position():
    text = "a = 1\r\nb = 2\r\n"
    assert region(text, Fix(1, 6, 1, 6, "")) == ""  # just after "a = 1": fine
    with pytest.raises(ValueError):
        offsets(text, Fix(1, 7, 1, 7, "x"))  # between CR and LF


def test_overlapping_fixes_are_skipped_the_later_one_wins():
    first = Fix(2, 8, 2, 13, "b > a")  # `a < b`
    overlapping = Fix(2, 10, 2, 11, "<=")  # `<`, inside it
    fixed, applied = apply_each(CODE, [overlapping, first])
    # From the end of the text back: `<` starts later than `a < b`, so it applies and `a < b` is skipped.
    assert applied == [True, False] and "if a <= b:" in fixed
    fixed, count = apply_fixes(CODE, [first, Fix(2, 5, 2, 9, "while a")])
    assert count == 1 and "if b > a:" in fixed


def test_adjacent_fixes_and_insertions_all_apply():
    fixes = [
        Fix(2, 8, 2, 9, "x"),  # a
        Fix(2, 9, 2, 12, " <= "),  # " < ", right after it
        Fix(2, 12, 2, 13, "y"),  # b
        Fix(1, 1, 1, 1, "# note\n"),  # an insertion at the very start
        Fix(4, 13, 4, 13, " + 0"),  # at the end of line 4
    ]
    fixed, applied = apply_each(CODE, fixes)
    assert all(applied)
    assert fixed == "# note\ndef f(a, b):\n    if x <= y:\n        return 1\n    return 2 + 0\n"


def test_the_same_fix_twice_is_applied_once_and_counts_for_both():
    fix = Fix(2, 10, 2, 11, "<=")
    fixed, applied = apply_each(CODE, [fix, Fix(2, 10, 2, 11, "<=")])
    assert applied == [True, True] and fixed.count("<=") == 1
    assert apply_fixes(CODE, [])[0] == CODE


def test_fix_at_maps_a_chunk_to_file_coordinates():
    # Lines 2-3 of CODE as a chunk: dedented by 4, starting at file line 2.
    chunk = "if a < b:\n    return 1"
    start = chunk.index("<")
    fix = fix_at(chunk, start, start + 1, "<=", first_line=2, indent=4)
    assert fix == Fix(2, 10, 2, 11, "<=")
    assert region(CODE, fix) == "<"
    # A region spanning the chunk's lines, ending at the chunk's end.
    fix = fix_at(chunk, 0, len(chunk), "return 1", first_line=2, indent=4)
    assert (fix.line, fix.column, fix.end_line, fix.end_column) == (2, 5, 3, 17)
    assert apply_fixes(CODE, [fix])[0] == "def f(a, b):\n    return 1\n    return 2\n"
    # Chunk and file agree whatever the line endings: columns count characters of a line.
    assert fix_at("x\r\ny", 3, 4, "z") == Fix(2, 1, 2, 2, "z")
    assert fix_at(chunk, 0, 0, "") == Fix(1, 1, 1, 1, "")  # defaults: the chunk is the file
    with pytest.raises(ValueError):
        fix_at(chunk, 3, 2, "")
    with pytest.raises(ValueError):
        fix_at(chunk, 0, len(chunk) + 1, "")


def test_fix_text_takes_the_files_line_endings():
    assert newline("a\r\nb\n") == "\r\n" and newline("a\rb") == "\r" and newline("one line") == "\n"
    fix = Fix(1, 1, 1, 1, "x = 1\ny = 2\r\n")
    assert with_newline(fix, "\r\n").text == "x = 1\r\ny = 2\r\n"
    assert with_newline(fix, "\n").text == "x = 1\ny = 2\n"


def test_rebase_follows_positions_to_the_fixed_text():
    applied = [Fix(1, 1, 1, 1, "import os\n"), Fix(2, 10, 2, 11, "<="), Fix(3, 1, 4, 1, "")]
    fixed, _ = apply_fixes(CODE, applied)
    assert fixed == "import os\ndef f(a, b):\n    if a <= b:\n    return 2\n"
    moved = rebase(CODE, applied)
    assert moved(1, 1) == (2, 1)  # where text was inserted: after the insertion
    assert moved(2, 12) == (3, 13)  # `b`, after `<` became `<=`
    assert moved(4, 5) == (4, 5)  # `return 2` on line 4 again (an added line, a removed one)
    assert moved(3, 9) == (4, 1)  # inside the removed line: where its replacement starts
    assert moved(4, 99) == (4, 13)  # past the end of its line: the line's end
    assert rebase(CODE, [])(2, 5) == (2, 5)
