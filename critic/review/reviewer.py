"""`critic review`'s engine: files -> chunks -> FSBS -> findings on file lines.

Findings are what survives the noise filters users ask for: quotes that are not in the code are
never reported (a wrong line number is worse than no finding), nor are highlights without a
comment or with a quote too short to locate, findings under `min_score` confidence, duplicates of a
more confident finding on the same lines, suppressed lines, lines outside a --diff, and all but the
`max_findings` most confident.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from critic.core.critique import Highlight, code_lines
from critic.core.rules import classify
from critic.inference.fsbs import Critic, SearchResult
from critic.review.chunking import Chunk, chunk_source
from critic.review.settings import ReviewSettings

# Rows of one search are chunks x keep x samples: this many chunks keep a batch near 32 rows.
CHUNKS_PER_BATCH = 4
# A quote this short ("i", "x)") matches somewhere in almost any code: it cannot point at a line.
MIN_QUOTE_CHARS = 4
_IGNORE_FILE = re.compile(r"#\s*critic:\s*ignore-file\b")
_IGNORE_LINE = re.compile(r"#\s*critic:\s*ignore(?:\[(?P<codes>[A-Z0-9,\s]+)\])?(?![-\w])")
_SENTENCE_END = re.compile(r"(?<=[.!?])\s")
_INLINE_CODE = re.compile(r"(`+)[^`]*?\1")


@dataclass(frozen=True)
class Finding:
    path: str
    line: int
    column: int
    end_line: int
    end_column: int
    rule: str
    message: str  # the comment's first sentence, on one line
    comment: str
    quote: str
    score: float

    @property
    def fingerprint(self) -> str:
        """Stable across edits elsewhere in the file: the rule and the quoted code, not line numbers."""
        key = f"{self.rule}\0{' '.join(self.quote.split())}"
        return hashlib.sha256(key.encode()).hexdigest()[:32]


@dataclass(frozen=True)
class SourceFile:
    path: str  # as shown in reports
    text: str


@dataclass
class _Job:
    file: int
    chunk: Chunk


def load_critic(settings: ReviewSettings) -> Critic:
    """Policy, reward model and tokenizer named by the settings, checked to belong together."""
    from critic.core.errors import UserError
    from critic.core.tokenizer import load_tokenizer
    from critic.inference.calibration import Calibration
    from critic.model import load_causal_lm, load_reward_model

    policy = load_causal_lm(settings.model)
    reward = load_reward_model(settings.reward_model)
    tokenizer = load_tokenizer(settings.model)
    try:
        return Critic(policy, reward, tokenizer, Calibration.load(settings.reward_model))
    except ValueError as err:
        raise UserError(f"{settings.model}: {err}") from err


def review(
    critic: Critic,
    sources: list[SourceFile],
    settings: ReviewSettings,
    changed: dict[str, set[int]] | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> list[list[Finding]]:
    """Findings per source, sorted by line. With `changed` (path -> lines), only chunks touching a
    changed line are read and only findings on changed lines are reported."""
    raw = raw_findings(critic, sources, settings, changed, progress)
    return [
        filter_findings(found, source, settings, None if changed is None else changed.get(source.path, set()))
        for found, source in zip(raw, sources, strict=True)
    ]


def raw_findings(
    critic: Critic,
    sources: list[SourceFile],
    settings: ReviewSettings,
    changed: dict[str, set[int]] | None = None,
    progress: Callable[[int, int], None] | None = None,
    searches: list[list[SearchResult]] | None = None,
) -> list[list[Finding]]:
    """Every highlight of FSBS's pick that quotes the code, per source, before `filter_findings`
    (`review` is exactly `filter_findings` of these, so an evaluation can sweep min-score post hoc).
    With `searches`, it also receives each source's FSBS results, one per chunk."""
    jobs: list[_Job] = []

    def count(text: str) -> int:
        return len(critic.encode(text))

    for index, source in enumerate(sources):
        if _IGNORE_FILE.search(source.text):
            continue
        lines = None if changed is None else changed.get(source.path, set())
        for chunk in chunk_source(source.text, settings.chunk_tokens, count):
            if lines is None or any(n in lines for n in chunk.lines):
                jobs.append(_Job(index, chunk))
    raw: list[list[Finding]] = [[] for _ in sources]
    if searches is not None:
        searches[:] = [[] for _ in sources]
    done = 0
    for start in range(0, len(jobs), CHUNKS_PER_BATCH):
        batch = jobs[start : start + CHUNKS_PER_BATCH]
        prompts = [critic.prompt_ids(job.chunk.code) for job in batch]
        codes = [job.chunk.code for job in batch]
        results = critic.search(prompts, codes, settings.fsbs, seed=settings.seed)
        for job, result in zip(batch, results, strict=True):
            source = sources[job.file]
            raw[job.file].extend(_finding(source, job.chunk, h, score) for h, score in result.findings)
            if searches is not None:
                searches[job.file].append(result)
        done += len(batch)
        if progress is not None:
            progress(done, len(jobs))
    return raw


def _finding(source: SourceFile, chunk: Chunk, h: Highlight, score: float) -> Finding:
    first = chunk.start_line + h.start_line - 1
    last = chunk.start_line + h.end_line - 1
    chunk_lines = code_lines(chunk.code)
    quote_lines = [line.strip() for line in h.quote.split("\n") if line.strip()]
    col = _column(chunk_lines[h.start_line - 1], quote_lines[0] if quote_lines else "")
    end_text = chunk_lines[h.end_line - 1]
    end_col = _column(end_text, quote_lines[-1] if quote_lines else "")
    end_col = end_col + len(quote_lines[-1]) if quote_lines and quote_lines[-1] in end_text else len(end_text)
    comment = h.comment.strip()
    rule = classify(comment)
    return Finding(
        source.path,
        first,
        chunk.indent + col + 1,
        last,
        chunk.indent + end_col + 1,
        rule.code,
        _first_sentence(comment),
        comment,
        h.quote,
        score,
    )


def _column(line: str, fragment: str) -> int:
    """0-based column of `fragment` in `line`, or of its first non-blank character."""
    at = line.find(fragment) if fragment else -1
    return at if at >= 0 else len(line) - len(line.lstrip())


def _first_sentence(comment: str, width: int = 160) -> str:
    """The comment's first sentence, on one line and at most `width` characters. A full stop inside
    inline code (`a. b`) ends no sentence, and a cut never leaves a code span open."""
    flat = " ".join(comment.split())
    masked = _INLINE_CODE.sub(lambda m: "x" * len(m.group()), flat)
    end = _SENTENCE_END.search(masked)
    sentence = flat[: end.start()] if end else flat
    if len(sentence) <= width:
        return sentence
    cut = sentence[: width - 3]
    opened = [m for m in _INLINE_CODE.finditer(sentence) if m.start() < len(cut) < m.end()]
    if opened:  # cut before the span rather than inside it
        cut = cut[: opened[0].start()]
    return cut.rstrip() + "..."


def filter_findings(
    found: list[Finding], source: SourceFile, settings: ReviewSettings, changed: set[int] | None = None
) -> list[Finding]:
    """What `review` reports of a source's raw findings: settings.min_score and max_findings, quotes
    long enough to locate, suppressions, lines changed (when `changed` is given), and no finding
    overlapping a more confident one."""
    suppressed = _suppressions(source.text)
    kept: list[Finding] = []
    for f in sorted(found, key=lambda f: -f.score):
        span = range(f.line, f.end_line + 1)
        if not f.comment or f.score < settings.min_score or len("".join(f.quote.split())) < MIN_QUOTE_CHARS:
            continue
        if any(_is_suppressed(suppressed.get(n), f.rule) for n in span):
            continue
        if changed is not None and not any(n in changed for n in span):
            continue
        if any(_overlaps(span, range(k.line, k.end_line + 1)) for k in kept):
            continue  # a more confident finding already covers these lines
        kept.append(f)
    return sorted(kept[: settings.max_findings], key=lambda f: (f.line, f.column))


def _suppressions(text: str) -> dict[int, set[str]]:
    """Line -> codes suppressed there (an empty set: every code)."""
    found: dict[int, set[str]] = {}
    for number, line in enumerate(code_lines(text), start=1):
        if "critic" in line and (match := _IGNORE_LINE.search(line)):
            codes = match["codes"]
            found[number] = set() if codes is None else {c.strip() for c in codes.split(",") if c.strip()}
    return found


def _is_suppressed(codes: set[str] | None, rule: str) -> bool:
    if codes is None:
        return False
    return not codes or rule in codes


def _overlaps(a: range, b: range) -> bool:
    return a.start < b.stop and b.start < a.stop


def read_sources(paths: Iterable[Path]) -> tuple[list[SourceFile], list[str]]:
    """Decoded sources and one error line per file that is not UTF-8 text or cannot be read."""
    sources, errors = [], []
    for path in paths:
        try:
            data = path.read_bytes()
        except OSError as err:
            errors.append(f"{path}: cannot read ({err.strerror})")
            continue
        if b"\0" in data:
            errors.append(f"{path}: binary file, not Python source")
            continue
        try:
            text = data.decode("utf-8-sig")
        except UnicodeDecodeError as err:
            errors.append(f"{path}: not UTF-8 text ({err.reason} at byte {err.start})")
            continue
        sources.append(SourceFile(str(path), text))
    return sources, errors
