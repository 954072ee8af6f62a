"""Reviewer prose for tampered code: every phrase and template a bug description is made of, and
the rendering that fills them in against the tampered code.

All the wording lives here, apart from the code analysis, so that adding a bug kind touches one finder
(critic.datagen.finders) and one table here, and rewording a description touches no finder.
"""

from __future__ import annotations

import ast
import random
import re
import string

from critic.datagen.analysis import strip_comment

# --- quoting code in a description ---


def squash(code: str, limit: int = 90) -> str:
    """Code as a one-line quote for a description: comments dropped, whitespace runs collapsed."""
    if "\n" in code:
        code = " ".join(" ".join(strip_comment(line) for line in code.split("\n")).split())
        code = code.replace("( ", "(").replace("[ ", "[").replace(" )", ")").replace(" ]", "]")
    code = code.strip()
    return code if len(code) <= limit else code[: limit - 4].rstrip() + " ..."


def one_line(code: str, limit: int = 60) -> str | None:
    """`code` as a value to show as inline code in a description: one line of at most `limit`
    characters, or None. Inline code must be verbatim, so nothing is squashed or cut."""
    code = code.strip()
    return code if code and "\n" not in code and len(code) <= limit else None


def _word(c: str) -> bool:
    return c.isalnum() or c == "_"


def clip(line: str, limit: int = 70, at: int = 0) -> str:
    """A verbatim piece of the one-line `line` of at most `limit` characters, near character `at`,
    cut between tokens (never inside a name) and without an ellipsis, so it is still found in the
    code as it is."""
    line = line.strip()
    if len(line) <= limit:
        return line
    n = len(line)
    cuts = [i for i in range(n + 1) if i in (0, n) or not (_word(line[i - 1]) and _word(line[i]))]
    spaces = [i for i in cuts if i in (0, n) or " " in line[i - 1 : i + 1]]  # nicer: between words
    lo = max(0, min(at - limit // 3, n - limit))
    start = next((i for i in spaces if lo <= i <= lo + limit // 4), None)
    start = next(i for i in cuts if i >= lo) if start is None else start
    end = max((i for i in spaces if start + limit // 2 <= i <= start + limit), default=None)
    end = max((i for i in cuts if start < i <= start + limit), default=start + limit) if end is None else end
    return line[start:end].strip() or line[:limit]


# --- effect phrases the finders pick; values in braces are filled like the templates ---

# flip_comparison, negation: what an inverted truth value does, by what consumes it
INVERTED = {
    "if": "the branch is taken in cases it should skip and skipped in cases it should take",
    "while": "the loop runs when it should stop and stops when it should keep going",
    "ifexp": "the conditional expression picks the wrong alternative",
    "assert": "the assertion fails on valid states and passes on invalid ones",
    "filter": "the comprehension keeps elements it should drop and drops the ones it should keep",
    "return": "the function returns the wrong truth value",
    "other": "the computed truth value is the opposite of the intended one",
}

# loosen_comparison
_BOUNDARY_OUTCOME = {
    ("if", True): "the branch now runs for that case too",
    ("if", False): "the branch no longer runs for that case",
    ("while", True): "the loop runs one iteration too many",
    ("while", False): "the loop stops one iteration early",
    ("return", True): "the function returns the wrong answer for that case",
    ("return", False): "the function returns the wrong answer for that case",
    ("filter", True): "elements on the boundary are kept",
    ("filter", False): "elements on the boundary are dropped",
}


def boundary_info(role: str, inclusive: bool, lhs: str | None, rhs: str | None) -> dict[str, str | None]:
    """What a loosened or tightened comparison between `lhs` and `rhs` (one-line operands, or None)
    now does at the boundary, for a condition consumed by `role`."""
    short = lhs and rhs and len(lhs) + len(rhs) < 60
    equal = "{lhs:code} equals {rhs:code}" if short else "the two sides are equal"
    return {
        "boundary": f"also holds when {equal}" if inclusive else f"no longer holds when {equal}",
        "outcome": _BOUNDARY_OUTCOME.get((role, inclusive), "the result is wrong for that case"),
        "lhs": lhs,
        "rhs": rhs,
    }


# off_by_one_range
def range_info(bound: str, delta: int, old: str, new: str, backwards: bool) -> dict[str, str | None]:
    """The effect of moving one bound of a range, as a phrase: the new bound is in the code (inline
    code), the old one is not (plain words)."""
    at = "{arg_new:code}" if one_line(new, 40) else "the wrong value"
    if backwards:
        effect = f"{'begins' if bound == 'start' else 'ends'} at {at} instead of {{arg_old}}"
    elif bound == "stop":
        effect = (
            "runs one step too far and also visits {arg_old}"
            if delta > 0
            else "stops one step early and never visits the last value"
        )
    else:
        late = f"starts at {at} and skips the first value, {{arg_old}}"
        effect = late if delta > 0 else f"starts one step early, at {at}"
    return {"effect": effect, "arg_new": one_line(new, 40), "arg_old": squash(old, 40)}


FROM_ONE_EFFECT = "starts at 1 and never visits 0"  # range(n) became range(1, n)

# off_by_one_index_or_slice: a slice bound moved by one
SLICE_EFFECT = {
    ("upper", 1): "takes one element too many at the end",
    ("upper", -1): "drops the last element the slice should include",
    ("lower", 1): "drops the first element the slice should include",
    ("lower", -1): "takes one element too many at the front",
}

# swap_arithmetic_operator: (intended operator, written operator)
ARITH_NOTE = {
    (ast.Add, ast.Sub): "subtracts where it should add",
    (ast.Sub, ast.Add): "adds where it should subtract",
    (ast.Mult, ast.Div): "divides where it should multiply",
    (ast.Mult, ast.Add): "adds where it should multiply",
    (ast.Div, ast.Mult): "multiplies where it should divide",
    (ast.Div, ast.FloorDiv): "floors the quotient and loses the fractional part",
    (ast.FloorDiv, ast.Div): "does true division and yields a float where an integer quotient is needed",
    (ast.FloorDiv, ast.Mod): "takes the remainder where the quotient is needed",
    (ast.Mod, ast.FloorDiv): "takes the quotient where the remainder is needed",
    (ast.Pow, ast.Mult): "multiplies where it should raise to a power",
    (ast.LShift, ast.RShift): "shifts right where it should shift left",
    (ast.RShift, ast.LShift): "shifts left where it should shift right",
}

# swap_boolean_operator: by the intended operator, then by what consumes the condition
AND_OR_EFFECT = {
    "and": {  # `and` became `or`: too permissive
        "if": "the branch also runs when only some of the conditions hold",
        "while": "the loop keeps running while any single condition holds",
        "return": "the function reports success when only part of the condition is met",
        "filter": "the comprehension keeps elements that satisfy only one of the conditions",
        "other": "the combined expression is truthy far more often than intended",
    },
    "or": {  # `or` became `and`: too strict
        "if": "the branch is skipped unless every condition holds",
        "while": "the loop stops as soon as one of the conditions fails",
        "return": "the function only reports success when every part holds at once",
        "filter": "the comprehension drops elements that satisfy only one of the conditions",
        "other": "the combined expression is truthy far less often than intended",
    },
}

# wrong_builtin
FUNCTION_MEANING = {
    "min": "the smallest value",
    "max": "the largest value",
    "any": "True as soon as one element is truthy",
    "all": "True only when every element is truthy",
    "floor": "the value rounded down",
    "ceil": "the value rounded up",
}

# wrong_method
METHOD_MEANING = {
    "lower": "lowercases the string",
    "upper": "uppercases the string",
    "startswith": "checks the beginning of the string",
    "endswith": "checks the end of the string",
    "find": "finds the first occurrence",
    "rfind": "finds the last occurrence",
    "lstrip": "strips only the left end",
    "rstrip": "strips only the right end",
    "strip": "strips both ends",
    "isupper": "tests for upper case",
    "islower": "tests for lower case",
    "isdigit": "tests for digits",
    "isalpha": "tests for letters",
    "keys": "iterates over the keys",
    "values": "iterates over the values",
    "pop": "takes from the right end",
    "popleft": "takes from the left end",
    "append": "adds at the right end",
    "appendleft": "adds at the left end",
}

# remove_statement: a removed call, a removed guard, and where the statement was
_CALL_EFFECT = {
    "append": "nothing is added to {obj:code}",
    "extend": "nothing is added to {obj:code}",
    "add": "nothing is added to {obj:code}",
    "insert": "nothing is inserted into {obj:code}",
    "update": "{obj:code} is never updated",
    "sort": "{obj:code} is never sorted",
    "reverse": "{obj:code} is never reversed",
    "pop": "nothing is removed from {obj:code}",
    "remove": "nothing is removed from {obj:code}",
    "discard": "nothing is removed from {obj:code}",
    "clear": "{obj:code} is never cleared",
}


def call_effect(method: str | None, obj: str | None) -> str:
    """What goes missing when the call `obj.method(...)` is removed (`obj`: None when it is no short
    quote)."""
    return _CALL_EFFECT[method] if obj and method in _CALL_EFFECT else "the work it does never happens"


GUARD_EFFECT = {
    ast.Return: "no longer return early and fall through to the general code",
    ast.Continue: "are no longer skipped",
    ast.Break: "no longer end the loop",
    ast.Raise: "are no longer rejected",
}

_BLOCK_PART = {"orelse": "the else branch of ", "finalbody": "the finally block of "}


def where(line: str | None, *, after: str = "", field: str = "", emptied: bool = False) -> str:
    """Where a removed statement was, as a phrase on `{line}`, a line the tampered code still has:
    `after` the statement before it ('statement', or 'block' for a compound one), else at the start of
    the block whose header is `line` (None: a block with no header line, a match case) and whose part
    is `field`; `emptied`, the whole block, which now holds only `pass`."""
    if after:
        return "after the {line:code} block" if after == "block" else "after {line:code}"
    place = "in" if emptied else "at the start of"
    text = f"{place} {_BLOCK_PART.get(field, '')}{{line:code}}" if line is not None else "in its block"
    return text + ", which now holds only `pass`" if emptied else text


# --- templates: how a reviewer would report each bug ---

# Templates are filled by _Prose. Inline code, `{field:code}`, only ever shows text of the tampered
# code, the code the reviewer is looking at: the quote `q` and whatever the bug put there (the new
# operator, name, value). The intended fix and anything the bug removed are not in that code, so
# they are named in plain words (`{field}`; `{field:say}` puts a word operator in quotes). The first
# sentence is what `critic review` prints: it names the code and the problem on its own.
TEMPLATES: dict[str, list[str]] = {
    "flip_comparison": [
        "{q:code} has its comparison inverted: it should use {old_op:say} instead of {new_op:say}. "
        "As written, {effect}.",
        "The condition in {q:code} is the opposite of the intended one. It uses {new_op:code} where "
        "{old_op:say} is needed, so {effect}.",
        "Inverted test in {q:code}: {new_op:code} holds exactly when {old_op:say} does not. "
        "As a result, {effect}.",
    ],
    "loosen_comparison": [
        "{q:code} uses {new_op:say} where {old_op:say} is needed. The condition {boundary}, so {outcome}.",
        "Off-by-one boundary in {q:code}: it should use {old_op:say}, not {new_op:say}. With "
        "{new_op:code} the condition {boundary}, so {outcome}.",
        "The comparison in {q:code} should be {old_op:say} instead of {new_op:say}. As written it "
        "{boundary}; {outcome}.",
    ],
    "off_by_one_range": [
        "Off-by-one range in {q:code}: it {effect}.",
        "{new:code} is off by one: it {effect}. Any result that depends on that iteration comes out wrong.",
        "The bounds in {q:code} are off by one. As written the range {effect}.",
    ],
    "off_by_one_index_or_slice/index": [
        "Off-by-one index in {q:code}: {new_sub:code} reads the element just {direction} the intended "
        "one. It also raises IndexError when that neighbour does not exist.",
        "{q:code} reads the wrong element of {container:code}, the one just {direction} the intended "
        "one. It should be {old_sub}.",
        "The index in {q:code} is shifted by one, so it picks the element {direction} the one it needs.",
    ],
    "off_by_one_index_or_slice/slice": [
        "The slice {new_sub:code} {effect}. It should be {old_sub}.",
        "{q:code} slices one position off: the slice {effect}, so the result holds the wrong elements.",
        "Off-by-one slice bound in {q:code}: it {effect}.",
    ],
    "swap_arithmetic_operator": [
        "{q:code} {note}: it should use {old_op} instead of {new_op}. The computed value is wrong.",
        "Wrong operator in {q:code}: {new_op:code} should be {old_op}, so the code {note}.",
        "{q:code} {note}. The {new_op:code} there should be {old_op}.",
    ],
    "swap_boolean_operator": [
        "{q:code} combines the conditions with {new_op:code} instead of {old_op:say}. As a result, {effect}.",
        "Wrong boolean operator in {q:code}: it should be {old_op:say}, not {new_op:say}. As written, "
        "{effect}.",
        "The condition {q:code} should use {old_op:say} where it uses {new_op:say}. Because of this, "
        "{effect}.",
    ],
    "negation/dropped": [
        "{q:code} is missing a 'not': it tests {operand:code} directly. As a result, {effect}.",
        "The condition in {q:code} should be negated. As written, {effect}.",
        "Inverted condition in {q:code}: {operand:code} needs a 'not' here. As it stands, {effect}.",
    ],
    "negation/added": [
        "{q:code} negates {operand:code} by mistake. As a result, {effect}.",
        "The `not` in {q:code} should not be there. As written, {effect}.",
        "Spurious negation in {q:code}: the test should be on {operand:code} itself. Because of the "
        "`not`, {effect}.",
    ],
    "wrong_variable": [
        "{q:code} uses {new_name:code} where {old_name} is meant. It computes with the wrong value "
        "whenever the two differ.",
        "Wrong variable in {q:code}: {new_name:code} should be {old_name}. The result is wrong whenever "
        "the two hold different values.",
        "{new_name:code} in {q:code} should be {old_name}. As written the expression never looks at "
        "{old_name} here.",
    ],
    "swap_call_arguments": [
        "{q:code} passes {first:code} and {second:code} in the wrong order. {func:code} should get "
        "{second:code} first.",
        "Argument order bug in {q:code}: {first:code} and {second:code} are swapped. The call gives a "
        "different result whenever they differ.",
        "The arguments of {new:code} are swapped; it should be {old}. Swapping them changes what the "
        "call computes.",
        "The call in {q:code} gets its arguments in the wrong order. It should be {old}.",
    ],
    "wrong_constant/init": [
        "{q:code} initialises {name:code} to {new_val:code} instead of {old_val}. Everything computed "
        "from it starts off wrong.",
        "Wrong initial value in {q:code}: {name:code} should start at {old_val}, not {new_val}. The "
        "value built from it is off.",
    ],
    "wrong_constant/compare": [
        "{q:code} compares against {new_val:code}, but the threshold should be {old_val}. Inputs "
        "between the two are classified wrongly.",
        "Wrong constant in the comparison {q:code}: {new_val:code} should be {old_val}.",
    ],
    "wrong_constant/bool": [
        "{q:code} uses {new_val:code} where {old_val} is needed. The flag has the opposite value, so "
        "the logic that depends on it is inverted.",
        "{new_val:code} in {q:code} should be {old_val}. Everything that tests this value takes the "
        "other path.",
    ],
    "wrong_constant": [
        "The constant {new_val:code} in {q:code} should be {old_val}. With the wrong literal the "
        "expression computes a different value.",
        "{q:code} uses the literal {new_val:code} where {old_val} is needed, so the result is off.",
        "Wrong literal in {q:code}: {new_val:code} instead of {old_val}.",
    ],
    "wrong_builtin": [
        "{q:code} calls {new_fn:code} where {old_fn} is needed. It gets {new_meaning} instead of "
        "{old_meaning}.",
        "Wrong builtin in {q:code}: {new_fn:code} should be {old_fn}. The code uses {new_meaning} "
        "rather than {old_meaning}.",
        "{new_fn:code} in {q:code} should be {old_fn}. The two only agree in degenerate cases, so the "
        "result is wrong in general.",
    ],
    "wrong_method": [
        "{q:code} calls {new_m:code}, which {new_meaning}. The code needs .{old_m}(), which {old_meaning}.",
        "Wrong method in {q:code}: {new_m:code} should be {old_m}. Inputs where the two differ get "
        "the wrong result.",
        "{new_m:code} in {q:code} should be {old_m}: as written it {new_meaning}.",
    ],
    "reverse_sort_order/descending": [
        "{q:code} sorts in descending order, but ascending order is needed. Everything that relies on "
        "the order sees the elements backwards.",
        "The sort in {q:code} is reversed: {reverse:code} puts the largest element first where the "
        "code expects the smallest.",
    ],
    "reverse_sort_order/ascending": [
        "{q:code} sorts in ascending order, but descending order is needed (reverse=True). The "
        "elements come out backwards.",
        "The sort in {q:code} should be descending. As written the smallest element comes first.",
    ],
    "wrong_return_value/other": [
        "{q:code} returns {value:code}, which belongs to another branch. This path should return {old}.",
        "{q:code} returns another branch's value. This path should return {old}.",
        "Wrong return value in {q:code}: it should return {old} here. Callers get the wrong result "
        "whenever this return is reached.",
    ],
    "wrong_return_value/negate": [
        "{q:code} returns the negation of the intended result. Callers get the opposite answer.",
        "The return value in {q:code} is inverted: it should be {old}.",
    ],
    "wrong_return_value/swap_sub": [
        "{q:code} subtracts in the wrong order. It should be {old}; as written the result has the "
        "opposite sign.",
        "Operands swapped in {q:code}: the function returns the negative of the intended difference, {old}.",
    ],
    "wrong_return_value/swap_tuple": [
        "{q:code} returns the values in the wrong order. Callers unpacking the result get "
        "{first:code} and {second:code} swapped.",
        "The returned tuple in {q:code} has {first:code} and {second:code} swapped. It should be {old}.",
        "{q:code} returns the values in the wrong order: it should be {old}.",
    ],
    "wrong_return_value/none": [
        "{q:code} throws the computed result away: it should return {old}. Callers always get None.",
        "The function computes {old} but never returns it: {q:code} hands back None instead.",
    ],
    "remove_statement/update": [
        "The update {removed} is missing {where}. {target:code} is never updated there and keeps its "
        "old value.",
        "The update {removed} was dropped {where}. Without it {target:code} stays stale and the code "
        "below works with the wrong value.",
        "Missing statement {where}: {removed}. {target:code} never changes there, so every later use "
        "of it is wrong.",
        "The update {removed} is missing {where}. The value it sets keeps its old value there.",
    ],
    "remove_statement/store": [
        "The assignment {removed} is missing {where}. {target:code} is never written and keeps stale "
        "contents.",
        "The assignment {removed} was dropped {where}. Later reads of {target:code} see an outdated value.",
        "The assignment {removed} is missing {where}. Later reads see stale contents.",
    ],
    "remove_statement/call": [
        "The call {removed} is missing {where}. As a result, {call_effect}.",
        "Missing call {where}: {removed}. Without it, {call_effect}.",
    ],
    "remove_statement/guard": [
        "The guard {removed} is missing {where}. Inputs where {test} holds {guard_effect}.",
        "Missing early exit {where}: {removed}. Without it, inputs where {test} holds {guard_effect}.",
    ],
}
# Info values that are themselves templates (phrases a finder put together); filled first.
_PHRASES = ("boundary", "effect", "call_effect", "where")
# `critic review` prints a comment's first sentence as the finding's message: phrasings whose first
# sentence fits in this many characters are preferred.
FIRST_SENTENCE = 120
_SENTENCE_END = re.compile(r"(?<=[.!?])\s")


class _Markdown(str):
    """Text already rendered as markdown: inserted as it is."""


def inline_code(code: str) -> str:
    """`code` as markdown inline code that critic.core.critique.code_spans reads back as `code`: the
    fence is a backtick run that does not occur in it, padded with spaces where needed."""
    runs = {len(r) for r in re.findall(r"`+", code)}
    fence = "`" * next(n for n in range(1, len(runs) + 2) if n not in runs)
    pad = " " if code.startswith("`") or code.endswith("`") or (code[0] == code[-1] == " ") else ""
    return f"{fence}{pad}{code}{pad}{fence}"


class _Prose(string.Formatter):
    """Fills description templates against the tampered code: `{x:code}` is inline code when x is
    one line of text the code has verbatim, and plain text otherwise; `{x:say}` names an operator in
    a sentence ('and', 'not in', <=); plain values lose their backticks, which would open spans."""

    def __init__(self, code: str) -> None:
        super().__init__()
        self.code = code

    def format_field(self, value: object, format_spec: str) -> str:
        if isinstance(value, _Markdown):
            return value
        text = str(value)
        if format_spec == "code" and text.strip() and "\n" not in text and text in self.code:
            return inline_code(text)
        if format_spec == "say" and text.replace(" ", "").isalpha():
            return f"'{text}'"
        return text.replace("`", "'")


def fields(template: str) -> set[str]:
    return {name for _, name, _, _ in string.Formatter().parse(template) if name}


def describe(kind: str, info: dict[str, str | None], rng: random.Random, code: str) -> str:
    """A reviewer's description of the bug, one of a few phrasings (one the info can fill)."""
    templates = TEMPLATES.get(f"{kind}/{info.get('case')}") or TEMPLATES[kind]
    prose = _Prose(code)
    values = dict(info)
    values["reverse"] = "reverse=True"
    for key in _PHRASES:
        if isinstance(values.get(key), str):
            values[key] = _Markdown(prose.format(values[key], **values))
    usable = [t for t in templates if all(values.get(f) is not None for f in fields(t))]
    texts = [prose.format(t, **values) for t in usable or templates]
    short = [t for t in texts if len(_SENTENCE_END.split(t, maxsplit=1)[0]) <= FIRST_SENTENCE]
    return rng.choice(short or texts)
