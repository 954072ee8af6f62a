"""`critic audit`: the critic over every row of a dataset's code column.

The input is a saved `datasets` directory (a Dataset, or a DatasetDict with one split or `split` named)
or a JSONL / JSON, Parquet or CSV file read by `datasets.load_dataset`. The output directory gets:

    dataset/        the same rows and columns plus `critic_findings` (a JSON list of `critic review
                    --format json` finding objects, less `path`) and `critic_max_confidence` (0.0: none)
    summary.json    counts, the settings, the most confident flags and, with a label column, precision
                    and recall of "the row has a finding at confidence >= t" against t
    summary.md      the same for people: a table of the most confident flags
    pr_curve.png    with a label column only: precision and recall against the confidence threshold

Rows are reviewed in fixed batches of `batch_size` consecutive rows (batch b is rows b*B .. b*B+B-1),
through a review cache in `.audit/cache` of the output directory (critic.review.cache): an audit that
is stopped (killed, interrupted) continues where it stopped when run again with the same --out,
searching no chunk it searched before, and loads no weights when nothing is left to search. The
`.audit` directory goes once the outputs are written. Under `accelerate launch` process i takes the
batches b with b % processes == i, and after a barrier the main process merges: it reviews every batch
again, now all cache hits. A row's batch is the same however the work is split, so the output is
what one process writes.

Code that does not parse is reviewed as runs of lines (critic.review.chunking); empty and null cells
get no findings.
"""

from __future__ import annotations

import json
import shutil
from collections import Counter, defaultdict
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

from critic.core.critique import code_lines
from critic.core.errors import UserError
from critic.review.cache import ReviewCache
from critic.review.report import as_dict
from critic.review.reviewer import LazyCritic, SourceFile, review
from critic.review.settings import ReviewSettings

FINDINGS_COLUMN = "critic_findings"
CONFIDENCE_COLUMN = "critic_max_confidence"
WORK = ".audit"  # the review cache of an unfinished audit
OUTPUTS = ("dataset", "summary.json", "summary.md", "pr_curve.png")
FILE_BUILDERS = {".jsonl": "json", ".json": "json", ".parquet": "parquet", ".csv": "csv"}
TOP_FLAGS = 50  # most confident findings listed in the summaries
BATCH_SIZE = 8


@dataclass(frozen=True)
class AuditInput:
    data: Path
    split: str | None  # the split of a DatasetDict, None for a Dataset or a file
    column: str
    label_column: str | None
    rows: object  # the datasets.Dataset audited
    texts: list[str]
    labels: list[bool | None] | None


def process_state():
    """accelerate's view of this process: one of `accelerate launch`'s, or the only one."""
    import torch
    from accelerate import PartialState

    return PartialState(cpu=not torch.cuda.is_available())  # CPU processes join one gloo group


def load_input(
    data: Path, column: str, split: str | None = None, label_column: str | None = None
) -> AuditInput:
    """The rows to audit, checked: a one-line UserError for a path that is not a dataset, a missing
    split or column, a column that is not text, or a label column that is not boolean."""
    table, split = _load_table(data, split)
    where = f"{data}" + (f" (split {split!r})" if split else "")
    names = table.column_names
    for name in (column, label_column):
        if name is not None and name not in names:
            raise UserError(f"{where}: no column {name!r} (has {', '.join(names) or 'none'})")
    if taken := [name for name in (FINDINGS_COLUMN, CONFIDENCE_COLUMN) if name in names]:
        raise UserError(f"{where}: already has column {taken[0]!r} (an audit's output?)")
    if _dtype(table.features[column]) not in ("string", "large_string"):
        raise UserError(f"{where}: column {column!r} holds {_dtype(table.features[column])}, not text")
    labels = None
    if label_column is not None:
        if _dtype(table.features[label_column]) != "bool":
            kind = _dtype(table.features[label_column])
            raise UserError(f"{where}: --label-column {label_column!r} holds {kind}, not booleans")
        labels = list(table[label_column])
    texts = ["" if text is None else text for text in table[column]]
    return AuditInput(data, split, column, label_column, table, texts, labels)


def _dtype(feature) -> str:
    return getattr(feature, "dtype", type(feature).__name__)


def _load_table(data: Path, split: str | None):
    from datasets import DatasetDict, disable_progress_bars, load_dataset, load_from_disk

    disable_progress_bars()  # the command draws its own progress
    if not data.exists():
        raise UserError(f"{data}: no such file or directory")
    if data.is_dir():
        if not any((data / name).is_file() for name in ("dataset_dict.json", "state.json")):
            raise UserError(f"{data}: not a saved `datasets` directory (no dataset_dict.json or state.json)")
        loaded = _read(data, "a saved dataset", lambda: load_from_disk(str(data)))
        if not isinstance(loaded, DatasetDict):
            if split is not None:
                raise UserError(f"--split: {data} is one dataset, without splits")
            return loaded, None
        if split is None and len(loaded) != 1:
            raise UserError(f"{data}: has splits {', '.join(loaded)}; choose one with --split")
        split = split if split is not None else next(iter(loaded))
        if split not in loaded:
            raise UserError(f"{data}: no split {split!r} (has {', '.join(loaded)})")
        return loaded[split], split
    builder = FILE_BUILDERS.get(data.suffix.lower())
    if builder is None:
        raise UserError(
            f"{data}: not a dataset (a saved `datasets` directory, or a .jsonl, .json, .parquet or .csv file)"
        )
    if split is not None:
        raise UserError(f"--split: {data} is one file, without splits")
    return _read(data, builder, lambda: load_dataset(builder, data_files=str(data), split="train")), None


def _read(data: Path, kind: str, load: Callable):
    from datasets.utils import logging

    verbosity = logging.get_verbosity()
    logging.set_verbosity(logging.CRITICAL)  # a failure is said once, below, not also in datasets' log
    try:
        return load()
    except Exception as err:  # datasets and pyarrow raise many kinds; all mean the file is not readable
        cause = err.__cause__ or err
        reason = (str(cause).strip().splitlines() or [type(cause).__name__])[0]
        raise UserError(f"{data}: cannot read as {kind} ({reason})") from err
    finally:
        logging.set_verbosity(verbosity)


def check_out(out: Path) -> bool:
    """Whether `out` holds an unfinished audit (resume it); False for a new or empty directory; a
    UserError for anything else."""
    if not out.exists():
        return False
    if not out.is_dir():
        raise UserError(f"--out {out}: is a file, not a directory")
    names = {entry.name for entry in out.iterdir()}
    if not names:
        return False
    if WORK in names and names <= {WORK, *OUTPUTS}:
        return True
    raise UserError(f"--out {out}: directory is not empty")


def audit(
    source: AuditInput,
    out: Path,
    settings: ReviewSettings,
    batch_size: int = BATCH_SIZE,
    progress: Callable[[int, int], None] | None = None,
    log: Callable[[str], None] = lambda _: None,
) -> dict | None:
    """Audit every row into `out`; the summary on the main process, None on the others. `progress`
    (rows done, rows: this process's share) and `log` are called on the main process only."""
    if batch_size < 1:
        raise UserError(f"--batch-size must be at least 1, got {batch_size}")
    state = process_state()
    main = state.is_main_process
    resume = check_out(out)  # every process checks before anyone writes
    critic = LazyCritic(settings)  # checks the paths now; loads the weights at the first cache miss
    state.wait_for_everyone()
    if main:
        if resume:
            log(f"resuming the unfinished audit in {out}")
            for name in OUTPUTS:  # an interrupted merge's leftovers
                _remove(out / name)
        (out / WORK).mkdir(parents=True, exist_ok=True)
    state.wait_for_everyone()
    cache = ReviewCache(out / WORK / "cache")
    batches = range((len(source.texts) + batch_size - 1) // batch_size)
    mine = batches[state.process_index :: state.num_processes]
    total, finished = sum(len(_rows(source, b, batch_size)) for b in mine), 0
    if main and progress is not None:
        progress(finished, total)
    for b in mine:
        _review_batch(critic, source, b, batch_size, settings, cache)
        finished += len(_rows(source, b, batch_size))
        if main and progress is not None:
            progress(finished, total)
    state.wait_for_everyone()
    if not main:
        return None
    # Every row's chunks are in the cache now: the merge reads them back (and searches only what a
    # failed cache write lost).
    findings = [row for b in batches for row in _review_batch(critic, source, b, batch_size, settings, cache)]
    summary = write_outputs(source, findings, out, settings, batch_size)
    shutil.rmtree(out / WORK)
    return summary


def _rows(source: AuditInput, batch: int, batch_size: int) -> range:
    return range(batch * batch_size, min((batch + 1) * batch_size, len(source.texts)))


def _review_batch(
    critic, source: AuditInput, batch: int, batch_size: int, settings, cache
) -> list[list[dict]]:
    """Findings of each row of the batch, as `critic_findings` objects."""
    sources = [SourceFile(f"row {row}", source.texts[row]) for row in _rows(source, batch, batch_size)]
    found = review(critic, sources, settings, cache=cache)
    return [[{k: v for k, v in as_dict(f).items() if k != "path"} for f in fs] for fs in found]


def _remove(path: Path) -> None:
    if path.is_dir():
        shutil.rmtree(path)
    elif path.exists():
        path.unlink()


# -- outputs ----------------------------------------------------------------------------------------


def write_outputs(
    source: AuditInput, findings: Sequence[list[dict]], out: Path, settings: ReviewSettings, batch_size: int
) -> dict:
    confidences = [max((f["score"] for f in row), default=0.0) for row in findings]
    table = source.rows.add_column(FINDINGS_COLUMN, [json.dumps(row) for row in findings])
    table = table.add_column(CONFIDENCE_COLUMN, confidences)
    table.save_to_disk(str(out / "dataset"))
    summary = summarize(source, findings, confidences, settings, batch_size)
    (out / "summary.json").write_text(json.dumps(summary, indent=2, default=str) + "\n", encoding="utf-8")
    (out / "summary.md").write_text(markdown(summary), encoding="utf-8")
    if "labels" in summary:
        plot_pr_curve(summary["labels"], out / "pr_curve.png")
    return summary


def summarize(
    source: AuditInput,
    findings: Sequence[list[dict]],
    confidences: Sequence[float],
    settings: ReviewSettings,
    batch_size: int,
) -> dict:
    flags = sorted(
        ((row, f) for row, found in enumerate(findings) for f in found),
        key=lambda rf: (-rf[1]["score"], rf[0]),
    )
    top = []
    for row, f in flags[:TOP_FLAGS]:
        lines = code_lines(source.texts[row])
        text = lines[f["line"] - 1].strip() if 0 < f["line"] <= len(lines) else ""
        top.append(
            {"row": row, "confidence": f["score"], "rule": f["rule"], "message": f["message"]}
            | {"line": f["line"], "code": text}
        )
    summary = {
        "data": str(source.data),
        "split": source.split,
        "column": source.column,
        "rows": len(findings),
        "rows_with_findings": sum(1 for found in findings if found),
        "findings": sum(len(found) for found in findings),
        "rules": dict(sorted(Counter(f["rule"] for found in findings for f in found).items())),
        "settings": {
            k: v for k, v in asdict(settings).items() if k not in ("exclude", "format", "max_file_size")
        }
        | {"batch_size": batch_size},
        "top_flags": top,
    }
    if source.labels is not None:
        summary["labels"] = {"column": source.label_column} | precision_recall(
            confidences, source.labels, settings.min_score
        )
    return summary


def precision_recall(confidences: Sequence[float], labels: Sequence[bool | None], min_score: float) -> dict:
    """Rows flagged at threshold t: a finding with confidence >= t (rows without findings never are).
    The curve at every t in 0, 0.01, ..., 1; average precision from the exact ranking; rows whose label
    is null are left out."""
    pairs = [(c, bool(y)) for c, y in zip(confidences, labels, strict=True) if y is not None]
    positives = sum(y for _, y in pairs)

    def at(threshold: float) -> dict:
        flagged = [y for c, y in pairs if c > 0 and c >= threshold]
        hits = sum(flagged)
        return {
            "threshold": threshold,
            "flagged": len(flagged),
            "precision": hits / len(flagged) if flagged else None,
            "recall": hits / positives if positives else None,
        }

    ap, hits, seen = 0.0, 0, 0
    tied: dict[float, list[bool]] = defaultdict(list)
    for c, y in pairs:
        if c > 0:
            tied[c].append(y)
    for c in sorted(tied, reverse=True):  # rows tied at a confidence are flagged together
        gained = sum(tied[c])
        seen, hits = seen + len(tied[c]), hits + gained
        ap += gained * hits / seen
    return {
        "buggy": positives,
        "clean": len(pairs) - positives,
        "unlabelled": len(labels) - len(pairs),
        "average_precision": ap / positives if positives else None,
        "at_min_score": at(min_score),
        "curve": [at(round(t / 100, 2)) for t in range(101)],
    }


def markdown(summary: dict) -> str:
    where = f"`{summary['data']}`" + (f" (split `{summary['split']}`)" if summary["split"] else "")
    settings = summary["settings"]
    lines = [
        "# critic audit",
        "",
        f"{where}, column `{summary['column']}`: {summary['rows']} rows, {summary['rows_with_findings']} "
        f"with findings ({summary['findings']} findings) at min-score {settings['min_score']:g}.",
        "",
    ]
    if labels := summary.get("labels"):
        ap = labels["average_precision"]
        lines += [
            f"Against `{labels['column']}` ({labels['buggy']} buggy, {labels['clean']} clean rows): "
            f"average precision {'n/a' if ap is None else f'{ap:.3f}'}.",
            "",
            "| confidence >= | rows flagged | precision | recall |",
            "|---:|---:|---:|---:|",
        ]
        for point in labels["curve"][::10]:
            lines.append(
                f"| {point['threshold']:.1f} | {point['flagged']} | {_rate(point['precision'])} "
                f"| {_rate(point['recall'])} |"
            )
        lines.append("")
    lines += ["## Most confident flags", ""]
    if not summary["top_flags"]:
        return "\n".join([*lines, "No findings.", ""])
    lines += ["| row | confidence | rule | message | line |", "|---:|---:|---|---|---|"]
    for flag in summary["top_flags"]:
        lines.append(
            f"| {flag['row']} | {flag['confidence']:.2f} | {flag['rule']} | {_cell(flag['message'])} "
            f"| {flag['line']}: {_code(flag['code'])} |"
        )
    return "\n".join([*lines, ""])


def _rate(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.3f}"


def _cell(text: str) -> str:
    return " ".join(text.split()).replace("|", "\\|")


def _code(text: str) -> str:
    """A code span that survives backticks and pipes in the code."""
    if not text:
        return ""
    fence = "``" if "`" in text else "`"
    pad = " " if fence == "``" else ""
    return f"{fence}{pad}{_cell(text)}{pad}{fence}"


def plot_pr_curve(labels: dict, out: Path) -> None:
    """Precision and recall of "the row has a finding at confidence >= t" against t."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    curve = labels["curve"]
    fig, ax = plt.subplots(figsize=(6.4, 4.8), dpi=120)
    for key, style in (("precision", "o-"), ("recall", "s-")):
        points = [p for p in curve if p[key] is not None]
        ax.plot([p["threshold"] for p in points], [p[key] for p in points], style, markersize=2, label=key)
    op = labels["at_min_score"]
    ax.axvline(op["threshold"], color="tab:red", linestyle=":", label=f"min-score {op['threshold']:g}")
    ax.set_xlabel("confidence threshold (a row is flagged when its most confident finding reaches it)")
    ax.set_ylabel("share")
    ax.set_xlim(-0.02, 1.02)
    ax.set_ylim(-0.02, 1.05)
    ax.grid(alpha=0.3)
    ax.legend(loc="upper right")
    ap = labels["average_precision"]
    ax.set_title(
        f"{labels['buggy']} buggy / {labels['clean']} clean rows, "
        f"average precision {'n/a' if ap is None else f'{ap:.3f}'}"
    )
    fig.tight_layout()
    fig.savefig(out)
    plt.close(fig)
