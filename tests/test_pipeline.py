"""The whole RLHF pipeline on a minimal config: every stage, the manifest, resuming, clear errors."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time

import pytest
import torch
import yaml

from critic.core.errors import UserError
from critic.model.checkpoint import CheckpointError
from critic.rl.config import PipelineConfig
from critic.rl.pipeline import STAGES, run_pipeline, stages_of

MINIMAL = {
    "data": {"source": "humaneval", "per_item": 2, "max_items": 24},
    "sft": {"preset": "tiny", "max_steps": 4, "batch_size": 4, "max_length": 512},
    "sample": {"samples_per_task": 2, "max_new_tokens": 16, "max_tasks": 4},
    "reward": {"max_steps": 3, "batch_size": 4, "max_length": 512},
    "rl": {"max_steps": 2, "batch_size": 2, "group_size": 2, "max_new_tokens": 8, "eval_prompts": 2},
}


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory):
    run = tmp_path_factory.mktemp("run")
    logs: list[str] = []
    metrics = run_pipeline(PipelineConfig.from_dict(MINIMAL), run, log=logs.append)
    return run, metrics, logs


def test_every_stage_runs_and_reports(finished_run):
    run, metrics, _ = finished_run
    assert list(metrics) == [
        name for name in STAGES if name not in ("pretrain", "distill", "rank", "calibrate", "localize")
    ]
    report = json.loads((run / "report.json").read_text())
    assert 0.0 <= report["reward"]["eval_accuracy"] <= 1.0
    rl = report["rl"]
    assert isinstance(rl["reward_first"], float) and isinstance(rl["reward_last"], float)
    assert rl["steps"] == 2 and rl["rollouts"] == 4 and rl["eval_critiques"] == 8
    gain = rl["reward_gain"]  # paired, with its interval
    assert gain["low"] <= gain["value"] <= gain["high"]
    assert gain["value"] == pytest.approx(rl["reward_last"] - rl["reward_first"], abs=1e-5)
    assert (
        isinstance(rl["kl"], float)
        and rl["train_rewards"]
        and len(rl["train_kl"]) == len(rl["train_rewards"])
    )
    manifest = json.loads((run / "manifest.json").read_text())
    assert manifest["config"]["sft"]["max_steps"] == 4
    assert set(manifest["versions"]) >= {"torch", "transformers", "trl", "datasets"}
    for stage in ("sft", "reward", "rl"):
        assert (run / stage / "model.safetensors").is_file()
        assert not list((run / stage).glob("*.bin"))
        assert not (run / stage / "checkpoints").exists()  # removed when the stage finished


def test_sampled_critiques_quote_the_code_verbatim(finished_run):
    from datasets import load_from_disk

    from critic.core.critique import HIGHLIGHT_FENCE

    run, _, _ = finished_run
    for split in load_from_disk(str(run / "sample")).values():
        for row in split:
            assert row["critique"].startswith(HIGHLIGHT_FENCE + "\n")
            # 16 new tokens may end inside the quote: what was written is still verbatim code
            quoted = row["critique"][4:].split("\n" + HIGHLIGHT_FENCE)[0].rstrip("\n")
            assert quoted and quoted in row["code"]


def test_rerun_skips_finished_stages_and_resumes(finished_run):
    run, _, _ = finished_run
    sft_weights = (run / "sft" / "model.safetensors").stat().st_mtime_ns
    (run / "reward" / "done.json").unlink()  # as if killed during the reward stage
    logs: list[str] = []
    run_pipeline(PipelineConfig.from_dict(MINIMAL), run, log=logs.append)
    assert "sft: done earlier, skipped" in logs and "reward: running" in logs
    assert (run / "sft" / "model.safetensors").stat().st_mtime_ns == sft_weights


def test_reward_and_rl_stages_under_accelerate_with_two_processes(finished_run, tmp_path):
    run, metrics, _ = finished_run
    copy = tmp_path / "run"
    shutil.copytree(run, copy)
    config = tmp_path / "minimal.yaml"
    config.write_text(yaml.safe_dump(MINIMAL))
    launch = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2"]
    launch += ["--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no"]
    result = subprocess.run(
        [*launch, "-m", "critic.cli", "train", "pipeline", "--from", "reward", "--config", str(config)]
        + ["--out", str(copy)],
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
    rl = json.loads((copy / "rl" / "done.json").read_text())["metrics"]
    assert rl["processes"] == 2 and rl["steps"] == metrics["rl"]["steps"]
    assert rl["rollouts"] == 2 * metrics["rl"]["rollouts"]  # each process draws its own batch
    assert rl["eval_critiques"] == metrics["rl"]["eval_critiques"] and isinstance(rl["kl"], float)
    assert (copy / "rl" / "model.safetensors").is_file() and not (copy / "rl" / "checkpoints").exists()


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
    with pytest.raises(UserError, match="the ppo section is gone.*rename `ppo:` to `rl:`"):
        PipelineConfig.from_dict({"ppo": {"total_episodes": 64}})
    with pytest.raises(UserError, match="multiple of rl.group_size"):
        PipelineConfig.from_dict({"rl": {"batch_size": 6, "group_size": 4}})
    with pytest.raises(UserError, match="ppo stage is now `rl`"):
        PipelineConfig.from_dict({"localize": {"language_model": "ppo"}})
    with pytest.raises(UserError, match="no such config file"):
        PipelineConfig.from_yaml(tmp_path / "missing.yaml")
    with pytest.raises(UserError, match="stage data has not finished"):
        run_pipeline(
            PipelineConfig.from_dict(MINIMAL), tmp_path / "empty", from_stage="sample", log=lambda _: None
        )


def test_killed_during_reward_then_rerun_finishes_without_redoing_sft(tmp_path):
    config = tmp_path / "minimal.yaml"
    config.write_text(yaml.safe_dump(MINIMAL))
    run = tmp_path / "run"
    command = [
        sys.executable,
        "-m",
        "critic.cli",
        "train",
        "pipeline",
        "--config",
        str(config),
        "--out",
        str(run),
    ]
    first = subprocess.Popen(
        command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True
    )
    deadline = time.monotonic() + 300
    while not (run / "reward").is_dir() and first.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    assert first.poll() is None, "the pipeline ended before the reward stage started"
    os.killpg(first.pid, signal.SIGKILL)  # no chance to clean up
    first.wait()
    assert not (run / "reward" / "done.json").exists() and (run / "sft" / "done.json").is_file()
    sft_weights = (run / "sft" / "model.safetensors").stat().st_mtime_ns

    second = subprocess.run(command, capture_output=True, text=True, timeout=600)
    assert second.returncode == 0, second.stderr[-2000:]
    assert "sft: done earlier, skipped" in second.stderr and "reward: running" in second.stderr
    assert (run / "sft" / "model.safetensors").stat().st_mtime_ns == sft_weights
    assert set(json.loads((run / "report.json").read_text())) == set(
        stages_of(PipelineConfig.from_dict(MINIMAL))
    )


def test_lora_stages_from_an_existing_checkpoint(tmp_path):
    """The GPU recipe's paths at tiny size: a pretrain stage continuing a checkpoint, LoRA in SFT (from
    the pretrain stage's checkpoint), reward and RL."""
    from critic.core.tokenizer import load_tokenizer, save_tokenizer
    from critic.model import CriticConfig, new_causal_lm, save_checkpoint
    from critic.model.checkpoint import load_causal_lm

    base = tmp_path / "base"
    save_checkpoint(new_causal_lm(CriticConfig.from_preset("tiny"), seed=5), base)
    save_tokenizer(load_tokenizer(), base)
    lora = {"lora_r": 4, "lora_alpha": 8}
    sft = {k: v for k, v in MINIMAL["sft"].items() if k != "preset"}  # it starts from RUN/pretrain
    config = {
        **MINIMAL,
        "pretrain": {
            "init": str(base),
            "max_steps": 2,
            "batch_size": 2,
            "max_length": 128,
            "max_tokens": 8192,
        },
        "sft": {**sft, **lora},
        "reward": {**MINIMAL["reward"], **lora},
        "rl": {**MINIMAL["rl"], **lora},
    }
    run = tmp_path / "run"
    metrics = run_pipeline(PipelineConfig.from_dict(config), run, log=lambda _: None)
    assert list(metrics) == [
        name for name in STAGES if name not in ("distill", "rank", "calibrate", "localize")
    ]
    assert metrics["pretrain"]["steps"] == 2 and metrics["pretrain"]["corpus"]["tokens"] == 8192
    assert metrics["sft"]["start"] == str(run / "pretrain")
    for stage in ("pretrain", "sft", "rl"):  # adapters merged: plain checkpoints that load strictly
        names = set(json.loads((run / stage / "config.json").read_text()))
        assert "base_model_name_or_path" not in names
        load_causal_lm(run / stage)
    assert not (run / "sft" / "adapter_config.json").exists()
    before, after = load_causal_lm(base).state_dict(), load_causal_lm(run / "sft").state_dict()
    assert any(not torch.equal(before[k], after[k]) for k in before)


@pytest.mark.parametrize(
    "name", ["tiny.yaml", "gemma-2-2b.yaml", "default-critic.yaml", "distilled-critic.yaml"]
)
def test_shipped_configs_parse(name):
    from pathlib import Path

    config = PipelineConfig.from_yaml(Path(__file__).resolve().parents[1] / "rl" / "configs" / name)
    assert config.sft.max_steps > 0 and config.rl.max_steps > 0


def test_rate_stage_adds_human_preferences_from_an_export(finished_run, tmp_path):
    from datasets import Dataset, DatasetDict, load_from_disk

    from critic.rl.config import RateStage
    from critic.rl.rate import run_rate

    run, metrics, _ = finished_run
    tasks = [f"human/{i}" for i in range(40)]
    export = DatasetDict(
        preferences=Dataset.from_dict(
            {
                "task_id": tasks,
                "prompt": ["<bos>request"] * 40,
                "chosen": ["good<end_of_turn>"] * 40,
                "rejected": ["bad<end_of_turn>"] * 40,
                "margin": [2] * 40,  # ints are cast
                "rater": ["ann"] * 40,  # extra columns are dropped
            }
        )
    )
    export.save_to_disk(str(tmp_path / "export"))
    samples = load_from_disk(str(run / "sample"))

    both = run_rate(RateStage(human_ratings=str(tmp_path / "export")), samples, tmp_path / "both")
    human = both["train_human_pairs"] + both["validation_human_pairs"]
    assert human == 40 and both["validation_human_pairs"] > 0
    assert both["train_pairs"] == metrics["rate"]["train_pairs"] + both["train_human_pairs"]
    only = run_rate(
        RateStage(automatic=False, human_ratings=str(tmp_path / "export")), samples, tmp_path / "only"
    )
    assert only["train_pairs"] + only["validation_pairs"] == 40

    Dataset.from_dict({"x": [1]}).save_to_disk(str(tmp_path / "bad"))
    with pytest.raises(UserError, match="preferences"):
        run_rate(RateStage(human_ratings=str(tmp_path / "bad")), samples, tmp_path / "bad_out")


def test_sft_examples_teach_clean_code_too():
    from datasets import Dataset

    from critic.core.critique import NO_BUGS
    from critic.rl.sft import sft_examples

    rows = {
        "code": [
            "def f(a):\n    return a - 1\n",
            "def f(a):\n    return -a\n",
            "def g(b):\n    return b * 3\n",
        ],
        "original": [
            "def f(a):\n    return a + 1\n",
            "def f(a):\n    return a + 1\n",
            "def g(b):\n    return b * 2\n",
        ],
        "bug_lines": [[2], [2], [2]],
        "description": [
            "Subtracts instead of adding.",
            "Negates instead of adding.",
            "Triples instead of doubling.",
        ],
    }
    plain = sft_examples(Dataset.from_dict(rows), clean_fraction=0.0, seed=0)
    assert len(plain) == 3 and NO_BUGS not in "".join(plain["completion"])
    mixed = sft_examples(Dataset.from_dict(rows), clean_fraction=1.0, seed=0)
    clean = [p for p, c in zip(mixed["prompt"], mixed["completion"], strict=True) if NO_BUGS in c]
    assert len(mixed) == 5 and len(clean) == 2  # each distinct original once
    assert all("return a + 1" in p or "return b * 2" in p for p in clean)


def _sampled(critiques_per_code: dict[str, list[str]]):
    """Sample-stage rows: two tamperings of one item (same task_id), each with its own critiques."""
    from datasets import Dataset

    original = "def f(a, b):\n    total = a + b\n    return total * 2\n"
    rows: dict[str, list] = {
        k: [] for k in ("task_id", "code", "original", "bug_lines", "description", "critique", "origin")
    }
    for code, critiques in critiques_per_code.items():
        line = 2 if "-" in code else 3
        for k, text in enumerate(critiques):
            rows["task_id"].append("item/0")
            rows["code"].append(code)
            rows["original"].append(original)
            rows["bug_lines"].append([line])
            rows["description"].append("The arithmetic operator was changed.")
            rows["critique"].append(text)
            rows["origin"].append(f"policy/{k}")
    return Dataset.from_dict(rows)


def test_rate_compares_critiques_of_the_same_tampered_code_only():
    from critic.core.critique import NO_BUGS
    from critic.rl.rate import rate_split

    minus = "def f(a, b):\n    total = a - b\n    return total * 2\n"
    power = "def f(a, b):\n    total = a + b\n    return total ** 2\n"
    samples = _sampled(
        {
            minus: ["```\n    total = a - b\n```\nSubtracts: the arithmetic operator was changed."],
            power: ["```\n    return total ** 2\n```\nSquares: the arithmetic operator was changed."],
        }
    )
    ratings, pairs = rate_split(samples, include_gold=True, include_no_bugs=True)
    # Each critique is rated against the code it was written for: both catch their own bug.
    policy = [r for r in ratings if r["origin"].startswith("policy")]
    assert [r["cbi"] >= 6 for r in policy] == [True, True]
    for pair in pairs:
        if pair["task_id"].endswith("/original"):
            continue
        code = minus if "a - b" in pair["prompt"] else power
        for text in (pair["chosen"], pair["rejected"]):
            assert NO_BUGS in text or text.split("```\n")[1].split("\n")[0] in code
    # NO_BUGS loses to a catch on tampered code and wins over a fake problem on the original.
    tampered = [p for p in pairs if not p["task_id"].endswith("/original")]
    assert any(NO_BUGS in p["rejected"] for p in tampered)
    assert not any(NO_BUGS in p["chosen"] for p in tampered)
    clean = [p for p in pairs if p["task_id"].endswith("/original")]
    assert len(clean) == 2 and all(NO_BUGS in p["chosen"] and "a + b" in p["prompt"] for p in clean)


def test_clean_code_pair_skips_lines_missing_from_the_original():
    from critic.rl.rate import clean_code_pair

    row = {"task_id": "t", "original": "def f():\n    pass\n", "bug_lines": [5], "description": "x"}
    assert clean_code_pair(row) is None


def test_sft_drops_examples_that_would_lose_their_critique_to_truncation():
    from datasets import Dataset

    from critic.core.tokenizer import load_hf_tokenizer
    from critic.rl.sft import fitting

    tokenizer = load_hf_tokenizer()
    examples = Dataset.from_dict(
        {"prompt": ["short prompt", "long prompt " * 200], "completion": ["ok", "lost"]}
    )
    kept = fitting(examples, tokenizer, max_length=64)
    assert kept["completion"] == ["ok"]


def test_data_stage_samples_each_source_evenly(tmp_path):
    from datasets import load_from_disk

    from critic.rl.pipeline import RUNNERS

    package = tmp_path / "pkg"
    package.mkdir()
    for i in range(12):
        body = "\n".join(f"    x = x + {k}" for k in range(4))
        (package / f"m{i:02}.py").write_text(f"def f{i}(x):\n{body}\n    return x\n")
    cfg = PipelineConfig.from_dict({"data": {"source": str(package), "per_item": 1, "max_per_source": 5}})
    RUNNERS["data"](cfg, tmp_path, tmp_path / "out")
    data = load_from_disk(str(tmp_path / "out"))
    items = {t for split in data.values() for t in split["task_id"]}
    assert len(items) == 5 and items != {f"m{i:02}.py::f{i}" for i in range(5)}  # not the first files
