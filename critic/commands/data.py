"""`critic data ...`: build training data."""

from __future__ import annotations

import shlex
import sys
import time
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from critic.core.errors import UserError

app = typer.Typer(help="Build training data.", no_args_is_help=True)


@app.command("tamper")
def tamper_command(
    source: Annotated[
        str,
        typer.Option(
            help="'humaneval', 'stdlib', 'site-packages', or a directory / git repository / .py file."
        ),
    ],
    out: Annotated[Path, typer.Option(help="Directory for the DatasetDict (save_to_disk) and its card.")],
    seed: Annotated[int, typer.Option(help="Seed for bug sites, wording and splits.")] = 0,
    per_item: Annotated[int, typer.Option(min=1, help="Samples kept per task or function.")] = 4,
    kinds: Annotated[str | None, typer.Option(help="Comma-separated bug kinds (default: all).")] = None,
    workers: Annotated[int, typer.Option(min=1, help="Parallel sandboxed test runs.")] = 2,
    force: Annotated[bool, typer.Option(help="Overwrite a non-empty output directory.")] = False,
) -> None:
    """Insert bugs into real code; keep a bug only if the tests catch it (where there are tests)."""
    from critic.datagen.finders import BUG_KINDS
    from critic.datagen.sandbox import isolation
    from critic.datagen.tamper_data import (
        build_samples,
        dataset_card,
        save_dataset,
        source_items,
        to_dataset_dict,
    )

    chosen = [k.strip() for k in kinds.split(",") if k.strip()] if kinds else None
    if chosen and (unknown := sorted(set(chosen) - set(BUG_KINDS))):
        raise UserError(f"unknown bug kind(s) {', '.join(unknown)}; choose from {', '.join(BUG_KINDS)}")
    if out.exists() and (not out.is_dir() or any(out.iterdir())) and not force:
        raise UserError(f"{out}: exists and is not empty (use --force to overwrite)")
    items = source_items(source)

    err = Console(stderr=True)
    start = time.perf_counter()
    with Progress(
        TextColumn("tampering"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=err,
        disable=not err.is_terminal,
    ) as progress:
        task = progress.add_task("items", total=len(items))
        samples, stats = build_samples(
            items, per_item, seed, chosen, workers=workers, on_progress=lambda n: progress.advance(task, n)
        )
    if not samples:
        raise UserError(f"{source}: no tampered samples could be made")
    dsd = to_dataset_dict(samples, seed)
    command = "critic " + shlex.join(sys.argv[1:])
    save_dataset(dsd, out, dataset_card(dsd, stats, command, seed, isolation()), stats)
    elapsed = time.perf_counter() - start

    table = Table(title=f"{len(samples)} samples from {stats.items} items in {elapsed:.0f} s")
    for column in ("kind", "candidates", "verified", "rate", "kept"):
        table.add_column(column, justify="left" if column == "kind" else "right")
    for kind in sorted(stats.candidates):
        tried, broke = stats.candidates[kind], stats.verified[kind]
        rate = f"{broke / tried:.0%}" if tried and stats.verified else "-"
        table.add_row(kind, str(tried), str(broke), rate, str(stats.kept[kind]))
    err.print(table)
    if stats.items_skipped:
        err.print(f"skipped {stats.items_skipped} items whose original failed its own tests")
    err.print("splits: " + ", ".join(f"{name} {len(ds)}" for name, ds in dsd.items()) + f" -> {out}")


@app.command("export")
def export_command(
    out: Annotated[Path, typer.Option(help="Directory for the DatasetDict (save_to_disk).")],
    db: Annotated[
        str | None,
        typer.Option(help="SQLAlchemy URL (default: $CRITIC_DATABASE_URL, else the app's SQLite)."),
    ] = None,
    force: Annotated[bool, typer.Option(help="Overwrite a non-empty output directory.")] = False,
) -> None:
    """Export the annotation app's tamperings, ratings and preference pairs for training."""
    from collections.abc import Iterator
    from contextlib import contextmanager

    from sqlmodel import Session

    from critic.annotation_app.auth import AppError
    from critic.annotation_app.export import FolderNotEmpty, export_dataset, export_folder, save_to_folder
    from critic.commands.annotate import open_database

    out = out.absolute()  # the app's rule wants an absolute path; the shell's is relative to here

    @contextmanager
    def folder_rule() -> Iterator[None]:
        """The app's folder rule (export.export_folder), its refusals as the CLI's one-line errors."""
        try:
            yield
        except FolderNotEmpty as err:
            raise UserError(f"{err} (use --force to overwrite)") from err
        except AppError as err:
            raise UserError(str(err)) from err

    with folder_rule():
        export_folder(out, overwrite=force)  # refuse before a slow export, not after it
    engine = open_database(db, create=False)
    try:
        with Session(engine) as session:
            dsd = export_dataset(session)
    finally:
        engine.dispose()
    if not len(dsd["tampering"]):
        raise UserError("the annotation database has no tamperings to export")
    with folder_rule():
        save_to_folder(dsd, out, overwrite=force)
    err = Console(stderr=True)
    err.print(", ".join(f"{name} {len(ds)}" for name, ds in dsd.items()) + f" -> {out}")
    from critic.annotation_app.report import origin_lines

    err.print("how each origin's critiques were rated (the `origins` split):")
    for line in origin_lines(dsd["origins"]):
        err.print(line, soft_wrap=True)
