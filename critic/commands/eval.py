"""`critic eval`: CBI, fake problems, hallucinations and the FSBS Pareto curve on held-out tampered code."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from critic.errors import UserError


def _samples(data: Path | None, split: str, seed: int, per_item: int) -> tuple[list[dict], str]:
    """Samples of `split`: from a `critic data tamper` directory, or HumanEval tampered on the fly."""
    from critic.tamper_data import assign_splits, build_samples, humaneval_items, load_dataset

    if data is not None:
        return [dict(row) for row in load_dataset(data, split)[split]], str(data)

    items = humaneval_items()
    split_of = assign_splits((item.group for item in items), seed)
    chosen = [item for item in items if split_of[item.group] == split]
    if not chosen:
        raise UserError(f"HumanEval has no {split!r} split")
    samples, _ = build_samples(chosen, per_item, seed)
    return samples, f"humaneval (tampered on the fly, seed {seed}, {per_item} per task)"


def eval_command(
    out: Annotated[Path, typer.Option(help="Directory for metrics.json and pareto.png.")],
    model: Annotated[
        Path | None, typer.Option(help="Policy checkpoint (default: the shipped critic).")
    ] = None,
    reward_model: Annotated[Path | None, typer.Option(help="Reward model checkpoint.")] = None,
    sft_model: Annotated[Path | None, typer.Option(help="SFT-only policy, evaluated as a baseline.")] = None,
    data: Annotated[
        Path | None, typer.Option(help="Dataset from `critic data tamper` (default: HumanEval).")
    ] = None,
    split: Annotated[str, typer.Option(help="Split to evaluate on.")] = "test",
    length_modifiers: Annotated[
        str, typer.Option(help="Comma-separated LENGTH_MODIFIER sweep.")
    ] = "0,0.5,1,2,4",
    max_samples: Annotated[int | None, typer.Option(min=1, help="Evaluate the first N samples only.")] = None,
    per_item: Annotated[int, typer.Option(min=1, help="Tampered samples per HumanEval task.")] = 2,
    seed: Annotated[int, typer.Option(help="Seed of data, sampling and the random baseline.")] = 0,
) -> None:
    """Evaluate a critic on held-out tampered code; write metrics.json and the Pareto plot."""
    from critic.evaluate import evaluate, write_report
    from critic.review import load_critic
    from critic.settings import load_settings

    try:
        sweep = [float(x) for x in length_modifiers.split(",") if x.strip()]
    except ValueError as err:
        raise UserError(f"--length-modifiers: not a list of numbers: {length_modifiers!r}") from err
    settings, _ = load_settings()
    settings = settings.updated(model=model, reward_model=reward_model, seed=seed)
    samples, source = _samples(data, split, seed, per_item)
    samples = samples[:max_samples] if max_samples else samples
    if not samples:
        raise UserError(f"no samples in split {split!r}")
    critic = load_critic(settings)
    sft = load_critic(settings.updated(model=sft_model)) if sft_model is not None else None
    console = Console(stderr=True)
    with console.status(f"evaluating on {len(samples)} samples"):
        report = evaluate(critic, samples, settings, sweep, sft)
    report = {"samples": len(samples), "split": split, "data": source, **report}
    report["settings"] = {"model": str(settings.model), "reward_model": str(settings.reward_model)} | {
        k: getattr(settings, k) for k in ("samples", "rounds", "keep", "length_modifier", "min_score", "seed")
    }
    write_report(report, out)
    main = report["configs"][f"critic@lm={settings.length_modifier:g}"]
    base = report["configs"]["random_line"]
    console.print(
        f"CBI {main['cbi_rate']:.3f} (random line {base['cbi_rate']:.3f}), fake problems "
        f"{main['fake_problem_rate']:.3f}, clean files silent {report['clean']['silent_rate']:.3f}; "
        f"wrote {out}"
    )
