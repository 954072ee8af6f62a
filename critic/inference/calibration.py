"""A finding's confidence as a calibrated probability that it is on a bug (Platt scaling).

The reward model gives each finding a margin: its score for the finding alone minus its score for
"no bugs". Bradley-Terry training makes sigmoid(margin) a probability only on the pairs it was
trained on; the findings `critic review` reports come from FSBS's search, a different distribution.
So a critic ships with `calibration.json` beside its reward model, fitted on held-out tampered and
clean code: confidence = sigmoid(scale * margin + bias), where a confidence of 0.7 should mean that
about 70% of such findings are on the bug. Without the file the confidence is sigmoid(margin).
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

FILE = "calibration.json"


@dataclass(frozen=True)
class Calibration:
    scale: float = 1.0
    bias: float = 0.0

    def probability(self, margin: float) -> float:
        return _sigmoid(self.scale * margin + self.bias)

    def save(self, directory: Path, **extra: object) -> None:
        """`extra` (how and on what it was fitted) is kept beside the parameters for readers."""
        (Path(directory) / FILE).write_text(json.dumps({**asdict(self), **extra}, indent=2) + "\n")

    @classmethod
    def load(cls, directory: Path) -> Calibration:
        """The calibration beside a reward model, or the identity if it has none."""
        path = Path(directory) / FILE
        if not path.is_file():
            return cls()
        try:
            raw = json.loads(path.read_text())
            return cls(float(raw["scale"]), float(raw["bias"]))
        except (ValueError, KeyError, TypeError) as err:
            raise ValueError(f"{path}: not a calibration file ({err})") from err


def fit(margins: Sequence[float], hits: Sequence[bool], iterations: int = 100) -> Calibration:
    """Logistic regression of hit on margin: Newton's method with step halving, and a small ridge
    toward the identity so that separable data stays finite."""
    if len(margins) != len(hits) or not margins:
        raise ValueError("fit needs as many hits as margins, and at least one")
    data = list(zip(margins, (float(h) for h in hits), strict=True))
    ridge = 1e-3 * len(data)

    def loss(a: float, b: float) -> float:
        total = sum(_softplus(a * x + b) - y * (a * x + b) for x, y in data)
        return total + 0.5 * ridge * ((a - 1.0) ** 2 + b**2)

    a, b = 1.0, 0.0
    current = loss(a, b)
    for _ in range(iterations):
        ga, gb = ridge * (a - 1.0), ridge * b
        haa = hbb = ridge
        hab = 0.0
        for x, y in data:
            p = _sigmoid(a * x + b)
            w = p * (1 - p)
            ga, gb = ga + (p - y) * x, gb + p - y
            haa, hab, hbb = haa + w * x * x, hab + w * x, hbb + w
        det = haa * hbb - hab * hab
        da, db = (hbb * ga - hab * gb) / det, (haa * gb - hab * ga) / det
        step = 1.0
        while step > 1e-6 and (new := loss(a - step * da, b - step * db)) > current:
            step /= 2
        if step <= 1e-6:
            break
        a, b, previous, current = a - step * da, b - step * db, current, new
        if previous - current < 1e-10:
            break
    return Calibration(a, b)


def logit(p: float) -> float:
    """The margin that sigmoid maps to p (how uncalibrated confidences are turned back into margins)."""
    p = min(max(p, 1e-12), 1 - 1e-12)
    return math.log(p / (1 - p))


def _softplus(x: float) -> float:
    return x + math.log1p(math.exp(-x)) if x > 0 else math.log1p(math.exp(x))


def _sigmoid(x: float) -> float:
    if x >= 0:
        return 1.0 / (1.0 + math.exp(-x))
    z = math.exp(x)
    return z / (1.0 + z)
