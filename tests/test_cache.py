"""`critic review`'s cache (critic.review.cache): hits print what fresh runs print, byte for byte, load no
weights, survive concurrent writers and broken entries, and miss whenever the critic or the search
changes."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import BUG_LINE, BUG_QUOTE, BUGGY_CODE

from critic.core.critique import Highlight
from critic.inference.fsbs import Candidate, SearchResult
from critic.inference.localizer import LocatedBug
from critic.review.cache import DIRECTORY_NAME, ReviewCache, default_directory
from critic.review.settings import ReviewSettings

FAST = ("--samples", "2", "--rounds", "2", "--keep", "1", "--max-new-tokens", "48", "--chunk-tokens", "48")
HELPER = "def scale(values, factor):\n    return [v * factor for v in values]\n"
# The known bug again, below other code: its chunk is avg.py's, at other file lines.
MOVED = "import math\n\n\n" + HELPER + "\n\n" + BUGGY_CODE
MOVED_BY = MOVED.split("\n").index("def average(xs):")
# Runs `critic review` as the CLI does, and says on stderr whether the weights were loaded and which
# heavy libraries were imported.
PROBE = """
import json, sys
import critic.review.reviewer as reviewer
from critic.cli import main
load = reviewer.load_critic
def counted(*args, **kwargs):
    print("LOADED WEIGHTS", file=sys.stderr)
    return load(*args, **kwargs)
reviewer.load_critic = counted
sys.argv = ["critic", "review", *json.loads(sys.argv[1])]
try:
    main()
except SystemExit as exit:
    code = exit.code
heavy = sorted({m.split(".")[0] for m in sys.modules} & {"transformers", "trl", "datasets", "gradio"})
print("EXIT", code, "HEAVY", heavy, file=sys.stderr)
"""


def write_project(root: Path, policy: Path, reward: Path) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    (root / "pyproject.toml").write_text(
        f'[tool.critic]\nmodel = "{policy}"\nreward-model = "{reward}"\nmin-score = 0.0\ntemperature = 0.5\n'
        'search = "fsbs"\n'
    )
    (root / "avg.py").write_text(BUGGY_CODE)
    (root / "moved.py").write_text(MOVED)
    return root


@pytest.fixture
def project(tmp_path, known_critic):
    return write_project(tmp_path / "project", *known_critic)


def start(cwd: Path, *args: str) -> subprocess.Popen:
    environment = {k: v for k, v in os.environ.items() if k not in ("GITHUB_ACTIONS", "CRITIC_CACHE_DIR")}
    return subprocess.Popen(
        [sys.executable, "-c", PROBE, json.dumps([*args, *FAST])],
        cwd=cwd,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=environment,
    )


class Run:
    def __init__(self, process: subprocess.Popen) -> None:
        self.stdout, self.stderr = process.communicate(timeout=600)
        assert "EXIT " in self.stderr, self.stderr
        self.loaded = "LOADED WEIGHTS" in self.stderr
        assert "HEAVY []" in self.stderr, self.stderr


def review(cwd: Path, *args: str) -> Run:
    return Run(start(cwd, *args))


def entries(cache: Path) -> list[Path]:
    return sorted((cache / "v1" / "chunks").glob("*/*.json"))


def test_hits_print_what_fresh_runs_printed_and_load_no_weights(project):
    cache = project / DIRECTORY_NAME
    both = ("avg.py", "moved.py")
    fresh = {fmt: review(project, *both, "--format", fmt, "--no-cache") for fmt in ("json", "full")}
    assert not cache.exists()  # --no-cache writes nothing
    assert fresh["json"].loaded
    found = [(f["path"], f["line"], f["quote"]) for f in json.loads(fresh["json"].stdout)]
    assert ("avg.py", BUG_LINE, BUG_QUOTE) in found and ("moved.py", MOVED_BY + BUG_LINE, BUG_QUOTE) in found

    filling = review(project, *both, "--format", "json")
    assert filling.loaded and filling.stdout == fresh["json"].stdout
    assert len(entries(cache)) == 2  # avg.py's chunk is moved.py's second: searched once
    assert (cache / ".gitignore").read_text().splitlines()[-1] == "*"
    for fmt in ("json", "full"):
        hit = review(project, *both, "--format", fmt)
        assert not hit.loaded, hit.stderr
        assert hit.stdout == fresh[fmt].stdout
    # The filters apply after the cache: a stricter min-score is still a hit, and still exact.
    strict = (*both, "--min-score", "0.5", "--format", "concise")
    hit = review(project, *strict)
    assert not hit.loaded and hit.stdout == review(project, *strict, "--no-cache").stdout


def test_concurrent_runs_share_the_cache(project):
    for n in range(3):  # more chunks, so that the two writers interleave
        (project / f"helper{n}.py").write_text(HELPER.replace("scale", f"scale{n}"))
    args = (".", "--format", "json")
    expected = review(project, *args, "--no-cache").stdout
    runs = [Run(process) for process in [start(project, *args), start(project, *args)]]
    assert [r.stdout for r in runs] == [expected, expected]
    cache = project / DIRECTORY_NAME
    stored = entries(cache)
    assert len(stored) == 5
    for path in stored:
        assert json.loads(path.read_text())["key"] == path.stem
    assert not list(cache.rglob(".tmp-*"))
    third = review(project, *args)
    assert not third.loaded and third.stdout == expected


def test_a_changed_search_or_critic_misses(project, known_critic, tmp_path):
    assert review(project, "avg.py").loaded
    assert not review(project, "avg.py").loaded
    assert review(project, "avg.py", "--seed", "1").loaded
    # The critic is its files' bytes, wherever they are: a copy hits, a changed calibration misses.
    copy = tmp_path / "copy"
    shutil.copytree(known_critic[0].parent, copy)
    (project / "pyproject.toml").write_text(
        (project / "pyproject.toml").read_text().replace(str(known_critic[0].parent), str(copy))
    )
    assert not review(project, "avg.py").loaded
    (copy / "reward" / "calibration.json").write_text('{"scale": 1.0, "bias": 0.5}\n')
    assert review(project, "avg.py").loaded
    assert not review(project, "avg.py").loaded


def test_the_cache_lives_in_the_project_root(monkeypatch, tmp_path):
    monkeypatch.delenv("CRITIC_CACHE_DIR", raising=False)
    project = tmp_path / "project"
    (project / "src").mkdir(parents=True)
    (project / "pyproject.toml").write_text("[tool.critic]\n")
    assert default_directory(project / "src") == project.resolve() / DIRECTORY_NAME
    assert default_directory(tmp_path) == tmp_path.resolve() / DIRECTORY_NAME  # no [tool.critic] here
    monkeypatch.setenv("CRITIC_CACHE_DIR", str(tmp_path / "elsewhere"))
    assert default_directory(project) == tmp_path / "elsewhere"
    assert ".critic_cache/" in (Path(__file__).parents[1] / ".gitignore").read_text().splitlines()


def test_entries_round_trip_and_broken_ones_are_misses(tmp_path):
    cache = ReviewCache(tmp_path / "cache")
    candidates = [Candidate("```\nx = 1\n```\nwrong", -0.1 / 3, 1), Candidate("No bugs.", 1e-17, 0)]
    result = SearchResult(candidates[0], candidates, [(Highlight("x = 1", "wrong", 1, 1, "exact"), 0.1 / 3)])
    fsbs = ReviewSettings(model=tmp_path / "fluent", search="fsbs")
    key = cache.chunk_key("weights", fsbs, "x = 1\n")
    assert cache.get(key, "x = 1\n") is None
    cache.put(key, result)
    assert cache.get(key, "x = 1\n") == result
    assert cache.chunk_key("weights", fsbs.updated(seed=1), "x = 1\n") != key
    # min-score filters findings after the search: not part of the key
    assert cache.chunk_key("weights", fsbs.updated(min_score=0.9), "x = 1\n") == key
    # the repair search has no seed and no FSBS settings; its key differs from any FSBS search's
    repairs = ReviewSettings()
    assert cache.chunk_key("weights", repairs, "x = 1\n") != key
    assert cache.chunk_key("weights", repairs.updated(seed=1, samples=8), "x = 1\n") == cache.chunk_key(
        "weights", repairs, "x = 1\n"
    )
    (path,) = (tmp_path / "cache" / "v1" / "chunks").glob("*/*.json")
    good = path.read_text()
    truncated, wrong_kind, wrong_key = (
        good[: len(good) // 2],
        good.replace('"exact"', '"fuzzy"'),
        good.replace(key, "0"),
    )
    for broken in ("", truncated, "[]", wrong_kind, wrong_key):
        path.write_text(broken)
        assert cache.get(key, "x = 1\n") is None, broken


def test_repair_search_entries_round_trip_and_malformed_ones_are_misses(tmp_path):
    cache = ReviewCache(tmp_path / "cache")
    code = "if x < 1:\n    y = 2\n"
    # As the repair search reports it: a repair the finders make of the code, in their words
    # (an entry that does not hold for its code is a miss too: tests/test_review_safety.py).
    comment = (
        "The condition in `if x < 1:` is the opposite of the intended one. It uses `<` where >= is needed, "
        "so the branch is taken in cases it should skip and skipped in cases it should take."
    )
    found = [LocatedBug("flip_comparison", 1, 1, 3, 8, "x >= 1", comment, 0.25)]
    key = cache.chunk_key("weights", ReviewSettings(), code)
    cache.put(key, found)
    assert cache.get(key, code) == found
    (path,) = (tmp_path / "cache" / "v1" / "chunks").glob("*/*.json")
    good = path.read_text()
    for broken in (good.replace('"line": 1', '"line": "1"'), good.replace('"score"', '"confidence"')):
        path.write_text(broken)
        assert cache.get(key, code) is None, broken


def test_a_warm_weights_digest_reads_no_weights(tmp_path, monkeypatch):
    import critic.review.cache as module

    weights = tmp_path / "model.safetensors"
    weights.write_bytes(b"\0" * 1000)
    first = ReviewCache(tmp_path / "cache").weights_digest([weights, tmp_path / "absent.json"])

    def refuse(path):
        raise AssertionError(f"hashed {path} again")

    monkeypatch.setattr(module, "_hash_file", refuse)
    assert ReviewCache(tmp_path / "cache").weights_digest([weights, tmp_path / "absent.json"]) == first
    monkeypatch.undo()
    weights.write_bytes(b"\1" + b"\0" * 999)  # same size, new bytes (and mtime)
    os.utime(weights, ns=(1, 1))
    assert ReviewCache(tmp_path / "cache").weights_digest([weights, tmp_path / "absent.json"]) != first
