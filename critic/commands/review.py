"""`critic review`: read code with the critic and report what it finds, like a linter.

Exit codes follow ruff and mypy: 0 nothing reported, 1 findings, 2 usage, input or model errors (a
file that cannot be read is reported and the rest are still reviewed). With --fix, like ruff's, the
reported findings' fixes are applied and 1 means some finding remains. This module imports only what
the review path needs: torch, safetensors, tokenizers and the CLI's own small libraries.
"""

from __future__ import annotations

import codecs
import contextlib
import os
import stat
import sys
import tempfile
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from critic.core.errors import UserError

if TYPE_CHECKING:
    from critic.review.reviewer import Finding, SourceFile


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
    search: Annotated[
        str | None,
        typer.Option(
            help="repairs (default): score every candidate repair of every line; each finding has a fix "
            "and a comment written from the bug taxonomy's sentences. fsbs: free-text critiques by Force "
            "Sampling Beam Search, for a --model fluent enough to write its own (the shipped critic is not)."
        ),
    ] = None,
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
    max_file_size: Annotated[
        int | None,
        typer.Option(
            metavar="BYTES",
            help="Skip files larger than this, one warning each (default 1000000; 0: no limit). Code on "
            "stdin is always reviewed.",
        ),
    ] = None,
    fix: Annotated[
        bool,
        typer.Option(
            "--fix",
            help="Apply the reported findings' fixes to the files and report only what remains (code from "
            "stdin: print it fixed). Command line only: [tool.critic] has no `fix` setting, so a plain "
            "review never edits files.",
        ),
    ] = False,
) -> None:
    """Review Python code with the critic: quote suspicious code and say what is wrong."""
    from critic.review.settings import load_settings

    settings, _ = load_settings(
        model=model,
        reward_model=reward_model,
        min_score=min_score,
        max_findings=max_findings,
        search=search,
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
        max_file_size=max_file_size,
    )
    if output_format is None and os.environ.get("GITHUB_ACTIONS") == "true":
        settings = settings.updated(format="github")
    if diff is not None and staged:
        raise UserError("--diff and --staged cannot be combined")
    if write_baseline is not None and (diff is not None or staged):
        raise UserError("--write-baseline records whole files: it cannot be combined with --diff or --staged")
    if write_baseline is not None and fix:
        raise UserError("--write-baseline records the findings: it cannot be combined with --fix")
    status = run(
        paths or ["."], settings, diff, staged, stdin_filename, write_baseline, cache=not no_cache, fix=fix
    )
    raise typer.Exit(0 if exit_zero and status == 1 else status)


def run(
    paths: list[str],
    settings,
    diff: str | None,
    staged: bool,
    stdin_filename: str | None,
    write_baseline: Path | None = None,
    cache: bool = True,
    fix: bool = False,
) -> int:
    from critic.review import baseline

    # Read first: a bad baseline file fails before minutes of review (and before torch is imported).
    # Writing one records everything.
    known = baseline.load(settings.baseline) if settings.baseline and write_baseline is None else {}

    from critic.review.cache import ReviewCache, default_directory
    from critic.review.files import GitError, changed_lines, discover, within_size
    from critic.review.report import printable, render
    from critic.review.reviewer import LazyCritic, SourceFile, read_sources
    from critic.review.reviewer import review as review_sources

    files, errors = discover([p for p in paths if p != "-"], settings.exclude)
    files, skipped = within_size(files, settings.max_file_size)
    for warning in skipped:  # now, not after minutes of review
        print(f"critic: warning: {printable(warning)}", file=sys.stderr)
    sources, read_errors = read_sources(files)
    errors += read_errors
    stdin_at = None
    if "-" in paths:
        stdin_at = len(sources)
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
    total, files_with = len(findings), sum(1 for found in reports if found)
    fixable = sum(1 for f in findings if f.fix is not None)
    out = sys.stdout
    if fix:
        reports, sources, fixed_code = _apply_fixes(reports, sources, stdin_at, errors)
        findings = [f for found in reports for f in found]
        if fixed_code is not None:  # as ruff does: the code on stdout, what remains on stderr
            sys.stdout.write(_for_terminal(fixed_code) if sys.stdout.isatty() else fixed_code)
            sys.stdout.flush()
            out = sys.stderr
    out.write(render(settings.format, findings, sources, _version()))
    out.flush()
    for error in errors:
        print(f"critic: error: {printable(error)}", file=sys.stderr)
    fixed = total - len(findings) if fix else None
    _summary(total, files_with, len(sources), len(errors), hidden, fixed, fixable, len(skipped))
    if errors:
        return 2
    return 1 if findings else 0


def _apply_fixes(
    reports: list[list[Finding]], sources: list[SourceFile], stdin_at: int | None, errors: list[str]
) -> tuple[list[list[Finding]], list[SourceFile], str | None]:
    """Each source with its findings' fixes applied: (the findings left, on the fixed code; the sources
    as now on disk; the fixed code read from stdin, or None). A file edited since it was read keeps its
    edits and its findings (one warning); a file that cannot be written is an error in `errors`."""
    from critic.review.fixes import apply_each, newline, offsets, rebase, with_newline
    from critic.review.reviewer import SourceFile

    left, now, fixed_code = [], [], None
    for index, (found, source) in enumerate(zip(reports, sources, strict=True)):
        text = source.text
        ending = newline(text)
        fixes = {}  # finding -> its fix in the file's line endings, for fixes whose region is in the file
        for i, f in enumerate(found):
            if f.fix is not None:
                with contextlib.suppress(ValueError):
                    offsets(text, f.fix)
                    fixes[i] = with_newline(f.fix, ending)
        fixed, applied = apply_each(text, list(fixes.values()))
        done = {i for i, ok in zip(fixes, applied, strict=True) if ok}
        if index == stdin_at:
            fixed_code = fixed
        elif done and not _save(source.path, text, fixed, errors):
            done = set()
        if not done:
            left.append(found)
            now.append(source)
            continue
        moved = rebase(text, [fixes[i] for i in done])
        left.append([_moved(f, moved) for i, f in enumerate(found) if i not in done])
        now.append(SourceFile(source.path, fixed))
    return left, now, fixed_code


def _moved(f: Finding, moved: Callable[[int, int], tuple[int, int]]) -> Finding:
    """A finding the fixes left, placed on the fixed code. Its own fix (it overlapped one applied) was
    made for the old code: dropped; a new review gives it one for the new code."""
    (line, column), (end_line, end_column) = moved(f.line, f.column), moved(f.end_line, f.end_column)
    return replace(f, line=line, column=column, end_line=end_line, end_column=end_column, fix=None)


def _save(path: str, reviewed: str, fixed: str, errors: list[str]) -> bool:
    """Write the fixed code to `path`; False (a warning, or an error in `errors`) when it is not written."""
    try:
        if _write_fixed(Path(path), reviewed, fixed):
            return True
    except (OSError, UnicodeError) as err:
        errors.append(f"{path}: cannot write the fixes ({getattr(err, 'strerror', None) or err})")
        return False
    from critic.review.report import printable

    print(
        f"critic: warning: {printable(path)}: changed since it was reviewed; its fixes were not applied",
        file=sys.stderr,
    )
    return False


def _for_terminal(code: str) -> str:
    """Code for a terminal: each line's control characters escaped (critic.review.report.printable)."""
    from critic.review.report import printable

    return "\n".join(printable(line) for line in code.split("\n"))


def _write_fixed(path: Path, reviewed: str, fixed: str) -> bool:
    """Replace the file's text `reviewed` by `fixed` atomically (a temporary file in its directory, then
    os.replace), keeping a UTF-8 BOM and the file's mode. False, writing nothing, when the file no
    longer holds `reviewed`: someone edited it during the review, and their edit wins."""
    target = Path(os.path.realpath(path))  # a symlink stays a link to the fixed file
    data = target.read_bytes()
    try:
        if data.decode("utf-8-sig") != reviewed:
            return False
    except UnicodeDecodeError:
        return False
    bom = codecs.BOM_UTF8 if data.startswith(codecs.BOM_UTF8) else b""
    encoded = bom + fixed.encode("utf-8")
    handle, temporary = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".critic-fix")
    try:
        with os.fdopen(handle, "wb") as out:
            out.write(encoded)
            out.flush()
            os.fsync(out.fileno())
        os.chmod(temporary, stat.S_IMODE(target.stat().st_mode))
        os.replace(temporary, target)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        raise
    return True


def _summary(
    findings: int,
    files_with: int,
    reviewed: int,
    errors: int = 0,
    hidden: int = 0,
    fixed: int | None = None,
    fixable: int = 0,
    skipped: int = 0,
) -> None:
    """One line on stderr that agrees with the exit code: errors (2), findings left (1), or neither (0).
    With --fix (`fixed` given) it says how many were fixed and remain, as ruff does; without, how many
    --fix would repair. Files skipped for their size are counted at the end: not errors, but unread."""
    end = "."
    if findings:
        line = f"Found {_count(findings, 'finding')} in {files_with} of {_count(reviewed, 'file')}"
        if fixed is not None:
            line += f" ({fixed} fixed, {findings - fixed} remaining)"
        elif fixable:
            line += f" ({fixable} fixable with --fix)"
    elif not errors:
        line, end = f"All checks passed! ({_count(reviewed, 'file')} reviewed)", ""
    else:
        line = f"No findings in {_count(reviewed, 'file')} reviewed" if reviewed else "No files reviewed"
    if errors:
        line += f", {_count(errors, 'error')}" if findings else f": {_count(errors, 'error')}"
    line += end
    if hidden:
        line += f" {_count(hidden, 'finding')} in the baseline not shown."
    if skipped:
        line += f" {_count(skipped, 'file')} over max-file-size skipped."
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
