"""The whole RLHF pipeline on a minimal config: every stage, the manifest, resuming, clear errors."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys

import pytest
import yaml

from critic.errors import UserError
from critic.model.checkpoint import CheckpointError
from rl.config import PipelineConfig
from rl.pipeline import STAGES, run_pipeline

MINIMAL = {
    "data": {"source": "humaneval", "per_item": 2, "max_items": 24},
    "sft": {"preset": "tiny", "max_steps": 4, "batch_size": 4, "max_length": 512},
    "sample": {"samples_per_task": 2, "max_new_tokens": 16, "max_tasks": 4},
    "reward": {"max_steps": 3, "batch_size": 4, "max_length": 512},
    "ppo": {"total_episodes": 4, "batch_size": 2, "response_length": 8, "eval_prompts": 2},
}


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory):
    run = tmp_path_factory.mktemp("run")
    logs: list[str] = []
    metrics = run_pipeline(PipelineConfig.from_dict(MINIMAL), run, log=logs.append)
    return run, metrics, logs


def test_every_stage_runs_and_reports(finished_run):
    run, metrics, _ = finished_run
    assert list(metrics) == list(STAGES)
    report = json.loads((run / "report.json").read_text())
    assert 0.0 <= report["reward"]["eval_accuracy"] <= 1.0
    assert isinstance(report["ppo"]["reward_first"], float) and isinstance(
        report["ppo"]["reward_last"], float
    )
    manifest = json.loads((run / "manifest.json").read_text())
    assert manifest["config"]["sft"]["max_steps"] == 4
    assert set(manifest["versions"]) >= {"torch", "transformers", "trl", "datasets"}
    for stage in ("sft", "reward", "ppo"):
        assert (run / stage / "model.safetensors").is_file()
        assert not list((run / stage).glob("*.bin"))


def test_rerun_skips_finished_stages_and_resumes(finished_run):
    run, _, _ = finished_run
    sft_weights = (run / "sft" / "model.safetensors").stat().st_mtime_ns
    (run / "reward" / "done.json").unlink()  # as if killed during the reward stage
    logs: list[str] = []
    run_pipeline(PipelineConfig.from_dict(MINIMAL), run, log=logs.append)
    assert "sft: done earlier, skipped" in logs and "reward: running" in logs
    assert (run / "sft" / "model.safetensors").stat().st_mtime_ns == sft_weights


def test_reward_stage_under_accelerate_with_two_processes(finished_run, tmp_path):
    run, metrics, _ = finished_run
    copy = tmp_path / "run"
    shutil.copytree(run, copy)
    config = tmp_path / "minimal.yaml"
    config.write_text(yaml.safe_dump(MINIMAL))
    launch = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2"]
    launch += ["--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no"]
    result = subprocess.run(
        [*launch, "-m", "critic.cli", "train", "reward", "--config", str(config), "--out", str(copy)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    two = json.loads((copy / "reward" / "done.json").read_text())["metrics"]
    one = metrics["reward"]
    assert two["processes"] == 2 and one["processes"] == 1
    assert two["eval_pairs"] == one["eval_pairs"] and two["train_pairs"] == one["train_pairs"]
    assert 0.0 <= two["eval_accuracy"] <= 1.0 and two["steps"] == one["steps"]
    assert (copy / "reward" / "model.safetensors").is_file()


def test_corrupted_checkpoint_names_the_file(finished_run, tmp_path):
    run, _, _ = finished_run
    run = shutil.copytree(run, tmp_path / "run")
    (run / "sft" / "model.safetensors").write_bytes(b"garbage")
    with pytest.raises(CheckpointError, match="sft/model.safetensors"):
        run_pipeline(
            PipelineConfig.from_dict(MINIMAL), run, from_stage="sample", until="sample", log=lambda _: None
        )


def test_config_errors_are_user_errors(tmp_path):
    with pytest.raises(UserError, match="unknown key.*sft: lr"):
        PipelineConfig.from_dict({"sft": {"lr": 1}})
    with pytest.raises(UserError, match="unknown config section"):
        PipelineConfig.from_dict({"sfft": {}})
    with pytest.raises(UserError, match="no such config file"):
        PipelineConfig.from_yaml(tmp_path / "missing.yaml")
    with pytest.raises(UserError, match="stage data has not finished"):
        run_pipeline(
            PipelineConfig.from_dict(MINIMAL), tmp_path / "empty", from_stage="sample", log=lambda _: None
        )
