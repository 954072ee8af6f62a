"""`critic review`'s cache: a chunk whose code, critic and search settings are unchanged is not searched
again.

What is cached is the search's whole result for one chunk: the repair search's suspect lines (each
with its lines, fix, comment and confidence), or FSBS's best critique, every candidate, and the
highlights with their confidences; keyed by everything that result depends on:

- the critic: the bytes of every file `load_critic` reads (see `reviewer.critic_files`: both configs
  and weights, the tokenizer, the calibration), plus the installed critic's version, since the search
  is code too;
- the search: which one, and for FSBS every setting and the seed (the repair search has neither);
- the chunk's code, dedented, exactly as the critic reads it.

Nothing else goes into the search, so a hit is what a fresh search of that chunk returned, and findings
are rebuilt from it exactly as from a fresh one: the chunk's place in the file (its first line and
indent), the file's name and the report's filters (min-score, max-findings, suppressions, --diff) are
applied after the cache, so moving code, renaming a file or changing min-score still hits, and a run
that hits everywhere prints, byte for byte, what the run that filled the cache printed. (A chunk's
random draws never depend on the chunks searched beside it; only float rounding from padding does, so
a chunk searched in another batch than in a run without the cache may differ in the last digits, as it
may already between `critic review a.py` and `critic review a.py b.py`.)

Where: `.critic_cache/` beside the pyproject.toml whose [tool.critic] table is used (the project
root), else in the working directory; `CRITIC_CACHE_DIR` names another directory and
`critic review --no-cache` neither reads nor writes it. The directory holds a `.gitignore` of `*`, so
it never needs adding to a project's own, and deleting it at any time is safe.

Layout, one JSON file per entry (never pickle), under a format version:

    v1/chunks/ab/<sha256 key>.json   {"key": ..., "located": [...]}    one chunk's repair search,
                                     {"key": ..., "result": {...}}     or FSBS search
    v1/files/cd/<sha256>.json        {"sha256": ...}                   a critic file's digest,
                                     keyed by (path, size, mtime_ns), so a warm run hashes nothing

Concurrent processes share it without locks: each entry is written to a temporary file in its own
directory and moved into place with os.replace (atomic), two writers of one key store the same
search (whichever lands last stays), and a reader treats a missing, unreadable or malformed entry as
a miss. Failing to write (a read-only checkout) only costs the next run its hits. Nothing is evicted:
an entry is a few KB (the candidates dominate), and a writer killed mid-write leaves a `.tmp-*` file.

API (also for `critic audit`): `ReviewCache(directory)`; pass it to `reviewer.review(...,
cache=cache)` or `reviewer.raw_findings(..., cache=cache)` together with `reviewer.LazyCritic(settings)`,
which loads the policy and reward model only when some chunk misses. `get`/`put`/`chunk_key`/
`weights_digest` are the pieces those functions use.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import json
import math
import os
import secrets
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

from critic.core.critique import Highlight, line_span_of
from critic.datagen.analysis import Ctx
from critic.datagen.finders import FINDERS, Site
from critic.datagen.repairs import REPAIR_KINDS, Repair, describe_repair
from critic.datagen.tamper import apply_edit
from critic.inference.fsbs import Candidate, SearchResult
from critic.inference.localizer import LocatedBug
from critic.review.settings import ReviewSettings, find_pyproject

FORMAT = "v1"  # bump when an entry's meaning or layout changes: old entries are then never read
DIRECTORY_NAME = ".critic_cache"
ENVIRONMENT_VARIABLE = "CRITIC_CACHE_DIR"
_ABSENT = "absent"  # the digest of a file that does not exist (an optional calibration.json, say)


def default_directory(start: Path | None = None) -> Path:
    """$CRITIC_CACHE_DIR, else .critic_cache/ in the project root: the directory of the pyproject.toml
    with [tool.critic] at or above `start` (default: the working directory), else `start` itself."""
    named = os.environ.get(ENVIRONMENT_VARIABLE)
    if named:
        return Path(named)
    start = (start or Path.cwd()).resolve()
    pyproject = find_pyproject(start)
    return (pyproject.parent if pyproject is not None else start) / DIRECTORY_NAME


class ReviewCache:
    """Search results of chunks, stored under `directory` (created on the first write)."""

    def __init__(self, directory: Path) -> None:
        self.directory = Path(directory)
        self._root = self.directory / FORMAT
        self._digests: dict[tuple[str, int, int], str] = {}  # this process's file digests
        self._marked = False  # the directory has its .gitignore

    # -- keys --------------------------------------------------------------------------------------

    def weights_digest(self, files: Sequence[Path]) -> str:
        """One digest of the critic's files, in order (their roles), by content: a copied or moved
        critic is the same critic."""
        parts = [(Path(f).name, self.file_digest(Path(f))) for f in files]
        return _sha256(json.dumps(parts))

    def file_digest(self, path: Path) -> str:
        """sha256 of the file's bytes, remembered per (path, size, mtime_ns) here and on disk."""
        try:
            stat = path.stat()
        except OSError:
            return _ABSENT
        memo = (str(path.resolve()), stat.st_size, stat.st_mtime_ns)
        if memo in self._digests:
            return self._digests[memo]
        entry = self._path("files", _sha256(json.dumps(memo)))
        stored = _read(entry)
        digest = stored.get("sha256") if stored is not None else None
        if isinstance(digest, str):
            self._digests[memo] = digest
            return digest
        try:
            digest = _hash_file(path)
            after = path.stat()
        except OSError:
            return _ABSENT
        if (after.st_size, after.st_mtime_ns) == memo[1:]:  # not rewritten while it was read
            self._digests[memo] = digest
            self._write(entry, {"path": memo[0], "size": memo[1], "mtime_ns": memo[2], "sha256": digest})
        return digest

    @staticmethod
    def chunk_key(weights: str, settings: ReviewSettings, code: str) -> str:
        """Everything one chunk's search depends on (see the module docstring)."""
        search = {"fsbs": asdict(settings.fsbs), "seed": settings.seed} if settings.search == "fsbs" else {}
        fields = {
            "critic": _package_version(),
            "weights": weights,
            "search": settings.search,
            **search,
            "code": code,
        }
        return _sha256(json.dumps(fields, sort_keys=True))

    # -- entries -----------------------------------------------------------------------------------

    def get(self, key: str, code: str) -> SearchResult | list[LocatedBug] | None:
        """The cached search of the chunk `code` (whose key is `key`), or None: never cached, unreadable,
        or not a search of that code. An entry is a file anyone who can write the project can edit, so
        what it says is checked against the code before it can become a finding (see `holds`)."""
        stored = _read(self._path("chunks", key))
        if stored is None or stored.get("key") != key:
            return None
        try:
            if "located" in stored:
                result: SearchResult | list[LocatedBug] = [
                    LocatedBug.from_dict(bug) for bug in stored["located"]
                ]
            else:
                result = _decode(stored["result"])
        except (KeyError, IndexError, TypeError, ValueError):
            return None
        return result if holds(result, code) else None

    def put(self, key: str, result: SearchResult | list[LocatedBug]) -> None:
        if isinstance(result, SearchResult):
            entry = {"key": key, "result": _encode(result)}
        else:
            entry = {"key": key, "located": [bug.as_dict() for bug in result]}
        self._write(self._path("chunks", key), entry)

    def _path(self, kind: str, key: str) -> Path:
        return self._root / kind / key[:2] / f"{key}.json"

    def _write(self, path: Path, data: dict[str, Any]) -> None:
        """Best effort: a cache that cannot be written only costs later runs their hits."""
        if not self._marked and not self.directory.is_dir():
            # A new cache directory first gets what keeps it out of commits and backups.
            _write(self.directory / ".gitignore", "# Created by critic review.\n*\n")
            _write(self.directory / "CACHEDIR.TAG", "Signature: 8a477f597d28d172789f06886806bc55\n")
        self._marked = True
        _write(path, json.dumps(data))


def holds(result: SearchResult | list[LocatedBug], code: str) -> bool:
    """Whether `result` could be a search of `code`: every FSBS finding quotes the code on the lines it
    claims, and every suspect line of the repair search is a repair the finders make of this code, on
    the lines and in the words they give it; every confidence is in [0, 1]. A crafted entry can then at
    most rescore what the critic might report anyway: no fix of its own, and for the repair search no
    words of its own (an FSBS comment is free text either way; reports escape control characters)."""
    if isinstance(result, SearchResult):
        return all(_confidence(score) and _quoted(h, code) for h, score in result.findings)
    if not result:
        return True
    try:
        ctx = Ctx(code)
    except (SyntaxError, ValueError, RecursionError):
        return False
    sites: dict[str, list[Site]] = {}
    return all(_confidence(bug.score) and _described(ctx, code, bug, sites) for bug in result)


def _confidence(score: float) -> bool:
    return math.isfinite(score) and 0.0 <= score <= 1.0


def _quoted(h: Highlight, code: str) -> bool:
    return h.match is not None and line_span_of(h.quote, code) == (h.start_line, h.end_line, h.match)


def _described(ctx: Ctx, code: str, bug: LocatedBug, sites: dict[str, list[Site]]) -> bool:
    """Whether `bug` is one of `candidate_repairs(code)` as `suspects` describes it. Only the finder of
    its kind runs, and only its edits of the same span are applied: candidate_repairs itself applies
    every edit of every kind (up to a second for a long chunk), too slow for a cache hit."""
    if bug.kind not in REPAIR_KINDS:
        return False
    if bug.kind not in sites:
        try:
            sites[bug.kind] = list(FINDERS[bug.kind](ctx))
        except RecursionError:
            sites[bug.kind] = []
    for edit in (
        e for site in sites[bug.kind] for e in site.edits if (e.start, e.end) == (bug.start, bug.end)
    ):
        if bug.text not in (edit.text, f"({edit.text})"):  # what apply_edit puts in: no need to apply
            continue
        try:
            applied = apply_edit(ctx, edit)
        except (RecursionError, ValueError):
            continue
        if applied is None or applied[0] == code or applied[1] != bug.text:
            continue
        first, last = (code.count("\n", 0, at) + 1 for at in (edit.start, max(edit.start, edit.end - 1)))
        comment, lines = describe_repair(
            code, Repair(bug.kind, edit.start, edit.end, bug.text, applied[0], first, last)
        )
        return (comment, min(lines), max(lines)) == (bug.comment, bug.line, bug.end_line)
    return False


def _encode(result: SearchResult) -> dict[str, Any]:
    return {
        "best": result.candidates.index(result.best),
        "candidates": [[c.critique, c.rm_score, c.highlights] for c in result.candidates],
        "findings": [
            [[h.quote, h.comment, h.start_line, h.end_line, h.match], score] for h, score in result.findings
        ],
    }


def _decode(data: dict[str, Any]) -> SearchResult:
    candidates = [Candidate(_str(text), float(rm), _int(n)) for text, rm, n in data["candidates"]]
    findings = []
    for (quote, comment, first, last, match), score in data["findings"]:
        if match not in (None, "exact", "whitespace"):
            raise ValueError(f"unknown match kind {match!r}")
        highlight = Highlight(_str(quote), _str(comment), _int(first), _int(last), match)
        findings.append((highlight, float(score)))
    return SearchResult(candidates[_int(data["best"])], candidates, findings)


def _str(value: Any) -> str:
    if not isinstance(value, str):
        raise TypeError(f"expected a string, got {type(value).__name__}")
    return value


def _int(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"expected an integer, got {type(value).__name__}")
    return value


def _read(path: Path) -> dict[str, Any] | None:
    """The JSON object in `path`, or None if there is none to read: a miss, never an error."""
    try:
        data = json.loads(path.read_bytes())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def _write(path: Path, text: str) -> None:
    """Atomically: readers see the old file, no file or the whole new one. Errors are swallowed."""
    temporary = path.parent / f".tmp-{os.getpid()}-{secrets.token_hex(8)}"
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        # Not mkstemp: its files are private (0600), and a cache may be shared by a team's CI users.
        fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    except OSError:
        return
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            out.write(text)
        os.replace(temporary, path)
    except OSError:
        with contextlib.suppress(OSError):
            os.unlink(temporary)


def _hash_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as data:
        while block := data.read(1 << 20):
            digest.update(block)
    return digest.hexdigest()


def _sha256(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


@functools.cache
def _package_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("critic")
    except PackageNotFoundError:
        return "unknown"
