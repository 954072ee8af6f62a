"""`critic eval`: what `critic review` reports at its defaults, and the numbers CriticGPT reports, on
held-out tampered code.

**The review operating point.** Each sample is reviewed exactly as `critic review` reviews a file
(same chunking, FSBS settings and seed), once: every raw finding is kept with its confidence, and
`critic.review.reviewer.filter_findings` (min-score, max-findings, quotes too short to locate, suppressions,
overlap with a more confident finding) is applied post hoc. That gives the default operating point,
a min-score sweep and a reliability diagram from one search per sample. Sample sets:

- `humaneval`: HumanEval's tasks (all 164: HumanEval is held out from training), tampered and kept
  only when the tests then fail (verified); or the rows of `--data`.
- `humaneval_line_uniform`: the same tasks tampered line-uniformly (`tamper(line_uniform=True)`: the
  bug line is drawn uniformly among lines with sites, so long lines are no likelier to hold it).
- `stdlib`: functions of standard-library files whose split is "test", tampered, unverified.
- `clean`: the untampered originals of `humaneval` (false alarms).

Per tampered set: the top (most confident) finding on the bug (its lines overlap `bug_lines`); any
finding on the bug; line precision (reported lines that are bug lines over reported lines, micro-
averaged; a finding's lines are line..end_line); silent (no finding); and, over findings, the share
whose comment's backticked spans all appear verbatim in the code (no span passes) and the share
with a span at all. On `clean`: the false-alarm rate, the share of files with any finding. Each
comes with a 95% percentile bootstrap interval over clusters (`task_id`'s group: a task's or file's
tamperings are correlated), seeded. Baselines flag exactly one line per sample: a random non-blank
line, a random code line (one with a code token: no blank, comment-only or string-only line), the
longest line (most code tokens by `tokenize`, strings and comments not counted; the first on ties)
and the fair baseline, the longest body line: the longest line that is not part of a `def`/`class`
header (decorators to the colon ending it), a docstring or an import (by `ast`; the plain longest
line where nothing else has code). Over findings, also the share whose fix, applied alone, leaves
code that parses (`fixes_parse`; a finding without a fix does not).

Without the min-score cut, per tampered set: at min-score 0 (every raw finding through the filter,
max-findings as set) the top finding on the bug against the fair baseline's, and their difference
with a paired interval (the same cluster resamples for both); the share of samples whose top
finding's fix, applied alone, gives back exactly the original (up to one trailing newline) and
`fixes_parse` at min-score 0; and detection: the ROC AUC of a file's highest raw confidence (0 with
no raw finding), the set's tampered samples against `clean` (ties count one half), the interval
resampling clusters of both together (an original shares its task's cluster; `stdlib` is scored
against HumanEval's originals, the only clean files reviewed).

**The CriticGPT ladder** (on `humaneval`): every critique is judged by the rubric rater
(critic.datagen.rating), which knows the inserted bug. A configuration is a way of writing one critique per
sample: the critic with FSBS at one LENGTH_MODIFIER or as one plain sample, the same for the
SFT-only policy (SFT -> RL -> RL + FSBS), or a critic that quotes a random line. FSBS candidates do
not depend on LENGTH_MODIFIER (only the final pick does), so one search per sample serves the sweep.

metrics.json (schema version 4):

    {"schema": 4, "samples": N, "split": str, "data": str, "settings": {...},
     "sample_sets": {SET: {"samples": n, "clusters": n, "data": str}, ..., "clean": {...}},
     "operating_point": {"min_score": X, "max_findings": K,
                         "critic": {SET: OP, ..., "clean": CLEAN},
                         "sft": {"humaneval": OP, "clean": CLEAN}},      # with --sft-model
     "baselines": {BASELINE: {SET: BASE, ..., "clean": CLEAN_BASE}, ...},
     "min_score_sweep": [{"min_score": X, SET: SWEPT, ..., "clean": {"false_alarm_rate": CI}}, ...],
     "reliability": {"findings": n, "on_bug_rate": x, "ece": x, "min_score": X,
                     "bins": [{"low", "high", "count", "mean_confidence", "on_bug_rate"}, ...]},
                                 # every raw finding of the critic on `humaneval`, before the filter
     # configs, pareto and per_bug_kind: the ladder's, absent with --no-ladder
     "configs": {NAME: METRICS, ...},  # "critic@lm=X", "critic@single", "random_line", "sft@lm=X",
                                       # "sft@single" (X: LENGTH_MODIFIER; single: one plain sample)
     "pareto": [DIAL, ...],            # the critic's, one per X
     "sft_pareto": [DIAL, ...],        # with --sft-model
     "critic_vs_sft": {                # with --sft-model: the critic (RL) minus the SFT critic, paired
         "top_on_bug_difference": CI,  # review at min-score 0, on `humaneval`
         "cbi_difference": [{"length_modifier": X, "fake_problem_rate": x, "sft_cbi_at_matched": x,
                             "matched": CI, "same_length_modifier": CI}, ...]},  # the ladder's
     "per_bug_kind": {KIND: {"samples": n, "cbi_rate": ...}, ...},   # the critic at the default LM
     "clean": {"files": n, "silent_rate": ..., "findings": n, "min_score": X}}   # = operating point

    SET = "humaneval" | "humaneval_line_uniform" | "stdlib"   (a set that was not built is absent)
    BASELINE = "random_line" | "random_code_line" | "longest_line" | "longest_body_line"
    CI = {"value": x, "low": x, "high": x}   # null where undefined (no reported lines, no findings,
                                             # no clean file for an AUC)
    OP = {"samples", "clusters", "findings", "mean_findings", "top_on_bug": CI, "any_on_bug": CI,
          "line_precision": CI, "silent_rate": CI, "backticks_verbatim": CI, "with_backticks": CI,
          "fixes_parse": CI,                                        # at the operating point
          "per_bug_kind": {KIND: {"samples": n, "top_on_bug": x}},
          "localization": {"top_on_bug": CI, "fair_baseline": CI,  # min-score 0; fair_baseline:
                           "difference": CI},                      # longest_body_line; difference:
                                                                   # top_on_bug - fair_baseline, paired
          "detection_auc": CI,                                     # raw findings, against "clean"
          "fixes": {"fix_restores": CI, "fixes_parse": CI}}        # min-score 0
    CLEAN = {"files", "clusters", "findings", "mean_findings", "false_alarm_rate": CI,
             "backticks_verbatim": CI, "with_backticks": CI}
    BASE = {"samples", "top_on_bug": CI, "any_on_bug": CI, "line_precision": CI, "silent_rate": CI}
    CLEAN_BASE = {"files", "false_alarm_rate": CI}
    SWEPT = {"mean_findings", "top_on_bug": CI, "any_on_bug": CI, "line_precision": CI, "silent_rate": CI}
    METRICS = {"samples", "cbi_rate", "fake_problem_rate", "hallucinated_quote_rate", "nitpick_rate",
               "mean_highlights", "line_precision", "line_recall",
               "intervals": {"cbi_rate": CI, "fake_problem_rate": CI}}
    DIAL = {"length_modifier": X, "cbi_rate": x, "fake_problem_rate": x,
            "intervals": {"cbi_rate": CI, "fake_problem_rate": CI}}

A critique includes the bug (CBI) when the rater scores it 5 or more: a highlight overlaps the bug
lines (the rater counts a quote found on the bug lines anywhere in the code). The ladder's line
precision and recall are micro-averaged over samples and use the parser's line mapping (a quote's
first occurrence): quoted lines that are bug lines over all quoted lines, and bug lines quoted over
all bug lines.

RL against SFT, as CriticGPT compares them: the ladder's CBI of the critic minus the SFT critic's,
at the same fake-problem rate (the SFT critic's CBI read off its length-modifier dial,
`cbi_difference`), and the review's top finding on the bug at min-score 0; both are paired and
resample the same clusters.
"""

from __future__ import annotations

import ast
import io
import json
import random
import tokenize
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

from critic.core.critique import code_lines, code_spans, format_critique, parse_critique
from critic.datagen.rating import Rating, rate_critique
from critic.inference.fsbs import Critic
from critic.inference.sampling import generate
from critic.review.fixes import apply_fixes
from critic.review.reviewer import CHUNKS_PER_BATCH, Finding, SourceFile, filter_findings, raw_findings
from critic.review.settings import ReviewSettings

SCHEMA_VERSION = 4
TAMPERED_SETS = ("humaneval", "humaneval_line_uniform", "stdlib")
CLEAN_SET = "clean"
SWEEP_MIN_SCORES = (0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9)
RELIABILITY_BINS = 10
BOOTSTRAP_RESAMPLES = 1000
BASELINES = ("random_line", "random_code_line", "longest_line", "longest_body_line")
# A finding kept whatever the cap: the relaxed review keeps every finding (min-score 0, no cap).
_NO_CAP = 10**9

Progress = Callable[[str, int, int], None]


# -- the ladder: rubric-rated critiques ------------------------------------------------------------


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


def judge(critiques: Sequence[str], samples: Sequence[dict]) -> tuple[Metrics, list[Rating]]:
    """Rubric metrics of one critique per sample, and each critique's rating."""
    ratings, fake, hallucinated, nitpick, highlights = [], 0, 0, 0, 0
    quoted = quoted_bug = bug_total = bug_found = 0
    for critique, sample in zip(critiques, samples, strict=True):
        rating = rate_critique(critique, sample["code"], sample["bug_lines"], sample["description"])
        ratings.append(rating)
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
        cbi_rate=sum(r.caught for r in ratings) / n,
        fake_problem_rate=fake / n,
        hallucinated_quote_rate=hallucinated / n,
        nitpick_rate=nitpick / n,
        mean_highlights=highlights / n,
        line_precision=quoted_bug / quoted if quoted else 0.0,
        line_recall=bug_found / bug_total if bug_total else 0.0,
    )
    return metrics, ratings


def random_line_critiques(samples: Sequence[dict], seed: int) -> list[str]:
    """The baseline: quote one non-blank line, chosen at random, and call it wrong."""
    rng = random.Random(seed)
    critiques = []
    for sample in samples:
        lines = [line for line in code_lines(sample["code"]) if line.strip()]
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


def fsbs_results(
    critic: Critic,
    samples: Sequence[dict],
    settings: ReviewSettings,
    known: list | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> list:
    """Every sample's FSBS result: `known`'s (e.g. the review operating point's), searched where None."""
    known = known if known is not None else [None] * len(samples)
    todo = [i for i, r in enumerate(known) if r is None]
    found = search_all(critic, [samples[i] for i in todo], settings, progress) if todo else []
    results = list(known)
    for i, result in zip(todo, found, strict=True):
        results[i] = result
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


def ladder(
    critic: Critic,
    samples: Sequence[dict],
    settings: ReviewSettings,
    length_modifiers: Sequence[float],
    sft_critic: Critic | None = None,
    progress: Progress | None = None,
    searched: tuple[list | None, list | None] = (None, None),
    resamples: int = BOOTSTRAP_RESAMPLES,
) -> dict:
    """The CriticGPT configurations: "configs", "pareto" and "per_bug_kind" of metrics.json, and with
    an SFT critic "sft_pareto" and "critic_vs_sft"'s "cbi_difference".

    searched: FSBS results of the samples that the review operating point already has, for the
    critic and the SFT critic (None for a sample it has not); the rest are searched here. Both searches
    give the same candidates (same settings, and a prompt's random stream does not depend on its batch)."""

    def search(name: str, who: Critic, known: list | None) -> list:
        tick = None if progress is None else _stage(progress, name)
        return fsbs_results(who, samples, settings, known, tick)

    clusters = [cluster_of(s) for s in samples]
    length_modifiers = sorted(set(length_modifiers) | {settings.length_modifier})
    seed = settings.seed

    def rated(critiques: list[str]) -> tuple[dict, list[Rating]]:
        """A config's METRICS, with intervals for the two rates the dial trades."""
        metrics, ratings = judge(critiques, samples)
        ones = [1] * len(samples)
        intervals = {
            "cbi_rate": bootstrap_ratio([r.caught for r in ratings], ones, clusters, resamples, seed),
            "fake_problem_rate": bootstrap_ratio(
                [r.fake_problem for r in ratings], ones, clusters, resamples, seed
            ),
        }
        return asdict(metrics) | {"intervals": intervals}, ratings

    def dial(name: str, results: list) -> tuple[list[dict], dict[float, list[Rating]]]:
        """One config per length modifier (FSBS's pick from the same candidates), and its pareto."""
        pareto, ratings = [], {}
        for lm in length_modifiers:
            configs[f"{name}@lm={lm:g}"], ratings[lm] = rated(pick(results, lm))
            metrics = configs[f"{name}@lm={lm:g}"]
            pareto.append(
                {"length_modifier": lm} | {k: metrics[k] for k in _DIAL} | {"intervals": metrics["intervals"]}
            )
        return pareto, ratings

    configs: dict[str, dict] = {}
    pareto, ratings = dial("critic", search("FSBS (ladder)", critic, searched[0]))
    configs["critic@single"] = rated(single_samples(critic, samples, settings))[0]
    configs["random_line"] = rated(random_line_critiques(samples, settings.seed))[0]
    report: dict = {"configs": configs, "pareto": pareto}
    if sft_critic is not None:
        report["sft_pareto"], sft_ratings = dial("sft", search("SFT FSBS (ladder)", sft_critic, searched[1]))
        configs["sft@single"] = rated(single_samples(sft_critic, samples, settings))[0]
        report["critic_vs_sft"] = {
            "cbi_difference": cbi_difference(ratings, sft_ratings, clusters, resamples, seed)
        }
    kinds: dict[str, list[bool]] = defaultdict(list)
    for sample, rating in zip(samples, ratings[settings.length_modifier], strict=True):
        kinds[sample["bug_kind"]].append(rating.caught)
    report["per_bug_kind"] = {
        k: {"samples": len(v), "cbi_rate": sum(v) / len(v)} for k, v in sorted(kinds.items())
    }
    return report


# The two rates a ladder config's length modifier trades against each other.
_DIAL = ("cbi_rate", "fake_problem_rate")


def cbi_difference(
    ours: dict[float, list[Rating]],
    theirs: dict[float, list[Rating]],
    clusters: Sequence[str],
    resamples: int,
    seed: int,
    level: float = 0.95,
) -> list[dict]:
    """Our CBI minus theirs, per length modifier of ours: at the same length modifier (paired), and at
    our fake-problem rate ("matched"): their CBI read off their dial, linear between their points in
    order of fake-problem rate (the best CBI of points that tie) and flat beyond its ends (which favours
    them: a lower fake-problem rate than any of theirs is credited their lowest point's CBI). The
    matched interval recomputes both dials on each cluster resample (the same draws as every interval
    here)."""
    import numpy as np

    at, count = _cluster_index(clusters)
    draws = _cluster_draws(count, resamples, seed)
    sizes = np.bincount(at, minlength=count).astype(float)

    def rate(flags: list[bool]) -> tuple[float, np.ndarray]:
        per_cluster = np.bincount(at, weights=np.asarray(flags, dtype=float), minlength=count)
        return float(per_cluster.sum() / sizes.sum()), (draws @ per_cluster) / (draws @ sizes)

    def curve(ratings: dict[float, list[Rating]]) -> dict[float, tuple]:
        return {
            lm: (rate([r.caught for r in rs]), rate([r.fake_problem for r in rs]))
            for lm, rs in ratings.items()
        }

    mine, other = curve(ours), curve(theirs)
    other_cbi = np.array([[c[0], *c[1]] for c, _ in other.values()])  # (points, 1 + resamples)
    other_fake = np.array([[f[0], *f[1]] for _, f in other.values()])
    out = []
    for lm, ((cbi, cbi_draws), (fake, fake_draws)) in mine.items():
        ours_cbi = np.array([cbi, *cbi_draws])
        ours_fake = np.array([fake, *fake_draws])
        matched = np.array([_dial_at(x, other_fake[:, j], other_cbi[:, j]) for j, x in enumerate(ours_fake)])
        gap = ours_cbi - matched
        paired = [int(a.caught) - int(b.caught) for a, b in zip(ours[lm], theirs[lm], strict=True)]
        out.append(
            {
                "length_modifier": lm,
                "fake_problem_rate": fake,
                "sft_cbi_at_matched": float(matched[0]),
                "matched": _percentiles(float(gap[0]), gap[1:][np.isfinite(gap[1:])], level),
                "same_length_modifier": (
                    bootstrap_ratio(paired, [1] * len(paired), clusters, resamples, seed, level)
                    if lm in theirs
                    else None
                ),
            }
        )
    return out


def _dial_at(x: float, fakes, cbis) -> float:
    """The CBI of the dial through (fake-problem rate, CBI) points at fake-problem rate `x`."""
    import numpy as np

    best: dict[float, float] = {}
    for f, c in zip(fakes, cbis, strict=True):
        best[float(f)] = max(best.get(float(f), -np.inf), float(c))
    xs = sorted(best)
    return float(np.interp(x, xs, [best[f] for f in xs]))


def _stage(progress: Progress, name: str) -> Callable[[int, int], None]:
    return lambda done, total: progress(name, done, total)


# -- line helpers: code tokens, baselines, backticked spans -----------------------------------------

# Token types that are not code: strings (an f-string's parts too, below), comments and layout.
_NOT_CODE = {
    tokenize.STRING,
    tokenize.COMMENT,
    tokenize.NL,
    tokenize.NEWLINE,
    tokenize.INDENT,
    tokenize.DEDENT,
    tokenize.ENDMARKER,
}
# Python 3.12+ splits f-strings (3.14: t-strings) into parts; everything from START to END is a string.
_STRING_START = {getattr(tokenize, n) for n in ("FSTRING_START", "TSTRING_START") if hasattr(tokenize, n)}
_STRING_END = {getattr(tokenize, n) for n in ("FSTRING_END", "TSTRING_END") if hasattr(tokenize, n)}


def code_tokens_per_line(code: str) -> list[int]:
    """Code tokens starting on each line (index 0: line 1), by Python's `tokenize`; strings (whole
    f-strings included), comments, newlines, indentation and the end marker do not count. Code that
    does not tokenize counts whitespace-separated words of each line that is not a `#` comment."""
    lines = code_lines(code)
    counts = [0] * len(lines)
    depth = 0  # inside an f-string (3.12+), replacement fields included
    try:
        for tok in tokenize.generate_tokens(io.StringIO(code).readline):
            if tok.type in _STRING_START:
                depth += 1
            elif tok.type in _STRING_END:
                depth -= 1
            elif depth == 0 and tok.type not in _NOT_CODE and 1 <= tok.start[0] <= len(lines):
                counts[tok.start[0] - 1] += 1
    except (tokenize.TokenError, SyntaxError, ValueError):
        return [0 if line.lstrip().startswith("#") else len(line.split()) for line in lines]
    return counts


def non_body_lines(code: str) -> set[int]:
    """Lines of `def`/`class` headers (decorators up to the colon ending the header), docstrings (of
    the module, classes and functions, nested ones too) and import statements: long lines that a
    tampering does not make buggy, so the fair baseline does not get to flag them. Empty for code that
    does not parse."""
    try:
        tree = ast.parse(code)
        tokens = list(tokenize.generate_tokens(io.StringIO(code).readline))
    except (SyntaxError, ValueError, RecursionError, tokenize.TokenError):
        return set()
    lines: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import | ast.ImportFrom):
            lines.update(range(node.lineno, (node.end_lineno or node.lineno) + 1))
            continue
        if not isinstance(node, ast.Module | ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            continue
        if ast.get_docstring(node, clean=False) is not None:
            doc = node.body[0]
            lines.update(range(doc.lineno, (doc.end_lineno or doc.lineno) + 1))
        if not isinstance(node, ast.Module):
            first = min([node.lineno, *(d.lineno for d in node.decorator_list)])
            lines.update(range(first, _header_end(tokens, node) + 1))
    return lines


def _header_end(tokens: Sequence[tokenize.TokenInfo], node: ast.stmt) -> int:
    """The line of the colon that ends a def's or class's header: the first outside brackets after its
    keyword (annotations, defaults, lambdas and bases are all inside brackets)."""
    depth = 0
    for tok in tokens:
        if tok.start < (node.lineno, node.col_offset) or tok.type != tokenize.OP:
            continue
        if tok.string in {"(", "[", "{"}:
            depth += 1
        elif tok.string in {")", "]", "}"}:
            depth -= 1
        elif tok.string == ":" and depth == 0:
            return tok.start[0]
    return node.lineno


def baseline_line(code: str, kind: str, rng: random.Random) -> int | None:
    """The one line a baseline flags (1-based), or None when the code has no line it could flag.

    random_line: a non-blank line; random_code_line: a line with a code token; longest_line: the line
    with the most code tokens, the first of equals; longest_body_line: the same outside
    `non_body_lines` (the plain longest line where those are all the code there is)."""
    if kind == "random_line":
        candidates = [n for n, line in enumerate(code_lines(code), start=1) if line.strip()]
        return rng.choice(candidates) if candidates else None
    counts = code_tokens_per_line(code)
    if kind == "random_code_line":
        candidates = [n for n, c in enumerate(counts, start=1) if c]
        return rng.choice(candidates) if candidates else None
    if kind == "longest_body_line":
        skip = non_body_lines(code)
        body = [0 if n in skip else c for n, c in enumerate(counts, start=1)]
        counts = body if any(body) else counts
    if kind in ("longest_line", "longest_body_line"):
        most = max(counts, default=0)
        return counts.index(most) + 1 if most else None
    raise ValueError(f"unknown baseline {kind!r}")


# Inline code: a run of one or two backticks, the shortest text up to the same run (markdown's rule).
def spans_verbatim(comment: str, code: str) -> bool:
    """Whether every backticked span of the comment appears verbatim in the code (true with none)."""
    return all(span in code for span in code_spans(comment))


# -- bootstrap ------------------------------------------------------------------------------------


def bootstrap_ratio(
    numerators: Sequence[float],
    denominators: Sequence[float],
    clusters: Sequence[str],
    resamples: int = BOOTSTRAP_RESAMPLES,
    seed: int = 0,
    level: float = 0.95,
) -> dict:
    """sum(numerators) / sum(denominators), with a percentile bootstrap interval that resamples whole
    clusters with replacement (`resamples` times, seeded). A rate is the case of denominators 1; a
    paired difference of two rates on the same samples is the rate of per-sample differences.
    Values are None where the denominator is 0; resamples with a zero denominator are left out."""
    import numpy as np

    at, count = _cluster_index(clusters)
    num = np.bincount(at, weights=np.asarray(numerators, dtype=float), minlength=count)
    den = np.bincount(at, weights=np.asarray(denominators, dtype=float), minlength=count)
    total = den.sum()
    value = float(num.sum() / total) if total else None
    if not count or resamples < 1:
        return {"value": value, "low": value, "high": value}
    weights = _cluster_draws(count, resamples, seed)
    nums, dens = weights @ num, weights @ den
    return _percentiles(value, nums[dens > 0] / dens[dens > 0], level)


def bootstrap_auc(
    scores: Sequence[float],
    positive: Sequence[bool],
    clusters: Sequence[str],
    resamples: int = BOOTSTRAP_RESAMPLES,
    seed: int = 0,
    level: float = 0.95,
) -> dict:
    """ROC AUC of `scores` telling positives from negatives (Mann-Whitney: the share of positive-
    negative pairs the positive scores higher, ties counting one half), with a percentile bootstrap
    interval that resamples whole clusters, each bringing its positives and negatives along. Values
    are None without a positive or a negative; resamples lacking one are left out."""
    import numpy as np

    at, count = _cluster_index(clusters)
    levels, rank = np.unique(np.asarray(scores, dtype=float), return_inverse=True)
    rank = rank.ravel()
    is_positive = np.asarray(positive, dtype=bool)
    pos = np.zeros((count, len(levels)))  # samples per cluster and distinct score
    neg = np.zeros((count, len(levels)))
    np.add.at(pos, (at[is_positive], rank[is_positive]), 1)
    np.add.at(neg, (at[~is_positive], rank[~is_positive]), 1)

    def auc(p, n):  # counts per score (ascending) -> pairs the positive wins (ties half), all pairs
        below = np.cumsum(n, axis=-1) - n
        return (p * (below + n / 2)).sum(axis=-1), p.sum(axis=-1) * n.sum(axis=-1)

    wins, pairs = auc(pos.sum(axis=0), neg.sum(axis=0))
    value = float(wins / pairs) if pairs else None
    if not count or resamples < 1:
        return {"value": value, "low": value, "high": value}
    weights = _cluster_draws(count, resamples, seed)
    wins, pairs = auc(weights @ pos, weights @ neg)
    return _percentiles(value, wins[pairs > 0] / pairs[pairs > 0], level)


def _cluster_index(clusters: Sequence[str]):
    """Each sample's cluster as an index (in order of first appearance), and how many clusters."""
    import numpy as np

    index: dict[str, int] = {}
    at = np.array([index.setdefault(c, len(index)) for c in clusters], dtype=int)
    return at, len(index)


def _cluster_draws(count: int, resamples: int, seed: int):
    """How often each of `resamples` draws (seeded, with replacement, `count` clusters each) takes
    each cluster: one seed and one cluster list give the same draws to every bootstrap here."""
    import numpy as np

    picks = np.random.default_rng(seed).integers(0, count, size=(resamples, count))
    flat = (np.arange(resamples)[:, None] * count + picks).ravel()
    return np.bincount(flat, minlength=resamples * count).reshape(resamples, count).astype(float)


def _percentiles(value: float | None, resampled, level: float) -> dict:
    if not len(resampled):
        return {"value": value, "low": None, "high": None}
    import numpy as np

    tail = 100 * (1 - level) / 2
    low, high = np.percentile(resampled, [tail, 100 - tail])
    return {"value": value, "low": float(low), "high": float(high)}


# -- the review operating point -------------------------------------------------------------------


def cluster_of(sample: dict) -> str:
    """The bootstrap's unit: the sample's group (task or file) where known, else its task."""
    return sample.get("group") or sample["task_id"]


def on_bug(finding: Finding, bug_lines: Sequence[int]) -> bool:
    return any(finding.line <= n <= finding.end_line for n in bug_lines)


def reported(raw: list[Finding], code: str, settings: ReviewSettings, min_score: float | None = None):
    """What `critic review` reports of these raw findings (at `min_score` instead, if given)."""
    if min_score is not None:
        settings = settings.updated(min_score=min_score)
    return filter_findings(raw, SourceFile("<eval>", code), settings)


def review_raw(
    critic: Critic, codes: Sequence[str], settings: ReviewSettings, progress=None, searches=None
) -> list[list[Finding]]:
    """Every raw finding `critic review` would weigh for each code, as if each were a file (and, into
    `searches`, each code's FSBS results, one per chunk)."""
    sources = [SourceFile(f"sample_{i}.py", code) for i, code in enumerate(codes)]
    return raw_findings(critic, sources, settings, progress=progress, searches=searches)


def tampered_metrics(
    samples: Sequence[dict],
    found: Sequence[list[Finding]],
    resamples: int,
    seed: int,
    full: bool = True,
) -> dict:
    """OP of metrics.json: reported findings (found[i] for samples[i]) against the inserted bugs;
    without `full`, no backtick, fix or per-kind metrics (and none of the operating point's relaxed
    ones: `relaxed_metrics`)."""
    clusters = [cluster_of(s) for s in samples]
    top = top_on_bug(samples, found)
    hit, silent, lines, lines_bug = [], [], [], []
    for sample, findings in zip(samples, found, strict=True):
        bugs = sample["bug_lines"]
        hit.append(any(on_bug(f, bugs) for f in findings))
        silent.append(not findings)
        flagged = {n for f in findings for n in range(f.line, f.end_line + 1)}
        lines.append(len(flagged))
        lines_bug.append(len(flagged & set(bugs)))
    ones = [1] * len(samples)

    def ci(num, den=ones):
        return bootstrap_ratio(num, den, clusters, resamples, seed)

    out = {
        "samples": len(samples),
        "clusters": len(set(clusters)),
        "findings": sum(len(f) for f in found),
        "mean_findings": sum(len(f) for f in found) / max(1, len(samples)),
        "top_on_bug": ci(top),
        "any_on_bug": ci(hit),
        "line_precision": ci(lines_bug, lines),
        "silent_rate": ci(silent),
    }
    if full:
        out |= _backtick_metrics(samples, found, clusters, resamples, seed)
        out["fixes_parse"] = fixes_parse(samples, found, resamples, seed)
        kinds: dict[str, list[bool]] = defaultdict(list)
        for sample, is_top in zip(samples, top, strict=True):
            kinds[sample.get("bug_kind", "")].append(is_top)
        out["per_bug_kind"] = {
            k: {"samples": len(v), "top_on_bug": sum(v) / len(v)} for k, v in sorted(kinds.items())
        }
    return out


def clean_metrics(
    originals: Sequence[dict], found: Sequence[list[Finding]], resamples: int, seed: int
) -> dict:
    """CLEAN of metrics.json: findings on untampered code are all false alarms."""
    clusters = [cluster_of(s) for s in originals]
    return {
        "files": len(originals),
        "clusters": len(set(clusters)),
        "findings": sum(len(f) for f in found),
        "mean_findings": sum(len(f) for f in found) / max(1, len(originals)),
        "false_alarm_rate": bootstrap_ratio(
            [bool(f) for f in found], [1] * len(found), clusters, resamples, seed
        ),
        **_backtick_metrics(originals, found, clusters, resamples, seed),
    }


def top_finding(findings: Sequence[Finding]) -> Finding | None:
    """The most confident finding (the first of equals), None without one."""
    return max(findings, key=lambda f: f.score) if findings else None


def top_on_bug(samples: Sequence[dict], found: Sequence[Sequence[Finding]]) -> list[bool]:
    """Whether each sample's most confident finding is on its bug."""
    out = []
    for sample, findings in zip(samples, found, strict=True):
        best = top_finding(findings)
        out.append(best is not None and on_bug(best, sample["bug_lines"]))
    return out


def localization(
    samples: Sequence[dict], found: Sequence[Sequence[Finding]], resamples: int, seed: int
) -> dict:
    """The critic's top finding on the bug against the fair baseline's line (longest_body_line) on the
    same samples, and the difference: a paired interval, since one seed and one cluster list draw the
    same clusters for all three, and the difference is the rate of per-sample differences."""
    clusters = [cluster_of(s) for s in samples]
    ours = top_on_bug(samples, found)
    theirs = top_on_bug(samples, baseline_findings(samples, "longest_body_line", random.Random(seed)))
    ones = [1] * len(samples)
    return {
        "top_on_bug": bootstrap_ratio(ours, ones, clusters, resamples, seed),
        "fair_baseline": bootstrap_ratio(theirs, ones, clusters, resamples, seed),
        "difference": bootstrap_ratio(
            [int(a) - int(b) for a, b in zip(ours, theirs, strict=True)], ones, clusters, resamples, seed
        ),
    }


def top_on_bug_difference(
    samples: Sequence[dict],
    raw: Sequence[list[Finding]],
    other_raw: Sequence[list[Finding]],
    settings: ReviewSettings,
    resamples: int,
) -> dict:
    """Our top finding on the bug minus another critic's at min-score 0 (where review points when
    asked for its best guess), paired over the same samples."""
    ours, theirs = (
        top_on_bug(samples, [reported(r, s["code"], settings, 0.0) for r, s in zip(rs, samples, strict=True)])
        for rs in (raw, other_raw)
    )
    differences = [int(a) - int(b) for a, b in zip(ours, theirs, strict=True)]
    clusters = [cluster_of(s) for s in samples]
    return bootstrap_ratio(differences, [1] * len(samples), clusters, resamples, settings.seed)


def detection_auc(
    samples: Sequence[dict],
    raw: Sequence[Sequence[Finding]],
    clean: Sequence[dict],
    clean_raw: Sequence[Sequence[Finding]],
    resamples: int,
    seed: int,
) -> dict:
    """How well a file's highest raw confidence (0 without a finding) tells tampered samples from clean
    originals: ROC AUC, clusters resampled across both (a task's original shares its cluster)."""
    scores = [max((f.score for f in fs), default=0.0) for fs in (*raw, *clean_raw)]
    positive = [True] * len(raw) + [False] * len(clean_raw)
    clusters = [cluster_of(s) for s in (*samples, *clean)]
    return bootstrap_auc(scores, positive, clusters, resamples, seed)


def fixed_code(code: str, finding: Finding) -> str | None:
    """The code with this finding's fix alone applied; None without a fix or where it does not fit."""
    if finding.fix is None:
        return None
    try:
        return apply_fixes(code, [finding.fix])[0]
    except ValueError:
        return None


def _parses(code: str | None) -> bool:
    if code is None:
        return False
    try:
        ast.parse(code)
    except (SyntaxError, ValueError, RecursionError):
        return False
    return True


def _same_code(a: str | None, b: str) -> bool:
    """Equal up to one trailing newline (a fix may leave or take the file's last line ending)."""
    return a is not None and (a == b or a + "\n" == b or a == b + "\n")


def fix_restores(
    samples: Sequence[dict], found: Sequence[Sequence[Finding]], resamples: int, seed: int
) -> dict:
    """Share of samples whose top finding's fix, applied alone, gives back exactly the original."""
    restored = []
    for sample, findings in zip(samples, found, strict=True):
        best = top_finding(findings)
        restored.append(best is not None and _same_code(fixed_code(sample["code"], best), sample["original"]))
    clusters = [cluster_of(s) for s in samples]
    return bootstrap_ratio(restored, [1] * len(samples), clusters, resamples, seed)


def fixes_parse(
    samples: Sequence[dict], found: Sequence[Sequence[Finding]], resamples: int, seed: int
) -> dict:
    """Share of findings whose fix, applied alone, leaves code that parses (no fix: does not)."""
    parsing = [
        sum(_parses(fixed_code(s["code"], f)) for f in fs) for s, fs in zip(samples, found, strict=True)
    ]
    clusters = [cluster_of(s) for s in samples]
    return bootstrap_ratio(parsing, [len(fs) for fs in found], clusters, resamples, seed)


def relaxed_metrics(
    samples: Sequence[dict],
    raw: Sequence[list[Finding]],
    clean: Sequence[dict],
    clean_raw: Sequence[list[Finding]],
    settings: ReviewSettings,
    resamples: int,
) -> dict:
    """The OP keys that ignore the operating point's cut: localization and fixes of every finding
    at min-score 0 (what the critic ranks first, not what clears the threshold), and detection AUC of
    the raw findings (a threshold-free ranking of files)."""
    seed = settings.seed
    found = [reported(r, s["code"], settings, 0.0) for r, s in zip(raw, samples, strict=True)]
    return {
        "localization": localization(samples, found, resamples, seed),
        "detection_auc": detection_auc(samples, raw, clean, clean_raw, resamples, seed),
        "fixes": {
            "fix_restores": fix_restores(samples, found, resamples, seed),
            "fixes_parse": fixes_parse(samples, found, resamples, seed),
        },
    }


def _backtick_metrics(samples, found, clusters, resamples: int, seed: int) -> dict:
    passing = [
        sum(spans_verbatim(f.comment, s["code"]) for f in fs) for s, fs in zip(samples, found, strict=True)
    ]
    spanned = [sum(bool(code_spans(f.comment)) for f in fs) for fs in found]
    counts = [len(fs) for fs in found]
    return {
        "backticks_verbatim": bootstrap_ratio(passing, counts, clusters, resamples, seed),
        "with_backticks": bootstrap_ratio(spanned, counts, clusters, resamples, seed),
    }


def baseline_metrics(
    sets: dict[str, Sequence[dict]], resamples: int, seed: int
) -> dict[str, dict[str, dict]]:
    """BASE / CLEAN_BASE of every baseline on every set (each flags one line of each sample)."""
    out: dict[str, dict[str, dict]] = {}
    for kind in BASELINES:
        out[kind] = {}
        for name, samples in sets.items():
            found = baseline_findings(samples, kind, random.Random(f"{seed}:{kind}:{name}"))
            if name == CLEAN_SET:
                clusters = [cluster_of(s) for s in samples]
                rate = bootstrap_ratio([bool(f) for f in found], [1] * len(found), clusters, resamples, seed)
                out[kind][name] = {"files": len(samples), "false_alarm_rate": rate}
            else:
                metrics = tampered_metrics(samples, found, resamples, seed, full=False)
                out[kind][name] = {k: metrics[k] for k in ("samples", *_SWEPT)}
    return out


_SWEPT = ("top_on_bug", "any_on_bug", "line_precision", "silent_rate")


def baseline_findings(samples: Sequence[dict], kind: str, rng: random.Random) -> list[list[Finding]]:
    """The baseline's one finding per sample (none where it has no line to flag)."""
    found = []
    for sample in samples:
        line = baseline_line(sample["code"], kind, rng)
        found.append([] if line is None else [_line_finding(line)])
    return found


def _line_finding(line: int) -> Finding:
    return Finding("<baseline>", line, 1, line, 1, "CRT000", "This line is wrong.", "", "", 1.0)


def reliability(samples: Sequence[dict], raw: Sequence[list[Finding]], bins: int = RELIABILITY_BINS) -> dict:
    """Observed share of raw findings on the bug per equal-width confidence bin, and the expected
    calibration error (bins weighted by their share of findings)."""
    scores, hits = [], []
    for sample, findings in zip(samples, raw, strict=True):
        for f in findings:
            scores.append(min(max(f.score, 0.0), 1.0))
            hits.append(on_bug(f, sample["bug_lines"]))
    rows, ece = [], 0.0
    for b in range(bins):
        inside = [i for i, s in enumerate(scores) if min(int(s * bins), bins - 1) == b]
        row = {"low": b / bins, "high": (b + 1) / bins, "count": len(inside)}
        if inside:
            mean = sum(scores[i] for i in inside) / len(inside)
            rate = sum(hits[i] for i in inside) / len(inside)
            row |= {"mean_confidence": mean, "on_bug_rate": rate}
            ece += len(inside) / len(scores) * abs(rate - mean)
        else:
            row |= {"mean_confidence": None, "on_bug_rate": None}
        rows.append(row)
    return {
        "findings": len(scores),
        "on_bug_rate": sum(hits) / len(hits) if hits else None,
        "ece": ece if scores else None,
        "bins": rows,
    }


def operating_point(
    critic: Critic,
    sets: dict[str, Sequence[dict]],
    settings: ReviewSettings,
    resamples: int,
    progress: Progress | None = None,
    name: str = "review",
) -> tuple[dict[str, dict], dict[str, list[list[Finding]]], dict[str, list]]:
    """OP / CLEAN of every set at the settings' operating point (with `relaxed_metrics`: the clean
    set's originals are every tampered set's negatives), every set's raw findings, and its
    samples' FSBS results (None for a sample reviewed in other than one chunk). All sets are reviewed
    in one run (a chunk's random stream does not depend on its batch)."""
    order = list(sets)
    codes = [s["code"] for key in order for s in sets[key]]
    searches: list = []
    flat = review_raw(critic, codes, settings, None if progress is None else _stage(progress, name), searches)
    raw: dict[str, list[list[Finding]]] = {}
    results: dict[str, list] = {}
    at = 0
    for key in order:
        raw[key] = flat[at : at + len(sets[key])]
        results[key] = [s[0] if len(s) == 1 else None for s in searches[at : at + len(sets[key])]]
        at += len(sets[key])
    op = {key: _metrics_at(key, sets[key], raw[key], settings, None, resamples) for key in order}
    clean, clean_raw = sets.get(CLEAN_SET, []), raw.get(CLEAN_SET, [])
    for key in order:
        if key != CLEAN_SET:
            op[key] |= relaxed_metrics(sets[key], raw[key], clean, clean_raw, settings, resamples)
    return op, raw, results


def _metrics_at(key, samples, raw, settings, min_score, resamples: int, full: bool = True) -> dict:
    found = [reported(r, s["code"], settings, min_score) for r, s in zip(raw, samples, strict=True)]
    if key == CLEAN_SET:
        metrics = clean_metrics(samples, found, resamples, settings.seed)
        return metrics if full else {"false_alarm_rate": metrics["false_alarm_rate"]}
    metrics = tampered_metrics(samples, found, resamples, settings.seed, full=full)
    return metrics if full else {"mean_findings": metrics["mean_findings"], **{k: metrics[k] for k in _SWEPT}}


def min_score_sweep(
    sets: dict[str, Sequence[dict]],
    raw: dict[str, list[list[Finding]]],
    settings: ReviewSettings,
    resamples: int,
    min_scores: Sequence[float] = SWEEP_MIN_SCORES,
) -> list[dict]:
    """The operating point's headline metrics at other min-scores (max-findings as set)."""
    return [
        {
            "min_score": ms,
            **{
                key: _metrics_at(key, sets[key], raw[key], settings, ms, resamples, full=False)
                for key in sets
            },
        }
        for ms in sorted(set(min_scores) | {settings.min_score})
    ]


def clean_originals(samples: Sequence[dict]) -> list[dict]:
    """The untampered original of each task (its first sample's), as a sample with no bug."""
    seen: dict[str, dict] = {}
    for s in samples:
        seen.setdefault(
            s["task_id"],
            {"task_id": s["task_id"], "group": cluster_of(s), "code": s["original"], "bug_lines": []},
        )
    return list(seen.values())


def evaluate(
    critic: Critic,
    sets: dict[str, Sequence[dict]],
    settings: ReviewSettings,
    length_modifiers: Sequence[float],
    sft_critic: Critic | None = None,
    resamples: int = BOOTSTRAP_RESAMPLES,
    progress: Progress | None = None,
    with_ladder: bool = True,
) -> dict:
    """Everything metrics.json holds except where the data came from. `sets` maps set names
    (TAMPERED_SETS) to samples; "humaneval" is required, its originals make the clean set, and the
    ladder runs on it (unless `with_ladder` is false: its FSBS searches cost most of an evaluation, and
    the review operating point does not need them)."""
    if not sets.get("humaneval"):
        raise ValueError("evaluate needs samples in the 'humaneval' set")
    sets = {key: sets[key] for key in TAMPERED_SETS if sets.get(key)}
    sets[CLEAN_SET] = clean_originals(sets["humaneval"])
    op, raw, searched = operating_point(critic, sets, settings, resamples, progress)
    report: dict = {
        "sample_sets": {
            key: {"samples": len(samples), "clusters": len({cluster_of(s) for s in samples})}
            for key, samples in sets.items()
        },
        "operating_point": {
            "min_score": settings.min_score,
            "max_findings": settings.max_findings,
            "critic": op,
        },
        "baselines": baseline_metrics(sets, resamples, settings.seed),
        "min_score_sweep": min_score_sweep(sets, raw, settings, resamples),
        "reliability": {
            **reliability(sets["humaneval"], raw["humaneval"]),
            "min_score": settings.min_score,
        },
    }
    sft_searched = None
    if sft_critic is not None:
        sft_sets = {key: sets[key] for key in ("humaneval", CLEAN_SET)}
        sft_op, sft_raw, sft_searched = operating_point(
            sft_critic, sft_sets, settings, resamples, progress, "review (SFT)"
        )
        report["operating_point"]["sft"] = sft_op
        report["critic_vs_sft"] = {
            "top_on_bug_difference": top_on_bug_difference(
                sets["humaneval"], raw["humaneval"], sft_raw["humaneval"], settings, resamples
            )
        }
        sft_searched = sft_searched["humaneval"]
    if with_ladder:
        rungs = ladder(
            critic,
            sets["humaneval"],
            settings,
            length_modifiers,
            sft_critic,
            progress,
            searched=(searched["humaneval"], sft_searched),
            resamples=resamples,
        )
        if "critic_vs_sft" in rungs:
            report["critic_vs_sft"] |= rungs.pop("critic_vs_sft")
        report |= rungs
    clean = op[CLEAN_SET]
    report["clean"] = {
        "files": clean["files"],
        "silent_rate": 1.0 - clean["false_alarm_rate"]["value"] if clean["files"] else 0.0,
        "findings": clean["findings"],
        "min_score": settings.min_score,
    }
    return report


# -- plots and the report ---------------------------------------------------------------------------


def plot_pareto(dials: dict[str, Sequence[dict]], baselines: dict[str, dict], out: Path) -> None:
    """CBI against fake-problem rate, one point per LENGTH_MODIFIER with its 95% intervals (points that
    coincide share one label), a line per critic, with the baselines marked."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 4.8), dpi=120)
    labels: dict[tuple[float, float], list[str]] = defaultdict(list)
    for name, pareto in dials.items():
        xs, ys = [p["fake_problem_rate"] for p in pareto], [p["cbi_rate"] for p in pareto]
        xerr = [_error_bar(p["intervals"]["fake_problem_rate"]) for p in pareto]
        yerr = [_error_bar(p["intervals"]["cbi_rate"]) for p in pareto]
        ax.errorbar(
            xs, ys, xerr=list(zip(*xerr, strict=True)), yerr=list(zip(*yerr, strict=True)),
            fmt="o-", capsize=2, label=f"{name} + FSBS",
        )  # fmt: skip
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


def _error_bar(ci: dict) -> tuple[float, float]:
    """Distances from the value down to the low end and up to the high end (0 where undefined)."""
    if ci["low"] is None or ci["value"] is None:
        return 0.0, 0.0
    return ci["value"] - ci["low"], ci["high"] - ci["value"]


def plot_reliability(rel: dict, out: Path) -> None:
    """Observed share on the bug against mean confidence per bin, with the diagonal, each bin's count
    and the default min-score."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 4.8), dpi=120)
    ax.plot([0, 1], [0, 1], "--", color="grey", label="perfectly calibrated")
    rows = [b for b in rel["bins"] if b["count"]]
    ax.plot([b["mean_confidence"] for b in rows], [b["on_bug_rate"] for b in rows], "o-", label="critic")
    for b in rows:
        ax.annotate(
            f"n={b['count']}",
            (b["mean_confidence"], b["on_bug_rate"]),
            textcoords="offset points",
            xytext=(0, 7),
            ha="center",
            fontsize=8,
        )
    ax.axvline(rel["min_score"], color="tab:red", linestyle=":", label=f"min-score {rel['min_score']:g}")
    ax.set_xlabel("reported confidence (mean of the bin)")
    ax.set_ylabel("findings on the inserted bug (share)")
    ax.set_xlim(-0.02, 1.02)
    ax.set_ylim(-0.02, 1.1)  # room for the count above a bin at 1.0
    ax.grid(alpha=0.3)
    ax.legend(loc="upper left")
    ece = "n/a" if rel["ece"] is None else f"{rel['ece']:.3f}"
    ax.set_title(f"Reliability of review confidence ({rel['findings']} raw findings, ECE {ece})")
    fig.tight_layout()
    fig.savefig(out)
    plt.close(fig)


def write_report(report: dict, out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    (out / "metrics.json").write_text(json.dumps({"schema": SCHEMA_VERSION, **report}, indent=2) + "\n")
    if "pareto" in report:
        baselines = {name: m for name, m in report["configs"].items() if "@lm=" not in name}
        dials = {"critic": report["pareto"]} | (
            {"SFT": report["sft_pareto"]} if "sft_pareto" in report else {}
        )
        plot_pareto(dials, baselines, out / "pareto.png")
    plot_reliability(report["reliability"], out / "reliability.png")
