"""Distillation (rl/distill.py): the student's KL to its teacher falls, the vocabulary check, the CLI
and the pipeline's teacher -> distill -> PPO path, all at tiny size."""

from __future__ import annotations

import json
import subprocess

import pytest
import torch
from cli_process import run_critic

from critic.core.errors import UserError
from critic.core.tokenizer import load_hf_tokenizer, load_tokenizer, stdlib_files, train_tokenizer
from critic.datagen.tamper_data import build_samples, humaneval_items, to_dataset_dict
from critic.model import CriticConfig, CriticForCausalLM, load_causal_lm, to_hf_config
from critic.rl.config import DistillStage, PipelineConfig
from critic.rl.distill import run_distill
from critic.rl.pipeline import run_pipeline, stages_of

TEACHER = dict(
    hidden_size=64, intermediate_size=128, num_hidden_layers=2, head_dim=16, query_pre_attn_scalar=16
)
STUDENT = dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, head_dim=8, query_pre_attn_scalar=8)


def save_config(directory, **shape) -> None:
    directory.mkdir(parents=True)
    (directory / "config.json").write_text(json.dumps(CriticConfig.from_preset("tiny", **shape).to_dict()))


@pytest.fixture(scope="module")
def teacher(tmp_path_factory):
    """A random teacher with confident, context-dependent distributions (larger initial weights): its
    KL from a new student starts near 7 nats a token, so learning it shows."""
    directory = tmp_path_factory.mktemp("teacher")
    torch.manual_seed(1)
    config = CriticConfig.from_preset("tiny", **TEACHER, initializer_range=0.3)
    CriticForCausalLM(to_hf_config(config)).save_pretrained(directory)
    load_hf_tokenizer().save_pretrained(directory)
    return directory


@pytest.fixture(scope="module")
def data():
    samples, _ = build_samples(humaneval_items()[:24], 2, 0)
    return to_dataset_dict(samples, 0)


def test_student_kl_to_the_teacher_falls(teacher, data, tmp_path):
    save_config(tmp_path / "student", **STUDENT)
    stage = DistillStage(
        student=str(tmp_path / "student"), max_steps=24, batch_size=4, max_length=512, learning_rate=1e-2
    )
    metrics = run_distill(stage, data, teacher, tmp_path / "out")
    assert metrics["kl_after"] < 0.8 * metrics["kl_before"], metrics
    assert metrics["losses"][-1] < metrics["losses"][0]  # the training KL, logged every 10 steps
    assert metrics["teacher_parameters"] > metrics["parameters"] and metrics["steps"] == 24
    student = load_causal_lm(tmp_path / "out")  # strict load: a plain checkpoint of the student's shape
    assert student.config.hidden_size == STUDENT["hidden_size"]
    assert not list((tmp_path / "out").glob("*.bin"))


def test_on_policy_steps_and_pretraining_run(teacher, data, tmp_path):
    stage = DistillStage(
        student="tiny", pretrain_steps=2, max_steps=2, batch_size=2, lmbda=1.0, max_new_tokens=8
    )
    metrics = run_distill(stage, data, teacher, tmp_path / "out")
    assert metrics["steps"] == 2 and "pretrain_loss" in metrics
    assert load_causal_lm(tmp_path / "out").config.vocab_size == 8192  # a preset takes the teacher's vocab


def test_student_with_another_vocabulary_is_refused(teacher, data, tmp_path):
    save_config(tmp_path / "smaller", **STUDENT, vocab_size=300)
    with pytest.raises(UserError, match="do not share a vocabulary"):
        run_distill(DistillStage(student=str(tmp_path / "smaller")), data, teacher, tmp_path / "a")
    other = tmp_path / "other"
    save_config(other, **STUDENT)  # same size, different tokens
    train_tokenizer(stdlib_files()[:3], vocab_size=8192).save(str(other / "tokenizer.json"))
    assert load_tokenizer(other).get_vocab() != load_tokenizer().get_vocab()
    with pytest.raises(UserError, match="do not share a vocabulary"):
        run_distill(DistillStage(student=str(other)), data, teacher, tmp_path / "b")
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()
    with pytest.raises(UserError, match="lmbda must be between 0 and 1"):
        DistillStage(lmbda=2.0)


def critic(*args: str) -> subprocess.CompletedProcess:
    return run_critic(*args)


def test_cli_distills_and_refuses_bad_input(teacher, data, tmp_path):
    data_dir = tmp_path / "data"
    data.save_to_disk(str(data_dir))
    config = tmp_path / "distill.yaml"
    config.write_text("distill:\n  max_steps: 3\n  batch_size: 2\n  max_length: 512\n")
    out = tmp_path / "student"
    args = ["train", "distill", "--teacher", str(teacher), "--data", str(data_dir), "--config", str(config)]
    done = critic(*args, "--student-config", "tiny", "--out", str(out))
    assert done.returncode == 0, done.stderr[-2000:]
    assert "KL to the teacher" in done.stderr
    record = json.loads((out / "distill.json").read_text())
    assert record["config"]["max_steps"] == 3 and record["metrics"]["steps"] == 3
    weights = (out / "model.safetensors").read_bytes()
    cases = [
        ["--student-config", "tiny", "--out", str(out)],  # would overwrite: refused, nothing lost
        ["--student-config", "huge", "--out", str(tmp_path / "x")],
    ]
    bad_teacher = ["train", "distill", "--teacher", str(tmp_path / "missing"), "--data", str(data_dir)]
    bad_data = ["train", "distill", "--teacher", str(teacher), "--data", str(tmp_path)]
    for result in [critic(*args, *case) for case in cases] + [
        critic(*bad_teacher, "--student-config", "tiny", "--out", str(tmp_path / "y")),
        critic(*bad_data, "--student-config", "tiny", "--out", str(tmp_path / "z")),
    ]:
        assert result.returncode == 2, result.stderr
        assert len(result.stderr.strip().splitlines()) == 1 and "Traceback" not in result.stderr
    assert (out / "model.safetensors").read_bytes() == weights


def test_pipeline_trains_teacher_then_distills_then_rl_trains_the_student(tmp_path):
    from test_pipeline import MINIMAL

    student = tmp_path / "student"
    save_config(student, **STUDENT)
    config = PipelineConfig.from_dict(
        {**MINIMAL, "distill": {"student": str(student), "max_steps": 3, "batch_size": 2, "max_length": 512}}
    )
    assert stages_of(config) == ("data", "sft", "distill", "sample", "rate", "reward", "rl")
    run = tmp_path / "run"
    metrics = run_pipeline(config, run, log=lambda _: None)
    assert list(metrics) == list(stages_of(config))
    assert metrics["distill"]["teacher_parameters"] > metrics["distill"]["parameters"]
    for stage in ("distill", "reward", "rl"):  # the student is the policy from distill on
        assert json.loads((run / stage / "config.json").read_text())["hidden_size"] == STUDENT["hidden_size"]
    assert json.loads((run / "sft" / "config.json").read_text())["hidden_size"] == 128  # the teacher
    outside = PipelineConfig.from_dict({**MINIMAL, "distill": {"teacher": str(run / "sft")}})
    assert "sft" not in stages_of(outside)
