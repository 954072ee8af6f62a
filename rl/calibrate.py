"""Calibrate the finished critic's confidence on validation code (the `calibrate` stage).

`critic review` reports a finding when its confidence reaches `min_score`; the confidence is only meaningful
if it is a probability. This stage reviews the data stage's validation split (tampered) and the untampered
originals of the same functions exactly as `critic review` does, before any filter, and fits Platt scaling
(critic.inference.calibration) of "this finding is on the bug" on the reward model's margins: every finding on
clean code is a miss. RUN/calibrate/calibration.json goes beside the shipped reward model; the metrics record
the validation operating point at a sweep of min-scores, from which the review defaults are chosen.
"""

from __future__ import annotations

import random
from dataclasses import asdict, replace
from pathlib import Path

from critic.core.tokenizer import load_tokenizer
from critic.evaluate import CLEAN_SET, clean_originals, min_score_sweep, on_bug, review_raw
from critic.inference.calibration import Calibration, fit, logit
from critic.inference.fsbs import Critic
from critic.model import load_causal_lm, load_reward_model
from critic.review.settings import ReviewSettings
from critic.rl.config import CalibrateStage

SWEEP = (0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8)


def run_calibrate(cfg: CalibrateStage, data, policy_dir: Path, reward_dir: Path, out: Path) -> dict:
    rows = [dict(r) for r in data["validation"]]
    rows = random.Random(cfg.seed).sample(rows, min(cfg.max_samples, len(rows)))
    sets = {"validation": rows, CLEAN_SET: clean_originals(rows)}
    # FSBS's findings, whose confidence is the reward model's: the repair search has its own (rl/localize.py)
    settings = ReviewSettings(model=policy_dir, reward_model=reward_dir, seed=cfg.seed, search="fsbs")
    # an uncalibrated critic: its confidence is sigmoid(margin), so logit(confidence) is the margin
    critic = Critic(load_causal_lm(policy_dir), load_reward_model(reward_dir), load_tokenizer(policy_dir))
    codes = [s["code"] for key in sets for s in sets[key]]
    flat = review_raw(critic, codes, settings)
    raw = {"validation": flat[: len(rows)], CLEAN_SET: flat[len(rows) :]}
    margins, hits = [], []
    for key, samples in sets.items():
        for sample, findings in zip(samples, raw[key], strict=True):
            for f in findings:
                margins.append(logit(f.score))
                hits.append(on_bug(f, sample["bug_lines"]))
    calibration = fit(margins, hits) if margins else Calibration()
    calibrated = {
        key: [[_rescored(f, calibration) for f in findings] for findings in raw[key]] for key in sets
    }
    sweep = min_score_sweep(sets, calibrated, settings, cfg.bootstrap, SWEEP)
    calibration.save(out, fitted_on=f"{len(rows)} validation samples and {len(sets[CLEAN_SET])} originals")
    return {
        "calibration": asdict(calibration),
        "findings": len(margins),
        "on_bug_rate": sum(hits) / len(hits) if hits else None,
        "samples": len(rows),
        "originals": len(sets[CLEAN_SET]),
        "min_score_sweep": sweep,
    }


def _rescored(finding, calibration: Calibration):
    return replace(finding, score=calibration.probability(logit(finding.score)))
