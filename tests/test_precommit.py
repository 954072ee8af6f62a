"""The real pre-commit framework runs our hook in a fresh git repository and blocks a commit on a finding."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import yaml
from conftest import BUG_LINE, BUGGY_CODE

ROOT = Path(__file__).resolve().parents[1]


def readme_block(lang: str, containing: str) -> str:
    """The README's ```lang block that contains `containing` (the snippets users copy)."""
    blocks = re.findall(rf"^```{lang}\n(.*?)^```", (ROOT / "README.md").read_text(), re.MULTILINE | re.DOTALL)
    (block,) = [b for b in blocks if containing in b]
    return block


def hook_config(min_score: float) -> str:
    """The README's .pre-commit-config.yaml, with our hook as `repo: local`.

    Every field comes from the repository's .pre-commit-hooks.yaml and the README's snippet except how
    it is installed: pre-commit would pip-install the package (and torch) into a new virtualenv for
    `language: python`, so the test runs the same entry from the test's own environment
    (`language: system`). The test's own options come last, so they win.
    """
    (hook,) = yaml.safe_load((ROOT / ".pre-commit-hooks.yaml").read_text())
    assert (hook["id"], hook["language"], hook["entry"]) == ("critic", "python", "critic review")
    assert hook["types_or"] == ["python", "pyi"] and hook["require_serial"] is True
    (repo,) = yaml.safe_load(readme_block("yaml", "repos:"))["repos"]
    (user_hook,) = repo["hooks"]
    assert user_hook["id"] == hook["id"]
    local = dict(hook, language="system", entry=f"{sys.executable} -m critic.cli review")
    local["args"] = [
        *user_hook["args"],
        "--min-score",
        str(min_score),
        "--samples",
        "2",
        "--rounds",
        "2",
        "--keep",
        "1",
    ]
    return yaml.safe_dump({"repos": [{"repo": "local", "hooks": [local]}]}, sort_keys=False)


def run(cwd: Path, *args: str, env: dict) -> subprocess.CompletedProcess:
    return subprocess.run(args, cwd=cwd, capture_output=True, text=True, env=env, timeout=600)


def test_hook_blocks_a_commit_with_a_finding_and_passes_with_a_higher_min_score(tmp_path, known_critic):
    policy, reward = known_critic
    env = {k: v for k, v in os.environ.items() if k != "GITHUB_ACTIONS"}
    env |= {
        "PRE_COMMIT_HOME": str(tmp_path / "cache"),
        "GIT_AUTHOR_NAME": "t",
        "GIT_AUTHOR_EMAIL": "t@example.com",
    }
    env |= {"GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@example.com"}
    repo = tmp_path / "repo"
    repo.mkdir()
    (repo / "pyproject.toml").write_text(
        f'[tool.critic]\nmodel = "{policy}"\nreward-model = "{reward}"\ntemperature = 0.5\nsearch = "fsbs"\n'
    )
    (repo / ".pre-commit-config.yaml").write_text(hook_config(min_score=0.0))
    (repo / "avg.py").write_text(BUGGY_CODE)
    (repo / "notes.txt").write_text(BUGGY_CODE)  # not Python: the hook never sees it
    assert run(repo, "git", "init", "-q", env=env).returncode == 0
    installed = run(repo, sys.executable, "-m", "pre_commit", "install", env=env)
    assert installed.returncode == 0, installed.stderr
    run(repo, "git", "add", ".", env=env)

    blocked = run(repo, "git", "commit", "-m", "add average", env=env)
    assert blocked.returncode != 0, blocked.stdout + blocked.stderr
    assert f"avg.py:{BUG_LINE}:" in blocked.stdout + blocked.stderr
    assert (
        run(repo, "git", "rev-parse", "--verify", "-q", "HEAD", env=env).returncode != 0
    )  # nothing committed

    (repo / ".pre-commit-config.yaml").write_text(hook_config(min_score=1.0))
    run(repo, "git", "add", ".", env=env)
    passed = run(repo, "git", "commit", "-m", "add average", env=env)
    assert passed.returncode == 0, passed.stdout + passed.stderr
    assert re.search(r"^critic\.+Passed$", passed.stdout + passed.stderr, re.MULTILINE)
