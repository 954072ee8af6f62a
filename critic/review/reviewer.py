"""`critic review`'s engine: files -> chunks -> FSBS -> findings on file lines.

Findings are what survives the noise filters users ask for: quotes that are not in the code are
never reported (a wrong line number is worse than no finding), nor are highlights without a
comment or with a quote too short to locate, findings under `min_score` confidence, duplicates of a
more confident finding on the same lines, suppressed lines, lines outside a --diff, and all but the
`max_findings` most confident.

With a `ReviewCache` (critic.review.cache), a chunk searched before with the same critic and search
settings is not searched again; a `LazyCritic` loads the weights only when some chunk is not cached.
"""

from __future__ import annotations

import hashlib
import re
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from critic.core.critique import Highlight, code_lines
from critic.core.rules import classify, for_kind
from critic.inference.fsbs import Critic, SearchResult
from critic.inference.localizer import LocatedBug
from critic.review.chunking import Chunk, chunk_source
from critic.review.fixes import Fix, fix_at
from critic.review.settings import ReviewSettings

if TYPE_CHECKING:
    from tokenizers import Tokenizer

    from critic.review.cache import ReviewCache

# Rows of one search are chunks x keep x samples: this many chunks keep a batch near 32 rows.
CHUNKS_PER_BATCH = 4
# Suspect lines the repair search keeps per chunk: enough for max-findings and for `critic eval`'s sweep.
LOCATED_PER_CHUNK = 10
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
    fix: Fix | None = None  # replacement text that repairs what the finding reports (critic.review.fixes)

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


def load_critic(settings: ReviewSettings, tokenizer: Tokenizer | None = None) -> Critic:
    """Policy, reward model and tokenizer named by the settings, checked to belong together."""
    from critic.core.errors import UserError
    from critic.core.tokenizer import load_tokenizer
    from critic.inference.calibration import Calibration
    from critic.inference.localizer import Localizer
    from critic.model import load_causal_lm, load_reward_model

    policy = load_causal_lm(settings.model)
    reward = load_reward_model(settings.reward_model)
    tokenizer = tokenizer or load_tokenizer(settings.model)
    try:
        localizer = Localizer.load(localizer_path(settings))
        return Critic(policy, reward, tokenizer, Calibration.load(settings.reward_model), localizer)
    except ValueError as err:
        raise UserError(f"{settings.model}: {err}") from err


def localizer_path(settings: ReviewSettings) -> Path:
    """The policy's own localizer.json, else the shipped critic's: a checkpoint from elsewhere (a public
    Gemma 2) has none, and the shipped one weighs the same features."""
    from critic.inference.localizer import FILE
    from critic.review.settings import default_critic_dir

    own = Path(settings.model) / FILE
    return own if own.is_file() else default_critic_dir() / "policy" / FILE


def critic_files(settings: ReviewSettings) -> list[Path]:
    """Every file `load_critic(settings)` reads, in a fixed order: what a cache key must hash."""
    from critic.core.tokenizer import DEFAULT_TOKENIZER_PATH
    from critic.inference.calibration import FILE as CALIBRATION
    from critic.model.checkpoint import INDEX_NAME, weight_files

    found = []
    for directory in (Path(settings.model), Path(settings.reward_model)):
        found += [directory / "config.json", directory / INDEX_NAME, *weight_files(directory)]
    tokenizer = Path(settings.model) / "tokenizer.json"
    default = Path(str(DEFAULT_TOKENIZER_PATH))
    calibration = Path(settings.reward_model) / CALIBRATION
    return [*found, tokenizer if tokenizer.is_file() else default, calibration, localizer_path(settings)]


class LazyCritic:
    """The critic `settings` name, whose policy and reward model load on the first search (or any other
    use of them). Chunking and cache keys need only its tokenizer, so a review whose every chunk is
    in the cache never loads the weights."""

    def __init__(self, settings: ReviewSettings) -> None:
        from critic.core.tokenizer import load_tokenizer
        from critic.model.checkpoint import read_config

        read_config(settings.model)  # a wrong path fails now, as load_critic would, not on a first miss
        read_config(settings.reward_model)
        self.settings = settings
        self.tokenizer = load_tokenizer(settings.model)
        self._critic: Critic | None = None

    @property
    def loaded(self) -> Critic:
        if self._critic is None:
            self._critic = load_critic(self.settings, self.tokenizer)
        return self._critic

    # Critic's own, which read only the tokenizer: a lazy critic encodes exactly as the loaded one.
    encode = Critic.encode
    prompt_ids = Critic.prompt_ids

    def search(self, *args, **kwargs) -> list[SearchResult]:
        return self.loaded.search(*args, **kwargs)

    def locate(self, *args, **kwargs) -> list[LocatedBug]:
        return self.loaded.locate(*args, **kwargs)

    def __getattr__(self, name: str):
        if name.startswith("_"):
            raise AttributeError(name)
        return getattr(self.loaded, name)


def review(
    critic: Critic | LazyCritic,
    sources: list[SourceFile],
    settings: ReviewSettings,
    changed: dict[str, set[int]] | None = None,
    progress: Callable[[int, int], None] | None = None,
    cache: ReviewCache | None = None,
) -> list[list[Finding]]:
    """Findings per source, sorted by line. With `changed` (path -> lines), only chunks touching a
    changed line are read and only findings on changed lines are reported."""
    raw = raw_findings(critic, sources, settings, changed, progress, cache=cache)
    return [
        filter_findings(found, source, settings, None if changed is None else changed.get(source.path, set()))
        for found, source in zip(raw, sources, strict=True)
    ]


def raw_findings(
    critic: Critic | LazyCritic,
    sources: list[SourceFile],
    settings: ReviewSettings,
    changed: dict[str, set[int]] | None = None,
    progress: Callable[[int, int], None] | None = None,
    searches: list[list[SearchResult]] | None = None,
    cache: ReviewCache | None = None,
) -> list[list[Finding]]:
    """Every highlight of FSBS's pick that quotes the code, per source, before `filter_findings`
    (`review` is exactly `filter_findings` of these, so an evaluation can sweep min-score post hoc).
    With `searches`, it also receives each source's FSBS results, one per chunk.

    With `cache` (critic.review.cache), chunks searched before with the same critic files and search
    settings are not searched again, and chunks searched now are stored; `critic` must then be the one
    the settings name (`load_critic(settings)`, or a `LazyCritic(settings)` that loads nothing on a
    full hit). Chunks with the same code are searched once."""
    jobs: list[_Job] = []

    def count(text: str) -> int:
        return len(critic.encode(text))

    for index, source in enumerate(sources):
        if _IGNORE_FILE.search(source.text):
            continue
        lines = None if changed is None else changed.get(source.path, set())
        for chunk in chunk_source(
            source.text, settings.chunk_tokens, count, alone=settings.search == "repairs"
        ):
            if lines is None or any(n in lines for n in chunk.lines):
                jobs.append(_Job(index, chunk))
    results = _search(critic, [job.chunk.code for job in jobs], settings, progress, cache)
    raw: list[list[Finding]] = [[] for _ in sources]
    if searches is not None:
        searches[:] = [[] for _ in sources]
    for job, result in zip(jobs, results, strict=True):
        source = sources[job.file]
        if isinstance(result, SearchResult):
            raw[job.file].extend(_finding(source, job.chunk, h, score) for h, score in result.findings)
            if searches is not None:
                searches[job.file].append(result)
        else:
            code, lines = job.chunk.code, len(code_lines(job.chunk.code))
            # A cache entry is a file anyone can edit: a suspect line outside its chunk is dropped.
            inside = [
                b for b in result if 0 <= b.start <= b.end <= len(code) and 1 <= b.line <= b.end_line <= lines
            ]
            raw[job.file].extend(located_finding(source, job.chunk, bug) for bug in inside)
    return raw


def _search(
    critic: Critic | LazyCritic,
    codes: list[str],
    settings: ReviewSettings,
    progress: Callable[[int, int], None] | None,
    cache: ReviewCache | None,
) -> list[SearchResult]:
    """The search's result for each chunk code (FSBS's, or the repair search's suspect lines),
    CHUNKS_PER_BATCH at a time; with a cache, only the codes it does not hold are searched, each once,
    and stored as their batch finishes."""
    keys = [str(i) for i in range(len(codes))]
    found: dict[str, SearchResult | list[LocatedBug]] = {}
    if cache is not None and codes:
        weights = cache.weights_digest(critic_files(settings))
        keys = [cache.chunk_key(weights, settings, code) for code in codes]
        unique = dict(zip(keys, codes, strict=True))  # a key is its code's: one check per code
        found = {key: hit for key, code in unique.items() if (hit := cache.get(key, code)) is not None}
    pending = list({key: code for key, code in zip(keys, codes, strict=True) if key not in found}.items())
    uses = Counter(keys)
    done = len(codes) - sum(uses[key] for key, _ in pending)
    if progress is not None and done:
        progress(done, len(codes))
    for start in range(0, len(pending), CHUNKS_PER_BATCH):
        batch = pending[start : start + CHUNKS_PER_BATCH]
        results: list[SearchResult] | list[list[LocatedBug]]
        if settings.search == "repairs":
            results = [critic.locate(code, LOCATED_PER_CHUNK) for _, code in batch]
        else:
            prompts = [critic.prompt_ids(code) for _, code in batch]
            results = critic.search(prompts, [code for _, code in batch], settings.fsbs, seed=settings.seed)
        for (key, _), result in zip(batch, results, strict=True):
            found[key] = result
            if cache is not None:
                cache.put(key, result)
        done += sum(uses[key] for key, _ in batch)
        if progress is not None:
            progress(done, len(codes))
    return [found[key] for key in keys]


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


def located_finding(source: SourceFile, chunk: Chunk, bug: LocatedBug) -> Finding:
    """A suspect line of the repair search as a finding on file lines, with its fix. The quote is the
    bug's lines as written (what a baseline's fingerprint matches on), the span the edit's."""
    chunk_lines = code_lines(chunk.code)
    last = min(bug.end_line, len(chunk_lines))
    quote = "\n".join(line.strip() for line in chunk_lines[bug.line - 1 : last])
    # A replacement spanning lines gets back the indent the chunk's dedent took from its later lines.
    text = bug.text.replace("\n", "\n" + " " * chunk.indent)
    fix = fix_at(chunk.code, bug.start, bug.end, text, chunk.start_line, chunk.indent)
    return Finding(
        source.path,
        chunk.start_line + bug.line - 1,
        fix.column
        if fix.line == chunk.start_line + bug.line - 1
        else chunk.indent + _column(chunk_lines[bug.line - 1], "") + 1,
        chunk.start_line + last - 1,
        fix.end_column
        if fix.end_line == chunk.start_line + last - 1
        else chunk.indent + len(chunk_lines[last - 1]) + 1,
        for_kind(bug.kind).code,
        _first_sentence(bug.comment),
        bug.comment,
        quote,
        bug.score,
        fix,
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
