"""`critic train ...`: the RLHF stages (SFT -> sample -> rate -> reward -> PPO), alone or as a pipeline."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

app = typer.Typer(
    help="Train a critic: SFT, critique sampling, rating, reward model, PPO.", no_args_is_help=True
)

ConfigOption = Annotated[Path, typer.Option("--config", help="Pipeline YAML (see rl/configs/).")]
OutOption = Annotated[Path, typer.Option("--out", help="Run directory (resumable).")]


def _run(config: Path, out: Path, from_stage: str | None, until: str | None) -> None:
    from rl.config import PipelineConfig
    from rl.pipeline import run_pipeline

    err = Console(stderr=True)
    metrics = run_pipeline(PipelineConfig.from_yaml(config), out, from_stage, until, log=err.print)
    if os.environ.get("RANK", "0") == "0":  # under `accelerate launch`, one summary
        err.print(f"report: {out / 'report.json'} ({', '.join(metrics)})")


@app.command()
def pipeline(
    config: ConfigOption,
    out: OutOption,
    from_stage: Annotated[str | None, typer.Option("--from", help="Rerun from this stage on.")] = None,
) -> None:
    """Run every stage in order; stages already done in OUT are skipped."""
    _run(config, out, from_stage, None)


def _stage_command(name: str) -> None:
    def command(config: ConfigOption, out: OutOption) -> None:
        _run(config, out, name, name)

    command.__doc__ = f"Run (or rerun) only the {name} stage; earlier stages must be done in OUT."
    app.command(name)(command)


for _name in ("sft", "sample", "rate", "reward", "ppo"):
    _stage_command(_name)
