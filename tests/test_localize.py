"""The localize stage: fits the repair search's localizer on validation code and picks a min-score."""

from __future__ import annotations

import json
import random

import pytest
import torch
from conftest import randomize_

from critic.core.tokenizer import load_tokenizer, save_tokenizer
from critic.datagen.tamper import tamper
from critic.inference.localizer import FILE, Localizer
from critic.model import CriticConfig, Gemma2CausalLM, save_checkpoint
from critic.rl.config import LocalizeStage, PipelineConfig
from critic.rl.localize import MAX_CLEAN_FLAGGED, choose_min_score, run_localize

FUNCTIONS = [
    "def clamp(x, low, high):\n    if x < low:\n        return low\n    if x > high:\n        return high\n"
    "    return x\n",
    "def total(xs):\n    s = 0\n    for i in range(len(xs)):\n        s += xs[i] * 2\n    return s\n",
    "def first_even(xs):\n    for x in xs:\n        if x % 2 == 0 and x > 0:\n            return x\n"
    "    return None\n",
]


def _validation_rows() -> list[dict]:
    rows = []
    for k, code in enumerate(FUNCTIONS):
        for t in tamper(code, random.Random(k), max_samples=2):
            rows.append(
                {
                    "task_id": f"f{k}",
                    "group": f"f{k}",
                    "code": t.code,
                    "original": code,
                    "bug_lines": t.bug_lines,
                }
            )
    return rows


@pytest.fixture(scope="module")
def lm_dir(tmp_path_factory):
    torch.manual_seed(0)
    model = randomize_(Gemma2CausalLM(CriticConfig.from_preset("tiny")), scale=0.05)
    out = tmp_path_factory.mktemp("lm")
    save_checkpoint(model, out)
    save_tokenizer(load_tokenizer(), out)
    return out


def test_the_stage_fits_saves_and_chooses_from_its_sweep(tmp_path, lm_dir):
    rows = _validation_rows()
    metrics = run_localize(
        LocalizeStage(max_samples=100, bootstrap=20), {"validation": rows}, lm_dir, tmp_path
    )
    assert metrics["samples"] == len(rows) and metrics["originals"] == len(FUNCTIONS)
    assert 0 < metrics["restorable_rate"] <= 1
    swept = {p["min_score"] for p in metrics["min_score_sweep"]}
    assert metrics["chosen_min_score"] in swept
    saved = json.loads((tmp_path / FILE).read_text())
    assert saved["min_score"] == metrics["chosen_min_score"] and saved["language_model"] == str(lm_dir)
    localizer = Localizer.load(tmp_path)
    assert localizer.weights == pytest.approx([metrics["localizer"][name] for name in localizer.names])


def _point(min_score: float, clean: float, precision: float | None) -> dict:
    return {
        "min_score": min_score,
        "validation": {"line_precision": {"value": precision}},
        "clean": {"false_alarm_rate": {"value": clean}},
    }


def test_the_default_is_the_lowest_quiet_and_precise_min_score():
    sweep = [_point(0.0, 0.9, 0.3), _point(0.1, 0.08, 0.5), _point(0.2, 0.05, 0.7), _point(0.3, 0.0, 0.9)]
    assert choose_min_score(sweep) == 0.2
    # nothing precise enough: the lowest that keeps clean code quiet
    assert choose_min_score([p for p in sweep if p["min_score"] < 0.2]) == 0.1
    assert choose_min_score([_point(0.0, 0.5, 0.1), _point(0.5, 0.4, None)]) == 0.5
    assert MAX_CLEAN_FLAGGED == 0.10


def test_the_stage_is_optional_and_names_its_language_model(tmp_path):
    assert PipelineConfig().localize is None
    cfg = PipelineConfig.from_dict({"localize": {"language_model": "sft"}})
    assert cfg.localize == LocalizeStage(language_model="sft")
