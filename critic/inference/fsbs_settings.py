"""FSBS's knobs on their own, free of torch, so `critic review` checks its options before loading a model."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class FSBSSettings:
    samples: int = 4  # n: continuations sampled per beam and round
    rounds: int = 4  # d
    keep: int = 2  # k: beams kept after each round
    length_modifier: float = 0.0
    max_new_tokens: int = 64  # per round: one quote and its comment
    temperature: float = 1.0
    constrain_quotes: bool = True  # forced highlights quote the code verbatim (critic.inference.quoting)
    # inline `code` in comments is verbatim code too (critic.inference.quoting)
    constrain_code_spans: bool = True

    def __post_init__(self) -> None:
        for name in ("samples", "rounds", "keep", "max_new_tokens"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name.replace('_', '-')} must be at least 1")
        if self.keep > self.samples:
            raise ValueError("keep must not exceed samples")
        if self.temperature < 0:
            raise ValueError("temperature must be >= 0")

    @property
    def candidates(self) -> int:
        return self.samples * (self.keep * (self.rounds - 1) + 1)
