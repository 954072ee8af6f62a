"""`critic review` as users and CI run it: real processes, a critic with one known finding, every format,
exit codes, suppressions, --diff / --staged, awkward inputs, and no heavy imports on the review path."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import jsonschema
import pytest
from cli_process import run_critic
from conftest import BUG_LINE, BUG_QUOTE, BUG_RULE, BUGGY_CODE, with_comment

SCHEMA = Path(__file__).parent / "data" / "sarif-2.1.0-github.schema.json"
CONCISE = re.compile(
    r"^(?P<path>.+?):(?P<line>\d+):(?P<col>\d+): (?P<rule>CRT\d{3}) (?P<msg>.+) \[(?P<score>[01]\.\d\d)\]$"
)
CLEAN = "x = 1\n"  # nothing in it is long enough to quote: no critic can report on it
FAST = ("--samples", "2", "--rounds", "2", "--keep", "1", "--max-new-tokens", "48")


@pytest.fixture
def project(tmp_path, known_critic):
    """A project whose pyproject.toml points `critic review` at the memorized critic."""
    policy, reward = known_critic
    (tmp_path / "pyproject.toml").write_text(
        f'[project]\nname = "demo"\n\n[tool.critic]\nmodel = "{policy}"\nreward-model = "{reward}"\n'
        'min-score = 0.0\ntemperature = 0.5\nsearch = "fsbs"\n'
    )
    (tmp_path / "avg.py").write_text(BUGGY_CODE)
    return tmp_path


def review(
    cwd: Path, *args: str, stdin: str | None = None, env: dict | None = None
) -> subprocess.CompletedProcess:
    environment = {k: v for k, v in os.environ.items() if k != "GITHUB_ACTIONS"} | (env or {})
    return run_critic("review", *args, cwd=cwd, stdin=stdin, env=environment)


def one_line_error(result: subprocess.CompletedProcess, text: str) -> None:
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("critic: error: ")]
    assert len(errors) == 1 and text in errors[0], result.stderr


def test_concise_is_the_default_and_parses(project):
    result = review(project, "avg.py", *FAST)
    assert result.returncode == 1, result.stderr
    (line,) = result.stdout.splitlines()
    match = CONCISE.match(line)
    assert match, line
    assert (match["path"], int(match["line"]), match["rule"]) == ("avg.py", BUG_LINE, BUG_RULE)
    assert int(match["col"]) == BUGGY_CODE.splitlines()[BUG_LINE - 1].index(BUG_QUOTE) + 1
    assert "Found 1 finding" in result.stderr


def test_full_shows_the_quoted_lines(project):
    result = review(project, "avg.py", "--format", "full", *FAST)
    assert result.returncode == 1
    assert f"{BUG_LINE} |     {BUG_QUOTE}" in result.stdout
    assert "= Off-by-one" in result.stdout


def test_json(project):
    result = review(project, "avg.py", "--format", "json", *FAST)
    assert result.returncode == 1
    (finding,) = json.loads(result.stdout)
    assert finding["path"] == "avg.py" and finding["line"] == finding["end_line"] == BUG_LINE
    assert finding["quote"] == BUG_QUOTE and finding["rule"] == BUG_RULE
    assert 0.0 <= finding["score"] <= 1.0 and len(finding["fingerprint"]) == 32


def test_sarif_has_what_github_code_scanning_requires(project):
    result = review(project, "avg.py", "--format", "sarif", *FAST)
    assert result.returncode == 1
    log = json.loads(result.stdout)
    jsonschema.validate(log, json.loads(SCHEMA.read_text()))
    run = log["runs"][0]
    (res,) = run["results"]
    rules = run["tool"]["driver"]["rules"]
    assert rules[res["ruleIndex"]]["id"] == res["ruleId"] == BUG_RULE
    region = res["locations"][0]["physicalLocation"]["region"]
    assert (
        region["startLine"] == BUG_LINE
        and res["locations"][0]["physicalLocation"]["artifactLocation"]["uri"] == "avg.py"
    )
    # Fingerprints follow the code, not its line: moving the function keeps the alert's identity.
    (project / "avg.py").write_text("\n\n" + BUGGY_CODE)
    moved = json.loads(review(project, "avg.py", "--format", "sarif", *FAST).stdout)["runs"][0]["results"]
    assert moved and moved[0]["partialFingerprints"] == res["partialFingerprints"]


def test_clean_run_is_still_valid_sarif(project):
    (project / "clean.py").write_text(CLEAN)
    result = review(project, "clean.py", "--format", "sarif", *FAST)
    assert result.returncode == 0
    log = json.loads(result.stdout)
    jsonschema.validate(log, json.loads(SCHEMA.read_text()))
    assert log["runs"][0]["results"] == []


def test_github_annotations_and_automatic_in_actions(project):
    explicit = review(project, "avg.py", "--format", "github", *FAST)
    automatic = review(project, "avg.py", *FAST, env={"GITHUB_ACTIONS": "true"})
    assert explicit.returncode == automatic.returncode == 1
    assert explicit.stdout == automatic.stdout
    (line,) = explicit.stdout.splitlines()
    assert re.match(
        rf"^::error file=avg\.py,line={BUG_LINE},col=\d+,endLine={BUG_LINE},endColumn=\d+,"
        rf"title=critic \({BUG_RULE}\)::{BUG_RULE} ",
        line,
    )


def test_exit_codes(project):
    (project / "clean.py").write_text(CLEAN)
    clean = review(project, "clean.py", *FAST)
    assert clean.returncode == 0 and clean.stdout == "" and "All checks passed!" in clean.stderr
    assert review(project, "avg.py", *FAST).returncode == 1
    assert review(project, "avg.py", "--exit-zero", *FAST).returncode == 0
    one_line_error(review(project, "avg.py", "--min-score", "2"), "min-score")
    one_line_error(review(project, "avg.py", "--samples", "1", "--keep", "2"), "keep")
    one_line_error(review(project, "avg.py", "--model", str(project)), "config.json")
    one_line_error(review(project, "avg.py", "--format", "xml"), "unknown format")
    usage = review(project, "--no-such-flag")
    assert usage.returncode == 2 and "Traceback" not in usage.stderr


def test_min_score_is_the_confidence_dial(project):
    (finding,) = json.loads(review(project, "avg.py", "--format", "json", *FAST).stdout)
    above = f"{min(finding['score'] + 0.01, 1.0):.4f}"
    assert review(project, "avg.py", "--min-score", above, *FAST).returncode == 0


def test_suppression_comments(project):
    cases = {
        "ignored.py": (with_comment("# critic: ignore"), 0),
        "other_rule.py": (with_comment("# critic: ignore[CRT105]"), 1),
        "whole_file.py": ("# critic: ignore-file\n" + BUGGY_CODE, 0),
    }
    for name, (code, expected) in cases.items():
        (project / name).write_text(code)
        result = review(project, name, *FAST)
        assert result.returncode == expected, (name, result.stdout, result.stderr)


def test_same_seed_same_output(project):
    runs = [
        review(project, "avg.py", "--format", "json", "--seed", "7", "--max-new-tokens", "24", "--no-cache")
        for _ in range(2)
    ]
    assert runs[0].returncode == 1
    assert runs[0].stdout == runs[1].stdout


def git(cwd: Path, *args: str) -> None:
    subprocess.run(
        ["git", "-c", "user.name=t", "-c", "user.email=t@example.com", *args],
        cwd=cwd,
        check=True,
        capture_output=True,
    )


def test_diff_and_staged_report_changed_lines_only(project):
    fixed = BUGGY_CODE.replace("range(len(xs) - 1)", "range(len(xs))")
    (project / "avg.py").write_text(fixed)
    (project / "old.py").write_text(BUGGY_CODE)  # committed bug: not part of any change
    git(project, "init", "-q")
    git(project, "add", ".")
    git(project, "commit", "-q", "-m", "start")
    assert review(project, "avg.py", "old.py", *FAST).returncode == 1  # the full review sees old.py

    (project / "avg.py").write_text(BUGGY_CODE)
    for flag in (("--diff",), ("--diff", "HEAD"), ("--diff=HEAD",)):
        result = review(project, *flag, "avg.py", "old.py", "--format", "json", *FAST)
        assert result.returncode == 1, (flag, result.stderr)
        assert [(f["path"], f["line"]) for f in json.loads(result.stdout)] == [("avg.py", BUG_LINE)]
    assert review(project, "--staged", "avg.py", "old.py", *FAST).returncode == 0  # nothing staged yet
    git(project, "add", "avg.py")
    staged = review(project, "--staged", "avg.py", "old.py", "--format", "json", *FAST)
    assert [(f["path"], f["line"]) for f in json.loads(staged.stdout)] == [("avg.py", BUG_LINE)]
    one_line_error(review(project, "--diff", "no-such-ref-or-path", *FAST), "no-such-ref-or-path")


def test_directory_walk_skips_non_python_binary_and_ignored_files(project):
    tree = project / "src"
    (tree / "pkg").mkdir(parents=True)
    (tree / "pkg" / "avg.py").write_text(BUGGY_CODE)
    (tree / "pkg" / "stub.pyi").write_text(CLEAN)
    (tree / "README.md").write_text(BUGGY_CODE)
    (tree / "logo.png").write_bytes(bytes(range(256)) * 4)
    (tree / "model.bin").write_bytes(b"\x00\x01\xff" * 100)
    (tree / "generated.py").write_text(BUGGY_CODE)
    (tree / ".hidden").mkdir()
    (tree / ".hidden" / "avg.py").write_text(BUGGY_CODE)
    (project / ".gitignore").write_text("generated.py\n")
    git(project, "init", "-q")
    result = review(project, "src", "--format", "json", *FAST)
    assert result.returncode == 1, result.stderr
    assert {f["path"] for f in json.loads(result.stdout)} == {str(Path("src/pkg/avg.py"))}
    assert "of 2 files" in result.stderr  # avg.py and stub.pyi


def test_unreadable_inputs_are_reported_and_the_rest_reviewed(project):
    (project / "latin1.py").write_bytes("# caf\xe9\nx = 1\n".encode("latin-1"))
    (project / "blob.py").write_bytes(b"\x00\x01binary")
    result = review(project, "latin1.py", "blob.py", "avg.py", "missing.py", *FAST)
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("critic: error: ")]
    assert len(errors) == 3
    assert any("latin1.py: not UTF-8" in e for e in errors)
    assert any("blob.py: binary file" in e for e in errors)
    assert any("missing.py: no such file or directory" in e for e in errors)
    assert CONCISE.match(result.stdout.splitlines()[0])  # avg.py was still reviewed


def test_empty_file_and_stdin(project):
    (project / "empty.py").write_text("")
    empty = review(project, "empty.py", *FAST)
    assert empty.returncode == 0 and "All checks passed!" in empty.stderr
    piped = review(project, "-", "--stdin-filename", "piped.py", *FAST, stdin=BUGGY_CODE)
    assert piped.returncode == 1
    assert piped.stdout.startswith(f"piped.py:{BUG_LINE}:")


def test_long_file_maps_findings_to_file_lines(project):
    data = "".join(f"    {i},\n" for i in range(5000))
    code = BUGGY_CODE + "\n\nDATA = [\n" + data + "]\n"
    assert code.count("\n") >= 5000
    (project / "long.py").write_text(code)
    args = ("--samples", "1", "--rounds", "1", "--keep", "1", "--max-new-tokens", "40")
    result = review(project, "long.py", "--format", "json", *args)
    assert result.returncode == 1, result.stderr
    lines = code.split("\n")
    findings = json.loads(result.stdout)
    assert (BUG_LINE, BUG_QUOTE) in [(f["line"], f["quote"]) for f in findings]
    for f in findings:  # every reported line really holds the quoted code
        assert "".join(f["quote"].split()) in "".join("".join(lines[f["line"] - 1 : f["end_line"]]).split())


def test_settings_file_errors_name_the_file(project):
    (project / "pyproject.toml").write_text("[tool.critic]\nmin-scor = 0.3\n")
    one_line_error(review(project, "avg.py"), "pyproject.toml: unknown key 'min-scor'")
    (project / "pyproject.toml").write_text('[tool.critic]\nsamples = "four"\n')
    one_line_error(review(project, "avg.py"), "samples has the wrong type")


def test_review_path_imports_no_heavy_libraries(project):
    probe = (
        "import sys\n"
        "from critic.cli import main\n"
        f"sys.argv = ['critic', 'review', 'avg.py', {', '.join(repr(a) for a in FAST)}]\n"
        "try:\n    main()\nexcept SystemExit as exit:\n    code = exit.code\n"
        "loaded = {m.split('.')[0] for m in sys.modules}\n"
        "heavy = sorted(loaded & {'transformers', 'trl', 'datasets', 'gradio'})\n"
        "print('EXIT', code, 'HEAVY', heavy)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe], cwd=project, capture_output=True, text=True, timeout=600
    )
    assert "EXIT 1 HEAVY []" in result.stdout, (result.stdout, result.stderr)


def test_readme_ci_snippets(project, known_critic):
    from test_precommit import readme_block

    from critic.review.settings import load_settings

    table = readme_block("toml", "[tool.critic]")
    (project / "pyproject.toml").write_text(table)
    settings, _ = load_settings(project)
    assert settings.exclude == ("migrations/*",) and settings.min_score == 0.2
    # The workflow's command, on the known critic named in the same table as a user would.
    policy, reward = known_critic
    table = table.replace("min-score = 0.2", "min-score = 0.0\ntemperature = 0.5")
    (project / "pyproject.toml").write_text(
        table + f'model = "{policy}"\nreward-model = "{reward}"\nsearch = "fsbs"\n'
    )
    (command,) = re.findall(r"run: pip install critic && (.*)", readme_block("yaml", "upload-sarif"))
    argv, redirect = command.split(">")
    assert argv.split()[:2] == ["critic", "review"] and redirect.strip() == "critic.sarif"
    result = review(project, *argv.split()[2:], *FAST)
    assert result.returncode == 0, result.stderr  # --exit-zero: the upload step still runs
    log = json.loads(result.stdout)
    jsonschema.validate(log, json.loads(SCHEMA.read_text()))
    assert [r["ruleId"] for r in log["runs"][0]["results"]] == [BUG_RULE]


def test_the_summary_line_never_splits_or_cuts_inside_inline_code():
    from critic.review.reviewer import _first_sentence

    assert _first_sentence("Calls `path.join(a. b)` here. Then more.") == "Calls `path.join(a. b)` here."
    assert _first_sentence("No bug! Really.") == "No bug!"
    long = _first_sentence("The loop `" + "x" * 170 + "` is bad.")
    assert long == "The loop..." and long.count("`") % 2 == 0
    assert len(_first_sentence("word " * 100)) == 160


README_EXAMPLE = Path(__file__).resolve().parents[1] / "data" / "examples" / "solution.py"
PINNED = Path(__file__).parent / "data" / "readme_example_review.json"


def test_the_shipped_critic_says_exactly_what_it_said_on_the_readme_example(tmp_path):
    """Refactors must not change what the shipped critic says: its findings on the README's example at
    --min-score 0 (its raw best guesses) are pinned byte for byte. When the shipped critic itself
    changes, pin them again: in a folder holding a copy of data/examples/solution.py, run
    `critic review solution.py --min-score 0 --format json > tests/data/readme_example_review.json`."""
    (tmp_path / "solution.py").write_bytes(README_EXAMPLE.read_bytes())
    result = review(tmp_path, "solution.py", "--min-score", "0", "--format", "json")
    assert result.returncode == 1, result.stderr
    assert result.stdout == PINNED.read_text(encoding="utf-8")
