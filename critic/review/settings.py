"""`critic review` settings: defaults, then `[tool.critic]` in pyproject.toml, then the command line.

Like ruff, the closest pyproject.toml (from the working directory up) that has a `[tool.critic]`
table is used; keys are the long option names (`min-score`, `reward-model`, ...). Paths in the file
are relative to the file. Unknown keys and wrong types are errors that name the file, never ignored.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field, fields, replace
from importlib.resources import files
from pathlib import Path
from typing import Any

from critic.core.errors import UserError
from critic.inference.fsbs_settings import FSBSSettings

FORMATS = ("concise", "full", "json", "sarif", "github")
# How findings are searched for: "repairs" scores every candidate repair of every line with the policy's
# language model and writes each comment from the bug taxonomy's sentence forms (readable by construction,
# with a fix); "fsbs" is CriticGPT's Force Sampling Beam Search over free-text critiques, for a
# checkpoint fluent enough to write its own (the shipped critic is not, so it refuses "fsbs").
SEARCHES = ("repairs", "fsbs")


def default_critic_dir() -> Path:
    """The critic that ships inside the package (critic/data/default_critic), also in a plain install."""
    return Path(str(files("critic.data") / "default_critic"))


@dataclass(frozen=True)
class ReviewSettings:
    model: Path = field(default_factory=lambda: default_critic_dir() / "policy")
    reward_model: Path = field(default_factory=lambda: default_critic_dir() / "reward")
    # A finding's confidence must reach this to be reported. Chosen on validation data (the shipped
    # critic's localize stage, never on what `critic eval` measures): the lowest min-score of its sweep
    # at which at most 10% of clean functions get a finding (8.2% at 0.2; no min-score also reached 60%
    # line precision, rl/localize.py) (data/default_critic/README.md).
    min_score: float = 0.2
    max_findings: int = 5  # per file, the most confident kept
    length_modifier: float = 0.0
    samples: int = 4
    rounds: int = 4
    keep: int = 2
    max_new_tokens: int = 64
    temperature: float = 1.0
    seed: int = 0
    chunk_tokens: int = 512  # code tokens per prompt
    search: str = "repairs"  # SEARCHES
    exclude: tuple[str, ...] = ()  # glob patterns (relative paths) skipped when walking directories
    baseline: Path | None = None  # known findings not reported again (critic/review/baseline.py)
    format: str = "concise"
    # Files larger than this many bytes are skipped with a warning (0: none is): a review's time grows
    # with the file (a 20 MB file ran for minutes), and a file this large is generated code or data.
    max_file_size: int = 1_000_000

    def __post_init__(self) -> None:
        if not 0.0 <= self.min_score <= 1.0:
            raise UserError(f"min-score must be between 0 and 1, got {self.min_score}")
        if self.max_findings < 0:
            raise UserError("max-findings must be >= 0")
        if self.max_file_size < 0:
            raise UserError("max-file-size must be >= 0 (0: no limit)")
        if self.chunk_tokens < 16:
            raise UserError("chunk-tokens must be at least 16")
        if self.search not in SEARCHES:
            raise UserError(f"unknown search {self.search!r} (choose from {', '.join(SEARCHES)})")
        shipped = (default_critic_dir() / "policy").resolve()
        if self.search == "fsbs" and Path(self.model).resolve() == shipped:
            raise UserError(
                "the shipped critic writes no readable free text: search 'fsbs' needs a fluent --model"
            )
        if self.format not in FORMATS:
            raise UserError(f"unknown format {self.format!r} (choose from {', '.join(FORMATS)})")
        try:
            _ = self.fsbs
        except ValueError as err:
            raise UserError(str(err)) from err

    @property
    def fsbs(self) -> FSBSSettings:
        return FSBSSettings(
            self.samples, self.rounds, self.keep, self.length_modifier, self.max_new_tokens, self.temperature
        )

    def updated(self, **changes: Any) -> ReviewSettings:
        """A copy with the given (non-None) values: command-line options override the file."""
        return replace(self, **{k: v for k, v in changes.items() if v is not None})


def find_pyproject(start: Path) -> Path | None:
    """The closest pyproject.toml at or above `start` with a [tool.critic] table."""
    for directory in [start, *start.parents]:
        candidate = directory / "pyproject.toml"
        if candidate.is_file() and "critic" in _read_toml(candidate).get("tool", {}):
            return candidate
    return None


def load_settings(start: Path | None = None, **overrides: Any) -> tuple[ReviewSettings, Path | None]:
    """Defaults overridden by the closest [tool.critic] table, then by `overrides` (the command line's
    options; None: not given); returns the file used, if any. The settings are checked once, whole: a
    table's `search = "fsbs"` is valid with the --model a command names."""
    given = {k: v for k, v in overrides.items() if v is not None}
    path = find_pyproject((start or Path.cwd()).resolve())
    if path is None:
        return ReviewSettings(**given), None
    table = _read_toml(path)["tool"]["critic"]
    known = {f.name.replace("_", "-"): f for f in fields(ReviewSettings)}
    values: dict[str, Any] = {}
    for key, value in table.items():
        if key not in known:
            raise UserError(
                f"{path}: unknown key {key!r} in [tool.critic] (known: {', '.join(sorted(known))})"
            )
        name = known[key].name
        values[name] = _coerce(path, key, value, ReviewSettings.__dataclass_fields__[name].type)
    return ReviewSettings(**(values | given)), path


def _coerce(path: Path, key: str, value: Any, kind: str) -> Any:
    wrong = UserError(f"{path}: [tool.critic] {key} has the wrong type ({type(value).__name__})")
    if kind in ("Path", "Path | None"):
        if not isinstance(value, str):
            raise wrong
        return (path.parent / value).resolve()
    if kind == "int":
        if isinstance(value, bool) or not isinstance(value, int):
            raise wrong
        return value
    if kind == "float":
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise wrong
        return float(value)
    if kind.startswith("tuple"):
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise wrong
        return tuple(value)
    if not isinstance(value, str):
        raise wrong
    return value


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as err:
        raise UserError(f"{path}: not valid TOML ({err})") from err
