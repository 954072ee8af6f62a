"""Rate sampled critiques with the rubric rater and derive within-task preferences.

Each task's critiques (the policy's samples, plus the gold critique built from the tamperer's
description) are compared only with each other: preferences never cross tasks.
"""

from __future__ import annotations

import hashlib
from collections import defaultdict
from pathlib import Path

from datasets import Dataset, DatasetDict, concatenate_datasets

from critic.core.critique import NO_BUGS, code_lines, request, terminate_critique
from critic.core.errors import UserError
from critic.datagen.rating import (
    CAUGHT_CBI,
    PAIR_SCHEMA,
    RATING_FIELDS,
    gold_critique,
    pair_features,
    preferences,
    rate_critique,
)
from critic.rl.config import RateStage
from critic.rl.pairs import synthetic_preferences

SPLIT_SEEDS = {"train": 0, "validation": 1, "test": 2}
CLEAN_MARGIN = 3.0  # a fake problem on clean code against the right answer: as bad as a clear miss


def clean_code_pair(row: dict) -> dict | None:
    """NO_BUGS preferred over a critique of the bug lines' counterparts in the untampered original,
    or None where those lines are not in the original (a removed statement) or hold no code."""
    lines = code_lines(row["original"])
    if not row["original"] or max(row["bug_lines"]) > len(lines):
        return None
    if not any(lines[n - 1].strip() for n in row["bug_lines"]):
        return None
    fake = gold_critique(row["original"], row["bug_lines"], row["description"])
    return {
        "task_id": row["task_id"] + "/original",
        "prompt": request(row["original"]),
        "chosen": terminate_critique(NO_BUGS),
        "rejected": terminate_critique(fake),
        "margin": CLEAN_MARGIN,
    }


def rate_split(
    samples: Dataset, include_gold: bool, include_no_bugs: bool = False
) -> tuple[Dataset, Dataset]:
    # One comparison task per tampered code: an item's task_id is shared by all its tamperings.
    tasks: dict[tuple[str, str], list[dict]] = defaultdict(list)
    for row in samples:
        tasks[row["task_id"], row["code"]].append(row)
    ratings: dict[str, list] = defaultdict(list)
    pairs: dict[str, list] = defaultdict(list)
    for (task_id, _), rows in tasks.items():
        first = rows[0]
        critiques = [(r["critique"], r["origin"]) for r in rows]
        if include_gold:
            gold = gold_critique(first["code"], first["bug_lines"], first["description"])
            critiques.append((gold, "gold"))
        if include_no_bugs:
            critiques.append((NO_BUGS, "no_bugs"))
        overall = []
        for text, origin in critiques:
            rating = rate_critique(text, first["code"], first["bug_lines"], first["description"])
            overall.append(rating.overall)
            ratings["task_id"].append(task_id)
            ratings["critique"].append(text)
            ratings["origin"].append(origin)
            for name, value in rating.to_dict().items():
                ratings[name].append(value)
        for pref in preferences(task_id, [t for t, _ in critiques], overall):
            if pref.weight < 1:
                continue  # ties carry no ranking signal for a Bradley-Terry reward model
            pairs["task_id"].append(task_id)
            pairs["prompt"].append(request(first["code"]))
            pairs["chosen"].append(terminate_critique(pref.chosen))
            pairs["rejected"].append(terminate_critique(pref.rejected))
            pairs["margin"].append(pref.margin)
        if include_no_bugs and (clean := clean_code_pair(first)):
            for name, value in clean.items():
                pairs[name].append(value)
    return Dataset.from_dict(dict(ratings)), Dataset.from_dict(dict(pairs))


PAIR_FEATURES = pair_features()
PREFERENCE_COLUMNS = list(PAIR_SCHEMA)


def human_preferences(path: str | Path) -> DatasetDict:
    """Pairs from human ratings, as `critic data export` writes them (a DatasetDict with a
    `preferences` split), divided by task: one task in ten is held out for the reward model's accuracy."""
    from datasets import load_from_disk

    try:
        exported = load_from_disk(str(path))
    except (FileNotFoundError, ValueError) as err:
        raise UserError(f"{path}: not a saved DatasetDict of human ratings ({err})") from err
    if "preferences" not in exported:
        raise UserError(f"{path}: has no 'preferences' split (expected `critic data export` output)")
    prefs = exported["preferences"]
    if missing := sorted(set(PREFERENCE_COLUMNS) - set(prefs.column_names)):
        raise UserError(f"{path}: preferences lack column(s) {', '.join(missing)}")
    prefs = prefs.select_columns(PREFERENCE_COLUMNS)

    def held_out(row: dict) -> bool:
        return int(hashlib.sha256(row["task_id"].encode()).hexdigest()[:8], 16) % 10 == 0

    return DatasetDict(train=prefs.filter(lambda row: not held_out(row)), validation=prefs.filter(held_out))


def run_rate(cfg: RateStage, samples: DatasetDict, out: Path, data: DatasetDict | None = None) -> dict:
    """Preferences per split: rated policy samples, human pairs, and (with `synthetic_negatives` and
    the tampered `data`) pairs that need no sampling (critic.rl.pairs)."""
    result, metrics = {}, {}
    human = human_preferences(cfg.human_ratings) if cfg.human_ratings else None
    for split, ds in samples.items():
        ratings, pairs = rate_split(ds, cfg.include_gold, cfg.include_no_bugs)
        parts = [pairs] if cfg.automatic and len(pairs) else []
        if cfg.synthetic_negatives and data is not None and split in data:
            synthetic = Dataset.from_dict(
                synthetic_preferences(data[split], cfg.synthetic_negatives, cfg.seed + SPLIT_SEEDS[split])
            )
            parts.append(synthetic)
            metrics[f"{split}_synthetic_pairs"] = len(synthetic)
        if human is not None:
            parts.append(human[split])
            metrics[f"{split}_human_pairs"] = len(human[split])
        pairs = (
            concatenate_datasets([p.cast(PAIR_FEATURES) for p in parts]) if parts else Dataset.from_dict({})
        )
        result[f"ratings_{split}"], result[f"preferences_{split}"] = ratings, pairs
        metrics[f"{split}_pairs"] = len(pairs)
        if len(ratings):
            policy = [r for r in ratings if r["origin"].startswith("policy")]
            caught = sum(r["cbi"] >= CAUGHT_CBI for r in policy)
            metrics[f"{split}_policy_cbi_rate"] = caught / max(1, len(policy))
    missing = [name for name, ds in result.items() if name.startswith("preferences") and not len(ds)]
    if missing:
        raise UserError(f"no preference pairs in {', '.join(missing)}: sample more critiques per task")
    DatasetDict(result).save_to_disk(str(out))
    metrics["rating_fields"] = list(RATING_FIELDS)
    return metrics
