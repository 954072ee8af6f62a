"""`critic train ...`: the RLHF stages ([pretrain] -> SFT -> [distill] -> sample -> rate -> reward -> RL),
alone or as a pipeline, and `critic train distill` from any teacher checkpoint."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from critic.core.errors import UserError

app = typer.Typer(
    help="Train a critic: pre-training, SFT, distillation, sampling, rating, reward model, RL (GRPO).",
    no_args_is_help=True,
)

ConfigOption = Annotated[Path, typer.Option("--config", help="Pipeline YAML (see rl/configs/).")]
OutOption = Annotated[Path, typer.Option("--out", help="Run directory (resumable).")]


SeedOption = Annotated[
    int | None,
    typer.Option("--seed", help="Set every stage's seed to this (RUN/manifest.json's config records it)."),
]


def with_seed(cfg, seed: int | None):
    """`cfg` with every stage's `seed` set to `seed` (None: the config's own seeds)."""
    import dataclasses

    if seed is None:
        return cfg
    stages = {
        f.name: dataclasses.replace(stage, seed=seed)
        for f in dataclasses.fields(cfg)
        if (stage := getattr(cfg, f.name)) is not None and hasattr(stage, "seed")
    }
    return dataclasses.replace(cfg, **stages)


def _run(config: Path, out: Path, from_stage: str | None, until: str | None, seed: int | None = None) -> None:
    from critic.rl.config import PipelineConfig
    from critic.rl.pipeline import run_pipeline

    err = Console(stderr=True)
    cfg = with_seed(PipelineConfig.from_yaml(config), seed)
    metrics = run_pipeline(cfg, out, from_stage, until, log=err.print)
    if os.environ.get("RANK", "0") == "0":  # under `accelerate launch`, one summary
        err.print(f"report: {out / 'report.json'} ({', '.join(metrics)})")


@app.command()
def pipeline(
    config: ConfigOption,
    out: OutOption,
    from_stage: Annotated[str | None, typer.Option("--from", help="Rerun from this stage on.")] = None,
    seed: SeedOption = None,
) -> None:
    """Run every stage in order; stages already done in OUT are skipped, and an interrupted trainer
    stage (pretrain, sft, rank, reward, rl) resumes from its last checkpoint."""
    _run(config, out, from_stage, None, seed)


def _stage_command(name: str) -> None:
    def command(config: ConfigOption, out: OutOption, seed: SeedOption = None) -> None:
        _run(config, out, name, name, seed)

    command.__doc__ = f"Run (or rerun) only the {name} stage; earlier stages must be done in OUT."
    app.command(name)(command)


for _name in ("pretrain", "sft", "sample", "rate", "reward", "rl", "calibrate", "localize"):
    _stage_command(_name)


@app.command()
def distill(
    teacher: Annotated[Path, typer.Option(help="Teacher checkpoint directory (any Gemma 2 critic).")],
    student_config: Annotated[
        str, typer.Option(help="Student preset (tiny, small, ...) or directory: config.json [+ weights].")
    ],
    data: Annotated[Path, typer.Option(help="Tampering dataset (`critic data tamper` or a run's data/).")],
    out: Annotated[Path, typer.Option(help="Directory for the student checkpoint.")],
    config: Annotated[
        Path | None, typer.Option(help="Pipeline YAML whose distill section sets the hyper-parameters.")
    ] = None,
) -> None:
    """Distil a teacher critic into a smaller student on the tampering data's critique requests."""
    import dataclasses

    from critic.datagen.tamper_data import load_dataset
    from critic.rl.common import write_json
    from critic.rl.config import DistillStage, PipelineConfig

    stage = PipelineConfig.from_yaml(config).distill if config else DistillStage()
    if stage is None:
        raise UserError(f"{config}: has no distill section")
    stage = dataclasses.replace(stage, teacher=str(teacher), student=student_config)
    dataset = load_dataset(data, "train")
    if out.exists() and any(out.iterdir()):
        raise UserError(f"{out}: exists and is not empty; choose a new --out")
    from critic.rl.distill import run_distill

    metrics = run_distill(stage, dataset, teacher, out)
    write_json(out / "distill.json", {"config": dataclasses.asdict(stage), "metrics": metrics})
    student, teacher_size = metrics["parameters"] / 1e6, metrics["teacher_parameters"] / 1e6
    Console(stderr=True).print(
        f"student {student:.1f} M parameters, teacher {teacher_size:.1f} M; "
        f"KL to the teacher {metrics['kl_before']:.3f} -> {metrics['kl_after']:.3f} nats/token on "
        f"{metrics['kl_examples']} held-out critiques; wrote {out}"
    )
