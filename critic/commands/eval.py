"""`critic eval`: what `critic review` reports at its defaults (with baselines, a min-score sweep and a
reliability diagram), and CBI, fake problems and the FSBS Pareto curve, on held-out tampered code."""

from __future__ import annotations

import random
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from critic.core.errors import UserError


def humaneval_sets(
    data: Path | None,
    split: str | None,
    seed: int,
    per_item: int,
    line_uniform: bool,
    max_samples: int | None,
) -> tuple[dict[str, list[dict]], dict[str, str], str]:
    """The `humaneval` set (and `humaneval_line_uniform`, tampered line-uniformly from the same
    originals), with a description of each: HumanEval's tasks tampered on the fly and verified, or the
    rows of `split` of a `critic data tamper` directory."""
    from critic.datagen.tamper_data import SourceItem, build_samples, humaneval_items, load_dataset

    if data is not None:
        split = split or "test"
        rows = [dict(row) for row in load_dataset(data, split)[split]][:max_samples]
        originals: dict[str, SourceItem] = {}
        for row in rows:
            group = row.get("group") or row["task_id"]
            originals.setdefault(
                row["task_id"], SourceItem(row["task_id"], row["original"], row["test"], row["source"], group)
            )
        items = list(originals.values())
        where = f"{data} (split {split!r})"
    else:
        if split is not None:
            raise UserError("--split applies to --data only: HumanEval is evaluated whole (all 164 tasks)")
        items = humaneval_items()[:max_samples]  # a task yields at least one sample when it yields any
        rows, _ = build_samples(items, per_item, seed)
        rows = rows[:max_samples]
        where = f"humaneval, {len(items)} tasks"
    sets = {"humaneval": rows}
    about = {
        "humaneval": where if data is not None else f"{where}, tampered (seed {seed}, {per_item} per task)"
    }
    if line_uniform:
        sets["humaneval_line_uniform"] = build_samples(items, per_item, seed, line_uniform=True)[0][
            :max_samples
        ]
        about["humaneval_line_uniform"] = (
            f"{where}: originals tampered line-uniformly (seed {seed}, {per_item} per task)"
        )
    return sets, about, where


def stdlib_samples(root: Path | None, count: int, seed: int) -> tuple[list[dict], str]:
    """`count` tampered functions (one per function, unverified) of files in the "test" split (each
    file's split as training data splits it), the functions drawn at random (seeded)."""
    from critic.core.sources import stdlib_root
    from critic.datagen.tamper_data import assign_splits, build_samples, directory_items

    root = stdlib_root() if root is None else root
    items = directory_items(root)
    split_of = assign_splits((item.group for item in items), seed)
    held_out = [item for item in items if split_of[item.group] == "test"]
    random.Random(seed).shuffle(held_out)
    samples: list[dict] = []
    for start in range(0, len(held_out), count):
        if len(samples) >= count:
            break
        samples += build_samples(held_out[start : start + count], 1, seed + start)[0]
    files = len({item.group for item in held_out})
    where = f"{root}: functions of the {files} file{'s' * (files != 1)} in split 'test'"
    return samples[:count], f"{where}, tampered (seed {seed})"


def _ci(metric: dict) -> str:
    value, low, high = metric["value"], metric["low"], metric["high"]
    if value is None:
        return "n/a"
    return f"{value:.3f}" if low is None else f"{value:.3f} [{low:.3f}, {high:.3f}]"


def summary(report: dict) -> str:
    """The console line: the operating point on HumanEval first, with the longest-line and fair
    (longest body line) baselines, then the critic against the fair baseline at min-score 0."""
    op = report["operating_point"]
    main = op["critic"]["humaneval"]

    def baselines(key: str) -> str:
        longest, body = (
            report["baselines"][b][key]["top_on_bug"] for b in ("longest_line", "longest_body_line")
        )
        return f"longest line {_ci(longest)}, longest body line {_ci(body)}"

    local = main["localization"]
    parts = [
        f"review (min-score {op['min_score']:g}) on {main['samples']} tampered HumanEval samples: "
        f"top finding on the bug {_ci(main['top_on_bug'])} ({baselines('humaneval')}), "
        f"any on the bug {_ci(main['any_on_bug'])}, line precision {_ci(main['line_precision'])}, "
        f"silent {_ci(main['silent_rate'])}",
        f"clean false alarms {_ci(op['critic']['clean']['false_alarm_rate'])}",
        f"at min-score 0: top minus longest body line {_ci(local['difference'])}, "
        f"detection AUC {_ci(main['detection_auc'])}, fix restores {_ci(main['fixes']['fix_restores'])}",
    ]
    for key, label in (("humaneval_line_uniform", "line-uniform"), ("stdlib", "stdlib")):
        if key in op["critic"]:
            other = op["critic"][key]
            parts.append(
                f"{label} top {_ci(other['top_on_bug'])} ({baselines(key)}), "
                f"at min-score 0 minus longest body line {_ci(other['localization']['difference'])}"
            )
    if "sft" in op:
        parts.append(
            f"SFT top {_ci(op['sft']['humaneval']['top_on_bug'])}, at min-score 0 critic minus SFT "
            f"{_ci(report['critic_vs_sft']['top_on_bug_difference'])}"
        )
    if "configs" in report:
        lm = report["settings"]["length_modifier"]
        ladder = report["configs"][f"critic@lm={lm:g}"]
        random_line = report["configs"]["random_line"]["cbi_rate"]
        parts.append(
            f"ladder CBI {_ci(ladder['intervals']['cbi_rate'])} (random line {random_line:.3f}), "
            f"fake problems {_ci(ladder['intervals']['fake_problem_rate'])}"
        )
        for row in report.get("critic_vs_sft", {}).get("cbi_difference", []):
            if row["length_modifier"] == lm:
                parts.append(f"ladder CBI minus SFT's at the same fake-problem rate {_ci(row['matched'])}")
    return "; ".join(parts)


def eval_command(
    out: Annotated[Path, typer.Option(help="Directory for metrics.json, pareto.png and reliability.png.")],
    model: Annotated[
        Path | None, typer.Option(help="Policy checkpoint (default: the shipped critic).")
    ] = None,
    reward_model: Annotated[Path | None, typer.Option(help="Reward model checkpoint.")] = None,
    sft_model: Annotated[Path | None, typer.Option(help="SFT-only policy, evaluated as a baseline.")] = None,
    data: Annotated[
        Path | None, typer.Option(help="Dataset from `critic data tamper`, in place of HumanEval.")
    ] = None,
    split: Annotated[str | None, typer.Option(help="Split of --data to evaluate on (default: test).")] = None,
    length_modifiers: Annotated[
        str, typer.Option(help="Comma-separated LENGTH_MODIFIER sweep.")
    ] = "0,0.5,1,2,4",
    max_samples: Annotated[
        int | None, typer.Option(help="Evaluate the first N tampered samples (of each HumanEval set) only.")
    ] = None,
    per_item: Annotated[int, typer.Option(help="Tampered samples per HumanEval task.")] = 2,
    stdlib_samples_: Annotated[
        int,
        typer.Option(
            "--stdlib-samples", help="Tampered functions of held-out standard-library files (0: none)."
        ),
    ] = 150,
    stdlib_dir: Annotated[
        Path | None,
        typer.Option(help="Directory standing in for the standard library (default: this Python's)."),
    ] = None,
    line_uniform: Annotated[
        bool, typer.Option(help="Also evaluate HumanEval tampered line-uniformly.")
    ] = True,
    ladder: Annotated[
        bool, typer.Option(help="Also run the CriticGPT ladder (FSBS critiques rated; most of the time).")
    ] = True,
    bootstrap: Annotated[int, typer.Option(help="Bootstrap resamples of each 95% interval.")] = 1000,
    seed: Annotated[int, typer.Option(help="Seed of data, sampling, baselines and the bootstrap.")] = 0,
) -> None:
    """Evaluate a critic on held-out tampered code at `critic review`'s operating point and along the
    CriticGPT ladder; write metrics.json, pareto.png and reliability.png."""
    from critic.evaluate import evaluate, write_report
    from critic.review.reviewer import load_critic
    from critic.review.settings import load_settings

    try:
        sweep = [float(x) for x in length_modifiers.split(",") if x.strip()]
    except ValueError as err:
        raise UserError(f"--length-modifiers: not a list of numbers: {length_modifiers!r}") from err
    for name, value, least in (
        ("--max-samples", max_samples, 1),
        ("--per-item", per_item, 1),
        ("--stdlib-samples", stdlib_samples_, 0),
        ("--bootstrap", bootstrap, 1),
    ):
        if value is not None and value < least:
            raise UserError(f"{name} must be at least {least}, got {value}")
    settings, _ = load_settings(model=model, reward_model=reward_model, seed=seed)
    console = Console(stderr=True)
    with console.status("building samples") as status:
        sets, about, source = humaneval_sets(data, split, seed, per_item, line_uniform, max_samples)
        if not sets["humaneval"]:
            raise UserError(f"no samples in {source}")
        if stdlib_samples_:
            status.update("building held-out standard-library samples")
            sets["stdlib"], about["stdlib"] = stdlib_samples(stdlib_dir, stdlib_samples_, seed)
        critic = load_critic(settings)
        sft = load_critic(settings.updated(model=sft_model)) if sft_model is not None else None

        def progress(stage: str, done: int, total: int) -> None:
            status.update(f"{stage}: {done}/{total}")

        report = evaluate(critic, sets, settings, sweep, sft, bootstrap, progress, with_ladder=ladder)
    for key, description in about.items():
        report["sample_sets"].get(key, {})["data"] = description
    report["sample_sets"]["clean"]["data"] = f"untampered originals of {source}"
    report = {
        "samples": len(sets["humaneval"]),
        "split": (split or "test") if data is not None else "all",
        "data": about["humaneval"],
        **report,
    }
    report["settings"] = {"model": str(settings.model), "reward_model": str(settings.reward_model)} | {
        k: getattr(settings, k)
        for k in (
            "search",
            "samples",
            "rounds",
            "keep",
            "length_modifier",
            "max_new_tokens",
            "temperature",
            "chunk_tokens",
            "min_score",
            "max_findings",
            "seed",
        )
    }
    report["settings"] |= {
        "per_item": per_item,
        "stdlib_samples": stdlib_samples_,
        "line_uniform": line_uniform,
        "bootstrap": bootstrap,
        "max_samples": max_samples,
        "sft_model": None if sft_model is None else str(sft_model),
        "ladder": ladder,
    }
    write_report(report, out)
    console.print(f"{summary(report)}; wrote {out}")
