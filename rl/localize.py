"""Fit the repair search's localizer on validation code (the `localize` stage).

`critic review` scores every candidate repair of every line with the policy's language model and turns
the margins into one probability per repair with a logistic model (critic.inference.localizer). This
stage fits that model where the critic never trained: the data stage's validation split (tampered) and
the untampered originals of the same functions (every repair of clean code is wrong). A repair's label
is whether applying it gives back the original exactly, so the fitted probability says how likely the
proposed fix is the right one, and a line's score, its best repair's, how likely the bug is there.

Each function is scored whole (review cuts long files into chunks first; validation functions are
short). RUN/localize/localizer.json goes beside the shipped policy, and RUN/localize/repairs.jsonl
holds every scored repair with its features and label (for fitting other feature sets); the metrics
hold the validation operating point at a sweep of min-scores and the one chosen from it: the lowest
at which at most MAX_CLEAN_FLAGGED of clean functions get a finding and at least MIN_LINE_PRECISION of
reported lines are bug lines, else the lowest that flags few enough clean functions.
"""

from __future__ import annotations

import json
import random
from pathlib import Path

from critic.core.tokenizer import load_tokenizer
from critic.evaluate import CLEAN_SET, clean_originals, min_score_sweep
from critic.inference.localizer import features, fit, scored_repairs, suspects
from critic.model import load_causal_lm
from critic.review.chunking import Chunk
from critic.review.reviewer import LOCATED_PER_CHUNK, SourceFile, located_finding
from critic.review.settings import ReviewSettings
from critic.rl.config import LocalizeStage

SWEEP = (0.0, 0.02, 0.05, 0.1, 0.15, 0.2, 0.25, 0.3, 0.4, 0.5, 0.6, 0.7)
MAX_CLEAN_FLAGGED = 0.10
MIN_LINE_PRECISION = 0.60
TABLE = "repairs.jsonl"  # the scored validation repairs, for ablations


def run_localize(cfg: LocalizeStage, data, lm_dir: Path, out: Path, log=print) -> dict:
    rows = [dict(r) for r in data["validation"]]
    rows = random.Random(cfg.seed).sample(rows, min(cfg.max_samples, len(rows)))
    sets = {"validation": rows, CLEAN_SET: clean_originals(rows)}
    model, tokenizer = load_causal_lm(lm_dir).eval(), load_tokenizer(lm_dir)
    scored: dict[str, list] = {}
    for key, samples in sets.items():
        scored[key] = []
        for i, sample in enumerate(samples):
            scored[key].append(scored_repairs(model, tokenizer, sample["code"]))
            if (i + 1) % 100 == 0:
                log(f"localize: {key} {i + 1}/{len(samples)} scored")
    table, labels = [], []
    restorable = 0
    for key, samples in sets.items():
        for sample, (repairs, margins) in zip(samples, scored[key], strict=True):
            table += features(sample["code"], repairs, margins)
            hits = (
                [r.code == sample["original"] for r in repairs]
                if sample["bug_lines"]
                else [False] * len(repairs)
            )
            labels += hits
            restorable += any(hits)
    _write_table(out / TABLE, sets, scored, table, labels)
    localizer = fit(table, labels)
    raw = {
        key: [
            _findings(
                sample["code"], repairs, localizer.probabilities(features(sample["code"], repairs, margins))
            )
            for sample, (repairs, margins) in zip(samples, scored[key], strict=True)
        ]
        for key, samples in sets.items()
    }
    settings = ReviewSettings(model=lm_dir)
    sweep = min_score_sweep(sets, raw, settings, cfg.bootstrap, SWEEP)
    chosen = choose_min_score(sweep)
    localizer.save(
        out,
        fitted_on=f"{len(rows)} validation samples and {len(sets[CLEAN_SET])} originals",
        language_model=str(lm_dir),
        min_score=chosen,
    )
    return {
        "localizer": dict(zip(localizer.names, localizer.weights, strict=True)) | {"bias": localizer.bias},
        "samples": len(rows),
        "originals": len(sets[CLEAN_SET]),
        "repairs": len(table),
        "restorable_rate": restorable / len(rows) if rows else None,
        "language_model": str(lm_dir),
        "chosen_min_score": chosen,
        "min_score_sweep": sweep,
    }


def _write_table(path: Path, sets: dict, scored: dict, table: list, labels: list) -> None:
    """Every scored repair, one JSON object a line: where it is, its features and its label, so that
    other feature sets can be fitted and compared without scoring again."""
    rows = iter(zip(table, labels, strict=True))
    with path.open("w") as f:
        for key, samples in sets.items():
            for index, (sample, (repairs, margins)) in enumerate(zip(samples, scored[key], strict=True)):
                for repair, margin in zip(repairs, margins, strict=True):
                    row, label = next(rows)
                    record = {"set": key, "sample": index, "kind": repair.kind, "line": repair.line}
                    record |= {
                        "end_line": repair.end_line,
                        "bug_lines": sample["bug_lines"],
                        "margin": margin,
                    }
                    f.write(json.dumps(record | {"features": row, "restores": label}) + "\n")


def _findings(code: str, repairs, scores) -> list:
    source = SourceFile("<validation>", code)
    return [
        located_finding(source, Chunk(1, code, 0), bug)
        for bug in suspects(code, repairs, scores, LOCATED_PER_CHUNK)
    ]


def choose_min_score(sweep: list[dict]) -> float:
    """The lowest swept min-score that flags at most MAX_CLEAN_FLAGGED of clean functions with line precision
    at least MIN_LINE_PRECISION; else the lowest that flags few enough clean functions; else the highest."""
    quiet = [p for p in sweep if p[CLEAN_SET]["false_alarm_rate"]["value"] <= MAX_CLEAN_FLAGGED]
    precise = [
        p
        for p in quiet
        if (precision := p["validation"]["line_precision"]["value"]) is not None
        and precision >= MIN_LINE_PRECISION
    ]
    for candidates in (precise, quiet):
        if candidates:
            return min(p["min_score"] for p in candidates)
    return max(p["min_score"] for p in sweep)
