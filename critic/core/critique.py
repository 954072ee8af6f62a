"""The critique format: how a critic is asked for a critique, how a critique is written, and how its
quotes are tied back to the code.

Bug insertion, the rubric rater, the RL trainer, `critic review` and the annotation app all read and
write critiques through this module, so the format is defined in exactly one place. It is stdlib only
because it sits on the CLI's fast path.

A critique is markdown: an optional preamble, then *highlights*. A highlight is a fenced block holding a
verbatim quote of the code, followed by a free-text comment that runs up to the next opening fence::

    The loop skips the last element.

    ```
    for i in range(len(xs) - 1):
    ```
    `range` already stops before `len(xs)`; the `- 1` drops the last item.

Quotes are what make a critique checkable: each one is mapped back to the lines of the code it quotes,
and a quote found nowhere in the code is a hallucination. The model ends its critique with
`END_OF_TURN`, Gemma's end-of-turn marker, so public Gemma 2 instruct checkpoints speak the same format.
"""

from __future__ import annotations

import re
from bisect import bisect_right
from collections.abc import Iterable
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Literal

from critic.core.tokens import BOS, END_OF_TURN, START_OF_TURN

__all__ = [
    "END_OF_TURN",
    "HIGHLIGHT_FENCE",
    "INSTRUCTION",
    "NO_BUGS",
    "START_OF_TURN",
    "Critique",
    "Highlight",
    "MatchKind",
    "build_prompt",
    "code_lines",
    "code_spans",
    "critique_completion_end",
    "format_critique",
    "highlight_overlaps",
    "line_span_of",
    "open_highlight",
    "parse_critique",
    "request",
    "split_request",
    "terminate_critique",
    "trim_for_continuation",
]

# FSBS forces a highlight by appending this to the critique so far: whatever the model writes after an
# opening fence is, by this format, a quote.
HIGHLIGHT_FENCE = "```"

INSTRUCTION = (
    "Find the bugs in the following Python code. For each problem, quote the problematic snippet "
    "verbatim, copied exactly from the code, in its own ``` fenced block, and explain the problem "
    "right after the block. If you find no bugs, say so."
)

# What a critic says of code it finds nothing wrong with: the reference a finding's confidence is
# measured against, and the training target for clean code.
NO_BUGS = "I found no bugs in this code."
# The comment of a line claim. A finding's confidence is the reward model's score of its quote with this
# comment, not with the policy's prose, against NO_BUGS: its belief that the quoted lines hold a bug,
# which a comment that merely reads well cannot raise (the rank stage trains it, rl/pairs.py).
LINE_CLAIM = "This is a bug."

MatchKind = Literal["exact", "whitespace"]

# A line that opens a fenced block: three or more backticks, then an optional info string that, as in
# CommonMark, holds no backtick (so inline code such as ```x``` is not a fence).
_OPEN = re.compile(r"[ \t]*(`{3,})([^`]*)")
# A line that closes the open block: a backtick run at least as long as the opening one. Text after the
# run is taken as the start of the comment, since models sometimes write the comment on the fence line.
_CLOSE = re.compile(r"[ \t]*(`{3,})(.*)")
# What may follow an opening fence as a language tag (python, py, c++, objective-c, ...). Anything else
# on the opening line is the first line of the quote: after FSBS appends a fence, the model may start
# the quote on the same line.
_LANG_TAG = re.compile(r"[\w.+#-]*")
_BACKTICK_RUN = re.compile(r"`+")


@dataclass(frozen=True, slots=True)
class Highlight:
    """One quote of the code and the comment on it.

    `start_line`/`end_line` are 1-based and inclusive: the lines of the code the quote touches. They are
    None, as is `match`, when the quote could not be found in the code.
    """

    quote: str
    comment: str = ""
    start_line: int | None = None
    end_line: int | None = None
    match: MatchKind | None = None

    @property
    def hallucinated(self) -> bool:
        return self.match is None

    @property
    def lines(self) -> range:
        """The quoted line numbers; empty for a hallucinated quote, so membership tests need no guard."""
        if self.start_line is None or self.end_line is None:
            return range(0)
        return range(self.start_line, self.end_line + 1)


@dataclass(slots=True)
class Critique:
    """A parsed critique. `text` is the critique as parsed: line endings normalised, end marker cut."""

    highlights: list[Highlight] = field(default_factory=list)
    preamble: str = ""
    text: str = ""

    @property
    def valid_highlights(self) -> list[Highlight]:
        return [h for h in self.highlights if not h.hallucinated]

    @property
    def hallucinated(self) -> list[Highlight]:
        """The highlights whose quote is not in the code; truthy exactly when there is one."""
        return [h for h in self.highlights if h.hallucinated]


# --- prompt and completion ------------------------------------------------------------------------


def build_prompt(code: str) -> str:
    """The critique request for `code`, as one Gemma user turn followed by the opening of the model turn.

    The code block's fence is longer than any backtick run in the code, so code that itself contains
    ``` cannot close the block early and leak into the instruction.
    """
    code = _normalize_newlines(code).rstrip("\n")
    fence = _fence_for(code)
    return (
        f"{START_OF_TURN}user\n{INSTRUCTION}\n\n{fence}python\n{code}\n{fence}{END_OF_TURN}\n"
        f"{START_OF_TURN}model\n"
    )


def request(code: str) -> str:
    """The whole text a critic is trained and sampled on: <bos>, then `build_prompt`. The tokenizer
    reads "<bos>" as its special token, so encoding this is the prompt's token ids."""
    return BOS + build_prompt(code)


_REQUEST = re.compile(
    rf"{START_OF_TURN}user\n.*?\n\n(?P<fence>`{{3,}})python\n(?P<code>.*?)\n(?P=fence){END_OF_TURN}\n"
    rf"{START_OF_TURN}model\n",
    re.DOTALL,
)


def split_request(text: str) -> tuple[str, str] | None:
    """(code, critique) of a critique request followed by the model's answer, or None if `text` does
    not contain a request: the inverse of build_prompt, for code that sees only token sequences (PPO)."""
    match = _REQUEST.search(text)
    if match is None:
        return None
    return match["code"], text[match.end() :]


def critique_completion_end(completion: str) -> int | None:
    """Where the critique ends in a sampled completion, or None if the model has not finished it.

    The model ends a critique with END_OF_TURN; anything it samples after that is not part of it.
    """
    at = completion.find(END_OF_TURN)
    return None if at < 0 else at


def terminate_critique(critique: str) -> str:
    """The training target for `critique`: the critique followed by END_OF_TURN, so the model learns
    to stop. Idempotent."""
    end = critique_completion_end(critique)
    if end is not None:
        critique = critique[:end]
    return critique.rstrip() + END_OF_TURN


def open_highlight(critique_so_far: str) -> str:
    """`critique_so_far` with an opening fence appended on a line of its own, so the parser sees it.

    This is how FSBS forces a highlight: a fence glued to the end of a sentence would not open a block.
    """
    if not critique_so_far or critique_so_far.endswith("\n"):
        return critique_so_far + HIGHLIGHT_FENCE
    return f"{critique_so_far}\n\n{HIGHLIGHT_FENCE}"


def trim_for_continuation(critique: str) -> str:
    """What FSBS continues from: the critique up to the first paragraph of its last closed highlight's
    comment. The end marker, a concluding paragraph without a highlight ("Otherwise the code looks
    fine.") and a highlight left unclosed by the token budget are dropped."""
    end = critique_completion_end(critique)
    lines = _normalize_newlines(critique if end is None else critique[:end]).split("\n")
    fence, cut = 0, 0  # cut: number of lines kept
    in_comment = has_text = False
    for number, line in enumerate(lines):
        if fence:
            close = _CLOSE.fullmatch(line)
            if close and len(close[1]) >= fence:
                fence, cut = 0, number + 1
                in_comment, has_text = True, bool(close[2].strip())
        elif opening := _OPEN.fullmatch(line):
            fence, in_comment = len(opening[1]), False
        elif in_comment:
            if line.strip():
                cut, has_text = number + 1, True
            elif has_text:  # a blank line after comment text ends the comment's first paragraph
                in_comment = False
    return "\n".join(lines[:cut]).rstrip()


# --- writing ---------------------------------------------------------------------------------------


def format_critique(highlights: Iterable[tuple[str, str] | Highlight], preamble: str = "") -> str:
    """Render quote/comment pairs in exactly the format `parse_critique` reads.

    Used for gold critiques and SFT targets, so it must round-trip: parsing the result gives back each
    quote without its leading/trailing blank lines and each comment without surrounding whitespace
    (line endings normalised to \\n), and nothing else changes. Text that could not round-trip raises
    ValueError rather than silently becoming a different critique: a comment or preamble line that would
    open a fence, or an END_OF_TURN marker anywhere.
    """
    parts = []
    preamble = _checked_prose(preamble, "preamble")
    if preamble:
        parts.append(preamble)
    for item in highlights:
        quote, comment = (item.quote, item.comment) if isinstance(item, Highlight) else item
        if END_OF_TURN in quote:
            raise ValueError(f"a quote cannot contain {END_OF_TURN!r}")
        quote = _strip_blank_lines(_normalize_newlines(quote))
        fence = _fence_for(quote)
        block = f"{fence}\n{quote}\n{fence}"
        comment = _checked_prose(comment, "comment")
        parts.append(f"{block}\n{comment}" if comment else block)
    return "\n\n".join(parts)


def _checked_prose(text: str, what: str) -> str:
    text = _normalize_newlines(text).strip()
    if END_OF_TURN in text:
        raise ValueError(f"a {what} cannot contain {END_OF_TURN!r}")
    for line in text.split("\n"):
        if _OPEN.fullmatch(line):
            raise ValueError(f"a {what} line would open a fenced block: {line!r}")
    return text


# --- reading ---------------------------------------------------------------------------------------


def parse_critique(text: str, code: str) -> Critique:
    """Split a critique into highlights and find each quote in `code`.

    Tolerant of what sampled critiques look like: CRLF, language tags, blank lines around a quote,
    comment-less highlights, no highlights at all, and text after END_OF_TURN (dropped). A final fence
    that is never closed (FSBS samples are often cut off) still counts as a highlight, with an empty
    comment: the quote is usually whole, and dropping it would hide hallucinations from the rater.
    """
    end = critique_completion_end(text)
    text = _normalize_newlines(text if end is None else text[:end]).strip()
    preamble, blocks = _split_blocks(text)
    index = _code_index(_normalize_newlines(code))
    highlights = []
    for quote, comment in blocks:
        span = index.locate(quote)
        if span is None:
            highlights.append(Highlight(quote, comment))
        else:
            highlights.append(Highlight(quote, comment, *span))
    return Critique(highlights, preamble, text)


def line_span_of(quote: str, code: str) -> tuple[int, int, MatchKind] | None:
    """The 1-based inclusive lines of `code` that `quote` covers, and how it matched; None if absent.

    An exact substring match wins (first occurrence); failing that, a match that ignores whitespace
    altogether, so a quote whose indentation, spacing or line breaks were changed is still found.
    """
    return _code_index(_normalize_newlines(code)).locate(_normalize_newlines(quote))


def highlight_overlaps(highlight: Highlight, lines: Iterable[int]) -> bool:
    """Whether the highlight quotes any of `lines`; a hallucinated highlight covers nothing."""
    span = highlight.lines
    return any(line in span for line in lines)


def code_spans(text: str) -> list[str]:
    """The inline code spans of markdown prose (a comment, a description), in order.

    A span opens with a run of backticks and closes at the next run of exactly as many, on the same line:
    inline code is one line here, which is also how constrained decoding (critic.inference.quoting) writes it.
    As in CommonMark, runs of another length inside are content, an opening run that is never closed is
    literal text, and one space is stripped from each end of content that has a space at both ends and is not
    all spaces (so `` `x` `` holds `x`). Unlike CommonMark, a backslash does not escape a backtick. The
    evaluation counts a span as real when it appears verbatim in the code.
    """
    spans = []
    for line in _normalize_newlines(text).split("\n"):
        runs = [(m.start(), m.end()) for m in _BACKTICK_RUN.finditer(line)]
        i = 0
        while i < len(runs):
            start, end = runs[i]
            same = (j for j in range(i + 1, len(runs)) if runs[j][1] - runs[j][0] == end - start)
            closer = next(same, None)
            if closer is None:
                i += 1
                continue
            content = line[end : runs[closer][0]]
            if len(content) >= 2 and content[0] == content[-1] == " " and content.strip(" "):
                content = content[1:-1]
            spans.append(content)
            i = closer + 1
    return spans


def _split_blocks(text: str) -> tuple[str, list[tuple[str, str]]]:
    """The preamble and the (quote, comment) pairs of a normalised critique."""
    preamble: list[str] = []
    blocks: list[tuple[list[str], list[str]]] = []
    fence = 0  # length of the open block's fence; 0 outside a block
    for line in text.split("\n"):
        if fence:
            close = _CLOSE.fullmatch(line)
            if close and len(close[1]) >= fence:
                fence = 0
                blocks[-1][1].append(close[2])
            else:
                blocks[-1][0].append(line)
        elif opening := _OPEN.fullmatch(line):
            fence = len(opening[1])
            rest = opening[2].strip()
            blocks.append(([] if _LANG_TAG.fullmatch(rest) else [rest], []))
        else:
            (blocks[-1][1] if blocks else preamble).append(line)
    pairs = [(_strip_blank_lines("\n".join(q)), "\n".join(c).strip()) for q, c in blocks]
    return "\n".join(preamble).strip(), pairs


class _CodeIndex:
    """Quote lookups in one piece of code, shared by all the quotes of a critique.

    The whitespace-insensitive view is the code with all whitespace, line breaks included, removed. A
    quote found there may differ from the code in indentation, spacing or where its lines break (a
    call re-flowed onto one line), and may still be a fragment of a line. It is built only when some
    quote needs it.
    """

    def __init__(self, code: str) -> None:
        self.code = code
        self._flat: str | None = None
        self._flat_starts: list[int] = []  # where each non-blank line begins in the flat view
        self._flat_lines: list[int] = []  # that line's number

    def locate(self, quote: str) -> tuple[int, int, MatchKind] | None:
        quote = _strip_blank_lines(quote)
        if not quote.strip():
            return None
        at = self.code.find(quote)
        if at >= 0:
            start = self.code.count("\n", 0, at) + 1
            return start, start + quote.count("\n"), "exact"
        flat_quote = "".join(quote.split())
        at = self._flat_view().find(flat_quote)
        if at < 0:
            return None
        return self._flat_line(at), self._flat_line(at + len(flat_quote) - 1), "whitespace"

    def _flat_view(self) -> str:
        if self._flat is None:
            # Built into locals and published at the end, so a shared cached index stays consistent.
            pieces: list[str] = []
            starts: list[int] = []
            numbers: list[int] = []
            offset = 0
            for number, line in enumerate(code_lines(self.code), start=1):
                words = line.split()
                if words:
                    piece = "".join(words)
                    pieces.append(piece)
                    starts.append(offset)
                    numbers.append(number)
                    offset += len(piece)
            self._flat_starts, self._flat_lines = starts, numbers
            self._flat = "".join(pieces)
        return self._flat

    def _flat_line(self, offset: int) -> int:
        return self._flat_lines[bisect_right(self._flat_starts, offset) - 1]


@lru_cache(maxsize=16)
def _code_index(code: str) -> _CodeIndex:
    # Callers check many quotes against the same file (the rater, FSBS candidates); keep its index.
    return _CodeIndex(code)


def code_lines(text: str) -> list[str]:
    """The lines of code or prose, line 1 first: the one way critic splits lines, so every line number
    (quotes, findings, bug lines, the annotation app) agrees. CR LF, CR and LF each end a line, as in
    Python's own reading of source, and a final line end ends the last line rather than starting an
    empty one."""
    lines = _normalize_newlines(text).split("\n")
    return lines[:-1] if len(lines) > 1 and lines[-1] == "" else lines


def _normalize_newlines(text: str) -> str:
    return text.replace("\r\n", "\n").replace("\r", "\n")


def _strip_blank_lines(text: str) -> str:
    """Drop leading and trailing whitespace-only lines, keeping the indentation of the first kept line."""
    lines = text.split("\n")
    start, end = 0, len(lines)
    while start < end and not lines[start].strip():
        start += 1
    while end > start and not lines[end - 1].strip():
        end -= 1
    return "\n".join(lines[start:end])


def _fence_for(content: str) -> str:
    """A backtick fence longer than any backtick run in `content`, so nothing inside can close it."""
    longest = max((len(run) for run in _BACKTICK_RUN.findall(content)), default=0)
    return "`" * max(3, longest + 1)
