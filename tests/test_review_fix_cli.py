"""`critic review --fix` as a user runs it: the reported findings' fixes land in the files on disk (and
only theirs: --diff and the baseline filter first), the summary and exit code say what remains, code
from stdin comes back fixed on stdout, and a file edited during the review is left alone.

The review engine is replaced by one that reports fixed rules on the code it is given (the command
calls critic.review.reviewer.review), so these tests need no model."""

from __future__ import annotations

import codecs
import json
import os
import stat
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest
from typer.testing import CliRunner

from critic.cli import app
from critic.core.critique import code_lines
from critic.core.errors import UserError
from critic.review import baseline, reviewer
from critic.review.fixes import Fix
from critic.review.reviewer import Finding, SourceFile

CODE = (
    "def count(n, a, b):\n"
    "    total = 0\n"
    "    for i in range(n - 1):\n"
    "        if a < b:\n"
    "            total += i\n"
    "    return None\n"
)
FIXED = CODE.replace("range(n - 1)", "range(n)").replace("a < b", "a <= b")
# (quote, replacement or None for a finding without a fix, rule): what the stand-in critic reports.
Rules = list[tuple[str, str | None, str]]
RULES: Rules = [
    ("range(n - 1)", "range(n)", "CRT101"),
    ("a < b", "a <= b", "CRT102"),
    ("return None", None, "CRT108"),
]


def findings_for(source: SourceFile, rules: Rules) -> list[Finding]:
    """A finding on every line quoting a rule's code (one per rule and line), its fix replacing the quote."""
    found = []
    for number, line in enumerate(code_lines(source.text), start=1):
        for quote, replacement, rule in rules:
            if (at := line.find(quote)) >= 0:
                start, end = at + 1, at + 1 + len(quote)
                fix = None if replacement is None else Fix(number, start, number, end, replacement)
                message = f"`{quote}` is wrong."
                found.append(
                    Finding(source.path, number, start, number, end, rule, message, message, quote, 0.9, fix)
                )
    return sorted(found, key=lambda f: (f.line, f.column))


@pytest.fixture
def project(tmp_path, monkeypatch):
    """A project directory as the working directory, with a [tool.critic] table and CODE in m.py."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("GITHUB_ACTIONS", raising=False)
    (tmp_path / "pyproject.toml").write_text('[project]\nname = "demo"\n\n[tool.critic]\nmin-score = 0.0\n')
    (tmp_path / "m.py").write_text(CODE)
    return tmp_path


@pytest.fixture
def engine(monkeypatch):
    """Replace the critic: `engine(rules, during=...)` sets what it reports and what happens while it runs."""
    state: dict = {"rules": RULES, "during": None}

    def review(critic, sources, settings, changed=None, progress=None, cache=None):
        assert cache is None  # the tests pass --no-cache: nothing is written under the project
        reports = []
        for source in sources:
            found = findings_for(source, state["rules"])
            if changed is not None:
                found = [f for f in found if f.line in changed.get(source.path, set())]
            reports.append(found)
        if state["during"] is not None:
            state["during"]()
        return reports

    monkeypatch.setattr(reviewer, "review", review)
    monkeypatch.setattr(reviewer, "LazyCritic", lambda settings: object())

    def configure(rules: Rules = RULES, during: Callable[[], None] | None = None) -> None:
        state.update(rules=rules, during=during)

    return configure


def critic(*args: str, stdin: str | None = None):
    return CliRunner().invoke(app, ["review", "--no-cache", *args], input=stdin)


def test_fix_repairs_the_file_and_reports_only_what_remains(project, engine):
    os.chmod(project / "m.py", 0o640)
    result = critic("m.py", "--fix")
    assert result.exit_code == 1, result.output
    assert (project / "m.py").read_text() == FIXED
    assert result.stdout == "m.py:6:5: CRT108 `return None` is wrong. [0.90]\n"
    assert result.stderr.splitlines()[-1] == "Found 3 findings in 1 of 1 file (2 fixed, 1 remaining)."
    # Written in place of the old file: its mode kept, no temporary file left behind.
    assert stat.S_IMODE((project / "m.py").stat().st_mode) == 0o640
    assert sorted(p.name for p in project.iterdir()) == ["m.py", "pyproject.toml"]


def test_all_fixed_exits_0(project, engine):
    engine(RULES[:2])
    result = critic("m.py", "--fix", "--format", "json")
    assert result.exit_code == 0, result.output
    assert (project / "m.py").read_text() == FIXED
    assert json.loads(result.stdout) == []
    assert result.stderr.splitlines()[-1] == "Found 2 findings in 1 of 1 file (2 fixed, 0 remaining)."
    # Nothing left to fix: the file is not touched, and the review passes.
    engine([])
    again = critic("m.py", "--fix")
    assert again.exit_code == 0 and again.stderr.splitlines()[-1] == "All checks passed! (1 file reviewed)"


def test_without_fix_no_file_changes_and_the_summary_says_what_fix_would_do(project, engine):
    result = critic("m.py")
    assert result.exit_code == 1
    assert (project / "m.py").read_text() == CODE
    assert len(result.stdout.splitlines()) == 3
    assert result.stderr.splitlines()[-1] == "Found 3 findings in 1 of 1 file (2 fixable with --fix)."
    engine(RULES[2:])  # no finding has a fix: the summary is what it always was
    assert critic("m.py").stderr.splitlines()[-1] == "Found 1 finding in 1 of 1 file."


def test_fix_option_is_command_line_only(project, engine):
    (project / "pyproject.toml").write_text("[tool.critic]\nfix = true\n")
    result = critic("m.py")
    assert isinstance(result.exception, UserError) and "unknown key 'fix'" in str(result.exception)


def test_remaining_findings_are_reported_on_the_fixed_code(project, engine):
    # The fix of line 2 adds a line: the finding on `return None` is now on line 7.
    engine([("total = 0", "total = 0\n    seen = 0", "CRT106"), *RULES[2:]])
    result = critic("m.py", "--fix", "--format", "full")
    assert result.exit_code == 1
    assert (project / "m.py").read_text() == CODE.replace("total = 0\n", "total = 0\n    seen = 0\n")
    assert result.stdout.startswith(
        "m.py:7:5: CRT108 `return None` is wrong. [0.90]\n  |\n7 |     return None\n"
    )


def test_overlapping_fixes_apply_one_and_the_other_remains_without_its_fix(project, engine):
    engine([("a < b", "a <= b", "CRT102"), ("if a < b:", "if b > a:", "CRT102")])
    result = critic("m.py", "--fix", "--format", "json")
    assert result.exit_code == 1
    assert (project / "m.py").read_text() == CODE.replace("a < b", "a <= b")
    (left,) = json.loads(result.stdout)
    assert left["quote"] == "if a < b:" and left["fix"] is None  # made for the old code: dropped
    assert "(1 fixed, 1 remaining)" in result.stderr


def test_line_endings_and_bom_are_kept(project, engine):
    data = codecs.BOM_UTF8 + CODE.replace("\n", "\r\n").encode()
    (project / "m.py").write_bytes(data)
    engine([("total = 0", "total = 0\n    seen = 0", "CRT106"), ("a < b", "a <= b", "CRT102")])
    result = critic("m.py", "--fix")
    assert result.exit_code == 0, result.output
    expected = CODE.replace("total = 0\n", "total = 0\n    seen = 0\n").replace("a < b", "a <= b")
    assert (project / "m.py").read_bytes() == codecs.BOM_UTF8 + expected.replace("\n", "\r\n").encode()
    # No BOM, CR line endings: none added, CR kept.
    (project / "m.py").write_bytes(CODE.replace("\n", "\r").encode())
    assert critic("m.py", "--fix").exit_code == 0
    assert (project / "m.py").read_bytes() == expected.replace("\n", "\r").encode()


def test_a_file_edited_during_the_review_is_not_fixed(project, engine):
    edited = CODE + "# edited meanwhile\n"
    engine(during=lambda: (project / "m.py").write_text(edited))
    (project / "other.py").write_text("x = a < b\n")
    result = critic("m.py", "other.py", "--fix")
    assert result.exit_code == 1
    assert (project / "m.py").read_text() == edited  # their edit wins; nothing of ours is written
    assert (project / "other.py").read_text() == "x = a <= b\n"  # the other file is still fixed
    warnings = [line for line in result.stderr.splitlines() if line.startswith("critic: warning: ")]
    assert warnings == ["critic: warning: m.py: changed since it was reviewed; its fixes were not applied"]
    assert result.stdout.count("m.py:") == 3 and "other.py" not in result.stdout
    assert result.stderr.splitlines()[-1] == "Found 4 findings in 2 of 2 files (1 fixed, 3 remaining)."


def test_stdin_comes_back_fixed_on_stdout(project, engine):
    result = critic("-", "--fix", "--stdin-filename", "m.py", stdin=CODE)
    assert result.exit_code == 1
    assert result.stdout == FIXED
    # What remains goes to stderr, as ruff does; the file of the same name is not touched.
    assert "m.py:6:5: CRT108 `return None` is wrong. [0.90]" in result.stderr.splitlines()
    assert (project / "m.py").read_text() == CODE
    engine(RULES[:2])
    clean = critic("-", "--fix", stdin=CODE)
    assert clean.exit_code == 0 and clean.stdout == FIXED
    assert clean.stderr.splitlines() == ["Found 2 findings in 1 of 1 file (2 fixed, 0 remaining)."]
    engine([])
    assert critic("-", "--fix", stdin="x = 1\n").stdout == "x = 1\n"  # nothing to fix: the code as given


def test_only_findings_not_in_the_baseline_are_fixed(project, engine):
    known = [f for f in findings_for(SourceFile("m.py", CODE), RULES) if f.rule == "CRT102"]
    baseline.rewrite(project / "known.json", known)
    result = critic("m.py", "--fix", "--baseline", "known.json")
    assert result.exit_code == 1
    assert (project / "m.py").read_text() == CODE.replace("range(n - 1)", "range(n)")  # `a < b` is known
    assert result.stderr.splitlines()[-1] == (
        "Found 2 findings in 1 of 1 file (1 fixed, 1 remaining). 1 finding in the baseline not shown."
    )


def test_fix_with_diff_fixes_only_changed_lines(project, engine):
    def git(*args: str) -> None:
        subprocess.run(
            ["git", "-c", "user.name=t", "-c", "user.email=t@example.com", *args],
            cwd=project,
            check=True,
            capture_output=True,
        )

    git("init", "-q")
    git("add", "m.py", "pyproject.toml")
    git("commit", "-q", "-m", "start")
    (project / "m.py").write_text(CODE.replace("if a < b:", "if a < b:  # changed"))
    result = critic("m.py", "--fix", "--diff=HEAD")
    assert result.exit_code == 0, result.output
    # Only line 4 changed: only its finding was reported, so only it is fixed.
    assert (project / "m.py").read_text() == CODE.replace("if a < b:", "if a <= b:  # changed")
    assert result.stderr.splitlines()[-1] == "Found 1 finding in 1 of 1 file (1 fixed, 0 remaining)."


def test_symlinked_files_are_fixed_through_the_link(project, engine):
    (project / "real.py").write_text(CODE)
    (project / "m.py").unlink()
    (project / "m.py").symlink_to("real.py")
    assert critic("m.py", "--fix").exit_code == 1
    assert (project / "m.py").is_symlink() and (project / "real.py").read_text() == FIXED


@pytest.mark.skipif(hasattr(os, "geteuid") and os.geteuid() == 0, reason="root writes read-only folders")
def test_a_file_that_cannot_be_written_is_an_error(project, engine):
    folder = project / "ro"
    folder.mkdir()
    (folder / "m.py").write_text(CODE)
    folder.chmod(0o555)
    try:
        result = critic("ro/m.py", "--fix")
    finally:
        folder.chmod(0o755)
    assert result.exit_code == 2
    assert (folder / "m.py").read_text() == CODE and sorted(p.name for p in folder.iterdir()) == ["m.py"]
    errors = [line for line in result.stderr.splitlines() if line.startswith("critic: error: ")]
    assert len(errors) == 1 and errors[0].startswith("critic: error: ro/m.py: cannot write the fixes")
    assert result.stdout.count("ro/m.py:") == 3  # nothing fixed: all remain


def test_a_failed_replace_leaves_the_file_and_no_temporary_file(project, engine, monkeypatch):
    def full_disk(src, dst):
        raise OSError(28, "No space left on device")

    with monkeypatch.context() as patch:
        patch.setattr(os, "replace", full_disk)
        result = critic("m.py", "--fix")
    assert result.exit_code == 2
    assert (project / "m.py").read_text() == CODE
    assert sorted(p.name for p in project.iterdir()) == ["m.py", "pyproject.toml"]
    errors = [line for line in result.stderr.splitlines() if line.startswith("critic: error: ")]
    assert errors == ["critic: error: m.py: cannot write the fixes (No space left on device)"]
    assert (
        result.stderr.splitlines()[-1] == "Found 3 findings in 1 of 1 file (0 fixed, 3 remaining), 1 error."
    )


def test_write_baseline_and_fix_do_not_combine(project, engine):
    result = critic("m.py", "--fix", "--write-baseline", "b.json")
    assert isinstance(result.exception, UserError) and "--fix" in str(result.exception)
    assert (project / "m.py").read_text() == CODE and not (project / "b.json").exists()


def test_review_help_says_fix_is_command_line_only():
    result = CliRunner().invoke(app, ["review", "--help"], env={"COLUMNS": "200", "TERM": "dumb"})
    assert "--fix" in result.output and "Command line only" in " ".join(result.output.split())


def test_the_fixed_path_is_the_path_reviewed(project, engine, tmp_path_factory):
    """A file given by an absolute path outside the working directory is fixed where it is."""
    elsewhere = Path(tmp_path_factory.mktemp("elsewhere")) / "x.py"
    elsewhere.write_text(CODE)
    assert critic(str(elsewhere), "--fix").exit_code == 1
    assert elsewhere.read_text() == FIXED and (project / "m.py").read_text() == CODE
