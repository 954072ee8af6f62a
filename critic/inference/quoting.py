"""Quote-constrained decoding: a forced highlight quotes the code verbatim, and so does inline code.

A quote that is not in the code is worthless: the parser marks it hallucinated and `critic review`
drops it. Small critics choose the right line far more often than they spell it right, so while FSBS's
forced highlight is being written only tokens that keep its quote a verbatim run of code lines
(from a line's start or its indentation), or that close it, are allowed. The model still
chooses what to quote and how many lines; it cannot misspell them.

With `code_spans`, the comment after the quote is followed too: text stays free, but an inline code
span the model opens (a backtick run, as `critic.core.critique.code_spans` reads it) must hold a verbatim,
non-empty, one-line piece of the code, and may close only at a character boundary. A span may quote
any part of the code, so its text is followed on a suffix automaton of the code's bytes. A ``` fence
opened at a comment line's start (with an optional language tag) starts a new quote, constrained like
the forced one. Without `code_spans` the critic writes freely once the block is closed.

The allowed tokens at a step are found by walking a trie of the vocabulary's token strings along the
automaton, so a step costs about (states that still match) x (token length), not a pass over the
vocabulary. Outside spans nearly every token is allowed: only the few tokens holding a backtick are
checked, and the step is described by the tokens it forbids.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import cached_property, lru_cache

import torch

from critic.core.critique import HIGHLIGHT_FENCE

CLOSE = ("\n" + HIGHLIGHT_FENCE).encode()  # ends a quote
NEWLINE = ord("\n")
TICK = ord("`")
_BLANK = frozenset(b" \t")
_TAG = frozenset(b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.+#-")  # language tags
_OPEN, _DONE = ("open",), ("done",)
# The automaton reads bytes: a byte-level BPE token may hold part of a character.
# In a quote, a code-mode state is (offset in the code's bytes, -1, quoted a non-blank byte yet); a
# closing state is (offset, k, True) with k bytes of CLOSE written.
# In a comment (code_spans), states are tagged tuples:
#   ("free", at_line_start)          prose; at_line_start: nothing but blanks on the line so far
#   ("tail",)                        right after a closing fence: more backticks still belong to it
#   ("run", n, at_line_start)        n backticks written: a span's opening run, or a fence
#   ("tag",)                         a fence's language tag, up to its newline
#   ("span", n, sam, pending)        inside a span opened by n backticks; sam: the suffix automaton's
#                                    state for the content so far; pending: continuation bytes owed
#   ("close", n, m, sam)             m backticks written inside a span: its closing run if m == n
#   ("fqhead",), ("fq", ls, m)       an unconstrained quote (quotes=False): its fence line, then its
#                                    lines, m backticks at the start of one (3 close it)
State = tuple
_FREE_LIKE = frozenset({"free", "tail", "fq", "fqhead"})  # states where only backticks can go wrong


def _byte_decoder() -> dict[str, int]:
    """The byte-level BPE alphabet (GPT-2's bytes_to_unicode) back to bytes."""
    printable = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), 256)]
    chars, extra = list(printable), 0
    for b in range(256):
        if b not in printable:
            printable.append(b)
            chars.append(256 + extra)
            extra += 1
    return {chr(c): b for b, c in zip(printable, chars, strict=True)}


class TokenTrie:
    """The vocabulary's tokens as a byte trie (special tokens left out)."""

    def __init__(self, pieces: Sequence[bytes | None]) -> None:
        self.pieces = list(pieces)
        self.root: dict = {}
        for token, piece in enumerate(self.pieces):
            if not piece:
                continue
            node = self.root
            for byte in piece:
                node = node.setdefault(byte, {})
            node.setdefault(None, []).append(token)
        self.ticked = [t for t, p in enumerate(self.pieces) if p and TICK in p]  # hold a backtick
        self.unlisted = [t for t, p in enumerate(self.pieces) if not p]  # special tokens: not in the trie

    @classmethod
    def of(cls, tokenizer) -> TokenTrie:
        special = {t.content for t in tokenizer.get_added_tokens_decoder().values()}
        decoder = _byte_decoder()
        pieces: list[bytes | None] = [None] * tokenizer.get_vocab_size()
        for text, token in tokenizer.get_vocab().items():
            if text not in special and all(c in decoder for c in text) and token < len(pieces):
                pieces[token] = bytes(decoder[c] for c in text)
        return cls(pieces)

    def subtree(self, node: dict) -> list[int]:
        out, stack = [], [node]
        while stack:
            current = stack.pop()
            for byte, child in current.items():
                if byte is None:
                    out.extend(child)
                else:
                    stack.append(child)
        return out


def _suffix_automaton(data: bytes) -> list[dict[int, int]]:
    """The transitions of the suffix automaton of `data`: a byte string is a substring of `data`
    exactly when it can be read from state 0."""
    nxt: list[dict[int, int]] = [{}]
    link, length, last = [-1], [0], 0
    for c in data:
        cur = len(nxt)
        nxt.append({})
        length.append(length[last] + 1)
        link.append(0)
        p = last
        while p != -1 and c not in nxt[p]:
            nxt[p][c] = cur
            p = link[p]
        if p != -1:
            q = nxt[p][c]
            if length[p] + 1 == length[q]:
                link[cur] = q
            else:
                clone = len(nxt)
                nxt.append(dict(nxt[q]))
                length.append(length[p] + 1)
                link.append(link[q])
                while p != -1 and nxt[p].get(c) == q:
                    nxt[p][c] = clone
                    p = link[p]
                link[q] = link[cur] = clone
        last = cur
    return nxt


class _Shared:
    """What every constraint over the same code, vocabulary and mode can share: the code's suffix
    automaton and the answers already worked out for single comment states (FSBS follows many rows
    over one chunk, and a span's states recur)."""

    def __init__(self, code: bytes) -> None:
        self.code = code
        self.memo: dict[State, tuple[bool, list[int]]] = {}

    @cached_property
    def sam(self) -> list[dict[int, int]]:
        return _suffix_automaton(self.code)


@lru_cache(maxsize=64)
def _shared(code: bytes, trie: TokenTrie, quotes: bool, code_spans: bool) -> _Shared:
    return _Shared(code)


def _owed(pending: int, byte: int) -> int:
    """Continuation bytes still owed after `byte` of valid UTF-8 (code bytes are valid)."""
    if pending:
        return pending - 1
    return 0 if byte < 0xC0 else 1 if byte < 0xE0 else 2 if byte < 0xF0 else 3


class QuoteConstraint:
    """One row's constraint: follows the tokens written after a forced opening fence.

    quotes: the quote must be verbatim code (else it is free, and only followed to find its end).
    code_spans: after the quote, inline code spans must be verbatim code too (else the comment is free
    and the constraint ends with the quote).
    """

    def __init__(self, code: str, trie: TokenTrie, *, code_spans: bool = False, quotes: bool = True) -> None:
        if not quotes and not code_spans:
            raise ValueError("a constraint that constrains nothing")
        self.code, self.trie = code.rstrip("\n").encode(), trie  # a quote never takes the final newline
        self.quotes, self.code_spans = quotes, code_spans
        self._closed: State = ("tail",) if code_spans else _DONE
        self._shared = _shared(self.code, trie, quotes, code_spans)
        self.states: set[State] = {_OPEN if quotes else ("fqhead",)}

    @cached_property
    def _line_starts(self) -> list[int]:
        """Where a quote may begin: a line's start, or its first non-blank byte (quotes often drop
        the indentation, and the parser finds them either way)."""
        starts = [0] + [i + 1 for i, c in enumerate(self.code) if c == NEWLINE and i + 1 < len(self.code)]
        indented = []
        for start in starts:
            first = start
            while first < len(self.code) and self.code[first] in b" \t":
                first += 1
            if first > start and first < len(self.code) and self.code[first] != NEWLINE:
                indented.append(first)
        return starts + indented

    def _quote_starts(self) -> set[State]:
        """The states just after a fence line: a new quote begins."""
        if self.quotes:
            return {(s, -1, False) for s in self._line_starts}
        return {("fq", True, 0)}

    @property
    def active(self) -> bool:
        return _DONE not in self.states and bool(self.states)

    def _step(self, states: set[State], char: int) -> set[State]:
        code, out = self.code, set()
        for state in states:
            tag = state[0]
            if type(tag) is int:  # inside a constrained quote
                offset, k, nonblank = state
                if k < 0:
                    if offset < len(code) and code[offset] == char:
                        out.add((offset + 1, -1, nonblank or char > 127 or not chr(char).isspace()))
                    # a quote may end after real text, but not inside a character
                    whole = offset == len(code) or not 0x80 <= code[offset] < 0xC0
                    if nonblank and whole and char == CLOSE[0]:
                        out.add((offset, 1, True))
                elif CLOSE[k] == char:
                    if k + 1 == len(CLOSE):
                        return {self._closed}  # the block is closed, whichever line was meant
                    out.add((offset, k + 1, True))
            elif tag == "done":
                out.add(_DONE)
            elif tag == "open":
                if char == NEWLINE:
                    out.update(self._quote_starts())
            else:
                after = self._comment_step(state, char)
                if after is not None:
                    if after == self._closed:
                        return {after}
                    out.add(after)
        return out

    def _comment_step(self, state: State, char: int) -> State | None:
        """The comment automaton (and an unconstrained quote's): deterministic; None: not allowed."""
        tag = state[0]
        if tag == "free":
            if char == TICK:
                return ("run", 1, state[1])
            if char == NEWLINE:
                return ("free", True)
            return state if char in _BLANK else ("free", False)
        if tag == "span":
            _, n, sam, pending = state
            if char == TICK:
                return None if pending else ("close", n, 1, sam)
            to = self._shared.sam[sam].get(char)
            return None if to is None or char == NEWLINE else ("span", n, to, _owed(pending, char))
        if tag == "close":
            _, n, m, sam = state
            if char == TICK:  # a longer run closes nothing: it must be content
                return ("close", n, m + 1, sam) if m < n or self._read(sam, m + 1) is not None else None
            if m == n:
                return self._comment_step(("free", False), char)
            sam = self._read(sam, m)
            to = None if sam is None or char == NEWLINE else self._shared.sam[sam].get(char)
            return None if to is None else ("span", n, to, _owed(0, char))
        if tag == "run":
            _, n, at_line_start = state
            if at_line_start and n == 3:  # a fence: a new quote, after an optional language tag
                if char == NEWLINE:
                    return "quote"
                return ("tag",) if char in _TAG else None
            if char == TICK:
                return ("run", n + 1, at_line_start)
            if char == NEWLINE:  # an opening run with nothing after it on its line is literal text
                return ("free", True)
            to = self._shared.sam[0].get(char)
            if to is None or 0x80 <= char < 0xC0:  # content starts at a character
                return None
            return ("span", n, to, _owed(0, char))
        if tag == "tail":
            if char == TICK:
                return state
            return ("free", char == NEWLINE)
        if tag == "tag":
            return "quote" if char == NEWLINE else state if char in _TAG else None
        if tag == "fqhead":  # a backtick would make the fence line inline code instead
            return None if char == TICK else ("fq", True, 0) if char == NEWLINE else state
        if tag == "fq":
            _, at_line_start, m = state
            if char == NEWLINE:
                return ("fq", True, 0)
            if at_line_start and char == TICK:
                return self._closed if m == 2 else ("fq", True, m + 1)
            return state if at_line_start and m == 0 and char in _BLANK else ("fq", False, 0)
        raise AssertionError(state)

    def _read(self, sam: int | None, ticks: int) -> int | None:
        """The suffix automaton's state after `ticks` more backticks of span content; None if the
        code has no such text."""
        automaton = self._shared.sam
        for _ in range(ticks):
            if sam is None:
                return None
            sam = automaton[sam].get(TICK)
        return sam

    def _advance_states(self, states: set[State], char: int) -> set[State]:
        out = self._step(states, char)
        if "quote" in out:  # a fence line ended: a new quote starts
            out.discard("quote")
            out |= self._quote_starts()
        return out

    def mask(self) -> tuple[bool, list[int]]:
        """(True, ids): only `ids` are allowed; (False, ids): everything but `ids` is."""
        states = self.states
        state = next(iter(states)) if len(states) == 1 else _OPEN
        if state[0] in ("open", "done") or type(state[0]) is int:  # in a constrained quote
            return True, self._walk(states)
        memo = self._shared.memo  # comment states recur: each is worked out once per code
        if state not in memo:
            # Prose, or a span's closing run (the next byte that is not a backtick closes it): any
            # token without a backtick is fine, so only the few with one are checked.
            if state[0] in _FREE_LIKE or (state[0] == "close" and state[1] == state[2]):
                pieces = self.trie.pieces
                memo[state] = False, [t for t in self.trie.ticked if not self._survives(states, pieces[t])]
            else:
                memo[state] = True, self._walk(states)
        return memo[state]

    def _survives(self, states: set[State], piece: bytes) -> bool:
        for char in piece:
            states = self._advance_states(states, char)
            if not states:
                return False
        return True

    def allowed(self) -> list[int]:
        """Token ids that keep the quote verbatim or close it (and, with code_spans, the comment's
        spans verbatim)."""
        only, ids = self.mask()
        if only:
            return ids
        forbidden = set(ids)
        return [t for t, p in enumerate(self.trie.pieces) if t not in forbidden]

    def _walk(self, states: set[State]) -> list[int]:
        found: list[int] = []
        stack = [(self.trie.root, states)]
        while stack:
            node, states = stack.pop()
            if len(states) == 1 and (state := next(iter(states)))[0] == "span":
                self._walk_span(node, state, found, stack)
                continue
            if len(states) == 1 and state[0] == "run" and not (state[2] and state[1] == 3):
                self._walk_run(node, state, found, stack)
                continue
            for char, child in node.items():
                if char is None:
                    continue
                after = self._advance_states(states, char)
                if _DONE in after:
                    found.extend(self.trie.subtree(child))  # the block is closed: the rest is free
                elif after:
                    found.extend(child.get(None, ()))
                    stack.append((child, after))
        return found

    def _walk_span(self, node: dict, state: State, found: list[int], stack: list) -> None:
        """_walk's inner step inside a span, where it spends its time: only the bytes that both the
        trie and the suffix automaton have are followed."""
        _, n, sam, pending = state
        moves = self._shared.sam[sam]
        for char in moves.keys() & node.keys():
            if char != NEWLINE and char != TICK:
                child = node[char]
                found.extend(child.get(None, ()))
                stack.append((child, {("span", n, moves[char], _owed(pending, char))}))
        if TICK in node and not pending:  # the span may close (or a backtick run begins)
            child = node[TICK]
            after = {("close", n, 1, sam)}
            found.extend(child.get(None, ()))
            stack.append((child, after))

    def _walk_run(self, node: dict, state: State, found: list[int], stack: list) -> None:
        """_walk's step after an opening run: a span's first byte, a longer run, or a newline."""
        _, n, at_line_start = state
        moves = self._shared.sam[0]
        for char in moves.keys() & node.keys():
            if char != NEWLINE and char != TICK and not 0x80 <= char < 0xC0:  # a character's start
                child = node[char]
                found.extend(child.get(None, ()))
                stack.append((child, {("span", n, moves[char], _owed(0, char))}))
        for char, after in ((TICK, ("run", n + 1, at_line_start)), (NEWLINE, ("free", True))):
            if char in node:
                found.extend(node[char].get(None, ()))
                stack.append((node[char], {after}))

    def advance(self, token: int) -> None:
        piece = self.trie.pieces[token] or b""
        states = self.states
        for char in piece:
            states = self._advance_states(states, char)
            if _DONE in states:
                break
        self.states = {_DONE} if _DONE in states else states


def constrain(logits: torch.Tensor, constraints: Sequence[QuoteConstraint | None]) -> torch.Tensor:
    """`logits` [B, V] with every token an active row's constraint forbids set to -inf."""
    rows = [(r, c) for r, c in enumerate(constraints) if c is not None and c.active]
    if not rows:
        return logits
    logits = logits.clone()
    for r, constraint in rows:
        only, ids = constraint.mask()
        if not only:
            if ids:
                logits[r, torch.tensor(ids, dtype=torch.long, device=logits.device)] = float("-inf")
            continue
        allowed = torch.tensor(ids, dtype=torch.long, device=logits.device)
        if not len(allowed):
            continue  # nothing fits (no token spells the next bytes): leave the row free
        keep = logits[r, allowed]
        logits[r] = float("-inf")
        logits[r, allowed] = keep
    return logits
