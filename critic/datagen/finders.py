"""Bug finders: one per bug kind. Each walks the analysed code and yields the sites where its bug can
go, each with the edits that would plant it there and the facts its description needs.

The keys of FINDERS are the bug kinds, the names a dataset's `bug_kind` column holds; nothing else
lists them. What a finder's bug is called in prose is in critic.datagen.descriptions.
"""

from __future__ import annotations

import ast
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from critic.datagen.analysis import (
    BIN_RE,
    BOOL_RE,
    CMP_RE,
    DOC_OWNERS,
    Ctx,
    find_op,
    first_line,
    int_value,
    is_docstring,
    strip_comment,
    truth_role,
)
from critic.datagen.descriptions import (
    AND_OR_EFFECT,
    ARITH_NOTE,
    FROM_ONE_EFFECT,
    FUNCTION_MEANING,
    GUARD_EFFECT,
    INVERTED,
    METHOD_MEANING,
    SLICE_EFFECT,
    boundary_info,
    call_effect,
    clip,
    one_line,
    range_info,
    squash,
    where,
)

# --- edits and the helpers that write them ---


@dataclass
class Edit:
    """Replace src[start:end] by `text`; in the AST `target` becomes `new_node` (None deletes a
    statement). `info` fills the description templates."""

    target: ast.AST
    new_node: ast.AST | None
    start: int
    end: int
    text: str
    info: dict[str, str]


@dataclass
class Site:
    """One place a bug of some kind can go, with the alternative edits that would put it there."""

    target: ast.AST
    edits: list[Edit]


_CMP_SYMBOL = {
    ast.Eq: "==", ast.NotEq: "!=", ast.Lt: "<", ast.LtE: "<=", ast.Gt: ">", ast.GtE: ">=",
    ast.Is: "is", ast.IsNot: "is not", ast.In: "in", ast.NotIn: "not in",
}  # fmt: skip
_BIN_SYMBOL = {
    ast.Add: "+", ast.Sub: "-", ast.Mult: "*", ast.Div: "/", ast.FloorDiv: "//", ast.Mod: "%",
    ast.Pow: "**", ast.LShift: "<<", ast.RShift: ">>", ast.BitOr: "|", ast.BitAnd: "&",
    ast.BitXor: "^", ast.MatMult: "@",
}  # fmt: skip


def _int_node(value: int) -> ast.expr:
    return ast.Constant(value) if value >= 0 else ast.UnaryOp(ast.USub(), ast.Constant(-value))


_ADDITIVE_SAFE = (
    ast.Name, ast.Attribute, ast.Subscript, ast.Call, ast.Constant, ast.List, ast.ListComp, ast.Dict,
    ast.Set, ast.GeneratorExp,
)  # fmt: skip
_TIGHT_OPS = (ast.Add, ast.Sub, ast.Mult, ast.Div, ast.FloorDiv, ast.Mod, ast.Pow, ast.MatMult)


def _shift(ctx: Ctx, node: ast.AST, delta: int, keep_sign: bool) -> tuple[str, ast.expr] | None:
    """`node` moved by `delta` the way a programmer would write it: `n` -> `n - 1`, `n - 1` -> `n`,
    `3` -> `4`. With keep_sign, literals may not cross zero (an index -1 -> 0 changes its meaning)."""
    value = int_value(node)
    if value is not None:
        new = value + delta
        if keep_sign and (new < 0) != (value < 0):
            return None
        return str(new), _int_node(new)
    if isinstance(node, ast.BinOp) and isinstance(node.op, (ast.Add, ast.Sub)):
        const = node.right.value if isinstance(node.right, ast.Constant) else None
        op_span = find_op(ctx, node.left, node.right, BIN_RE)
        if type(const) is int and op_span:
            new = (const if isinstance(node.op, ast.Add) else -const) + delta
            left = ctx.src.text[ctx.span(node)[0] : op_span[0]].rstrip()
            if new == 0:
                return left, node.left
            op = ast.Add() if new > 0 else ast.Sub()
            new_node = ast.BinOp(node.left, op, ast.Constant(abs(new)))
            return f"{left} {_BIN_SYMBOL[type(op)]} {abs(new)}", new_node
    text = ctx.get(node)
    safe = isinstance(node, _ADDITIVE_SAFE) or (
        (isinstance(node, ast.BinOp) and isinstance(node.op, _TIGHT_OPS))
        or (isinstance(node, ast.UnaryOp) and not isinstance(node.op, ast.Not))
    )
    if not safe:
        text = f"({text})"
    op = ast.Add() if delta > 0 else ast.Sub()
    return f"{text} {_BIN_SYMBOL[type(op)]} {abs(delta)}", ast.BinOp(node, op, ast.Constant(abs(delta)))


def _replace(ctx: Ctx, target: ast.AST, new_node: ast.AST, text: str, **info: str) -> Edit:
    start, end = ctx.span(target)
    return Edit(target, new_node, start, end, text, info)


# --- the bug kinds: one finder each ---

_FLIP = {
    ast.Eq: ast.NotEq, ast.NotEq: ast.Eq, ast.Lt: ast.GtE, ast.GtE: ast.Lt, ast.Gt: ast.LtE,
    ast.LtE: ast.Gt, ast.Is: ast.IsNot, ast.IsNot: ast.Is, ast.In: ast.NotIn, ast.NotIn: ast.In,
}  # fmt: skip
_LOOSEN = {ast.Lt: ast.LtE, ast.LtE: ast.Lt, ast.Gt: ast.GtE, ast.GtE: ast.Gt}


def _comparison_sites(ctx: Ctx, table: dict, loosen: bool) -> Iterator[Site]:
    for node in ctx.nodes:
        if not isinstance(node, ast.Compare):
            continue
        operands = [node.left, *node.comparators]
        edits = []
        for i, op in enumerate(node.ops):
            op_span = find_op(ctx, operands[i], operands[i + 1], CMP_RE)
            if type(op) not in table or op_span is None:
                continue
            new_op = table[type(op)]()
            new_node = ast.Compare(node.left, [*node.ops[:i], new_op, *node.ops[i + 1 :]], node.comparators)
            old_sym, new_sym = _CMP_SYMBOL[type(op)], _CMP_SYMBOL[type(new_op)]
            role = truth_role(ctx, node)
            info = {"old_op": old_sym, "new_op": new_sym, "effect": INVERTED[role]}
            if loosen:  # the operands are untouched, so one-line operands are verbatim in the tampered code
                lhs, rhs = one_line(ctx.get(operands[i]), 40), one_line(ctx.get(operands[i + 1]), 40)
                info.update(boundary_info(role, new_sym in ("<=", ">="), lhs, rhs))
            text = ctx.splice(node, *op_span, new_sym)
            edits.append(_replace(ctx, node, new_node, text, **info))
        if edits:
            yield Site(node, edits)


def _flip_comparison(ctx: Ctx) -> Iterator[Site]:
    """`<` <-> `>=`, `==` <-> `!=`, `in` <-> `not in`: the condition means its opposite."""
    return _comparison_sites(ctx, _FLIP, loosen=False)


def _loosen_comparison(ctx: Ctx) -> Iterator[Site]:
    """`<` <-> `<=`, `>` <-> `>=`: the classic boundary (fencepost) bug."""
    return _comparison_sites(ctx, _LOOSEN, loosen=True)


def _off_by_one_range(ctx: Ctx) -> Iterator[Site]:
    """range(n) -> range(n - 1) / range(n + 1) / range(1, n); range(a, b) with a or b moved by one."""
    for node in ctx.nodes:
        if not (isinstance(node, ast.Call) and ctx.is_builtin(node.func, ("range",))):
            continue
        args = node.args
        if not 1 <= len(args) <= 3 or node.keywords or any(isinstance(a, ast.Starred) for a in args):
            continue
        step = int_value(args[2]) if len(args) == 3 else 1
        backwards = step is None or step < 0
        old_call = ctx.get(node)
        moves = [(0, 1), (0, -1)] if len(args) == 1 else [(1, 1), (1, -1), (0, 1), (0, -1)]
        edits = []
        for index, delta in moves:
            arg = args[index]
            shifted = _shift(ctx, arg, delta, keep_sign=index == 0 and len(args) > 1)
            if shifted is None:
                continue
            text, new_arg = shifted
            bound = "stop" if index == 1 or len(args) == 1 else "start"
            info = range_info(bound, delta, ctx.get(arg), text, backwards)
            new_call = ctx.splice(node, *ctx.span(arg), text)
            info.update(old=squash(old_call), new=one_line(new_call, 90))
            edits.append(_replace(ctx, arg, new_arg, text, **info))
        if len(args) == 1:  # range(n) -> range(1, n)
            start, end = ctx.span(args[0])
            text = "1, " + ctx.get(args[0])
            new_node = ast.Call(node.func, [ast.Constant(1), args[0]], [])
            new_call = ctx.splice(node, start, end, text)
            info = {"effect": FROM_ONE_EFFECT, "old": squash(old_call)}
            info["new"] = one_line(new_call, 90)
            edits.append(Edit(node, new_node, start, end, text, info))
        if edits:
            yield Site(node, edits)


def _off_by_one_index_or_slice(ctx: Ctx) -> Iterator[Site]:
    """xs[i] -> xs[i + 1], xs[-1] -> xs[-2], xs[:k] -> xs[:k - 1]: reads the neighbour of the right
    element, or a slice one element too long or too short."""
    for node in ctx.nodes:
        if not isinstance(node, ast.Subscript) or not isinstance(node.ctx, ast.Load):
            continue
        if ctx.type_of(node.value) == "dict":
            continue
        index = node.slice
        if isinstance(index, ast.Slice):
            parts = [(p, role) for p, role in ((index.lower, "lower"), (index.upper, "upper")) if p]
        elif isinstance(index, ast.Tuple) or ctx.type_of(index) not in ("int", None):
            continue
        elif isinstance(index, ast.Constant) and type(index.value) is not int:
            continue
        else:
            parts = [(index, "index")]
        old_sub = ctx.get(node)
        edits = []
        for part, role in parts:
            for delta in (1, -1):
                shifted = _shift(ctx, part, delta, keep_sign=True)
                if shifted is None:
                    continue
                text, new_part = shifted
                new_sub = ctx.splice(node, *ctx.span(part), text)
                info = {
                    "case": "index" if role == "index" else "slice",
                    "old_sub": squash(old_sub, 60),
                    "new_sub": one_line(new_sub, 60),
                    "container": one_line(ctx.get(node.value), 40),
                    "direction": "after" if delta > 0 else "before",
                    "effect": SLICE_EFFECT.get((role, delta), ""),
                }
                edits.append(_replace(ctx, part, new_part, text, **info))
        if edits:
            yield Site(node, edits)


_ARITH_SWAP = {
    ast.Add: (ast.Sub,), ast.Sub: (ast.Add,), ast.Mult: (ast.Div, ast.Add), ast.Div: (ast.Mult, ast.FloorDiv),
    ast.FloorDiv: (ast.Div, ast.Mod), ast.Mod: (ast.FloorDiv,), ast.Pow: (ast.Mult,),
    ast.LShift: (ast.RShift,), ast.RShift: (ast.LShift,),
}  # fmt: skip
_SEQUENCE_TYPES = ("str", "list", "tuple")


def _swap_arithmetic_operator(ctx: Ctx) -> Iterator[Site]:
    """`+` <-> `-`, `*` -> `/`, `//` <-> `/`, `%` <-> `//` in expressions and augmented assignments.
    String and list concatenation / repetition is left alone: `-` on them only raises."""
    for node in ctx.nodes:
        if isinstance(node, ast.BinOp):
            left, right, op = node.left, node.right, node.op
        elif isinstance(node, ast.AugAssign):
            left, right, op = node.target, node.value, node.op
        else:
            continue
        if type(op) not in _ARITH_SWAP or (op_span := find_op(ctx, left, right, BIN_RE)) is None:
            continue
        if isinstance(op, (ast.Add, ast.Mult, ast.Mod)) and (
            ctx.type_of(left) in _SEQUENCE_TYPES or ctx.type_of(right) in _SEQUENCE_TYPES
        ):
            continue
        aug = "=" if isinstance(node, ast.AugAssign) else ""
        edits = []
        for new_type in _ARITH_SWAP[type(op)]:
            if isinstance(node, ast.AugAssign):
                new_node = ast.AugAssign(node.target, new_type(), node.value)
            else:
                new_node = ast.BinOp(left, new_type(), right)
            new_sym = _BIN_SYMBOL[new_type]
            info = {
                "old_op": _BIN_SYMBOL[type(op)] + aug,
                "new_op": new_sym + aug,
                "note": ARITH_NOTE[(type(op), new_type)],
            }
            edits.append(_replace(ctx, node, new_node, ctx.splice(node, *op_span, new_sym), **info))
        yield Site(node, edits)


def _bare_values(ctx: Ctx, node: ast.BoolOp) -> list[bool] | None:
    """For each operand of `node`, whether it is written without parentheses; None if an operator
    cannot be located."""
    spans = [find_op(ctx, a, b, BOOL_RE) for a, b in zip(node.values, node.values[1:], strict=False)]
    if None in spans:
        return None
    bounds = [ctx.span(node)[0]] + [hi for _, hi in spans]
    return [not ctx.src.text[lo : ctx.span(v)[0]].strip() for v, lo in zip(node.values, bounds, strict=True)]


def _flatten(op: ast.boolop, values: list[ast.expr], bare: list[bool]) -> ast.BoolOp:
    """BoolOp(op, values) as the parser builds it: bare operands with the same operator merge in
    (`a and b and c` is one BoolOp, not two)."""
    flat: list[ast.expr] = []
    for value, is_bare in zip(values, bare, strict=True):
        merge = is_bare and isinstance(value, ast.BoolOp) and type(value.op) is type(op)
        flat.extend(value.values if merge else [value])
    return ast.BoolOp(op, flat)


def _swap_boolean_operator(ctx: Ctx) -> Iterator[Site]:
    """`and` <-> `or`: a condition that should need all parts needs one, or vice versa."""
    for node in ctx.nodes:
        if not isinstance(node, ast.BoolOp) or (bare := _bare_values(ctx, node)) is None:
            continue
        old = "and" if isinstance(node.op, ast.And) else "or"
        new = "or" if old == "and" else "and"
        new_op = ast.Or() if old == "and" else ast.And()
        start, end = ctx.span(node)
        parts, pos = [], start
        for a, b in zip(node.values, node.values[1:], strict=False):
            lo, hi = find_op(ctx, a, b, BOOL_RE)
            parts += [ctx.src.text[pos:lo], new]
            pos = hi
        parts.append(ctx.src.text[pos:end])
        text = "".join(parts)
        target, new_node = node, _flatten(new_op, node.values, bare)
        parent, _, index = ctx.parent[id(node)]
        if isinstance(parent, ast.BoolOp) and type(parent.op) is type(new_op):
            parent_bare = _bare_values(ctx, parent)
            if parent_bare and parent_bare[index]:  # `a and b or c` -> `a or b or c`: one flat BoolOp
                values = [*parent.values[:index], new_node, *parent.values[index + 1 :]]
                target, new_node = parent, _flatten(new_op, values, parent_bare)
        role = truth_role(ctx, node)
        effects = AND_OR_EFFECT[old]
        info = {"old_op": old, "new_op": new, "effect": effects.get(role, effects["other"])}
        yield Site(node, [Edit(target, new_node, start, end, text, info)])


_NEGATABLE_PARENTS = (ast.If, ast.While, ast.IfExp, ast.Assert)
_LOOSE_BINDING = (ast.BoolOp, ast.IfExp, ast.Lambda, ast.NamedExpr)


def _in_test_position(ctx: Ctx, node: ast.AST) -> bool:
    parent, field, _ = ctx.parent[id(node)]
    return (
        (isinstance(parent, _NEGATABLE_PARENTS) and field == "test")
        or (isinstance(parent, ast.comprehension) and field == "ifs")
        or isinstance(parent, ast.BoolOp)
    )


def _negation(ctx: Ctx) -> Iterator[Site]:
    """Drop a `not`, or add one to a condition: `if not seen:` <-> `if seen:`. Comparisons are left
    to flip_comparison, which writes the inversion the way a person would (`not in`, `!=`)."""
    for node in ctx.nodes:
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.Not):
            operand = ctx.get(node)[3:].lstrip()  # keeps the operand's own parentheses
            info = {
                "case": "dropped",
                "operand": one_line(operand),
                "effect": INVERTED[truth_role(ctx, node)],
            }
            edits = [_replace(ctx, node, node.operand, operand, **info)]
            if operand.startswith("(") and operand.endswith(")"):
                # `not (a and b)` -> `a and b` where the parentheses are no longer needed (the edit
                # is kept only if it parses to the same tree): how the code read before a `not` went in.
                edits.append(_replace(ctx, node, node.operand, operand[1:-1].strip(), **info))
            yield Site(node, edits)
        elif (
            isinstance(node, ast.expr)
            and not isinstance(node, (ast.Compare, ast.Constant, ast.UnaryOp))
            and _in_test_position(ctx, node)
        ):
            text = ctx.get(node)
            new_text = f"not ({text})" if isinstance(node, _LOOSE_BINDING) else f"not {text}"
            info = {"case": "added", "operand": one_line(text), "effect": INVERTED[truth_role(ctx, node)]}
            yield Site(node, [_replace(ctx, node, ast.UnaryOp(ast.Not(), node), new_text, **info)])


def _wrong_variable(ctx: Ctx) -> Iterator[Site]:
    """A local variable read where another local of the same (guessed) type is meant: `xs[i]` ->
    `xs[j]`. Only names bound in an earlier statement of the same function are swapped in."""
    for node in ctx.nodes:
        if not isinstance(node, ast.Name) or not isinstance(node.ctx, ast.Load):
            continue
        scope = ctx.scope(node)
        if node.id not in scope or node.id in ("self", "cls"):
            continue
        parent, field, _ = ctx.parent[id(node)]
        if isinstance(parent, ast.Call) and field == "func":
            continue
        line = first_line(ctx.stmt_of(node))
        wanted = scope[node.id].type
        # `i == i` or `a - a` would be a tautology, not a plausible slip
        siblings = set()
        if isinstance(parent, (ast.Compare, ast.BoolOp)) or (
            isinstance(parent, ast.BinOp) and isinstance(parent.op, (ast.Sub, ast.Div, ast.FloorDiv, ast.Mod))
        ):
            siblings = {n.id for n in ast.iter_child_nodes(parent) if isinstance(n, ast.Name)}
        others = [
            name
            for name, var in scope.items()
            if name not in (node.id, "self", "cls") and var.line < line and name not in siblings
        ]
        same = [n for n in others if wanted and scope[n].type == wanted]
        pool = same or [n for n in others if wanted is None or scope[n].type is None]
        edits = [
            _replace(ctx, node, ast.Name(name, ast.Load()), name, old_name=node.id, new_name=name)
            for name in pool
        ]
        if edits:
            yield Site(node, edits)


# Calls whose argument order is fixed by type (swapping only raises) or irrelevant (max, min, print).
_NO_SWAP_CALLS = (
    "max", "min", "print", "isinstance", "issubclass", "hasattr", "getattr", "setattr", "delattr", "map",
    "filter", "enumerate", "round", "sum", "super", "open", "iter", "next",
)  # fmt: skip


def _swap_call_arguments(ctx: Ctx) -> Iterator[Site]:
    """f(a, b) -> f(b, a) for two different adjacent positional arguments."""
    for node in ctx.nodes:
        if not isinstance(node, ast.Call) or len(node.args) < 2 or ctx.is_builtin(node.func, _NO_SWAP_CALLS):
            continue
        args = node.args
        if any(isinstance(a, ast.Starred) for a in args):
            continue
        edits = []
        for i in range(len(args) - 1):
            a, b = args[i], args[i + 1]
            if ast.dump(a) == ast.dump(b):
                continue
            (a_lo, a_hi), (b_lo, b_hi) = ctx.span(a), ctx.span(b)
            text = ctx.get(b) + ctx.src.text[a_hi:b_lo] + ctx.get(a)
            swapped = [*args[:i], b, a, *args[i + 2 :]]
            new_node = ast.Call(node.func, swapped, node.keywords)
            info = {
                "func": one_line(ctx.get(node.func), 40),
                "first": one_line(ctx.get(b), 40),
                "second": one_line(ctx.get(a), 40),
                "old": squash(ctx.get(node), 60),
                "new": one_line(ctx.splice(node, a_lo, b_hi, text), 70),
            }
            edits.append(Edit(node, new_node, a_lo, b_hi, text, info))
        if edits:
            yield Site(node, edits)


def _constant_values(value: object) -> list[object]:
    if isinstance(value, bool):
        return [not value]
    if isinstance(value, int):
        return {0: [1], 1: [0, 2], -1: [0, -2]}.get(value, [value - 1, value + 1])
    if isinstance(value, float) and value.is_integer():
        return [1.0] if value == 0 else [value - 1, value + 1]
    return []


def _wrong_constant(ctx: Ctx) -> Iterator[Site]:
    """A numeric or boolean literal nudged: 0 <-> 1, n -> n +- 1, True <-> False. Strings never."""
    for node in ctx.nodes:
        parent, field, _ = ctx.parent[id(node)]
        if not isinstance(node, (ast.Constant, ast.UnaryOp)) or isinstance(parent, ast.UnaryOp):
            continue  # a negated literal is handled as a whole, at its UnaryOp
        value = int_value(node) if isinstance(node, ast.UnaryOp) else node.value
        if value is None or not isinstance(value, (bool, int, float)):
            continue
        if isinstance(parent, ast.While) and field == "test":  # `while True:` is a loop idiom
            continue
        new_values = _constant_values(value)
        if not new_values:
            continue
        case, name = "other", ""
        if isinstance(value, bool):
            case = "bool"
        elif (
            isinstance(parent, ast.Assign)
            and len(parent.targets) == 1
            and isinstance(parent.targets[0], ast.Name)
        ):
            case, name = "init", parent.targets[0].id
        elif isinstance(parent, ast.Compare):
            case = "compare"
        edits = []
        for new in new_values:
            new_node = _int_node(new) if type(new) is int else ast.Constant(new)
            text = repr(new)
            edits.append(
                _replace(ctx, node, new_node, text, case=case, name=name, old_val=ctx.get(node), new_val=text)
            )
        yield Site(node, edits)


_BUILTIN_SWAPS = {"min": "max", "max": "min", "any": "all", "all": "any"}
_MATH_SWAPS = {"floor": "ceil", "ceil": "floor"}


def _wrong_builtin(ctx: Ctx) -> Iterator[Site]:
    """min <-> max, any <-> all, math.floor <-> math.ceil: same types, different answers."""
    for node in ctx.nodes:
        if not isinstance(node, ast.Call):
            continue
        func = node.func
        if ctx.is_builtin(func, _BUILTIN_SWAPS):
            old, new = func.id, _BUILTIN_SWAPS[func.id]
            new_func: ast.expr = ast.Name(new, ast.Load())
            text = new
        elif (
            isinstance(func, ast.Attribute)
            and func.attr in _MATH_SWAPS
            and isinstance(func.value, ast.Name)
            and func.value.id == "math"
        ):
            old, new = func.attr, _MATH_SWAPS[func.attr]
            new_func = ast.Attribute(func.value, new, ast.Load())
            text = ctx.get(func)[: -len(old)] + new
        else:
            continue
        info = {
            "old_fn": old,
            "new_fn": new,
            "old_meaning": FUNCTION_MEANING[old],
            "new_meaning": FUNCTION_MEANING[new],
        }
        yield Site(node, [_replace(ctx, func, new_func, text, **info)])


_METHOD_SWAPS = {
    "lower": ("upper",), "upper": ("lower",), "startswith": ("endswith",), "endswith": ("startswith",),
    "find": ("rfind",), "rfind": ("find",), "lstrip": ("rstrip",), "rstrip": ("lstrip",),
    "strip": ("lstrip", "rstrip"), "isupper": ("islower",), "islower": ("isupper",),
    "isdigit": ("isalpha",), "isalpha": ("isdigit",), "keys": ("values",), "values": ("keys",),
    "popleft": ("pop",), "appendleft": ("append",),
}  # fmt: skip


def _wrong_method(ctx: Ctx) -> Iterator[Site]:
    """A sibling method of the same object: .lower() <-> .upper(), .startswith <-> .endswith, ..."""
    for node in ctx.nodes:
        if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)):
            continue
        func = node.func
        if func.attr not in _METHOD_SWAPS:
            continue
        edits = []
        for new in _METHOD_SWAPS[func.attr]:
            text = ctx.get(func)[: -len(func.attr)] + new
            info = {
                "old_m": func.attr,
                "new_m": new,
                "old_meaning": METHOD_MEANING[func.attr],
                "new_meaning": METHOD_MEANING[new],
                "new": one_line(ctx.splice(node, *ctx.span(func), text), 70),
            }
            edits.append(_replace(ctx, func, ast.Attribute(func.value, new, ast.Load()), text, **info))
        yield Site(node, edits)


def _reverse_sort_order(ctx: Ctx) -> Iterator[Site]:
    """sorted(xs) <-> sorted(xs, reverse=True), also for list.sort(): the order comes out backwards."""
    for node in ctx.nodes:
        if not isinstance(node, ast.Call):
            continue
        is_sort = isinstance(node.func, ast.Attribute) and node.func.attr == "sort"
        if not (is_sort or ctx.is_builtin(node.func, ("sorted",))):
            continue
        reverse = [k for k in node.keywords if k.arg == "reverse"]
        if not reverse:
            head = ctx.get(node)[:-1].rstrip()
            separator = "" if head.endswith("(") else " " if head.endswith(",") else ", "
            text = f"{head}{separator}reverse=True)"
            keyword = ast.keyword("reverse", ast.Constant(True))
            new_node = ast.Call(node.func, node.args, [*node.keywords, keyword])
            yield Site(node, [_replace(ctx, node, new_node, text, case="descending")])
        elif isinstance(reverse[0].value, ast.Constant) and isinstance(reverse[0].value.value, bool):
            value = reverse[0].value
            case = "ascending" if value.value else "descending"
            yield Site(
                node, [_replace(ctx, value, ast.Constant(not value.value), repr(not value.value), case=case)]
            )


_BOOL_CALLS = ("any", "all", "isinstance", "callable", "bool", "hasattr", "issubclass")


def _is_boolish(ctx: Ctx, node: ast.AST) -> bool:
    if isinstance(node, (ast.Compare, ast.BoolOp)) or (
        isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.Not)
    ):
        return True
    if isinstance(node, ast.Call):
        func = node.func
        return ctx.is_builtin(func, _BOOL_CALLS) or (
            isinstance(func, ast.Attribute) and func.attr.startswith(("is", "startswith", "endswith"))
        )
    return ctx.type_of(node) == "bool"


def _wrong_return_value(ctx: Ctx) -> Iterator[Site]:
    """The wrong value returned: another branch's return value, the negated truth value, `b - a`
    for `a - b`, a returned pair in the wrong order, another local of the same type, or (for a
    returned variable, as a last resort) None."""
    returns: dict[int, list[ast.Return]] = {}
    for node in ctx.nodes:
        if isinstance(node, ast.Return) and node.value is not None:
            returns.setdefault(id(ctx.func[id(node)]), []).append(node)
    for group in returns.values():
        for ret in group:
            value = ret.value
            if isinstance(value, ast.Constant) and value.value is None:
                continue
            edits = []
            seen = {ast.dump(value)}
            is_bool = isinstance(value, ast.Constant) and isinstance(value.value, bool)
            for other in group:  # another branch's value; True <-> False is left to the `negate` case
                dump = ast.dump(other.value)
                if is_bool and isinstance(other.value, ast.Constant):
                    continue
                if dump not in seen and len(edits) < 2:
                    seen.add(dump)
                    text = ctx.get(other.value)
                    edits.append(_replace(ctx, value, other.value, text, case="other", value=one_line(text)))
            if isinstance(value, ast.Constant) and isinstance(value.value, bool):
                text = repr(not value.value)
                edits.append(_replace(ctx, value, ast.Constant(not value.value), text, case="negate"))
            elif isinstance(value, ast.UnaryOp) and isinstance(value.op, ast.Not):
                edits.append(_replace(ctx, value, value.operand, ctx.get(value)[3:].lstrip(), case="negate"))
            elif _is_boolish(ctx, value):
                text = ctx.get(value)
                text = f"not ({text})" if isinstance(value, _LOOSE_BINDING) else f"not {text}"
                edits.append(_replace(ctx, value, ast.UnaryOp(ast.Not(), value), text, case="negate"))
            elif isinstance(value, ast.BinOp) and isinstance(value.op, ast.Sub):
                swapped = ast.BinOp(value.right, ast.Sub(), value.left)
                edits.append(_replace(ctx, value, swapped, ast.unparse(swapped), case="swap_sub"))
            elif isinstance(value, ast.Tuple) and len(value.elts) >= 2:
                a, b = value.elts[:2]
                if (
                    ast.dump(a) != ast.dump(b)
                    and not isinstance(a, ast.Starred)
                    and not isinstance(b, ast.Starred)
                ):
                    (lo, a_hi), (b_lo, hi) = ctx.span(a), ctx.span(b)
                    text = ctx.get(b) + ctx.src.text[a_hi:b_lo] + ctx.get(a)
                    new_node = ast.Tuple([b, a, *value.elts[2:]], ast.Load())
                    info = {
                        "case": "swap_tuple",
                        "first": one_line(ctx.get(a), 40),
                        "second": one_line(ctx.get(b), 40),
                    }
                    edits.append(Edit(value, new_node, lo, hi, text, info))
            if not edits and isinstance(value, ast.Name):  # another local of the same type
                scope, line = ctx.scope(ret), ret.lineno
                wanted = scope[value.id].type if value.id in scope else None
                for name, var in scope.items():
                    if wanted and var.type == wanted and name != value.id and var.line < line:
                        new_node = ast.Name(name, ast.Load())
                        edits.append(_replace(ctx, value, new_node, name, case="other", value=name))
            if not edits and isinstance(value, ast.Name):  # the computed result is never handed back
                edits.append(_replace(ctx, value, ast.Constant(None), "None", case="none"))
            for edit in edits:
                edit.info.setdefault("old", squash(ctx.get(value), 60))
            if edits:
                yield Site(value, edits)


_LOG_NAMES = ("print", "log", "logger", "logging", "warnings")


def _removable(ctx: Ctx, node: ast.stmt) -> dict[str, str] | None:
    """Why deleting `node` is a plausible bug, as description info; None if it is not."""
    if isinstance(node, ast.AugAssign):
        return {"case": "update", "target": one_line(ctx.get(node.target), 40)}
    if isinstance(node, ast.Assign):
        names = [t for t in node.targets if isinstance(t, ast.Name)]
        if len(names) == len(node.targets):  # only a re-assignment: the first one would leave a NameError
            scope = ctx.scope(node)
            if all(t.id in scope and scope[t.id].line < node.lineno for t in names):
                return {"case": "update", "target": ", ".join(t.id for t in names)}
        elif len(node.targets) == 1 and isinstance(node.targets[0], (ast.Subscript, ast.Attribute)):
            return {"case": "store", "target": one_line(ctx.get(node.targets[0]), 40)}
        return None
    if isinstance(node, ast.Expr) and isinstance(node.value, ast.Call):
        func = node.value.func
        root = func
        while isinstance(root, ast.Attribute):
            root = root.value
        if isinstance(root, ast.Name) and root.id in _LOG_NAMES:
            return None
        method = func.attr if isinstance(func, ast.Attribute) else None
        obj = one_line(ctx.get(func.value), 40) if method else None
        return {"case": "call", "call_effect": call_effect(method, obj), "obj": obj}
    if (
        isinstance(node, ast.If)
        and not node.orelse
        and len(node.body) == 1
        and type(node.body[0]) in GUARD_EFFECT
    ):
        return {
            "case": "guard",
            "test": squash(ctx.get(node.test), 50),
            "guard_effect": GUARD_EFFECT[type(node.body[0])],
        }
    return None


def _remove_statement(ctx: Ctx) -> Iterator[Site]:
    """A missing update, call or early-exit guard: `count += 1`, `seen.add(x)`, `if not xs: return 0`.
    Whole lines are deleted; a block that would become empty gets `pass` instead."""
    text = ctx.src.text
    for node in ctx.nodes:
        if not isinstance(node, ast.stmt) or ctx.func.get(id(node)) is None:
            continue
        parent, field, index = ctx.parent[id(node)]
        info = _removable(ctx, node) if index is not None else None
        if info is None:
            continue
        block = getattr(parent, field)
        start, end = ctx.span(node)
        line_lo, line_hi = ctx.src.starts[node.lineno - 1], ctx.src.starts[node.end_lineno]
        own_lines = not text[line_lo:start].strip() and (
            not text[end:line_hi].strip() or text[end:line_hi].lstrip().startswith("#")
        )
        info["removed"] = squash(ctx.get(node), 60)
        info.update(_where(ctx, parent, field, block, index, emptied=len(block) == 1))
        if len(block) == 1:
            edit = Edit(node, ast.Pass(), start, end, "pass", info)
        elif own_lines:
            edit = Edit(node, None, line_lo, line_hi, "", info)
        else:
            continue
        yield Site(node, [edit])


def _where(ctx: Ctx, parent: ast.AST, field: str, block: list, index: int, emptied: bool) -> dict:
    """Where a removed statement was, as description info: the phrase and the line it quotes, a line
    the tampered code still has (the previous statement's first line, or the header of the block),
    cut to a verbatim piece."""
    if index > 0 and not (index == 1 and is_docstring(block[0]) and isinstance(parent, DOC_OWNERS)):
        prev = block[index - 1]
        line = clip(strip_comment(ctx.src.lines[prev.lineno - 1]), 60)
        compound = any(isinstance(getattr(prev, f, None), list) for f in ("body", "cases"))
        return {"where": where(line, after="block" if compound else "statement"), "line": line}
    # match_case has no position
    line = clip(strip_comment(ctx.src.lines[parent.lineno - 1]), 60) if hasattr(parent, "lineno") else None
    return {"where": where(line, field=field, emptied=emptied), "line": line}


# The bug taxonomy: each kind's name (what a dataset's `bug_kind` holds) and its finder.
FINDERS: dict[str, Callable[[Ctx], Iterator[Site]]] = {
    "flip_comparison": _flip_comparison,
    "loosen_comparison": _loosen_comparison,
    "off_by_one_range": _off_by_one_range,
    "off_by_one_index_or_slice": _off_by_one_index_or_slice,
    "swap_arithmetic_operator": _swap_arithmetic_operator,
    "swap_boolean_operator": _swap_boolean_operator,
    "negation": _negation,
    "wrong_variable": _wrong_variable,
    "swap_call_arguments": _swap_call_arguments,
    "wrong_constant": _wrong_constant,
    "wrong_builtin": _wrong_builtin,
    "wrong_method": _wrong_method,
    "reverse_sort_order": _reverse_sort_order,
    "wrong_return_value": _wrong_return_value,
    "remove_statement": _remove_statement,
}
BUG_KINDS: tuple[str, ...] = tuple(FINDERS)
