"""Where the bug is: every candidate repair of a piece of code scored as the probability that it is the fix.

The language model's repair margin (critic.inference.repair_scoring) is the main signal, but not the
only one a reviewer uses: how much better the repair is than every other one, what kind of edit it is
(a `<` -> `<=` repair is right more often than a variable swap), how long the line is and how many
other edits it admits. A logistic model over those features, fitted on held-out tampered and clean
code (`fit`; the pipeline's `localize` stage), turns them into one calibrated probability per repair:
that applying it gives back the code as it was before a bug went in. A line's score is its best
repair's, so one model ranks lines, picks the fix, and says how sure it is.

The fitted model is `localizer.json` beside the policy; a policy without one uses the shipped critic's.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import torch

from critic.datagen.analysis import strip_comment
from critic.datagen.repairs import REPAIR_KINDS, Repair, candidate_repairs, describe_repair
from critic.inference.repair_scoring import repair_margins

FILE = "localizer.json"
MARGIN_CLIP = 30.0


def feature_names() -> list[str]:
    return [
        "margin",
        "margin_gap",
        "is_best",
        "length_change",
        "line_length",
        "line_candidates",
        "candidates",
        *(f"kind={kind}" for kind in REPAIR_KINDS),
    ]


def features(code: str, repairs: Sequence[Repair], margins: Sequence[float]) -> list[list[float]]:
    """One row of `feature_names()` per repair. Relative features (gap to the best other repair, line
    length over the longest line) make the model's scale the same for short and long code. The change in
    length is there because a margin is confounded by it: a repair that deletes code (`n - 1` -> `n`)
    leaves fewer tokens to be unlikely, one that adds code more."""
    lines = code.split("\n")
    length = [len(strip_comment(line).strip()) for line in lines]
    longest = max(length, default=1) or 1
    on_line: dict[int, int] = {}
    for r in repairs:
        on_line[r.line] = on_line.get(r.line, 0) + 1
    clipped = [max(-MARGIN_CLIP, min(MARGIN_CLIP, m)) for m in margins]
    order = sorted(clipped, reverse=True)
    rows = []
    for r, m in zip(repairs, clipped, strict=True):
        # the margin over the best other repair (the runner-up's, for the best one itself)
        gap = m - (order[1] if m == order[0] else order[0]) if len(order) > 1 else 0.0
        kinds = [1.0 if r.kind == kind else 0.0 for kind in REPAIR_KINDS]
        rows.append(
            [
                m,
                gap,
                1.0 if m == order[0] else 0.0,
                max(-5.0, min(5.0, (len(r.text) - (r.end - r.start)) / 4)),
                length[r.line - 1] / longest if r.line <= len(length) else 0.0,
                math.log1p(on_line[r.line]),
                math.log1p(len(repairs)),
                *kinds,
            ]
        )
    return rows


@dataclass(frozen=True)
class Localizer:
    names: list[str] = field(default_factory=feature_names)
    weights: list[float] = field(default_factory=lambda: [1.0] + [0.0] * (len(feature_names()) - 1))
    bias: float = -3.0

    def probabilities(self, rows: Sequence[Sequence[float]]) -> list[float]:
        if not rows:
            return []
        x = torch.tensor(rows, dtype=torch.float64)
        w = torch.tensor(self.weights, dtype=torch.float64)
        return torch.sigmoid(x @ w + self.bias).tolist()

    def save(self, directory: Path, **extra: object) -> None:
        """`extra` (what it was fitted on, how well) is kept beside the parameters for readers."""
        payload = {"features": dict(zip(self.names, self.weights, strict=True)), "bias": self.bias, **extra}
        (Path(directory) / FILE).write_text(json.dumps(payload, indent=2) + "\n")

    @classmethod
    def load(cls, path: Path) -> Localizer:
        """From `localizer.json` (or a directory holding one). Features the file does not name weigh 0, so a
        model fitted before a feature existed still loads; a name it has that this code lacks is an error."""
        path = Path(path)
        path = path / FILE if path.is_dir() else path
        try:
            raw = json.loads(path.read_text())
            weights = {str(k): float(v) for k, v in raw["features"].items()}
            bias = float(raw["bias"])
        except (OSError, ValueError, KeyError, TypeError, AttributeError) as err:
            raise ValueError(f"{path}: not a localizer file ({err})") from err
        names = feature_names()
        unknown = sorted(set(weights) - set(names))
        if unknown:
            raise ValueError(f"{path}: unknown localizer features {unknown}")
        return cls(names, [weights.get(name, 0.0) for name in names], bias)


def fit(rows: Sequence[Sequence[float]], labels: Sequence[bool], l2: float = 1e-5) -> Localizer:
    """Logistic regression by L-BFGS with a small ridge (features are of order one), so that separable
    data stays finite. The ridge is against a mean loss over tens of thousands of repairs, a few of
    them right: at 1e-2 it pressed every weight to about zero (measured on validation), so it is tiny."""
    if not rows or len(rows) != len(labels):
        raise ValueError("fit needs as many labels as rows, and at least one")
    x = torch.tensor(rows, dtype=torch.float64)
    y = torch.tensor([float(v) for v in labels], dtype=torch.float64)
    w = torch.zeros(x.shape[1], dtype=torch.float64, requires_grad=True)
    b = torch.zeros((), dtype=torch.float64, requires_grad=True)
    optimizer = torch.optim.LBFGS([w, b], max_iter=500, line_search_fn="strong_wolfe")

    def closure() -> torch.Tensor:
        optimizer.zero_grad()
        loss = torch.nn.functional.binary_cross_entropy_with_logits(x @ w + b, y) + l2 * (w * w).sum()
        loss.backward()
        return loss

    optimizer.step(closure)
    return Localizer(feature_names(), w.detach().tolist(), float(b.detach()))


@dataclass(frozen=True)
class LocatedBug:
    """A line the localizer suspects, in the coordinates of the code it read: the bug's lines, the
    repair (code[start:end] -> text) and the comment that describes what it undoes."""

    kind: str
    line: int
    end_line: int
    start: int
    end: int
    text: str
    comment: str
    score: float

    def as_dict(self) -> dict:
        return {k: getattr(self, k) for k in self.__dataclass_fields__}

    @classmethod
    def from_dict(cls, raw: dict) -> LocatedBug:
        """Checked field by field: a cache entry is read back through here, and a malformed one must
        fail (a miss), never become a finding."""
        ints = ("line", "end_line", "start", "end")
        if set(raw) != set(cls.__dataclass_fields__):
            raise ValueError("wrong fields")
        if any(isinstance(raw[k], bool) or not isinstance(raw[k], int) for k in ints):
            raise ValueError("wrong types")
        if not all(isinstance(raw[k], str) for k in ("kind", "text", "comment")):
            raise ValueError("wrong types")
        if isinstance(raw["score"], bool) or not isinstance(raw["score"], int | float):
            raise ValueError("wrong types")
        return cls(**{**raw, "score": float(raw["score"])})


def locate(model, tokenizer, localizer: Localizer, code: str, max_lines: int = 10) -> list[LocatedBug]:
    """The `max_lines` most suspect lines of `code`, most suspect first: each line's best repair, with
    its probability of being the fix and the comment describing the bug it undoes."""
    repairs, margins = scored_repairs(model, tokenizer, code)
    return suspects(code, repairs, localizer.probabilities(features(code, repairs, margins)), max_lines)


def scored_repairs(model, tokenizer, code: str) -> tuple[list[Repair], list[float]]:
    """Every candidate repair of `code` with its language-model margin."""
    repairs = candidate_repairs(code)
    return repairs, repair_margins(model, tokenizer, code, [r.code for r in repairs])


def suspects(
    code: str, repairs: Sequence[Repair], scores: Sequence[float], max_lines: int
) -> list[LocatedBug]:
    """Each line's best repair (by `scores`), the `max_lines` best lines first, described."""
    best: dict[int, tuple[float, Repair]] = {}
    for repair, score in zip(repairs, scores, strict=True):
        if repair.line not in best or score > best[repair.line][0]:
            best[repair.line] = (score, repair)
    ranked = sorted(best.values(), key=lambda pair: (-pair[0], pair[1].line))[:max_lines]
    out = []
    for score, repair in ranked:
        comment, lines = describe_repair(code, repair)
        out.append(
            LocatedBug(
                repair.kind, min(lines), max(lines), repair.start, repair.end, repair.text, comment, score
            )
        )
    return out
