"""`critic eval`: metric arithmetic on hand-made critiques, and the command end to end on a tiny critic."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from conftest import BUG_CRITIQUE, BUG_LINE, BUGGY_CODE

from critic.critique import format_critique
from critic.evaluate import judge, random_line_critiques

FIXED = BUGGY_CODE.replace("range(len(xs) - 1)", "range(len(xs))")
SAMPLE = {
    "task_id": "t0",
    "original": FIXED,
    "code": BUGGY_CODE,
    "test": "",
    "bug_kind": "off_by_one_range",
    "bug_lines": [BUG_LINE],
    "description": "The loop stops one element early, so the last element is never added.",
    "verified": False,
    "source": "test",
}


def test_metrics_arithmetic():
    samples = [SAMPLE] * 4
    critiques = [
        BUG_CRITIQUE,  # hits the bug: 1 quoted line, 1 bug line
        format_critique([("total = 0", "This initial value is wrong, it breaks the sum.")]),  # fake problem
        format_critique(
            [("return total / len(xs)", "Wrong result."), (BUG_CRITIQUE.split("\n")[1], "Off by one.")]
        ),
        format_critique([("no_such_code()", "Crashes.")]),  # hallucinated quote
    ]
    metrics, included = judge(critiques, samples)
    assert included == [True, False, True, False]
    assert metrics.samples == 4
    assert metrics.cbi_rate == 0.5
    assert metrics.fake_problem_rate == 0.75  # the wrong init, the wrong return, the hallucination
    assert metrics.hallucinated_quote_rate == 0.25
    assert metrics.mean_highlights == (1 + 1 + 2 + 0) / 4  # hallucinated quotes are not highlights
    assert metrics.line_precision == pytest.approx(2 / 4)  # lines 3, 2, 5 + 3 quoted; 3 twice a bug
    assert metrics.line_recall == pytest.approx(2 / 4)


def test_random_line_baseline_quotes_a_real_line():
    samples = [SAMPLE, {**SAMPLE, "code": "x_value = 1\n", "bug_lines": [1]}]
    critiques = random_line_critiques(samples, seed=3)
    assert critiques == random_line_critiques(samples, seed=3)
    metrics, included = judge(critiques, samples)
    assert included[1]  # a one-line file: the random line is the bug line
    assert metrics.hallucinated_quote_rate == 0.0


def test_eval_command_writes_metrics_and_plot(tmp_path, known_critic):
    from datasets import Dataset, DatasetDict

    policy, reward = known_critic
    rows = [SAMPLE, {**SAMPLE, "task_id": "t1"}]
    data = tmp_path / "data"
    split = Dataset.from_list(rows)
    DatasetDict({"train": split, "validation": split, "test": split}).save_to_disk(str(data))
    (tmp_path / "pyproject.toml").write_text("[tool.critic]\ntemperature = 0.5\nmin-score = 0.0\n")
    out = tmp_path / "eval"
    args = ["--model", str(policy), "--reward-model", str(reward), "--sft-model", str(policy)]
    args += ["--data", str(data), "--out", str(out), "--length-modifiers", "0,1"]
    result = subprocess.run(
        [sys.executable, "-m", "critic.cli", "eval", *args],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["schema"] == 1 and metrics["samples"] == 2 and metrics["split"] == "test"
    assert set(metrics["configs"]) == {
        "critic@lm=0",
        "critic@lm=1",
        "critic@single",
        "random_line",
        "sft@lm=0",
        "sft@single",
    }
    fields = {"samples", "cbi_rate", "fake_problem_rate", "hallucinated_quote_rate", "nitpick_rate"}
    fields |= {"mean_highlights", "line_precision", "line_recall"}
    assert all(set(m) == fields for m in metrics["configs"].values())
    assert metrics["configs"]["critic@lm=0"]["cbi_rate"] == 1.0  # the memorized critic finds its bug
    assert metrics["configs"]["critic@single"]["cbi_rate"] == 1.0  # without FSBS too
    assert [p["length_modifier"] for p in metrics["pareto"]] == [0.0, 1.0]
    assert metrics["per_bug_kind"] == {"off_by_one_range": {"samples": 2, "cbi_rate": 1.0}}
    assert metrics["clean"]["files"] == 1 and 0.0 <= metrics["clean"]["silent_rate"] <= 1.0
    assert (out / "pareto.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_eval_bad_data_is_one_line_error(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "critic.cli", "eval", "--data", str(tmp_path), "--out", str(tmp_path / "o")],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert result.stderr.startswith("critic: error: ") and "dataset_dict.json" in result.stderr
