"""Which files `critic review` reads, and which of their lines changed (for --diff / --staged).

Directories are walked the way ruff walks them: Python files only (.py, .pyi), hidden and
well-known tool directories skipped, and inside a git work tree whatever git ignores skipped too
(git itself answers, so every .gitignore rule and global excludes behave exactly as in git). Files
named on the command line are always read.
"""

from __future__ import annotations

import fnmatch
import os
import re
import subprocess
from pathlib import Path

PYTHON_SUFFIXES = (".py", ".pyi")
SKIP_DIRS = {"__pycache__", "node_modules", "site-packages", "venv", "build", "dist", "__pypackages__"}


class GitError(Exception):
    pass


def discover(paths: list[str], exclude: tuple[str, ...] = ()) -> tuple[list[Path], list[str]]:
    """(files to review, errors): named files as given, directories walked; missing paths and paths
    that are neither files nor directories (/dev/null, a pipe) are errors."""
    found: list[Path] = []
    errors: list[str] = []
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            found.extend(p for p in _walk(path) if not _excluded(p, path, exclude))
        elif path.is_file():
            found.append(path)
        elif path.exists():  # a device, a pipe, a socket: nothing to review as source
            errors.append(f"{raw}: not a regular file")
        else:
            errors.append(f"{raw}: no such file or directory")
    unique = list(dict.fromkeys(found))
    return unique, errors


def within_size(files: list[Path], limit: int) -> tuple[list[Path], list[str]]:
    """(the files of at most `limit` bytes, one warning per larger file); a limit of 0 keeps them all.
    Checked before anything is read: a 20 MB file would otherwise be read, tokenized and searched for
    minutes without a word. A file that cannot be stat'ed is kept, for reading to report."""
    kept: list[Path] = []
    warnings: list[str] = []
    for path in files:
        try:
            size = path.stat().st_size
        except OSError:
            size = 0
        if limit and size > limit:
            warnings.append(f"{path}: skipped: {size:,} bytes is over max-file-size ({limit:,} bytes)")
        else:
            kept.append(path)
    return kept, warnings


def _walk(root: Path) -> list[Path]:
    candidates = []
    for directory, subdirs, names in os.walk(root):
        subdirs[:] = sorted(d for d in subdirs if not d.startswith(".") and d not in SKIP_DIRS)
        candidates.extend(Path(directory, n) for n in sorted(names) if n.endswith(PYTHON_SUFFIXES))
    ignored = _git_ignored(root, candidates)
    return [p for p in candidates if p not in ignored]


def _git_ignored(root: Path, candidates: list[Path]) -> set[Path]:
    if not candidates:
        return set()
    try:
        result = subprocess.run(
            ["git", "-C", str(root), "check-ignore", "-z", "--stdin"],
            input="\0".join(str(p.resolve()) for p in candidates),
            capture_output=True,
            text=True,
            check=False,
        )
    except OSError:  # no git: nothing is ignored
        return set()
    if result.returncode not in (0, 1):  # 128: not a git work tree
        return set()
    ignored = {Path(p) for p in result.stdout.split("\0") if p}
    return {p for p in candidates if p.resolve() in ignored}


def _excluded(path: Path, root: Path, patterns: tuple[str, ...]) -> bool:
    relative = path.relative_to(root).as_posix()
    return any(fnmatch.fnmatch(relative, p) or fnmatch.fnmatch(path.as_posix(), p) for p in patterns)


# --- changed lines -----------------------------------------------------------------------------

_HUNK = re.compile(r"^@@ -\d+(?:,\d+)? \+(\d+)(?:,(\d+))? @@")


def changed_lines(ref: str | None, staged: bool, cwd: Path | None = None) -> dict[Path, set[int]]:
    """Lines added or modified, per resolved file path: against `ref` (the working tree), or the staged
    changes. Untracked files count as wholly changed unless `staged`."""
    top = Path(_git(["rev-parse", "--show-toplevel"], cwd).strip())
    args = ["diff", "-U0", "--no-color", "--no-ext-diff", "--no-renames", "--diff-filter=AM"]
    args += ["--cached"] if staged else [ref or "HEAD"]
    changed: dict[Path, set[int]] = {}
    current: set[int] | None = None
    for line in _git(["-c", "core.quotePath=false", *args, "--"], top).splitlines():
        if line.startswith("+++ "):
            name = line[4:]
            current = None if name == "/dev/null" else changed.setdefault((top / name[2:]).resolve(), set())
        elif current is not None and (hunk := _HUNK.match(line)):
            start, count = int(hunk[1]), int(hunk[2] if hunk[2] is not None else 1)
            current.update(range(start, start + count))
    if not staged:
        for name in _git(["ls-files", "--others", "--exclude-standard", "-z"], top).split("\0"):
            if name:
                path = (top / name).resolve()
                changed[path] = _all_lines(path)
    return changed


def is_git_ref(ref: str, cwd: Path | None = None) -> bool:
    try:
        _git(["rev-parse", "--verify", "--quiet", f"{ref}^{{commit}}"], cwd)
    except GitError:
        return False
    return True


def _all_lines(path: Path) -> set[int]:
    try:
        with path.open("rb") as handle:
            return set(range(1, sum(1 for _ in handle) + 1))
    except OSError:
        return set()


def _git(args: list[str], cwd: Path | None) -> str:
    try:
        result = subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, check=False)
    except OSError as err:
        raise GitError(f"cannot run git: {err}") from err
    if result.returncode != 0:
        message = result.stderr.strip().splitlines()
        raise GitError(message[-1] if message else f"git {' '.join(args)} failed")
    return result.stdout
