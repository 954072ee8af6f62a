"""The shipped recipe's shape, end to end at toy size: pre-training, line-uniform tampering, reward
pairs that need no sampling, and calibration of the finished critic."""

from __future__ import annotations

import json
import sysconfig
from pathlib import Path

import yaml
from datasets import load_from_disk

from critic.inference.calibration import FILE, Calibration
from critic.rl.config import PipelineConfig
from critic.rl.pipeline import run_pipeline, stages_of

RECIPE = Path(__file__).resolve().parents[1] / "rl" / "configs" / "default-critic.yaml"
JSON_DIR = str(Path(sysconfig.get_paths()["stdlib"]) / "json")


def toy_recipe() -> dict:
    """default-critic.yaml with every size cut down, so the test runs what the recipe runs."""
    raw = yaml.safe_load(RECIPE.read_text())
    raw["data"] |= {"source": [JSON_DIR], "per_item": 2, "max_per_source": 40}
    raw["pretrain"] |= {"sources": [JSON_DIR], "max_tokens": 20_000, "max_steps": 3, "batch_size": 2}
    raw["pretrain"] |= {"max_length": 128, "save_steps": 2}
    raw["sft"] |= {"max_steps": 3, "batch_size": 2}
    raw["sample"] |= {"samples_per_task": 2, "max_new_tokens": 12, "max_tasks": 3}
    raw["rank"] |= {"max_steps": 3, "batch_size": 2, "eval_samples": 4, "save_steps": 2}
    raw["reward"] |= {"max_steps": 3, "batch_size": 2, "eval_pairs": 8}
    raw["rl"] |= {"max_steps": 2, "batch_size": 2, "group_size": 2, "max_new_tokens": 8, "eval_prompts": 2}
    raw["calibrate"] |= {"max_samples": 3, "bootstrap": 5}
    raw["localize"] |= {"max_samples": 3, "bootstrap": 5}
    return raw


def test_the_recipe_runs_every_stage_at_toy_size(tmp_path):
    cfg = PipelineConfig.from_dict(toy_recipe())
    stages = ("data", "pretrain", "sft", "sample", "rate", "rank", "reward", "rl", "calibrate", "localize")
    assert stages_of(cfg) == stages
    metrics = run_pipeline(cfg, tmp_path, log=lambda _: None)
    assert metrics["rate"]["train_synthetic_pairs"] > 0
    assert metrics["rank"]["train_orderings"] > 0 and metrics["reward"]["start"] == str(tmp_path / "rank")
    rate = load_from_disk(str(tmp_path / "rate"))
    synthetic = [r for r in rate["preferences_train"] if r["margin"] == 0.0]
    assert any(r["chosen"].startswith("I found no bugs") for r in synthetic)
    fitted = Calibration.load(tmp_path / "calibrate")
    saved = json.loads((tmp_path / "calibrate" / FILE).read_text())
    assert (fitted.scale, fitted.bias) == (saved["scale"], saved["bias"])
    assert [row["min_score"] for row in metrics["calibrate"]["min_score_sweep"]][0] <= 0.3
    localizer = json.loads((tmp_path / "localize" / "localizer.json").read_text())
    assert localizer["language_model"] == str(tmp_path / "rl")
    assert localizer["min_score"] == metrics["localize"]["chosen_min_score"]
