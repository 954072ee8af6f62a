"""Reward pairs that need no sampling: every tampered sample ranks critiques of its own lines.

The reward model sets each finding's confidence in `critic review`: a highlight is reported with
sigmoid(score(line claim of its lines) - score(NO_BUGS)) (critic.datagen.rating.line_claim), so the reward
model *is* the localizer. It learns from orderings the rubric fixes without a rater, on any tampered
code:

- on tampered code, the gold critique (the bug's lines quoted, the tamperer's description as comment)
  beats "no bugs", and "no bugs" beats the same format quoting another line: a wrong finding is worse
  than silence (it is a fake problem and misses the bug), so the confidence of a highlight estimates
  the chance that it is on the bug;
- the gold critique beats the gold critique plus a highlight of another line (precision);
- on the untampered original, "no bugs" beats any highlight (clean code stays silent).

Half the other lines are drawn in proportion to their length and half uniformly, so the model cannot
rank lines by length alone: long lines hold more tamperable sites, and a localizer that learned only
that would be the longest-line baseline.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from dataclasses import dataclass

from critic.core.critique import NO_BUGS, code_lines, code_spans, request, terminate_critique
from critic.datagen.rating import gold_critique, line_claim

# A backticked span this large a share of the bug line is the quote of the line itself, which a
# critique of another line would quote instead.
_WHOLE_LINE_SHARE = 0.4


def candidate_lines(code: str, exclude: set[int]) -> list[int]:
    """Lines a critic could plausibly flag: code, not blank and not a comment."""
    return [
        n
        for n, line in enumerate(code_lines(code), start=1)
        if n not in exclude and line.strip() and not line.lstrip().startswith("#")
    ]


def _other_lines(code: str, exclude: set[int], k: int, rng: random.Random) -> list[int]:
    """k distinct lines: the first half weighted by length, the rest uniform."""
    pool = candidate_lines(code, exclude)
    lines = code_lines(code)
    chosen: list[int] = []
    while pool and len(chosen) < k:
        if len(chosen) < (k + 1) // 2:
            weights = [len(lines[n - 1].strip()) for n in pool]
            n = rng.choices(pool, weights=weights)[0]
        else:
            n = rng.choice(pool)
        pool.remove(n)
        chosen.append(n)
    return chosen


def _comment_for(description: str, bug_text: str, other_text: str) -> str:
    """The bug's description, moved to another line: spans that quote the bug line quote that line."""
    out = description
    for span in code_spans(description):
        if span in bug_text and len(span) >= _WHOLE_LINE_SHARE * len(bug_text):
            out = out.replace(f"`{span}`", f"`{other_text}`")
    return out


def misplaced_critique(
    code: str, line: int, description: str, bug_lines: list[int], described: str | None = None
) -> str:
    """The gold critique of a bug at `bug_lines` of `described` (default: `code`), moved to `line` of
    `code` (which may be the untampered original): what a critic that found the wrong line writes."""
    at = code_lines(described or code)
    bug_text = " ".join(at[n - 1].strip() for n in bug_lines if n <= len(at))
    other = code_lines(code)[line - 1].strip()
    return gold_critique(code, [line], _comment_for(description, bug_text, other))


@dataclass
class Ranking:
    """Critiques of one prompt and the orderings the rubric fixes among them: (better, worse) indices."""

    prompt: str
    critiques: list[str]
    wins: list[tuple[int, int]]

    def pairs(self) -> Iterator[tuple[str, str, str]]:
        for better, worse in self.wins:
            yield self.prompt, self.critiques[better], self.critiques[worse]


def synthetic_rankings(
    row: dict, negatives: int, rng: random.Random, clean_negatives: int = 1, claims: bool = False
) -> Iterator[Ranking]:
    """The rankings of one tampered sample, then of its untampered original (if it has one).

    With `claims`, each also ranks line claims (critic.core.critique.LINE_CLAIM), which is how a finding's
    confidence is scored: the bug's lines claimed > "no bugs" > the same lines as the other
    critiques claimed. They share one comment, so only the code can tell them apart; the moved
    description of a misplaced critique can also be told from the gold by how it fits the line it
    quotes, which teaches consistency, not where bugs are."""
    code, bug_lines, description = row["code"], row["bug_lines"], row["description"]
    gold = gold_critique(code, bug_lines, description)
    critiques, wins = [gold, NO_BUGS], [(0, 1)]
    others = _other_lines(code, set(bug_lines), negatives, rng)
    for line in others:
        wins.append((1, len(critiques)))
        critiques.append(misplaced_critique(code, line, description, bug_lines))
    if others:
        extra = critiques[2]
        wins.append((0, len(critiques)))
        critiques.append("\n\n".join([gold, extra] if rng.random() < 0.5 else [extra, gold]))
    if claims:
        wins.append((len(critiques), 1))
        critiques.append(line_claim(code, bug_lines))
        for line in others:
            wins.append((1, len(critiques)))
            critiques.append(line_claim(code, [line]))
    yield Ranking(request(code), critiques, wins)
    original = row["original"]
    if original and original != code:
        clean = [NO_BUGS]
        lines = _other_lines(original, set(), clean_negatives, rng)
        for line in lines:
            clean.append(misplaced_critique(original, line, description, bug_lines, code))
        if claims:
            clean += [line_claim(original, [line]) for line in lines]
        if len(clean) > 1:
            yield Ranking(request(original), clean, [(0, i) for i in range(1, len(clean))])


def synthetic_pairs(row: dict, negatives: int, rng: random.Random) -> Iterator[tuple[str, str, str]]:
    """(prompt, chosen, rejected) for one tampered sample and its untampered original."""
    for ranking in synthetic_rankings(row, negatives, rng):
        yield from ranking.pairs()


def synthetic_preferences(rows, negatives: int, seed: int) -> dict[str, list]:
    """Columns of a preference dataset (as the rate stage writes): every row's synthetic pairs."""
    rng = random.Random(seed)
    columns: dict[str, list] = {"task_id": [], "prompt": [], "chosen": [], "rejected": [], "margin": []}
    for row in rows:
        for prompt, chosen, rejected in synthetic_pairs(row, negatives, rng):
            columns["task_id"].append(row["task_id"])
            columns["prompt"].append(prompt)
            columns["chosen"].append(terminate_critique(chosen))
            columns["rejected"].append(terminate_critique(rejected))
            columns["margin"].append(0.0)
    return columns
