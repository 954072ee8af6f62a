"""Quote-constrained decoding: a forced highlight quotes the code verbatim.

A quote that is not in the code is worthless: the parser marks it hallucinated and `critic review`
drops it. Small critics choose the right line far more often than they spell it right, so while FSBS's
forced highlight is being written only tokens that keep its quote a verbatim run of code lines
(from a line's start or its indentation), or that close it, are allowed. The model still
chooses what to quote and how many lines; it cannot misspell them. Once the block is closed the critic writes
freely again.

The allowed tokens at a step are found by walking a trie of the vocabulary's token strings along a
small automaton over the code, so a step costs about (lines that still match) x (token length), not
a pass over the vocabulary.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import cached_property

import torch

from critic.critique import HIGHLIGHT_FENCE

CLOSE = ("\n" + HIGHLIGHT_FENCE).encode()  # ends a quote
NEWLINE = ord("\n")
_OPEN, _DONE = ("open",), ("done",)
# The automaton reads bytes: a byte-level BPE token may hold part of a character. A code-mode state
# is (offset in the code's bytes, -1, quoted a non-blank byte yet); a closing state is (offset, k, True)
# with k bytes of CLOSE written.
State = tuple


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


class QuoteConstraint:
    """One row's constraint: follows the tokens written after a forced opening fence."""

    def __init__(self, code: str, trie: TokenTrie) -> None:
        self.code, self.trie = code.rstrip("\n").encode(), trie  # a quote never takes the final newline
        self.states: set[State] = {_OPEN}

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

    @property
    def active(self) -> bool:
        return _DONE not in self.states and bool(self.states)

    def _step(self, states: set[State], char: int) -> set[State]:
        code, out = self.code, set()
        for state in states:
            if state == _DONE:
                out.add(_DONE)
            elif state == _OPEN:
                if char == NEWLINE:
                    out.update((s, -1, False) for s in self._line_starts)
            else:
                offset, k, nonblank = state
                if k < 0:
                    if offset < len(code) and code[offset] == char:
                        out.add((offset + 1, -1, nonblank or char > 127 or not chr(char).isspace()))
                    # a quote may end after real text, but not inside a character
                    whole = offset == len(code) or not 0x80 <= code[offset] < 0xC0
                    if nonblank and whole and char == CLOSE[0]:
                        out.add((offset, 1, True))
                elif CLOSE[k] == char:
                    out.add(_DONE if k + 1 == len(CLOSE) else (offset, k + 1, True))
        return out

    def allowed(self) -> list[int]:
        """Token ids that keep the quote verbatim or close it."""
        found: list[int] = []
        stack = [(self.trie.root, self.states)]
        while stack:
            node, states = stack.pop()
            for char, child in node.items():
                if char is None:
                    continue
                after = self._step(states, char)
                if _DONE in after:
                    found.extend(self.trie.subtree(child))  # the block is closed: the rest is free
                elif after:
                    found.extend(child.get(None, ()))
                    stack.append((child, after))
        return found

    def advance(self, token: int) -> None:
        piece = self.trie.pieces[token] or b""
        states = self.states
        for char in piece:
            states = self._step(states, char)
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
        allowed = torch.tensor(constraint.allowed(), dtype=torch.long, device=logits.device)
        if not len(allowed):
            continue  # nothing fits (no token spells the next bytes): leave the row free
        keep = logits[r, allowed]
        logits[r] = float("-inf")
        logits[r, allowed] = keep
    return logits
