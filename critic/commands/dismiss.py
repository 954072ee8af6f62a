"""`critic dismiss`: mark a finding as reviewed, so `critic review` never reports it again anywhere in the
repository.

    critic dismiss avg.py:3 --reason "xs always holds a sentinel"
    critic dismiss 3f0c9e41d2b7a8c6e5f4d3c2b1a09876     # a fingerprint, from --format json or sarif

PATH:LINE (as `critic review` prints it; a column after it is ignored) reviews that file with the
repository's settings and dismisses the finding on that line. A fingerprint is dismissed as it is, with
no review: use it for a finding that a run with other options reported. Dismissals go into the baseline
file (critic/review/baseline.py): `[tool.critic] baseline`, or --baseline FILE; it is created if missing.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated

import typer

from critic.core.errors import UserError

_AT_LINE = re.compile(r"^(?P<path>.+?):(?P<line>\d+)(?::\d+)?:?$")


def dismiss(
    targets: Annotated[
        list[str],
        typer.Argument(
            metavar="TARGET",
            help="PATH:LINE, as `critic review` prints a finding, or its fingerprint (--format json).",
            show_default=False,
        ),
    ],
    reason: Annotated[str | None, typer.Option(help="Why it is not a bug; kept in the baseline.")] = None,
    baseline: Annotated[
        Path | None,
        typer.Option(metavar="FILE", help="The baseline file (default: `baseline` in pyproject.toml)."),
    ] = None,
) -> None:
    """Mark findings as reviewed: `critic review` reports them in no file again."""
    from critic.review import baseline as baselines
    from critic.review.settings import load_settings

    settings, _ = load_settings()
    path = baseline or settings.baseline
    if path is None:
        raise UserError("no baseline file to write: pass --baseline FILE or set `baseline` in [tool.critic]")
    baselines.load(path, missing_ok=True)  # a bad file fails before the review, not after
    entries: list[baselines.Entry] = []
    lines: dict[str, list[int]] = {}
    for target in targets:
        if baselines.FINGERPRINT.match(target):
            entries.append(baselines.Entry(target, reason=reason))
        elif match := _AT_LINE.match(target):
            lines.setdefault(str(Path(match["path"])), []).append(int(match["line"]))
        else:
            raise UserError(f"{target}: expected PATH:LINE, as `critic review` prints it, or a fingerprint")
    if lines:
        entries += _findings_on(lines, settings, reason)
    baselines.dismiss(path, entries)
    from critic.review.report import printable  # the quote is the file's code: escaped for the terminal

    for entry in entries:
        what = f"{entry.rule} `{entry.quote}`" if entry.quote else "finding"
        typer.echo(printable(f"Dismissed {what} ({entry.fingerprint}) in {path}"))


def _findings_on(lines: dict[str, list[int]], settings, reason: str | None) -> list:
    """The finding on each named line, from a review at min-score 0: whichever confidence a run was
    asked for, the finding it showed on a line is the most confident one there."""
    from critic.review.baseline import Entry
    from critic.review.cache import ReviewCache, default_directory
    from critic.review.reviewer import LazyCritic, read_sources, review

    sources, errors = read_sources(Path(p) for p in lines)
    if errors:
        raise UserError(errors[0])
    # Through the review cache: right after `critic review`, the same search results, and no model load.
    cache = ReviewCache(default_directory())
    reports = review(LazyCritic(settings), sources, settings.updated(min_score=0.0), cache=cache)
    entries = []
    for source, found in zip(sources, reports, strict=True):
        for line in lines[source.path]:
            on_line = [f for f in found if f.line <= line <= f.end_line]
            if not on_line:
                raise UserError(
                    f"{source.path}:{line}: no finding on this line (`critic review {source.path}` lists "
                    "them; a fingerprint from `--format json` dismisses one found with other options)"
                )
            entries.append(Entry.of(on_line[0], reason))
    return entries
