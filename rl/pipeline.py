"""Run the stages in order into one run directory, resumably.

Each stage writes into RUN/<stage>/ and, last of all, RUN/<stage>/done.json with its metrics: a
stage with done.json is skipped on the next run, so an interrupted run resumes where it stopped. The
trainer stages in RESUMABLE also resume mid-stage, from the last checkpoint in RUN/<stage>/checkpoints/
(every `save_steps` steps); the other stages start over. `from_stage` forgets that stage and every
later one, checkpoints included. RUN/manifest.json records the config, seeds, git commit, library
versions, per-stage metrics and artifact paths; RUN/report.json the metrics.
"""

from __future__ import annotations

import dataclasses
import json
import random
import shutil
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from critic.core.errors import UserError
from critic.rl.common import write_json
from critic.rl.config import PipelineConfig

STAGES = (
    "data",
    "pretrain",
    "sft",
    "distill",
    "sample",
    "rate",
    "rank",
    "reward",
    "rl",
    "calibrate",
    "localize",
)
DISTRIBUTED = {"pretrain", "sft", "distill", "rank", "reward", "rl"}  # trainers: every process takes part
# a partial stage directory is kept: its checkpoints resume
RESUMABLE = {"pretrain", "sft", "rank", "reward", "rl"}


def stages_of(cfg: PipelineConfig) -> tuple[str, ...]:
    """The stages a config runs: pretrain, distill, rank, calibrate and localize only when it has their
    sections; with a teacher from outside the run, no sft stage trains one."""
    skipped = set() if cfg.pretrain is not None else {"pretrain"}
    skipped |= {"distill"} if cfg.distill is None else {"sft"} if cfg.distill.teacher else set()
    skipped |= {"calibrate"} if cfg.calibrate is None else set()
    skipped |= {"localize"} if cfg.localize is None else set()
    skipped |= {"rank"} if cfg.rank is None else set()
    return tuple(name for name in STAGES if name not in skipped)


def policy_dir(cfg: PipelineConfig, run: Path) -> Path:
    """The policy the later stages sample, reward-model and RL-train: the distilled student if any."""
    return run / ("sft" if cfg.distill is None else "distill")


def _load(path: Path):
    from datasets import load_from_disk

    return load_from_disk(str(path))


def _stage_data(cfg: PipelineConfig, run: Path, out: Path) -> dict:
    from critic.datagen.tamper_data import build_samples, source_items, to_dataset_dict

    d = cfg.data
    items = []
    for source in _data_sources(cfg):
        found = source_items(source)
        if d.max_per_source and len(found) > d.max_per_source:
            # spread over the whole source, not its alphabetically first files
            found = random.Random(d.seed).sample(found, d.max_per_source)
        items += found
    items = items[: d.max_items] if d.max_items else items
    # a seeded share of the items gets its bugs on lines drawn uniformly (critic.datagen.tamper), so that line
    # length alone cannot tell where a bug is
    count = round(d.line_uniform_fraction * len(items))
    uniform = set(random.Random(d.seed + 1).sample(range(len(items)), count))
    samples, stats = build_samples([it for i, it in enumerate(items) if i not in uniform], d.per_item, d.seed)
    if uniform:
        more, more_stats = build_samples(
            [it for i, it in enumerate(items) if i in uniform], d.per_item, d.seed, line_uniform=True
        )
        samples += more
        stats = stats.merged(more_stats)
    dsd = to_dataset_dict(samples, d.seed)
    dsd.save_to_disk(str(out))
    return {"samples": {name: len(ds) for name, ds in dsd.items()}, "kinds": dict(stats.kept)}


def _data_sources(cfg: PipelineConfig) -> list[str]:
    return [cfg.data.source] if isinstance(cfg.data.source, str) else list(cfg.data.source)


def _stage_pretrain(cfg: PipelineConfig, run: Path, out: Path) -> dict:
    from critic.rl.pretrain import run_pretrain

    assert cfg.pretrain is not None
    # held-out files of the data stage's sources are never pre-trained on: the same seed splits them
    return run_pretrain(cfg.pretrain, out, _data_sources(cfg), cfg.data.seed)


def _stage_sft(cfg: PipelineConfig, run: Path, out: Path) -> dict:
    from critic.rl.sft import run_sft

    sft = cfg.sft if cfg.pretrain is None else dataclasses.replace(cfg.sft, init=str(run / "pretrain"))
    return run_sft(sft, _load(run / "data"), out)


def _stage_distill(cfg: PipelineConfig, run: Path, out: Path) -> dict:
    from critic.rl.distill import run_distill

    assert cfg.distill is not None
    return run_distill(cfg.distill, _load(run / "data"), cfg.distill.teacher or run / "sft", out)


def _stage_sample(cfg: PipelineConfig, run: Path, out: Path) -> dict:
    from critic.rl.sample import run_sample

    return run_sample(cfg.sample, _load(run / "data"), policy_dir(cfg, run), out)


def _stage_rate(cfg: PipelineConfig, run: Path, out: Path) -> dict:
    from critic.rl.rate import run_rate

    return run_rate(cfg.rate, _load(run / "sample"), out, _load(run / "data"))


def _stage_rank(cfg: PipelineConfig, run: Path, out: Path) -> dict:
    from critic.rl.rank import run_rank

    assert cfg.rank is not None
    return run_rank(cfg.rank, _load(run / "data"), policy_dir(cfg, run), out)


def _stage_reward(cfg: PipelineConfig, run: Path, out: Path) -> dict:
    from critic.rl.reward import run_reward

    start = policy_dir(cfg, run) if cfg.rank is None else run / "rank"
    return run_reward(cfg.reward, _load(run / "rate"), start, out)


def _stage_rl(cfg: PipelineConfig, run: Path, out: Path) -> dict:
    from critic.rl.reinforce import run_rl

    return run_rl(cfg.rl, _load(run / "data"), policy_dir(cfg, run), run / "reward", out)


def _stage_calibrate(cfg: PipelineConfig, run: Path, out: Path) -> dict:
    from critic.rl.calibrate import run_calibrate

    assert cfg.calibrate is not None
    return run_calibrate(cfg.calibrate, _load(run / "data"), run / "rl", run / "reward", out)


def _stage_localize(cfg: PipelineConfig, run: Path, out: Path) -> dict:
    from critic.rl.localize import run_localize

    assert cfg.localize is not None
    name = cfg.localize.language_model
    lm = run / name if name in STAGES else Path(name)
    return run_localize(cfg.localize, _load(run / "data"), lm, out)


RUNNERS: dict[str, Callable[[PipelineConfig, Path, Path], dict]] = {
    "data": _stage_data,
    "pretrain": _stage_pretrain,
    "sft": _stage_sft,
    "distill": _stage_distill,
    "sample": _stage_sample,
    "rate": _stage_rate,
    "rank": _stage_rank,
    "reward": _stage_reward,
    "rl": _stage_rl,
    "calibrate": _stage_calibrate,
    "localize": _stage_localize,
}


def provenance() -> dict[str, Any]:
    import datasets
    import torch
    import transformers
    import trl

    try:
        commit = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            capture_output=True,
            text=True,
            check=True,
            cwd=Path(__file__).parent,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        commit = None
    versions = {m.__name__: m.__version__ for m in (torch, transformers, trl, datasets)}
    return {"git_commit": commit, "versions": versions}


def run_pipeline(
    cfg: PipelineConfig,
    run: Path,
    from_stage: str | None = None,
    until: str | None = None,
    log: Callable[[str], None] = print,
) -> dict:
    """Run the stages; under `accelerate launch` the trainers run on every process and the rest
    (data, sampling, rating, every file write) on the main process only."""
    from accelerate import PartialState

    active = stages_of(cfg)
    for name in (from_stage, until):
        if name is not None and name not in active:
            raise UserError(f"stage {name!r} is not in this config; its stages are {', '.join(active)}")
    import torch

    state = PartialState(cpu=not torch.cuda.is_available())  # CPU processes join one gloo group
    main = state.is_main_process
    first = active.index(from_stage) if from_stage else 0
    stages = active[: active.index(until) + 1] if until else active
    for name in active[:first]:
        if name in stages and not (run / name / "done.json").is_file():
            raise UserError(f"{run / name / 'done.json'}: stage {name} has not finished; run it first")
    if main:
        run.mkdir(parents=True, exist_ok=True)
        for name in active[first:] if from_stage else ():
            shutil.rmtree(run / name, ignore_errors=True)
    state.wait_for_everyone()
    metrics: dict[str, dict] = {}
    manifest = {"config": cfg.to_dict(), **provenance(), "processes": state.num_processes, "stages": {}}
    for name in stages:
        out, done = run / name, run / name / "done.json"
        if done.is_file():
            if main:
                log(f"{name}: done earlier, skipped")
        else:
            if main:
                resume = name in RESUMABLE and any(
                    (out / "checkpoints").glob("checkpoint-*/trainer_state.json")
                )
                if name not in RESUMABLE:
                    shutil.rmtree(out, ignore_errors=True)  # a partial stage from an interrupted run
                out.mkdir(parents=True, exist_ok=True)
                log(f"{name}: {'resuming' if resume else 'running'}")
            state.wait_for_everyone()
            start = time.perf_counter()
            if name in DISTRIBUTED or main:
                result = RUNNERS[name](cfg, run, out)
            state.wait_for_everyone()
            if main:
                result["seconds"] = round(time.perf_counter() - start, 1)
                write_json(done, {"metrics": result})
                log(f"{name}: finished in {result['seconds']} s")
            state.wait_for_everyone()
        metrics[name] = json.loads(done.read_text())["metrics"]
        manifest["stages"][name] = {"path": str(out), "metrics": metrics[name]}
        if main:
            write_json(run / "manifest.json", manifest)
    if main:
        write_json(run / "report.json", metrics)
    return metrics
