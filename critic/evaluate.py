"""`critic eval`: the numbers CriticGPT reports, on held-out tampered code.

Every critique is judged by the rubric rater (critic.rating), which knows the inserted bug. A
configuration is a way of writing one critique per sample: the critic with FSBS at one
LENGTH_MODIFIER or as one plain sample, the same for the SFT-only policy (the ablation ladder SFT ->
RL -> RL + FSBS), or a critic that quotes a random line. FSBS candidates do not
depend on LENGTH_MODIFIER (only the final pick does), so one search per sample serves the whole sweep.

metrics.json (schema version 1):

    {"schema": 1, "samples": N, "split": str, "data": str, "settings": {...},
     "configs": {NAME: METRICS, ...},  # "critic@lm=X", "critic@single", "random_line", "sft@lm=X",
                                       # "sft@single" (X: LENGTH_MODIFIER; single: one plain sample)
     "pareto": [{"length_modifier": X, "cbi_rate": ..., "fake_problem_rate": ...}, ...],
     "per_bug_kind": {KIND: {"samples": n, "cbi_rate": ...}, ...},   # the critic at the default LM
     "clean": {"files": n, "silent_rate": ..., "findings": n, "min_score": X}}

    METRICS = {"samples", "cbi_rate", "fake_problem_rate", "hallucinated_quote_rate", "nitpick_rate",
               "mean_highlights", "line_precision", "line_recall"}

A critique includes the bug (CBI) when the rater scores it 5 or more: a highlight overlaps the bug
lines (the rater counts a quote found on the bug lines anywhere in the code). Line precision and
recall are micro-averaged over samples and use the parser's line mapping (a quote's first occurrence):
quoted lines that are bug lines over all quoted lines, and bug lines quoted over all bug lines.
"""

from __future__ import annotations

import json
import random
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

from critic.critique import format_critique, parse_critique
from critic.fsbs import Critic
from critic.rating import rate_critique
from critic.review import CHUNKS_PER_BATCH, SourceFile, review
from critic.sampling import generate
from critic.settings import ReviewSettings

SCHEMA_VERSION = 1
CBI_INCLUDED = 5  # rater scores 5-7: a highlight overlaps the bug lines


@dataclass
class Metrics:
    samples: int
    cbi_rate: float
    fake_problem_rate: float
    hallucinated_quote_rate: float
    nitpick_rate: float
    mean_highlights: float
    line_precision: float
    line_recall: float


def judge(critiques: Sequence[str], samples: Sequence[dict]) -> tuple[Metrics, list[bool]]:
    """Rubric metrics of one critique per sample, and whether each included its bug."""
    included, fake, hallucinated, nitpick, highlights = [], 0, 0, 0, 0
    quoted = quoted_bug = bug_total = bug_found = 0
    for critique, sample in zip(critiques, samples, strict=True):
        rating = rate_critique(critique, sample["code"], sample["bug_lines"], sample["description"])
        included.append(rating.cbi >= CBI_INCLUDED)
        fake += rating.fake_problem
        hallucinated += rating.hallucinated_quote
        nitpick += rating.nitpick
        valid = parse_critique(critique, sample["code"]).valid_highlights
        highlights += len(valid)
        lines = {n for h in valid for n in h.lines}
        bugs = set(sample["bug_lines"])
        quoted += len(lines)
        quoted_bug += len(lines & bugs)
        bug_total += len(bugs)
        bug_found += len(lines & bugs)
    n = max(1, len(samples))
    metrics = Metrics(
        samples=len(samples),
        cbi_rate=sum(included) / n,
        fake_problem_rate=fake / n,
        hallucinated_quote_rate=hallucinated / n,
        nitpick_rate=nitpick / n,
        mean_highlights=highlights / n,
        line_precision=quoted_bug / quoted if quoted else 0.0,
        line_recall=bug_found / bug_total if bug_total else 0.0,
    )
    return metrics, included


def random_line_critiques(samples: Sequence[dict], seed: int) -> list[str]:
    """The baseline: quote one non-blank line, chosen at random, and call it wrong."""
    rng = random.Random(seed)
    critiques = []
    for sample in samples:
        lines = [line for line in sample["code"].split("\n") if line.strip()]
        quote = rng.choice(lines).strip() if lines else ""
        critiques.append(format_critique([(quote, "This line is wrong.")]) if quote else "")
    return critiques


def search_all(critic: Critic, samples: Sequence[dict], settings: ReviewSettings, progress=None) -> list:
    """FSBS candidates of every sample, a few samples to a batch."""
    results = []
    for start in range(0, len(samples), CHUNKS_PER_BATCH):
        batch = samples[start : start + CHUNKS_PER_BATCH]
        prompts = [critic.prompt_ids(s["code"]) for s in batch]
        results.extend(critic.search(prompts, [s["code"] for s in batch], settings.fsbs, seed=settings.seed))
        if progress is not None:
            progress(len(results), len(samples))
    return results


def single_samples(critic: Critic, samples: Sequence[dict], settings: ReviewSettings) -> list[str]:
    """One plain sample per sample: no forced highlights, no reward model (the rung below FSBS)."""
    fsbs = settings.fsbs
    critiques = []
    for start in range(0, len(samples), CHUNKS_PER_BATCH):
        prompts = [critic.prompt_ids(s["code"]) for s in samples[start : start + CHUNKS_PER_BATCH]]
        new = generate(
            critic.policy,
            prompts,
            fsbs.rounds * fsbs.max_new_tokens,
            critic.stop_ids,
            fsbs.temperature,
            seed=settings.seed + start,
        )
        critiques += [critic.decode(tokens) for tokens in new]
    return critiques


def pick(results: Sequence, length_modifier: float) -> list[str]:
    return [max(r.candidates, key=lambda c: c.objective(length_modifier)).critique for r in results]


def evaluate(
    critic: Critic,
    samples: Sequence[dict],
    settings: ReviewSettings,
    length_modifiers: Sequence[float],
    sft_critic: Critic | None = None,
    progress=None,
) -> dict:
    """Everything metrics.json holds except where the data came from."""
    results = search_all(critic, samples, settings, progress)
    configs: dict[str, dict] = {}
    pareto = []
    for lm in sorted(set(length_modifiers) | {settings.length_modifier}):
        metrics, included = judge(pick(results, lm), samples)
        configs[f"critic@lm={lm:g}"] = asdict(metrics)
        pareto.append(
            {
                "length_modifier": lm,
                "cbi_rate": metrics.cbi_rate,
                "fake_problem_rate": metrics.fake_problem_rate,
            }
        )
        if lm == settings.length_modifier:
            default_included = included
    configs["critic@single"] = asdict(judge(single_samples(critic, samples, settings), samples)[0])
    configs["random_line"] = asdict(judge(random_line_critiques(samples, settings.seed), samples)[0])
    if sft_critic is not None:
        sft_results = search_all(sft_critic, samples, settings)
        key = f"sft@lm={settings.length_modifier:g}"
        configs[key] = asdict(judge(pick(sft_results, settings.length_modifier), samples)[0])
        configs["sft@single"] = asdict(judge(single_samples(sft_critic, samples, settings), samples)[0])
    kinds: dict[str, list[bool]] = defaultdict(list)
    for sample, hit in zip(samples, default_included, strict=True):
        kinds[sample["bug_kind"]].append(hit)
    per_kind = {k: {"samples": len(v), "cbi_rate": sum(v) / len(v)} for k, v in sorted(kinds.items())}
    originals = list({s["original"]: None for s in samples})
    reports = review(
        critic, [SourceFile(f"original_{i}.py", code) for i, code in enumerate(originals)], settings
    )
    clean = {
        "files": len(originals),
        "silent_rate": sum(1 for r in reports if not r) / max(1, len(originals)),
        "findings": sum(len(r) for r in reports),
        "min_score": settings.min_score,
    }
    return {"configs": configs, "pareto": pareto, "per_bug_kind": per_kind, "clean": clean}


def plot_pareto(pareto: Sequence[dict], baselines: dict[str, dict], out: Path) -> None:
    """CBI against fake-problem rate, one point per LENGTH_MODIFIER (points that coincide share one
    label), with the baselines marked."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 4.8), dpi=120)
    ax.plot(
        [p["fake_problem_rate"] for p in pareto], [p["cbi_rate"] for p in pareto], "o-", label="critic + FSBS"
    )
    labels: dict[tuple[float, float], list[str]] = defaultdict(list)
    for p in pareto:
        labels[(p["fake_problem_rate"], p["cbi_rate"])].append(f"{p['length_modifier']:g}")
    for (x, y), values in labels.items():
        ax.annotate(f"LM={','.join(values)}", (x, y), textcoords="offset points", xytext=(-10, 8), ha="right")
    for (name, metrics), marker in zip(baselines.items(), "sD^v", strict=False):
        ax.plot([metrics["fake_problem_rate"]], [metrics["cbi_rate"]], marker, label=name)
    ax.set_xlabel("fake-problem rate (critiques claiming a problem that is not there)")
    ax.set_ylabel("CBI rate (critiques that include the inserted bug)")
    ax.set_xlim(-0.02, 1.05)
    ax.set_ylim(-0.02, 1.05)
    ax.grid(alpha=0.3)
    ax.legend(loc="upper left")
    ax.set_title("FSBS precision/recall dial (LENGTH_MODIFIER)")
    fig.tight_layout()
    fig.savefig(out)
    plt.close(fig)


def write_report(report: dict, out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    (out / "metrics.json").write_text(json.dumps({"schema": SCHEMA_VERSION, **report}, indent=2) + "\n")
    baselines = {name: m for name, m in report["configs"].items() if not name.startswith("critic@lm=")}
    plot_pareto(report["pareto"], baselines, out / "pareto.png")
