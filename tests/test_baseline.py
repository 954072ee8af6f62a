"""Baselines and dismissals (`critic review --baseline / --write-baseline`, `critic dismiss`), the README's
recipe for a legacy repository, and summaries that agree with the exit code when paths fail."""

from __future__ import annotations

import json
import shlex
import subprocess
from pathlib import Path

import test_review
from cli_process import run_critic
from conftest import BUG_LINE, BUG_QUOTE, BUG_RULE, BUGGY_CODE
from test_precommit import readme_block
from test_review import CLEAN, FAST, one_line_error, review

from critic.review import baseline
from critic.review.reviewer import Finding

project = test_review.project  # the fixture: a project whose pyproject.toml names the known critic
BUG_FINGERPRINT = Finding("avg.py", BUG_LINE, 5, BUG_LINE, 33, BUG_RULE, "", "", BUG_QUOTE, 1.0).fingerprint


def critic(cwd: Path, *args: str) -> subprocess.CompletedProcess:
    return run_critic(*args, cwd=cwd)


def finding(line: int, quote: str, rule: str = BUG_RULE, path: str = "avg.py") -> Finding:
    return Finding(path, line, 1, line, 2, rule, "m", "comment", quote, 0.9)


def test_the_file_is_sorted_has_no_lines_or_paths_and_matches_moved_code(tmp_path):
    path = tmp_path / "critic-baseline.json"
    old = [finding(3, "for i in range(len(xs) - 1):"), finding(9, "return a  /  b", "CRT104", "b.py")]
    assert baseline.rewrite(path, old) == (2, 0)
    data = json.loads(path.read_text())
    assert data["version"] == 1
    assert [e["fingerprint"] for e in data["findings"]] == sorted(f.fingerprint for f in old)
    assert all(set(e) == {"fingerprint", "rule", "quote"} for e in data["findings"])
    assert "return a / b" in [e["quote"] for e in data["findings"]]  # whitespace as the fingerprint sees it
    # The same code 20 lines down, re-indented, in another file: known. Other code in the file: new.
    moved = finding(23, "for i in range(len(xs)  -  1):", path="src/avg.py")
    new = finding(5, "total = 0", path="src/avg.py")
    assert baseline.unknown([[new, moved]], baseline.load(path)) == ([[new]], 1)


def test_rewriting_replaces_the_findings_and_keeps_the_dismissals(tmp_path):
    path = tmp_path / "critic-baseline.json"
    kept, dropped, dismissed = finding(3, "kept code"), finding(4, "fixed code"), finding(5, "not a bug")
    baseline.rewrite(path, [kept, dropped, dismissed])
    baseline.dismiss(path, [baseline.Entry(dismissed.fingerprint, reason="on purpose")])
    baseline.dismiss(path, [baseline.Entry("f" * 32)])  # by fingerprint, no reason
    assert baseline.load(path)[dismissed.fingerprint] == baseline.Entry.of(dismissed, "on purpose")
    assert baseline.rewrite(path, [kept]) == (1, 2)
    entries = baseline.load(path)
    assert set(entries) == {kept.fingerprint, dismissed.fingerprint, "f" * 32}
    assert (entries[dismissed.fingerprint].reason, entries["f" * 32].reason) == ("on purpose", "")
    assert not entries[kept.fingerprint].dismissed


def test_a_baselined_finding_stays_hidden_when_its_code_moves_20_lines_down(project):
    (project / "avg.py").write_text("")
    assert review(project, "avg.py", "--write-baseline", "b.json", *FAST).returncode == 0
    (project / "avg.py").write_text(BUGGY_CODE)
    new = review(project, "avg.py", "--baseline", "b.json", *FAST)
    assert new.returncode == 1 and new.stdout.startswith(f"avg.py:{BUG_LINE}:"), new.stderr

    wrote = review(project, "avg.py", "--write-baseline", "b.json", *FAST)
    assert wrote.returncode == 0 and wrote.stdout == "", wrote.stderr
    assert "Wrote b.json: 1 finding, 0 dismissals." in wrote.stderr
    entry = {"fingerprint": BUG_FINGERPRINT, "rule": BUG_RULE, "quote": BUG_QUOTE}
    assert json.loads((project / "b.json").read_text()) == {"version": 1, "findings": [entry]}

    (project / "avg.py").write_text("\n" * 20 + BUGGY_CODE)
    moved = review(project, "avg.py", "--baseline", "b.json", "--format", "json", *FAST)
    assert moved.returncode == 0 and json.loads(moved.stdout) == [], moved.stderr
    assert "1 finding in the baseline not shown" in moved.stderr


def test_a_dismissed_finding_stays_dismissed_in_another_file(project):
    dismissed = critic(
        project, "dismiss", f"avg.py:{BUG_LINE}", "--reason", "a sentinel", "--baseline", "b.json"
    )
    assert dismissed.returncode == 0, dismissed.stderr
    assert BUG_FINGERPRINT in dismissed.stdout
    (entry,) = json.loads((project / "b.json").read_text())["findings"]
    assert entry == {
        "fingerprint": BUG_FINGERPRINT,
        "rule": BUG_RULE,
        "quote": BUG_QUOTE,
        "reason": "a sentinel",
    }
    (project / "lib").mkdir()
    (project / "lib" / "copy.py").write_text("\n" * 7 + BUGGY_CODE)
    copy = review(project, "lib/copy.py", "--baseline", "b.json", *FAST)
    assert copy.returncode == 0 and copy.stdout == "", copy.stderr
    assert review(project, "lib/copy.py", *FAST).returncode == 1  # without the baseline: reported

    one_line_error(critic(project, "dismiss", "avg.py:1", "--baseline", "b.json"), "avg.py:1: no finding")
    one_line_error(critic(project, "dismiss", BUG_FINGERPRINT), "no baseline file")
    one_line_error(critic(project, "dismiss", "avg.py", "--baseline", "b.json"), "expected PATH:LINE")


def test_tool_critic_baseline_is_relative_to_the_pyproject(project):
    (project / "ci").mkdir()
    (project / "src").mkdir()
    (project / "src" / "avg.py").write_text(BUGGY_CODE)
    baseline.rewrite(project / "ci" / "known.json", [finding(1, BUG_QUOTE)])
    with (project / "pyproject.toml").open("a") as table:
        table.write('baseline = "ci/known.json"\n')
    result = review(project / "src", "avg.py", *FAST)
    assert result.returncode == 0 and result.stdout == "", result.stderr
    assert "1 finding in the baseline not shown" in result.stderr
    baseline.save(project / "empty.json", [])  # the command line wins over the file
    assert review(project / "src", "avg.py", "--baseline", str(project / "empty.json"), *FAST).returncode == 1


def test_a_bad_baseline_file_is_a_one_line_error(project):
    cases = {
        "{": "baseline is not valid JSON",
        "[]": "not a critic baseline",
        '{"version": 2, "findings": []}': "unsupported baseline version 2",
        '{"version": 1, "findings": [{"fingerprint": "x"}]}': "baseline entry 1 is not a finding",
        '{"version": 1, "findings": [{"fingerprint": "' + "a" * 32 + '", "line": 3}]}': "baseline entry 1",
    }
    for text, message in cases.items():
        (project / "b.json").write_text(text)
        one_line_error(review(project, "avg.py", "--baseline", "b.json"), f"b.json: {message}")
        one_line_error(critic(project, "dismiss", BUG_FINGERPRINT, "--baseline", "b.json"), message)
    one_line_error(review(project, "avg.py", "--baseline", "missing.json"), "missing.json: no such baseline")
    one_line_error(review(project, "avg.py", "--baseline", "."), "cannot read baseline")
    one_line_error(review(project, "--write-baseline", "b.json", "--staged"), "--write-baseline")
    assert (project / "b.json").read_text() == text  # never rewritten by a failed command


def test_paths_that_are_not_files_and_a_summary_that_agrees_with_the_exit_code(project):
    result = review(project, "/dev/null", "missing.py", *FAST)
    assert result.returncode == 2 and result.stdout == ""
    errors = [line for line in result.stderr.splitlines() if line.startswith("critic: error: ")]
    assert errors == [
        "critic: error: /dev/null: not a regular file",
        "critic: error: missing.py: no such file or directory",
    ]
    assert result.stderr.splitlines()[-1] == "No files reviewed: 2 errors."

    (project / "clean.py").write_text(CLEAN)
    partly = review(project, "clean.py", "/dev/null", *FAST)
    assert (
        partly.returncode == 2
        and partly.stderr.splitlines()[-1] == "No findings in 1 file reviewed: 1 error."
    )
    found = review(project, "avg.py", "/dev/null", *FAST)
    assert (
        found.returncode == 2 and found.stderr.splitlines()[-1] == "Found 1 finding in 1 of 1 file, 1 error."
    )


def run_snippet(cwd: Path, block: str) -> None:
    """Run a README bash block line by line, as a user would: `critic` is this checkout's."""
    for line in block.splitlines():
        argv = shlex.split(line, comments=True)
        if argv[0] == "critic":
            result = critic(cwd, *argv[1:])
        else:
            result = subprocess.run(argv, cwd=cwd, capture_output=True, text=True, timeout=600)
        assert result.returncode == 0, (line, result.stdout, result.stderr)


def test_readme_legacy_repository_snippets(project):
    write = readme_block("bash", "--write-baseline")
    setting = readme_block("toml", "baseline =")
    dismiss = readme_block("bash", "critic dismiss")
    (stats,) = shlex.split(dismiss, comments=True)[2:3]
    path, line = stats.split(":")
    # A legacy repository: the known finding in avg.py; the README's FSBS options for speed.
    with (project / "pyproject.toml").open("a") as table:
        table.write("samples = 2\nrounds = 2\nkeep = 1\nmax-new-tokens = 48\n")
    subprocess.run(["git", "init", "-q"], cwd=project, check=True)
    run_snippet(project, write)
    with (project / "pyproject.toml").open("a") as table:
        table.write(setting)
    assert critic(project, "review", ".").returncode == 0

    # New code with the finding on the line the README dismisses: dismissed with the reason.
    (project / path).parent.mkdir(parents=True, exist_ok=True)
    (project / path).write_text("\n" * (int(line) - BUG_LINE) + BUGGY_CODE)
    run_snippet(project, dismiss)
    (file,) = shlex.split(setting.split("=")[1])
    (entry,) = json.loads((project / file).read_text())["findings"]
    assert entry["fingerprint"] == BUG_FINGERPRINT and entry["reason"] == shlex.split(dismiss)[-1]

    # The legacy code fixed and the baseline written again: the dismissal stays, in every file.
    (project / "avg.py").write_text(CLEAN)
    (project / path).write_text(CLEAN)
    run_snippet(project, write)
    assert [e["fingerprint"] for e in json.loads((project / file).read_text())["findings"]] == [
        BUG_FINGERPRINT
    ]
    (project / "again.py").write_text(BUGGY_CODE)
    result = critic(project, "review", ".")
    assert result.returncode == 0 and "1 finding in the baseline not shown" in result.stderr, result.stderr
