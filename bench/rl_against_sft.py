"""RL policies against their SFT policy, as `critic eval` compares them, for several RL runs at once.

    python bench/rl_against_sft.py RUN --reward-model DIR NAME=RL_DIR [NAME=RL_DIR ...] [--out DIR]

Every policy (RUN/sft first) reviews the same verified HumanEval tamperings (one per task, seed 0) with
FSBS and the one reward model DIR (the run's, with its calibration.json beside it). For each RL run:
its top finding on the bug at min-score 0 and the ladder's CBI and fake-problem rate at each length
modifier, each minus the SFT policy's, paired, with 95% cluster-bootstrap intervals
(critic.evaluate's `top_on_bug_difference` and `cbi_difference`); and its RL stage's own held-out
reward gain and KL (RL_DIR/done.json). `critic eval --sft-model` gives the same numbers for one run
(with the clean set and the baselines); here the SFT policy is searched once for all of them.
Writes OUT/report.json, OUT/curves.png (each run's training reward by step, and every policy's
ladder dial: CBI against fake-problem rate over the length modifiers) and prints a line per run.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch

from critic.commands.eval import humaneval_sets
from critic.evaluate import (
    bootstrap_ratio,
    cbi_difference,
    cluster_of,
    fsbs_results,
    judge,
    operating_point,
    pick,
    reported,
    top_on_bug,
    top_on_bug_difference,
)
from critic.review.reviewer import load_critic
from critic.review.settings import ReviewSettings

LENGTH_MODIFIERS = (0.0, 0.5, 1.0, 2.0, 4.0)


def reviewed(policy: Path, reward_model: Path, samples: list[dict], resamples: int) -> dict:
    """The policy's raw review findings and its ladder ratings at each length modifier."""
    settings = ReviewSettings(model=policy, reward_model=reward_model, search="fsbs")
    critic = load_critic(settings)
    _, raw, searched = operating_point(critic, {"humaneval": samples}, settings, resamples)
    results = fsbs_results(critic, samples, settings, searched["humaneval"])
    return {
        "settings": settings,
        "raw": raw["humaneval"],
        "ratings": {lm: judge(pick(results, lm), samples)[1] for lm in LENGTH_MODIFIERS},
    }


def summary(name: str, mine: dict, samples: list[dict], resamples: int) -> dict:
    """Top finding on the bug at min-score 0, and the ladder's two rates per length modifier."""
    clusters, ones = [cluster_of(s) for s in samples], [1] * len(samples)
    found = [reported(r, s["code"], mine["settings"], 0.0) for r, s in zip(mine["raw"], samples, strict=True)]
    return {
        "name": name,
        "top_on_bug": bootstrap_ratio(top_on_bug(samples, found), ones, clusters, resamples),
        "ladder": {
            lm: {
                "cbi_rate": bootstrap_ratio([r.caught for r in rs], ones, clusters, resamples),
                "fake_problem_rate": bootstrap_ratio([r.fake_problem for r in rs], ones, clusters, resamples),
            }
            for lm, rs in mine["ratings"].items()
        },
    }


def ci(metric: dict) -> str:
    return f"{metric['value']:+.3f} [{metric['low']:+.3f}, {metric['high']:+.3f}]"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("run", type=Path, help="pipeline run directory with data/ and sft/")
    parser.add_argument("--reward-model", type=Path, required=True)
    parser.add_argument("policies", nargs="+", help="NAME=RL_DIR")
    parser.add_argument("--per-item", type=int, default=1)
    parser.add_argument("--bootstrap", type=int, default=1000)
    parser.add_argument("--max-samples", type=int, help="the first N tampered samples only (a smoke run)")
    parser.add_argument("--out", type=Path, default=Path("bench/results/rl_against_sft"))
    args = parser.parse_args()
    torch.set_num_threads(2)
    runs = dict(p.split("=", 1) for p in args.policies)
    sets, _, source = humaneval_sets(None, None, 0, args.per_item, False, args.max_samples)
    samples = sets["humaneval"]
    sft = reviewed(args.run / "sft", args.reward_model, samples, args.bootstrap)
    clusters = [cluster_of(s) for s in samples]
    rows = [summary("sft", sft, samples, args.bootstrap)]
    for name, directory in runs.items():
        mine = reviewed(Path(directory), args.reward_model, samples, args.bootstrap)
        stage = json.loads((Path(directory) / "done.json").read_text())["metrics"]
        manifest = Path(directory).parent / "manifest.json"  # the run's config, where it has one
        settings = json.loads(manifest.read_text())["config"]["rl"] if manifest.is_file() else {}
        row = summary(name, mine, samples, args.bootstrap) | {
            "directory": directory,
            "rl": settings,
            "held_out_reward_gain": stage.get("reward_gain"),
            "kl": stage.get("kl"),
            "train_rewards": stage.get("train_rewards", []),
            "top_on_bug_minus_sft": top_on_bug_difference(
                samples, mine["raw"], sft["raw"], mine["settings"], args.bootstrap
            ),
            "cbi_minus_sft": cbi_difference(mine["ratings"], sft["ratings"], clusters, args.bootstrap, 0),
        }
        rows.append(row)
        lm0 = next(r for r in row["cbi_minus_sft"] if r["length_modifier"] == 0.0)
        print(
            f"{name:>14}: top on bug (min-score 0) minus SFT {ci(row['top_on_bug_minus_sft'])}; "
            f"ladder CBI (LM 0) minus SFT's at the same fake-problem rate {ci(lm0['matched'])}; "
            f"held-out reward gain {ci(row['held_out_reward_gain'])}, KL {row['kl']:.2f}",
            flush=True,
        )
    args.out.mkdir(parents=True, exist_ok=True)
    report = {"samples": len(samples), "data": source, "reward_model": str(args.reward_model), "rows": rows}
    (args.out / "report.json").write_text(json.dumps(report, indent=2) + "\n")
    plot(rows, args.out / "curves.png")


def plot(rows: list[dict], out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (train, dial) = plt.subplots(1, 2, figsize=(11, 4.5), dpi=120)
    rubric = None  # runs rewarded by the rater: its 1-7 scale, on an axis of its own
    for row in rows:
        if row.get("train_rewards"):
            rater = row["rl"].get("reward") == "rater"
            if rater and rubric is None:
                rubric = train.twinx()
                rubric.set_ylabel("rubric overall score (dashed: rater-rewarded runs)")
            (rubric if rater else train).plot(
                range(1, len(row["train_rewards"]) + 1),
                row["train_rewards"],
                "--" if rater else "-",
                label=row["name"],
            )
        points = sorted(row["ladder"].items())
        dial.plot(
            [p["fake_problem_rate"]["value"] for _, p in points],
            [p["cbi_rate"]["value"] for _, p in points],
            "o-" if row["name"] == "sft" else ".-",
            label=row["name"],
            linewidth=2.5 if row["name"] == "sft" else 1,
        )
    train.set_xlabel("optimizer step")
    train.set_ylabel("mean training reward (reward model)")
    train.set_title("RL training reward")
    dial.set_xlabel("fake-problem rate")
    dial.set_ylabel("CBI rate")
    dial.set_title("ladder dial on HumanEval (length modifiers 0-4)")
    for ax, where in ((train, "upper left"), (dial, "upper left"), (rubric, "lower right")):
        if ax is not None and ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=7, loc=where)
    train.grid(alpha=0.3)
    dial.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(out)
    plt.close(fig)


if __name__ == "__main__":
    main()
