"""Code analysis for bug insertion: the parsed code with source positions, and the questions about it
that every bug finder asks (which nodes may change, what a name's type probably is, which operator
token sits between two operands, what consumes a truth value).

It is kept apart so that each finder (critic.datagen.finders) only says where its bug goes and what
the tampered code reads there.
"""

from __future__ import annotations

import ast
import re
import warnings
from bisect import bisect_right
from collections.abc import Collection
from dataclasses import dataclass
from itertools import accumulate

# --- source positions ---

_LINE_RE = re.compile(r"[^\n]*\n|[^\n]+\Z")


def split_lines(text: str) -> list[str]:
    """Lines with their endings, split on '\\n' only, as the parser counts them."""
    return _LINE_RE.findall(text)


class Source:
    """The original text, with AST (line, byte column) positions turned into string offsets."""

    def __init__(self, text: str):
        self.text = text
        self.lines = split_lines(text)
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
DOC_OWNERS = (ast.Module, ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)


def is_docstring(node: ast.AST) -> bool:
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
    return field == "body" and index == 0 and isinstance(parent, DOC_OWNERS) and is_docstring(child)


@dataclass
class Var:
    """A local variable: the line of the statement that first binds it, and a guessed type."""

    line: int
    type: str | None


class Ctx:
    """Parsed code plus the lookups every finder needs: mutable nodes in source order, parent links,
    the enclosing function of each node, and the names bound anywhere (so builtins can be trusted)."""

    def __init__(self, code: str):
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                self.tree = ast.parse(code)
        except (SyntaxError, ValueError, RecursionError, MemoryError) as err:
            raise ValueError(f"tamper: code does not parse: {err}") from None
        self.src = Source(code)
        self.nodes: list[ast.AST] = []
        self.parent: dict[int, tuple[ast.AST, str, int | None]] = {}
        self.func: dict[int, ast.AST | None] = {}
        self.bound: set[str] = set()
        self._scopes: dict[int, dict[str, Var]] = {}
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
            self._unit_compiles[k] = compiles(self.tree if k is None else ast.Module([self.unit(k)], []))
        return self._unit_compiles[k]

    def scope(self, node: ast.AST) -> dict[str, Var]:
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


def compiles(tree: ast.AST) -> bool:
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


def _guess_type(node: ast.AST, scope: dict[str, Var]) -> str | None:
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


def _function_scope(fn: ast.AST) -> dict[str, Var]:
    """Parameters and names bound in `fn` itself, in order of first binding. Comprehension variables,
    globals/nonlocals and nested functions are left out: swapping those in is not a plausible bug."""
    scope: dict[str, Var] = {}
    excluded: set[str] = set()

    def bind(name: str, line: int, typ: str | None) -> None:
        if name not in scope:
            scope[name] = Var(line, typ)
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
                bind(name.id, first_line(node.optional_vars), None)
        elif isinstance(node, ast.NamedExpr):
            bind(node.target.id, node.lineno, _guess_type(node.value, scope))
        stack.extend(reversed(list(ast.iter_child_nodes(node))))
    for name in excluded:
        scope.pop(name, None)
    return scope


def first_line(node: ast.AST) -> int:
    """The first line of `node`; 0 for nodes without a position."""
    return getattr(node, "lineno", 0)


# --- what the finders ask about the code ---

CMP_RE = re.compile(r"<=|>=|==|!=|<|>|\bnot\s+in\b|\bis\s+not\b|\bin\b|\bis\b")
BIN_RE = re.compile(r"\*\*|//|<<|>>|[-+*/%@|&^]")
BOOL_RE = re.compile(r"\b(?:and|or)\b")
_COMMENT_RE = re.compile(r"#[^\n]*")


def find_op(ctx: Ctx, left: ast.AST, right: ast.AST, pattern: re.Pattern) -> tuple[int, int] | None:
    """The span of the operator token between two operands. The gap holds only parentheses,
    whitespace, comments and the operator, so masking comments is enough to find it."""
    lo, hi = ctx.span(left)[1], ctx.span(right)[0]
    gap = _COMMENT_RE.sub(lambda m: " " * len(m.group()), ctx.src.text[lo:hi])
    match = pattern.search(gap)
    return (lo + match.start(), lo + match.end()) if match else None


def strip_comment(line: str) -> str:
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


def int_value(node: ast.AST) -> int | None:
    """The value of an int literal, including a negated one (`-1`)."""
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub):
        inner = int_value(node.operand)
        return None if inner is None or not isinstance(node.operand, ast.Constant) else -inner
    if isinstance(node, ast.Constant) and type(node.value) is int:
        return node.value
    return None


def truth_role(ctx: Ctx, node: ast.AST) -> str:
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
