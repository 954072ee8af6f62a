"""`critic audit`: run the critic over a dataset's code column and write the dataset back with its
findings, plus a summary (critic.review.audit). Exit 0 when the audit is written, 2 on bad input (with
nothing written to --out). Resumable; scales out under `accelerate launch --num_processes N`."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer


def audit(
    data: Annotated[
        Path, typer.Argument(help="A saved `datasets` directory, or a .jsonl, .json, .parquet or .csv file.")
    ],
    column: Annotated[str, typer.Option(help="The column holding the code to review.")],
    out: Annotated[
        Path,
        typer.Option(
            help="New or empty directory for dataset/, summary.json, summary.md (and pr_curve.png); "
            "an interrupted audit's directory to resume it."
        ),
    ],
    split: Annotated[
        str | None,
        typer.Option(help="Split of a saved DatasetDict (needed when it has more than one)."),
    ] = None,
    label_column: Annotated[
        str | None,
        typer.Option(help="Boolean column: the row is buggy. Adds precision and recall against confidence."),
    ] = None,
    batch_size: Annotated[int, typer.Option(help="Rows per batch, and per step of a resume.")] = 8,
    model: Annotated[Path | None, typer.Option(help="Policy checkpoint directory (any Gemma 2).")] = None,
    reward_model: Annotated[Path | None, typer.Option(help="Reward model checkpoint directory.")] = None,
    min_score: Annotated[
        float | None, typer.Option(help="Keep findings with confidence >= this (0-1).")
    ] = None,
    seed: Annotated[int | None, typer.Option(help="Sampling seed: same seed, same findings.")] = None,
) -> None:
    """Audit a dataset of code: every row's findings and most confident flag, written as a new dataset
    with a summary. Other review settings come from the tool.critic table of pyproject.toml."""
    from critic.core.errors import UserError
    from critic.review.audit import audit as run_audit
    from critic.review.audit import load_input, process_state
    from critic.review.settings import load_settings

    if batch_size < 1:
        raise UserError(f"--batch-size must be at least 1, got {batch_size}")
    settings, _ = load_settings(model=model, reward_model=reward_model, min_score=min_score, seed=seed)
    source = load_input(data, column, split, label_column)
    main = process_state().is_main_process
    with _bar(main) as advance:
        summary = run_audit(source, out, settings, batch_size, advance, _log)
    if summary is not None:
        labels = summary.get("labels")
        measured = ""
        if labels and labels["average_precision"] is not None:
            measured = f", average precision {labels['average_precision']:.3f} against {labels['column']}"
        _log(
            f"audited {summary['rows']} rows: {summary['rows_with_findings']} with findings "
            f"({summary['findings']} findings){measured}; wrote {out}"
        )


def _log(line: str) -> None:
    print(line, file=sys.stderr)


def _bar(main: bool):
    """`critic review`'s progress bar (a terminal only), on the main process."""
    from contextlib import nullcontext

    from critic.commands.review import _progress

    return _progress() if main else nullcontext()
