"""`critic review`: read code with the critic and report what it finds, like a linter.

Exit codes follow ruff and mypy: 0 nothing reported, 1 findings, 2 usage, input or model errors (a
file that cannot be read is reported and the rest are still reviewed). This module imports only what
the review path needs: torch, safetensors, tokenizers and the CLI's own small libraries.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Annotated

import typer

from critic.core.errors import UserError


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("critic")
    except PackageNotFoundError:
        return "0+unknown"


def review(
    paths: Annotated[
        list[str] | None, typer.Argument(help="Files or directories ('-' reads stdin). Default: '.'.")
    ] = None,
    output_format: Annotated[
        str | None,
        typer.Option(
            "--format",
            help="concise, full, json, sarif or github (default: concise; github in GitHub Actions).",
        ),
    ] = None,
    model: Annotated[Path | None, typer.Option(help="Policy checkpoint directory (any Gemma 2).")] = None,
    reward_model: Annotated[Path | None, typer.Option(help="Reward model checkpoint directory.")] = None,
    min_score: Annotated[
        float | None, typer.Option(help="Report findings with confidence >= this (0-1).")
    ] = None,
    max_findings: Annotated[int | None, typer.Option(help="Most confident findings kept per file.")] = None,
    length_modifier: Annotated[
        float | None, typer.Option(help="FSBS: bonus per highlight; higher finds more, and more noise.")
    ] = None,
    samples: Annotated[int | None, typer.Option(help="FSBS n: samples per beam and round.")] = None,
    rounds: Annotated[int | None, typer.Option(help="FSBS d: rounds of forced highlights.")] = None,
    keep: Annotated[int | None, typer.Option(help="FSBS k: beams kept per round.")] = None,
    seed: Annotated[int | None, typer.Option(help="Sampling seed: same seed, same findings.")] = None,
    max_new_tokens: Annotated[int | None, typer.Option(help="Tokens sampled per FSBS round.")] = None,
    temperature: Annotated[float | None, typer.Option(help="FSBS sampling temperature.")] = None,
    chunk_tokens: Annotated[
        int | None, typer.Option(help="Code tokens per prompt (long files are split).")
    ] = None,
    diff: Annotated[
        str | None,
        typer.Option(
            "--diff", metavar="[REF]", help="Report only findings on lines changed since REF (default HEAD)."
        ),
    ] = None,
    staged: Annotated[bool, typer.Option(help="Report only findings on staged lines.")] = False,
    stdin_filename: Annotated[
        str | None, typer.Option(help="Name to report for code read from stdin.")
    ] = None,
    exit_zero: Annotated[bool, typer.Option(help="Exit 0 even when there are findings.")] = False,
    baseline: Annotated[
        Path | None,
        typer.Option(
            metavar="FILE", help="Report only findings not in this baseline (see `critic dismiss`)."
        ),
    ] = None,
    write_baseline: Annotated[
        Path | None,
        typer.Option(
            metavar="FILE", help="Record the findings as the baseline FILE (keeping its dismissals)."
        ),
    ] = None,
    no_cache: Annotated[
        bool, typer.Option("--no-cache", help="Search every chunk again; read and write no .critic_cache/.")
    ] = False,
) -> None:
    """Review Python code with the critic: quote suspicious code and say what is wrong."""
    from critic.review.settings import load_settings

    settings, _ = load_settings()
    settings = settings.updated(
        model=model,
        reward_model=reward_model,
        min_score=min_score,
        max_findings=max_findings,
        length_modifier=length_modifier,
        samples=samples,
        rounds=rounds,
        keep=keep,
        seed=seed,
        max_new_tokens=max_new_tokens,
        temperature=temperature,
        chunk_tokens=chunk_tokens,
        format=output_format,
        baseline=baseline,
    )
    if output_format is None and os.environ.get("GITHUB_ACTIONS") == "true":
        settings = settings.updated(format="github")
    if diff is not None and staged:
        raise UserError("--diff and --staged cannot be combined")
    if write_baseline is not None and (diff is not None or staged):
        raise UserError("--write-baseline records whole files: it cannot be combined with --diff or --staged")
    status = run(paths or ["."], settings, diff, staged, stdin_filename, write_baseline, cache=not no_cache)
    raise typer.Exit(0 if exit_zero and status == 1 else status)


def run(
    paths: list[str],
    settings,
    diff: str | None,
    staged: bool,
    stdin_filename: str | None,
    write_baseline: Path | None = None,
    cache: bool = True,
) -> int:
    from critic.review import baseline
    from critic.review.cache import ReviewCache, default_directory
    from critic.review.files import GitError, changed_lines, discover
    from critic.review.report import render
    from critic.review.reviewer import LazyCritic, SourceFile, read_sources
    from critic.review.reviewer import review as review_sources

    # Read first: a bad baseline file fails before minutes of review. Writing one records everything.
    known = baseline.load(settings.baseline) if settings.baseline and write_baseline is None else {}
    files, errors = discover([p for p in paths if p != "-"], settings.exclude)
    sources, read_errors = read_sources(files)
    errors += read_errors
    if "-" in paths:
        sources.append(SourceFile(stdin_filename or "-", sys.stdin.read()))
    changed = None
    if diff is not None or staged:
        try:
            by_path = changed_lines(diff, staged)
        except GitError as err:
            raise UserError(f"--{'staged' if staged else 'diff'}: {err}") from err
        changed = {s.path: by_path.get(Path(s.path).resolve(), set()) for s in sources}
    # The weights load only if some chunk is not in the cache (critic.review.cache).
    critic = LazyCritic(settings) if sources else None
    store = ReviewCache(default_directory()) if cache else None
    with _progress() as advance:
        reports = review_sources(critic, sources, settings, changed, advance, store) if critic else []
    reports, hidden = baseline.unknown(reports, known)
    findings = [f for found in reports for f in found]
    if write_baseline is not None:
        recorded, dismissals = baseline.rewrite(write_baseline, findings)
        print(
            f"Wrote {write_baseline}: {_count(recorded, 'finding')}, {_count(dismissals, 'dismissal')}.",
            file=sys.stderr,
        )
        reports, findings = [], []  # all recorded: none left to report
    sys.stdout.write(render(settings.format, findings, sources, _version()))
    sys.stdout.flush()
    for error in errors:
        print(f"critic: error: {error}", file=sys.stderr)
    _summary(len(findings), sum(1 for found in reports if found), len(sources), len(errors), hidden)
    if errors:
        return 2
    return 1 if findings else 0


def _summary(findings: int, files_with: int, reviewed: int, errors: int = 0, hidden: int = 0) -> None:
    """One line on stderr that agrees with the exit code: errors (2), findings (1), or neither (0)."""
    if findings:
        line = f"Found {_count(findings, 'finding')} in {files_with} of {_count(reviewed, 'file')}"
    elif not errors:
        line = f"All checks passed! ({_count(reviewed, 'file')} reviewed)"
    else:
        line = f"No findings in {_count(reviewed, 'file')} reviewed" if reviewed else "No files reviewed"
    if errors:
        line += f", {_count(errors, 'error')}" if findings else f": {_count(errors, 'error')}"
    line += "" if line.endswith(")") else "."
    if hidden:
        line += f" {_count(hidden, 'finding')} in the baseline not shown."
    print(line, file=sys.stderr)


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}{'' if n == 1 else 's'}"


class _progress:
    """A transient progress bar over chunks on a terminal; nothing at all when stderr is piped."""

    def __enter__(self):
        if not sys.stderr.isatty():
            return None
        from rich.console import Console
        from rich.progress import Progress

        self._bar = Progress(console=Console(stderr=True), transient=True)
        self._bar.start()
        self._task = self._bar.add_task("reviewing", total=None)
        return self._advance

    def _advance(self, done: int, total: int) -> None:
        self._bar.update(self._task, completed=done, total=total)

    def __exit__(self, *exc) -> None:
        if getattr(self, "_bar", None) is not None:
            self._bar.stop()
