"""Bug insertion: real code plus exactly one subtle, realistic bug, where it is, and how a reviewer
would report it.

CriticGPT-style critics learn from *tampered* code. Bugs are inserted by AST transformation (as in
DeepBugs, BugLab and SWE-smith): every bug kind has one small finder that walks the parsed code and
yields candidate *sites*, each with the concrete edits that would plant the bug there.

Edits are surgical. Only the source segment of the mutated node changes (located through the node
positions, whose columns are UTF-8 byte offsets); comments, quotes, blank lines and every other byte
stay as they were, so the tampered code still looks hand-written. An edit is kept only when the
tampered code parses to exactly the intended AST (which catches precedence slips), compiles, and
differs from the original. Docstrings, annotations, decorators, default arguments and f-strings are
never touched.

Whether a bug changes behaviour is checked later by running tests in the sandbox; this module only
promises code that compiles. It is stdlib only and handles thousands of functions in seconds.
"""

from __future__ import annotations

import ast
import difflib
import random
import re
import string
import warnings
from bisect import bisect_right
from collections.abc import Callable, Collection, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from itertools import accumulate

__all__ = ["BUG_KINDS", "Tampering", "candidate_sites", "tamper"]


@dataclass(frozen=True)
class Tampering:
    """One tampered version of a piece of code, carrying a single bug."""

    code: str  # the whole tampered source
    bug_kind: str  # one of BUG_KINDS
    bug_lines: list[int]  # 1-based lines of `code` that carry the bug
    description: str  # reviewer-style description of the bug


# --- source positions ---

_LINE_RE = re.compile(r"[^\n]*\n|[^\n]+\Z")


def _split_lines(text: str) -> list[str]:
    """Lines with their endings, split on '\\n' only, as the parser counts them."""
    return _LINE_RE.findall(text)


class _Source:
    """The original text, with AST (line, byte column) positions turned into string offsets."""

    def __init__(self, text: str):
        self.text = text
        self.lines = _split_lines(text)
        self.starts = [0, *accumulate(len(line) for line in self.lines)]

    def offset(self, lineno: int, col: int) -> int:
        line = self.lines[lineno - 1] if lineno <= len(self.lines) else ""
        if not line.isascii():  # col_offset counts UTF-8 bytes, not characters
            col = len(line.encode()[:col].decode("utf-8", "replace"))
        return self.starts[lineno - 1] + col

    def span(self, node: ast.AST) -> tuple[int, int]:
        return self.offset(node.lineno, node.col_offset), self.offset(node.end_lineno, node.end_col_offset)

    def get(self, node: ast.AST) -> str:
        start, end = self.span(node)
        return self.text[start:end]

    def line_of(self, offset: int) -> int:
        return bisect_right(self.starts, offset)


# --- the analysed module ---

_FUNCS = (ast.FunctionDef, ast.AsyncFunctionDef)
_DOC_OWNERS = (ast.Module, ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)


def _is_docstring(node: ast.AST) -> bool:
    return (
        isinstance(node, ast.Expr)
        and isinstance(node.value, ast.Constant)
        and isinstance(node.value.value, str)
    )


def _protected(parent: ast.AST, field: str, index: int | None, child: ast.AST) -> bool:
    """Subtrees no bug may touch: they are not behaviour a reviewer would flag, or (f-strings on
    Python 3.11) their node positions are unreliable."""
    if field in ("annotation", "returns", "decorator_list") or isinstance(child, ast.JoinedStr):
        return True
    if isinstance(parent, ast.arguments) and field in ("defaults", "kw_defaults"):
        return True
    return field == "body" and index == 0 and isinstance(parent, _DOC_OWNERS) and _is_docstring(child)


@dataclass
class _Var:
    """A local variable: the line of the statement that first binds it, and a guessed type."""

    line: int
    type: str | None


class _Ctx:
    """Parsed code plus the lookups every finder needs: mutable nodes in source order, parent links,
    the enclosing function of each node, and the names bound anywhere (so builtins can be trusted)."""

    def __init__(self, code: str):
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                self.tree = ast.parse(code)
        except (SyntaxError, ValueError, RecursionError, MemoryError) as err:
            raise ValueError(f"tamper: code does not parse: {err}") from None
        self.src = _Source(code)
        self.nodes: list[ast.AST] = []
        self.parent: dict[int, tuple[ast.AST, str, int | None]] = {}
        self.func: dict[int, ast.AST | None] = {}
        self.bound: set[str] = set()
        self._scopes: dict[int, dict[str, _Var]] = {}
        self._index()
        self._unit_dumps: dict[int | None, str] = {}
        self._unit_compiles: dict[int | None, bool] = {}

    def _index(self) -> None:
        stack: list[tuple[ast.AST, ast.AST | None]] = [(self.tree, None)]
        while stack:  # iterative: long expression chains nest deeper than the recursion limit
            node, fn = stack.pop()
            if node is not self.tree:
                self.nodes.append(node)
                self.func[id(node)] = fn
            self._bind(node)
            inner = node if isinstance(node, _FUNCS) else fn
            children = []
            for field, value in ast.iter_fields(node):
                items = value if isinstance(value, list) else [value]
                for i, child in enumerate(items):
                    if not isinstance(child, ast.AST):
                        continue
                    index = i if isinstance(value, list) else None
                    self.parent[id(child)] = (node, field, index)
                    if not _protected(node, field, index, child):
                        children.append((child, inner))
            stack.extend(reversed(children))

    def _bind(self, node: ast.AST) -> None:
        if isinstance(node, ast.Name) and not isinstance(node.ctx, ast.Load):
            self.bound.add(node.id)
        elif isinstance(node, (*_FUNCS, ast.ClassDef)):
            self.bound.add(node.name)
        elif isinstance(node, ast.arg):
            self.bound.add(node.arg)
        elif isinstance(node, ast.alias):
            self.bound.add((node.asname or node.name).split(".")[0])
        elif isinstance(node, ast.ExceptHandler) and node.name:
            self.bound.add(node.name)

    def span(self, node: ast.AST) -> tuple[int, int]:
        return self.src.span(node)

    def get(self, node: ast.AST) -> str:
        return self.src.get(node)

    def splice(self, outer: ast.AST, start: int, end: int, text: str) -> str:
        """The source of `outer` with [start, end) replaced by `text`."""
        lo, hi = self.span(outer)
        return self.src.text[lo:start] + text + self.src.text[end:hi]

    def stmt_of(self, node: ast.AST) -> ast.AST:
        while not isinstance(node, ast.stmt) and id(node) in self.parent:
            node = self.parent[id(node)][0]
        return node

    def top_index(self, node: ast.AST) -> int | None:
        """Index of the top-level statement holding `node`; None if `node` is one itself.

        Validation parses the whole tampered module but dumps and compiles only this statement,
        so large files stay fast."""
        parent, field, index = self.parent[id(node)]
        if parent is self.tree:
            return None
        while parent is not self.tree:
            parent, field, index = self.parent[id(parent)]
        return index

    def unit(self, k: int | None) -> ast.AST:
        return self.tree if k is None else self.tree.body[k]

    def unit_dump(self, k: int | None) -> str:
        if k not in self._unit_dumps:
            self._unit_dumps[k] = ast.dump(self.unit(k))
        return self._unit_dumps[k]

    def unit_compiles(self, k: int | None) -> bool:
        if k not in self._unit_compiles:
            self._unit_compiles[k] = _compiles(self.tree if k is None else ast.Module([self.unit(k)], []))
        return self._unit_compiles[k]

    def scope(self, node: ast.AST) -> dict[str, _Var]:
        """Local variables of the function enclosing `node` (empty at module level)."""
        fn = node if isinstance(node, _FUNCS) else self.func.get(id(node))
        if fn is None:
            return {}
        if id(fn) not in self._scopes:
            self._scopes[id(fn)] = _function_scope(fn)
        return self._scopes[id(fn)]

    def type_of(self, node: ast.AST) -> str | None:
        return _guess_type(node, self.scope(node))

    def is_builtin(self, node: ast.AST, names: Collection[str]) -> bool:
        return isinstance(node, ast.Name) and node.id in names and node.id not in self.bound


def _compiles(tree: ast.AST) -> bool:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            compile(tree, "<tampered>", "exec")
    except (SyntaxError, ValueError, RecursionError):
        return False
    return True


# --- a little type guessing, so swapped variables and operators stay plausible ---

_ANNOTATION_TYPES = {
    "int": "int", "float": "float", "str": "str", "bool": "bool", "list": "list",
    "List": "list", "dict": "dict", "Dict": "dict", "set": "set", "Set": "set", "tuple": "tuple",
    "Tuple": "tuple",
}  # fmt: skip
_CALL_TYPES = {
    "len": "int", "int": "int", "float": "float", "ord": "int",
    "str": "str", "chr": "str", "repr": "str", "bin": "str", "hex": "str", "list": "list",
    "sorted": "list", "set": "set", "dict": "dict", "tuple": "tuple", "bool": "bool", "any": "bool",
    "all": "bool", "isinstance": "bool",
}  # fmt: skip
_METHOD_TYPES = {
    "join": "str", "lower": "str", "upper": "str", "strip": "str", "lstrip": "str", "rstrip": "str",
    "replace": "str", "format": "str", "capitalize": "str", "title": "str", "swapcase": "str",
    "split": "list", "splitlines": "list", "count": "int", "index": "int", "find": "int",
    "rfind": "int", "startswith": "bool", "endswith": "bool", "isdigit": "bool", "isalpha": "bool",
    "isupper": "bool", "islower": "bool", "isspace": "bool", "isalnum": "bool",
}  # fmt: skip


def _annotation_type(node: ast.AST | None) -> str | None:
    if isinstance(node, ast.Subscript):
        node = node.value
    name = node.id if isinstance(node, ast.Name) else node.attr if isinstance(node, ast.Attribute) else None
    return _ANNOTATION_TYPES.get(name)


def _guess_type(node: ast.AST, scope: dict[str, _Var]) -> str | None:
    """'int', 'float', 'bool', 'str', 'list', 'dict', 'set', 'tuple' or None (unknown)."""
    if isinstance(node, ast.Constant):
        value = node.value
        if isinstance(value, bool):
            return "bool"
        return {int: "int", float: "float", str: "str"}.get(type(value))
    if isinstance(node, (ast.List, ast.ListComp)):
        return "list"
    if isinstance(node, (ast.Dict, ast.DictComp)):
        return "dict"
    if isinstance(node, (ast.Set, ast.SetComp)):
        return "set"
    if isinstance(node, ast.Tuple):
        return "tuple"
    if isinstance(node, ast.JoinedStr):
        return "str"
    if isinstance(node, ast.Compare) or (isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.Not)):
        return "bool"
    if isinstance(node, ast.UnaryOp):
        return _guess_type(node.operand, scope)
    if isinstance(node, ast.Name):
        return scope[node.id].type if node.id in scope else None
    if isinstance(node, ast.Call):
        if isinstance(node.func, ast.Name):
            return _CALL_TYPES.get(node.func.id)
        return _METHOD_TYPES.get(node.func.attr) if isinstance(node.func, ast.Attribute) else None
    if isinstance(node, ast.Subscript):
        return "str" if _guess_type(node.value, scope) == "str" else None
    pair: tuple[ast.AST, ast.AST] | None = None
    if isinstance(node, ast.BinOp):
        pair = (node.left, node.right)
    elif isinstance(node, ast.IfExp):
        pair = (node.body, node.orelse)
    elif isinstance(node, ast.BoolOp) and len(node.values) == 2:
        pair = (node.values[0], node.values[1])
    if pair:
        left, right = _guess_type(pair[0], scope), _guess_type(pair[1], scope)
        if isinstance(node, ast.BinOp) and {left, right} <= {"int", "float"}:
            return "float" if isinstance(node.op, ast.Div) or "float" in (left, right) else "int"
        return left if left == right else None if left and right else left or right
    return None


def _names(target: ast.AST) -> list[ast.Name]:
    return [n for n in ast.walk(target) if isinstance(n, ast.Name)]


def _function_scope(fn: ast.AST) -> dict[str, _Var]:
    """Parameters and names bound in `fn` itself, in order of first binding. Comprehension variables,
    globals/nonlocals and nested functions are left out: swapping those in is not a plausible bug."""
    scope: dict[str, _Var] = {}
    excluded: set[str] = set()

    def bind(name: str, line: int, typ: str | None) -> None:
        if name not in scope:
            scope[name] = _Var(line, typ)
        elif scope[name].type != typ and typ is not None:
            scope[name].type = typ if scope[name].type is None else None

    args = fn.args
    for arg in [*args.posonlyargs, *args.args, *args.kwonlyargs]:
        bind(arg.arg, 0, _annotation_type(arg.annotation))
    if args.vararg:
        bind(args.vararg.arg, 0, "tuple")
    if args.kwarg:
        bind(args.kwarg.arg, 0, "dict")
    stack = list(reversed(fn.body))
    while stack:
        node = stack.pop()
        if isinstance(node, (*_FUNCS, ast.ClassDef, ast.Lambda)):
            continue
        if isinstance(node, (ast.Global, ast.Nonlocal)):
            excluded.update(node.names)
        elif isinstance(node, ast.comprehension):
            excluded.update(n.id for n in _names(node.target))
        elif isinstance(node, ast.Assign):
            typ = _guess_type(node.value, scope) if len(node.targets) == 1 else None
            for target in node.targets:
                for name in _names(target):
                    if isinstance(name.ctx, ast.Store):
                        bind(name.id, node.lineno, typ if target is name else None)
        elif isinstance(node, (ast.AnnAssign, ast.AugAssign)) and isinstance(node.target, ast.Name):
            typ = _annotation_type(node.annotation) if isinstance(node, ast.AnnAssign) else None
            bind(node.target.id, node.lineno, typ)
        elif isinstance(node, (ast.For, ast.AsyncFor)):
            counting = isinstance(node.iter, ast.Call) and isinstance(node.iter.func, ast.Name)
            func = node.iter.func.id if counting else None
            over_str = _guess_type(node.iter, scope) == "str" and isinstance(node.target, ast.Name)
            for i, name in enumerate(_names(node.target)):
                typ = "int" if (func == "range" or (func == "enumerate" and i == 0)) else None
                typ = "str" if over_str else typ
                bind(name.id, node.lineno, typ)
        elif isinstance(node, ast.withitem) and node.optional_vars is not None:
            for name in _names(node.optional_vars):
                bind(name.id, _line(node.optional_vars), None)
        elif isinstance(node, ast.NamedExpr):
            bind(node.target.id, node.lineno, _guess_type(node.value, scope))
        stack.extend(reversed(list(ast.iter_child_nodes(node))))
    for name in excluded:
        scope.pop(name, None)
    return scope


def _line(node: ast.AST) -> int:
    return getattr(node, "lineno", 0)


# --- small helpers shared by the finders ---


@dataclass
class _Edit:
    """Replace src[start:end] by `text`; in the AST `target` becomes `new_node` (None deletes a
    statement). `info` fills the description templates."""

    target: ast.AST
    new_node: ast.AST | None
    start: int
    end: int
    text: str
    info: dict[str, str]


@dataclass
class _Site:
    """One place a bug of some kind can go, with the alternative edits that would put it there."""

    target: ast.AST
    edits: list[_Edit]


_CMP_SYMBOL = {
    ast.Eq: "==", ast.NotEq: "!=", ast.Lt: "<", ast.LtE: "<=", ast.Gt: ">", ast.GtE: ">=",
    ast.Is: "is", ast.IsNot: "is not", ast.In: "in", ast.NotIn: "not in",
}  # fmt: skip
_BIN_SYMBOL = {
    ast.Add: "+", ast.Sub: "-", ast.Mult: "*", ast.Div: "/", ast.FloorDiv: "//", ast.Mod: "%",
    ast.Pow: "**", ast.LShift: "<<", ast.RShift: ">>", ast.BitOr: "|", ast.BitAnd: "&",
    ast.BitXor: "^", ast.MatMult: "@",
}  # fmt: skip
_CMP_RE = re.compile(r"<=|>=|==|!=|<|>|\bnot\s+in\b|\bis\s+not\b|\bin\b|\bis\b")
_BIN_RE = re.compile(r"\*\*|//|<<|>>|[-+*/%@|&^]")
_BOOL_RE = re.compile(r"\b(?:and|or)\b")
_COMMENT_RE = re.compile(r"#[^\n]*")


def _find_op(ctx: _Ctx, left: ast.AST, right: ast.AST, pattern: re.Pattern) -> tuple[int, int] | None:
    """The span of the operator token between two operands. The gap holds only parentheses,
    whitespace, comments and the operator, so masking comments is enough to find it."""
    lo, hi = ctx.span(left)[1], ctx.span(right)[0]
    gap = _COMMENT_RE.sub(lambda m: " " * len(m.group()), ctx.src.text[lo:hi])
    match = pattern.search(gap)
    return (lo + match.start(), lo + match.end()) if match else None


def _strip_comment(line: str) -> str:
    """`line` without its trailing comment (a `#` inside a string literal is kept)."""
    quote, i = "", 0
    while i < len(line):
        if quote:
            if line[i] == "\\":
                i += 2
                continue
            if line.startswith(quote, i):
                i, quote = i + len(quote), ""
                continue
        elif line[i] in "'\"":
            quote = line[i : i + 3] if line[i : i + 3] in ('"""', "'''") else line[i]
            i += len(quote)
            continue
        elif line[i] == "#":
            return line[:i].rstrip()
        i += 1
    return line.rstrip()


def _squash(code: str, limit: int = 90) -> str:
    """Code as a one-line quote for a description: comments dropped, whitespace runs collapsed."""
    if "\n" in code:
        code = " ".join(" ".join(_strip_comment(line) for line in code.split("\n")).split())
        code = code.replace("( ", "(").replace("[ ", "[").replace(" )", ")").replace(" ]", "]")
    code = code.strip()
    return code if len(code) <= limit else code[: limit - 4].rstrip() + " ..."


def _one_line(code: str, limit: int = 60) -> str | None:
    """`code` as a value to show as inline code in a description: one line of at most `limit`
    characters, or None. Inline code must be verbatim, so nothing is squashed or cut."""
    code = code.strip()
    return code if code and "\n" not in code and len(code) <= limit else None


def _word(c: str) -> bool:
    return c.isalnum() or c == "_"


def _clip(line: str, limit: int = 70, at: int = 0) -> str:
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


def _int_value(node: ast.AST) -> int | None:
    """The value of an int literal, including a negated one (`-1`)."""
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub):
        inner = _int_value(node.operand)
        return None if inner is None or not isinstance(node.operand, ast.Constant) else -inner
    if isinstance(node, ast.Constant) and type(node.value) is int:
        return node.value
    return None


def _int_node(value: int) -> ast.expr:
    return ast.Constant(value) if value >= 0 else ast.UnaryOp(ast.USub(), ast.Constant(-value))


_ADDITIVE_SAFE = (
    ast.Name, ast.Attribute, ast.Subscript, ast.Call, ast.Constant, ast.List, ast.ListComp, ast.Dict,
    ast.Set, ast.GeneratorExp,
)  # fmt: skip
_TIGHT_OPS = (ast.Add, ast.Sub, ast.Mult, ast.Div, ast.FloorDiv, ast.Mod, ast.Pow, ast.MatMult)


def _shift(ctx: _Ctx, node: ast.AST, delta: int, keep_sign: bool) -> tuple[str, ast.expr] | None:
    """`node` moved by `delta` the way a programmer would write it: `n` -> `n - 1`, `n - 1` -> `n`,
    `3` -> `4`. With keep_sign, literals may not cross zero (an index -1 -> 0 changes its meaning)."""
    value = _int_value(node)
    if value is not None:
        new = value + delta
        if keep_sign and (new < 0) != (value < 0):
            return None
        return str(new), _int_node(new)
    if isinstance(node, ast.BinOp) and isinstance(node.op, (ast.Add, ast.Sub)):
        const = node.right.value if isinstance(node.right, ast.Constant) else None
        op_span = _find_op(ctx, node.left, node.right, _BIN_RE)
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


def _role(ctx: _Ctx, node: ast.AST) -> str:
    """What consumes a truth value: 'if', 'while', 'ifexp', 'assert', 'filter', 'return' or 'other'."""
    while id(node) in ctx.parent:
        parent, field, _ = ctx.parent[id(node)]
        if isinstance(parent, (ast.If, ast.While, ast.IfExp, ast.Assert)) and field == "test":
            return type(parent).__name__.lower()
        if isinstance(parent, ast.comprehension) and field == "ifs":
            return "filter"
        if isinstance(parent, ast.Return):
            return "return"
        if not isinstance(parent, (ast.BoolOp, ast.UnaryOp)):
            return "other"
        node = parent
    return "other"


_INVERTED = {
    "if": "the branch is taken in cases it should skip and skipped in cases it should take",
    "while": "the loop runs when it should stop and stops when it should keep going",
    "ifexp": "the conditional expression picks the wrong alternative",
    "assert": "the assertion fails on valid states and passes on invalid ones",
    "filter": "the comprehension keeps elements it should drop and drops the ones it should keep",
    "return": "the function returns the wrong truth value",
    "other": "the computed truth value is the opposite of the intended one",
}


def _replace(ctx: _Ctx, target: ast.AST, new_node: ast.AST, text: str, **info: str) -> _Edit:
    start, end = ctx.span(target)
    return _Edit(target, new_node, start, end, text, info)


# --- the bug kinds: one finder each ---

_FLIP = {
    ast.Eq: ast.NotEq, ast.NotEq: ast.Eq, ast.Lt: ast.GtE, ast.GtE: ast.Lt, ast.Gt: ast.LtE,
    ast.LtE: ast.Gt, ast.Is: ast.IsNot, ast.IsNot: ast.Is, ast.In: ast.NotIn, ast.NotIn: ast.In,
}  # fmt: skip
_LOOSEN = {ast.Lt: ast.LtE, ast.LtE: ast.Lt, ast.Gt: ast.GtE, ast.GtE: ast.Gt}


def _comparison_sites(ctx: _Ctx, table: dict, loosen: bool) -> Iterator[_Site]:
    for node in ctx.nodes:
        if not isinstance(node, ast.Compare):
            continue
        operands = [node.left, *node.comparators]
        edits = []
        for i, op in enumerate(node.ops):
            op_span = _find_op(ctx, operands[i], operands[i + 1], _CMP_RE)
            if type(op) not in table or op_span is None:
                continue
            new_op = table[type(op)]()
            new_node = ast.Compare(node.left, [*node.ops[:i], new_op, *node.ops[i + 1 :]], node.comparators)
            old_sym, new_sym = _CMP_SYMBOL[type(op)], _CMP_SYMBOL[type(new_op)]
            info = {"old_op": old_sym, "new_op": new_sym, "effect": _INVERTED[_role(ctx, node)]}
            if loosen:
                info.update(_boundary_info(ctx, node, new_sym, operands[i], operands[i + 1]))
            text = ctx.splice(node, *op_span, new_sym)
            edits.append(_replace(ctx, node, new_node, text, **info))
        if edits:
            yield _Site(node, edits)


def _flip_comparison(ctx: _Ctx) -> Iterator[_Site]:
    """`<` <-> `>=`, `==` <-> `!=`, `in` <-> `not in`: the condition means its opposite."""
    return _comparison_sites(ctx, _FLIP, loosen=False)


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


def _boundary_info(ctx: _Ctx, node: ast.Compare, new_sym: str, left: ast.AST, right: ast.AST) -> dict:
    inclusive = new_sym in ("<=", ">=")
    # The operands are untouched, so one-line operands are verbatim in the tampered code.
    lhs, rhs = _one_line(ctx.get(left), 40), _one_line(ctx.get(right), 40)
    short = lhs and rhs and len(lhs) + len(rhs) < 60
    equal = "{lhs:code} equals {rhs:code}" if short else "the two sides are equal"
    outcome = _BOUNDARY_OUTCOME.get((_role(ctx, node), inclusive), "the result is wrong for that case")
    return {
        "boundary": f"also holds when {equal}" if inclusive else f"no longer holds when {equal}",
        "outcome": outcome,
        "lhs": lhs,
        "rhs": rhs,
    }


def _loosen_comparison(ctx: _Ctx) -> Iterator[_Site]:
    """`<` <-> `<=`, `>` <-> `>=`: the classic boundary (fencepost) bug."""
    return _comparison_sites(ctx, _LOOSEN, loosen=True)


def _off_by_one_range(ctx: _Ctx) -> Iterator[_Site]:
    """range(n) -> range(n - 1) / range(n + 1) / range(1, n); range(a, b) with a or b moved by one."""
    for node in ctx.nodes:
        if not (isinstance(node, ast.Call) and ctx.is_builtin(node.func, ("range",))):
            continue
        args = node.args
        if not 1 <= len(args) <= 3 or node.keywords or any(isinstance(a, ast.Starred) for a in args):
            continue
        step = _int_value(args[2]) if len(args) == 3 else 1
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
            info = _range_info(bound, delta, ctx.get(arg), text, backwards)
            new_call = ctx.splice(node, *ctx.span(arg), text)
            info.update(old=_squash(old_call), new=_one_line(new_call, 90))
            edits.append(_replace(ctx, arg, new_arg, text, **info))
        if len(args) == 1:  # range(n) -> range(1, n)
            start, end = ctx.span(args[0])
            text = "1, " + ctx.get(args[0])
            new_node = ast.Call(node.func, [ast.Constant(1), args[0]], [])
            new_call = ctx.splice(node, start, end, text)
            info = {"effect": "starts at 1 and never visits 0", "old": _squash(old_call)}
            info["new"] = _one_line(new_call, 90)
            edits.append(_Edit(node, new_node, start, end, text, info))
        if edits:
            yield _Site(node, edits)


def _range_info(bound: str, delta: int, old: str, new: str, backwards: bool) -> dict[str, str | None]:
    """The effect of moving one bound of a range, as a phrase: the new bound is in the code (inline
    code), the old one is not (plain words)."""
    at = "{arg_new:code}" if _one_line(new, 40) else "the wrong value"
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
    return {"effect": effect, "arg_new": _one_line(new, 40), "arg_old": _squash(old, 40)}


def _off_by_one_index_or_slice(ctx: _Ctx) -> Iterator[_Site]:
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
                    "old_sub": _squash(old_sub, 60),
                    "new_sub": _one_line(new_sub, 60),
                    "container": _one_line(ctx.get(node.value), 40),
                    "direction": "after" if delta > 0 else "before",
                    "effect": _SLICE_EFFECT.get((role, delta), ""),
                }
                edits.append(_replace(ctx, part, new_part, text, **info))
        if edits:
            yield _Site(node, edits)


_SLICE_EFFECT = {
    ("upper", 1): "takes one element too many at the end",
    ("upper", -1): "drops the last element the slice should include",
    ("lower", 1): "drops the first element the slice should include",
    ("lower", -1): "takes one element too many at the front",
}
_ARITH_SWAP = {
    ast.Add: (ast.Sub,), ast.Sub: (ast.Add,), ast.Mult: (ast.Div, ast.Add), ast.Div: (ast.Mult, ast.FloorDiv),
    ast.FloorDiv: (ast.Div, ast.Mod), ast.Mod: (ast.FloorDiv,), ast.Pow: (ast.Mult,),
    ast.LShift: (ast.RShift,), ast.RShift: (ast.LShift,),
}  # fmt: skip
_ARITH_NOTE = {
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
_SEQUENCE_TYPES = ("str", "list", "tuple")


def _swap_arithmetic_operator(ctx: _Ctx) -> Iterator[_Site]:
    """`+` <-> `-`, `*` -> `/`, `//` <-> `/`, `%` <-> `//` in expressions and augmented assignments.
    String and list concatenation / repetition is left alone: `-` on them only raises."""
    for node in ctx.nodes:
        if isinstance(node, ast.BinOp):
            left, right, op = node.left, node.right, node.op
        elif isinstance(node, ast.AugAssign):
            left, right, op = node.target, node.value, node.op
        else:
            continue
        if type(op) not in _ARITH_SWAP or (op_span := _find_op(ctx, left, right, _BIN_RE)) is None:
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
                "note": _ARITH_NOTE[(type(op), new_type)],
            }
            edits.append(_replace(ctx, node, new_node, ctx.splice(node, *op_span, new_sym), **info))
        yield _Site(node, edits)


_AND_OR_EFFECT = {
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


def _bare_values(ctx: _Ctx, node: ast.BoolOp) -> list[bool] | None:
    """For each operand of `node`, whether it is written without parentheses; None if an operator
    cannot be located."""
    spans = [_find_op(ctx, a, b, _BOOL_RE) for a, b in zip(node.values, node.values[1:], strict=False)]
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


def _swap_boolean_operator(ctx: _Ctx) -> Iterator[_Site]:
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
            lo, hi = _find_op(ctx, a, b, _BOOL_RE)
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
        role = _role(ctx, node)
        effects = _AND_OR_EFFECT[old]
        info = {"old_op": old, "new_op": new, "effect": effects.get(role, effects["other"])}
        yield _Site(node, [_Edit(target, new_node, start, end, text, info)])


_NEGATABLE_PARENTS = (ast.If, ast.While, ast.IfExp, ast.Assert)
_LOOSE_BINDING = (ast.BoolOp, ast.IfExp, ast.Lambda, ast.NamedExpr)


def _in_test_position(ctx: _Ctx, node: ast.AST) -> bool:
    parent, field, _ = ctx.parent[id(node)]
    return (
        (isinstance(parent, _NEGATABLE_PARENTS) and field == "test")
        or (isinstance(parent, ast.comprehension) and field == "ifs")
        or isinstance(parent, ast.BoolOp)
    )


def _negation(ctx: _Ctx) -> Iterator[_Site]:
    """Drop a `not`, or add one to a condition: `if not seen:` <-> `if seen:`. Comparisons are left
    to flip_comparison, which writes the inversion the way a person would (`not in`, `!=`)."""
    for node in ctx.nodes:
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.Not):
            operand = ctx.get(node)[3:].lstrip()  # keeps the operand's own parentheses
            info = {"case": "dropped", "operand": _one_line(operand), "effect": _INVERTED[_role(ctx, node)]}
            yield _Site(node, [_replace(ctx, node, node.operand, operand, **info)])
        elif (
            isinstance(node, ast.expr)
            and not isinstance(node, (ast.Compare, ast.Constant, ast.UnaryOp))
            and _in_test_position(ctx, node)
        ):
            text = ctx.get(node)
            new_text = f"not ({text})" if isinstance(node, _LOOSE_BINDING) else f"not {text}"
            info = {"case": "added", "operand": _one_line(text), "effect": _INVERTED[_role(ctx, node)]}
            yield _Site(node, [_replace(ctx, node, ast.UnaryOp(ast.Not(), node), new_text, **info)])


def _wrong_variable(ctx: _Ctx) -> Iterator[_Site]:
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
        line = _line(ctx.stmt_of(node))
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
            yield _Site(node, edits)


# Calls whose argument order is fixed by type (swapping only raises) or irrelevant (max, min, print).
_NO_SWAP_CALLS = (
    "max", "min", "print", "isinstance", "issubclass", "hasattr", "getattr", "setattr", "delattr", "map",
    "filter", "enumerate", "round", "sum", "super", "open", "iter", "next",
)  # fmt: skip


def _swap_call_arguments(ctx: _Ctx) -> Iterator[_Site]:
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
                "func": _one_line(ctx.get(node.func), 40),
                "first": _one_line(ctx.get(b), 40),
                "second": _one_line(ctx.get(a), 40),
                "old": _squash(ctx.get(node), 60),
                "new": _one_line(ctx.splice(node, a_lo, b_hi, text), 70),
            }
            edits.append(_Edit(node, new_node, a_lo, b_hi, text, info))
        if edits:
            yield _Site(node, edits)


def _constant_values(value: object) -> list[object]:
    if isinstance(value, bool):
        return [not value]
    if isinstance(value, int):
        return {0: [1], 1: [0, 2], -1: [0, -2]}.get(value, [value - 1, value + 1])
    if isinstance(value, float) and value.is_integer():
        return [1.0] if value == 0 else [value - 1, value + 1]
    return []


def _wrong_constant(ctx: _Ctx) -> Iterator[_Site]:
    """A numeric or boolean literal nudged: 0 <-> 1, n -> n +- 1, True <-> False. Strings never."""
    for node in ctx.nodes:
        parent, field, _ = ctx.parent[id(node)]
        if not isinstance(node, (ast.Constant, ast.UnaryOp)) or isinstance(parent, ast.UnaryOp):
            continue  # a negated literal is handled as a whole, at its UnaryOp
        value = _int_value(node) if isinstance(node, ast.UnaryOp) else node.value
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
        yield _Site(node, edits)


_BUILTIN_SWAPS = {"min": "max", "max": "min", "any": "all", "all": "any"}
_MATH_SWAPS = {"floor": "ceil", "ceil": "floor"}
_FUNCTION_MEANING = {
    "min": "the smallest value",
    "max": "the largest value",
    "any": "True as soon as one element is truthy",
    "all": "True only when every element is truthy",
    "floor": "the value rounded down",
    "ceil": "the value rounded up",
}


def _wrong_builtin(ctx: _Ctx) -> Iterator[_Site]:
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
            "old_meaning": _FUNCTION_MEANING[old],
            "new_meaning": _FUNCTION_MEANING[new],
        }
        yield _Site(node, [_replace(ctx, func, new_func, text, **info)])


_METHOD_SWAPS = {
    "lower": ("upper",), "upper": ("lower",), "startswith": ("endswith",), "endswith": ("startswith",),
    "find": ("rfind",), "rfind": ("find",), "lstrip": ("rstrip",), "rstrip": ("lstrip",),
    "strip": ("lstrip", "rstrip"), "isupper": ("islower",), "islower": ("isupper",),
    "isdigit": ("isalpha",), "isalpha": ("isdigit",), "keys": ("values",), "values": ("keys",),
    "popleft": ("pop",), "appendleft": ("append",),
}  # fmt: skip
_METHOD_MEANING = {
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


def _wrong_method(ctx: _Ctx) -> Iterator[_Site]:
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
                "old_meaning": _METHOD_MEANING[func.attr],
                "new_meaning": _METHOD_MEANING[new],
                "new": _one_line(ctx.splice(node, *ctx.span(func), text), 70),
            }
            edits.append(_replace(ctx, func, ast.Attribute(func.value, new, ast.Load()), text, **info))
        yield _Site(node, edits)


def _reverse_sort_order(ctx: _Ctx) -> Iterator[_Site]:
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
            yield _Site(node, [_replace(ctx, node, new_node, text, case="descending")])
        elif isinstance(reverse[0].value, ast.Constant) and isinstance(reverse[0].value.value, bool):
            value = reverse[0].value
            case = "ascending" if value.value else "descending"
            yield _Site(
                node, [_replace(ctx, value, ast.Constant(not value.value), repr(not value.value), case=case)]
            )


_BOOL_CALLS = ("any", "all", "isinstance", "callable", "bool", "hasattr", "issubclass")


def _is_boolish(ctx: _Ctx, node: ast.AST) -> bool:
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


def _wrong_return_value(ctx: _Ctx) -> Iterator[_Site]:
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
                    edits.append(_replace(ctx, value, other.value, text, case="other", value=_one_line(text)))
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
                        "first": _one_line(ctx.get(a), 40),
                        "second": _one_line(ctx.get(b), 40),
                    }
                    edits.append(_Edit(value, new_node, lo, hi, text, info))
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
                edit.info.setdefault("old", _squash(ctx.get(value), 60))
            if edits:
                yield _Site(value, edits)


_LOG_NAMES = ("print", "log", "logger", "logging", "warnings")
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
_GUARD_EFFECT = {
    ast.Return: "no longer return early and fall through to the general code",
    ast.Continue: "are no longer skipped",
    ast.Break: "no longer end the loop",
    ast.Raise: "are no longer rejected",
}


def _removable(ctx: _Ctx, node: ast.stmt) -> dict[str, str] | None:
    """Why deleting `node` is a plausible bug, as description info; None if it is not."""
    if isinstance(node, ast.AugAssign):
        return {"case": "update", "target": _one_line(ctx.get(node.target), 40)}
    if isinstance(node, ast.Assign):
        names = [t for t in node.targets if isinstance(t, ast.Name)]
        if len(names) == len(node.targets):  # only a re-assignment: the first one would leave a NameError
            scope = ctx.scope(node)
            if all(t.id in scope and scope[t.id].line < node.lineno for t in names):
                return {"case": "update", "target": ", ".join(t.id for t in names)}
        elif len(node.targets) == 1 and isinstance(node.targets[0], (ast.Subscript, ast.Attribute)):
            return {"case": "store", "target": _one_line(ctx.get(node.targets[0]), 40)}
        return None
    if isinstance(node, ast.Expr) and isinstance(node.value, ast.Call):
        func = node.value.func
        root = func
        while isinstance(root, ast.Attribute):
            root = root.value
        if isinstance(root, ast.Name) and root.id in _LOG_NAMES:
            return None
        effect, obj = "the work it does never happens", None
        if isinstance(func, ast.Attribute) and func.attr in _CALL_EFFECT:
            obj = _one_line(ctx.get(func.value), 40)
            effect = _CALL_EFFECT[func.attr] if obj else effect
        return {"case": "call", "call_effect": effect, "obj": obj}
    if (
        isinstance(node, ast.If)
        and not node.orelse
        and len(node.body) == 1
        and type(node.body[0]) in _GUARD_EFFECT
    ):
        return {
            "case": "guard",
            "test": _squash(ctx.get(node.test), 50),
            "guard_effect": _GUARD_EFFECT[type(node.body[0])],
        }
    return None


def _remove_statement(ctx: _Ctx) -> Iterator[_Site]:
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
        info["removed"] = _squash(ctx.get(node), 60)
        info.update(_where(ctx, parent, field, block, index))
        if len(block) == 1:
            where = info["where"].replace("at the start of", "in", 1)
            info["where"] = where + ", which now holds only `pass`"
            edit = _Edit(node, ast.Pass(), start, end, "pass", info)
        elif own_lines:
            edit = _Edit(node, None, line_lo, line_hi, "", info)
        else:
            continue
        yield _Site(node, [edit])


def _where(ctx: _Ctx, parent: ast.AST, field: str, block: list, index: int) -> dict[str, str]:
    """Where a removed statement was, as a phrase that quotes a line the tampered code still has
    (the previous statement's first line, or the header of the block), cut to a verbatim piece."""
    if index > 0 and not (index == 1 and _is_docstring(block[0]) and isinstance(parent, _DOC_OWNERS)):
        prev = block[index - 1]
        line = _clip(_strip_comment(ctx.src.lines[prev.lineno - 1]), 60)
        compound = any(isinstance(getattr(prev, f, None), list) for f in ("body", "cases"))
        return {"where": "after the {line:code} block" if compound else "after {line:code}", "line": line}
    if not hasattr(parent, "lineno"):  # match_case has no position
        return {"where": "in its block"}
    line = _clip(_strip_comment(ctx.src.lines[parent.lineno - 1]), 60)
    part = {"orelse": "the else branch of ", "finalbody": "the finally block of "}.get(field, "")
    return {"where": f"at the start of {part}{{line:code}}", "line": line}


_FINDERS: dict[str, Callable[[_Ctx], Iterator[_Site]]] = {
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
BUG_KINDS: tuple[str, ...] = tuple(_FINDERS)


# --- descriptions: how a reviewer would report each bug ---

# Templates are filled by _Prose. Inline code, `{field:code}`, only ever shows text of the tampered
# code, the code the reviewer is looking at: the quote `q` and whatever the bug put there (the new
# operator, name, value). The intended fix and anything the bug removed are not in that code, so
# they are named in plain words (`{field}`; `{field:say}` puts a word operator in quotes). The first
# sentence is what `critic review` prints: it names the code and the problem on its own.
_TEMPLATES: dict[str, list[str]] = {
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
_FIRST_SENTENCE = 120
_SENTENCE_END = re.compile(r"(?<=[.!?])\s")


class _Markdown(str):
    """Text already rendered as markdown: inserted as it is."""


def _inline(code: str) -> str:
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
            return _inline(text)
        if format_spec == "say" and text.replace(" ", "").isalpha():
            return f"'{text}'"
        return text.replace("`", "'")


def _fields(template: str) -> set[str]:
    return {name for _, name, _, _ in string.Formatter().parse(template) if name}


def _describe(kind: str, info: dict[str, str | None], rng: random.Random, code: str) -> str:
    """A reviewer's description of the bug, one of a few phrasings (one the info can fill)."""
    templates = _TEMPLATES.get(f"{kind}/{info.get('case')}") or _TEMPLATES[kind]
    prose = _Prose(code)
    values = dict(info)
    values["reverse"] = "reverse=True"
    for key in _PHRASES:
        if isinstance(values.get(key), str):
            values[key] = _Markdown(prose.format(values[key], **values))
    usable = [t for t in templates if all(values.get(f) is not None for f in _fields(t))]
    texts = [prose.format(t, **values) for t in usable or templates]
    short = [t for t in texts if len(_SENTENCE_END.split(t, maxsplit=1)[0]) <= _FIRST_SENTENCE]
    return rng.choice(short or texts)


# --- applying an edit ---


def _expected_dump(ctx: _Ctx, edit: _Edit, k: int | None) -> str:
    """The dump of top-level statement `k` (None: the module) with `edit.target` replaced by
    `edit.new_node`."""
    parent, field, index = ctx.parent[id(edit.target)]
    if index is None:
        setattr(parent, field, edit.new_node)
        try:
            return ast.dump(ctx.unit(k))
        finally:
            setattr(parent, field, edit.target)
    block = getattr(parent, field)
    if edit.new_node is None:
        del block[index]
    else:
        block[index] = edit.new_node
    try:
        return ast.dump(ctx.unit(k))
    finally:
        if edit.new_node is None:
            block.insert(index, edit.target)
        else:
            block[index] = edit.target


def _apply(ctx: _Ctx, edit: _Edit) -> tuple[str, str] | None:
    """The tampered code and the text that went in, if the edit parses to exactly the intended AST;
    otherwise None. Parenthesising the new text is tried when precedence needs it."""
    k = ctx.top_index(edit.target)
    expected = _expected_dump(ctx, edit, k)
    if expected == ctx.unit_dump(k):
        return None
    texts = [edit.text]
    if edit.new_node is not None and (edit.start, edit.end) == ctx.span(edit.target):
        texts.append(f"({edit.text})")
    for text in texts:
        code = ctx.src.text[: edit.start] + text + ctx.src.text[edit.end :]
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                tree = ast.parse(code)
            if k is None:
                unit: ast.AST = tree
            else:
                # The text around statement k is unchanged, so the rest of the module parses as before
                # as long as statement k still ends where the edit moved its end.
                unit = tree.body[k] if len(tree.body) == len(ctx.tree.body) else None
                end = ctx.span(ctx.tree.body[k])[1] + len(text) - (edit.end - edit.start)
                if unit is None or _Source(code).offset(unit.end_lineno, unit.end_col_offset) != end:
                    continue
            if ast.dump(unit) != expected:
                continue
            if ctx.unit_compiles(k) and not _compiles(unit if k is None else ast.Module([unit], [])):
                continue
            return code, text
        except (SyntaxError, ValueError, RecursionError):
            continue
    return None


_FULL_DIFF_LINES = 1000


def _bug_lines(ctx: _Ctx, edit: _Edit, code: str) -> tuple[list[int], list[str]]:
    """Lines of `code` that differ from the original, as difflib pairs them (so a diff viewer agrees).
    For a pure deletion, the line just before the deletion point, or just after it at the start of a
    block; the other neighbour, or the nearest non-blank line, when that one is blank, so the bug line
    holds code. Also returns the lines of `code`."""
    old_lines, new_lines = ctx.src.lines, _split_lines(code)
    skip = 0  # difflib is quadratic-ish: on long files, diff only the part between common ends
    if len(old_lines) > _FULL_DIFF_LINES:
        skip = ctx.src.line_of(edit.start) - 1
        tail = len(old_lines) - ctx.src.line_of(edit.end)
        old_lines, new_lines = (
            old_lines[skip : len(old_lines) - tail],
            new_lines[skip : len(new_lines) - tail],
        )
    matcher = difflib.SequenceMatcher(None, old_lines, new_lines, autojunk=False)
    lines, deleted_at = [], 0
    for tag, _, _, j1, j2 in matcher.get_opcodes():
        if tag in ("replace", "insert"):
            lines.extend(range(skip + j1 + 1, skip + j2 + 1))
        elif tag == "delete":
            deleted_at = skip + j1  # the deletion point sits between lines j1 and j1 + 1 of `code`
    new_lines = _split_lines(code)
    if not lines:  # pure deletion: one of the two lines around the deletion point
        before, after = deleted_at, deleted_at + 1
        at_block_start = ctx.parent[id(edit.target)][2] == 0
        order = [after, before] if at_block_start else [before, after]
        valid = [n for n in order if 1 <= n <= len(new_lines)]
        # Blank neighbours (difflib may put the deletion between blank lines): the nearest code line.
        widened = valid + [n for k in range(1, len(new_lines)) for n in (before - k, after + k)]
        lines = [
            next((n for n in widened if 1 <= n <= len(new_lines) and new_lines[n - 1].strip()), valid[0])
        ]
    return lines, new_lines


def _context(ctx: _Ctx, edit: _Edit, text: str, limit: int = 70) -> str:
    """The largest expression around the edit that still makes a short one-line quote, as it reads
    after the edit: `values[total]` rather than the whole line, or just `total`. Failing that, a
    piece of the edited line around the edit. Verbatim either way: descriptions quote it."""
    node, best = edit.target, ""
    while True:
        lo, hi = ctx.span(node)
        lo, hi = min(lo, edit.start), max(hi, edit.end)
        snippet = _one_line(ctx.src.text[lo : edit.start] + text + ctx.src.text[edit.end : hi], limit)
        if snippet is None:
            break
        best = snippet
        parent = ctx.parent.get(id(node), (None,))[0]
        if not isinstance(parent, ast.expr):
            break
        node = parent
    if best:
        return best
    tampered = ctx.src.text[: edit.start] + text + ctx.src.text[edit.end :]
    begin = tampered.rfind("\n", 0, edit.start) + 1
    end = tampered.find("\n", edit.start)
    line = tampered[begin : end if end >= 0 else len(tampered)]
    at = edit.start - begin - (len(line) - len(line.lstrip()))
    return _clip(_strip_comment(line), limit, at)


def _tampering(ctx: _Ctx, kind: str, edit: _Edit, rng: random.Random) -> Tampering | None:
    applied = _apply(ctx, edit)
    if applied is None:
        return None
    code, text = applied
    bug_lines, new_lines = _bug_lines(ctx, edit, code)
    line = _strip_comment(new_lines[bug_lines[0] - 1]).strip() if bug_lines[0] <= len(new_lines) else ""
    quote = line if len(bug_lines) == 1 and len(line) <= 70 else _context(ctx, edit, text)
    old = ctx.src.text[edit.start : edit.end]
    info = {"q": quote, "new": _one_line(text, 70), "old": _squash(old, 60), **edit.info}
    return Tampering(code, kind, bug_lines, _describe(kind, info, rng, code))


# --- public API ---


def _selected(kinds: Sequence[str] | None) -> list[str]:
    if kinds is None:
        return list(BUG_KINDS)
    if isinstance(kinds, str):
        kinds = [kinds]
    unknown = [k for k in kinds if k not in _FINDERS]
    if unknown:
        raise ValueError(f"tamper: unknown bug kind(s) {unknown}; known kinds: {', '.join(BUG_KINDS)}")
    return [k for k in BUG_KINDS if k in kinds]


@contextmanager
def _deep_code_is_a_value_error() -> Iterator[None]:
    """ast.dump, ast.unparse and compile recurse; absurdly nested expressions exhaust the stack."""
    try:
        yield
    except RecursionError:
        raise ValueError("tamper: code is nested too deeply to analyse") from None


def candidate_sites(code: str, kinds: Sequence[str] | None = None) -> dict[str, int]:
    """Number of candidate sites per kind (before the compile check, which rejects a few)."""
    selected = _selected(kinds)
    with _deep_code_is_a_value_error():
        ctx = _Ctx(code)
        return {kind: sum(1 for _ in _FINDERS[kind](ctx)) for kind in selected}


def tamper(
    code: str,
    rng: random.Random,
    max_samples: int = 1,
    kinds: Sequence[str] | None = None,
    line_uniform: bool = False,
) -> list[Tampering]:
    """Up to `max_samples` distinct tamperings of `code`, each with one bug at its own site.

    Kinds are drawn round-robin in a random order among the kinds that have sites, then a random site
    of the drawn kind; a site whose edits do not compile is dropped and another one is tried. With
    `line_uniform`, the sites of all selected kinds are grouped by the line they sit on, and each draw
    takes a line uniformly among the lines that have sites, then a site uniformly on it: long lines,
    which hold more sites, are no likelier to carry the bug, so line length alone cannot say where it
    is. Deterministic for a given `rng` state.
    """
    selected = _selected(kinds)
    with _deep_code_is_a_value_error():
        return _tamper(_Ctx(code), selected, rng, max_samples, line_uniform)


def _tamper(
    ctx: _Ctx, selected: list[str], rng: random.Random, max_samples: int, line_uniform: bool = False
) -> list[Tampering]:
    pools = {kind: sites for kind in selected if (sites := list(_FINDERS[kind](ctx)))}
    used: set[tuple[int, int]] = set()
    seen = {ctx.src.text}
    out: list[Tampering] = []
    if line_uniform:
        return _tamper_by_line(ctx, pools, rng, max_samples, used, seen)
    while len(out) < max_samples and pools:
        order = list(pools)
        rng.shuffle(order)
        for kind in order:
            if len(out) >= max_samples:
                break
            result = _draw(ctx, kind, pools[kind], used, seen, rng)
            if result is not None:
                out.append(result)
            if not pools[kind]:
                del pools[kind]
    return out


def _site_line(ctx: _Ctx, site: _Site) -> int:
    """The line a site sits on: its target's first line, else the first line its edits touch."""
    return _line(site.target) or min((ctx.src.line_of(e.start) for e in site.edits), default=0)


def _tamper_by_line(
    ctx: _Ctx,
    pools: dict[str, list[_Site]],
    rng: random.Random,
    max_samples: int,
    used: set[tuple[int, int]],
    seen: set[str],
) -> list[Tampering]:
    """Draws a line uniformly among the lines with sites, then a site uniformly on it; a site that
    yields nothing new is dropped (and a line with no sites left) and the draw is repeated."""
    by_line: dict[int, list[tuple[str, _Site]]] = {}
    for kind, sites in pools.items():
        for site in sites:
            by_line.setdefault(_site_line(ctx, site), []).append((kind, site))
    out: list[Tampering] = []
    while len(out) < max_samples and by_line:
        line = rng.choice(sorted(by_line))
        sites = by_line[line]
        kind, site = sites.pop(rng.randrange(len(sites)))
        if not sites:
            del by_line[line]
        result = _try_site(ctx, kind, site, used, seen, rng)
        if result is not None:
            out.append(result)
    return out


def _draw(
    ctx: _Ctx, kind: str, sites: list[_Site], used: set[tuple[int, int]], seen: set[str], rng: random.Random
) -> Tampering | None:
    """Pops random sites of one kind until one yields a new tampering."""
    while sites:
        result = _try_site(ctx, kind, sites.pop(rng.randrange(len(sites))), used, seen, rng)
        if result is not None:
            return result
    return None


def _try_site(
    ctx: _Ctx, kind: str, site: _Site, used: set[tuple[int, int]], seen: set[str], rng: random.Random
) -> Tampering | None:
    """The first of the site's edits, in random order, that yields a tampering not seen before."""
    key = ctx.span(site.target)
    if key in used:
        return None
    edits = list(site.edits)
    rng.shuffle(edits)
    for edit in edits:
        result = _tampering(ctx, kind, edit, rng)
        if result is not None and result.code not in seen:
            used.add(key)
            seen.add(result.code)
            return result
    return None
