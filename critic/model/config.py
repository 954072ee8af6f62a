"""Gemma 2 hyper-parameters, with the same field names as a checkpoint's config.json.

Plain dataclass (no transformers import) so the review path can read a checkpoint
directory without paying transformers' start-up cost.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

SLIDING = "sliding_attention"
GLOBAL = "full_attention"


@dataclass
class CriticConfig:
    vocab_size: int = 256000
    hidden_size: int = 2304
    intermediate_size: int = 9216
    num_hidden_layers: int = 26
    num_attention_heads: int = 8
    num_key_value_heads: int = 4
    head_dim: int = 256
    query_pre_attn_scalar: float = 256
    sliding_window: int = 4096
    layer_types: list[str] = field(default_factory=list)
    attn_logit_softcapping: float | None = 50.0
    final_logit_softcapping: float | None = 30.0
    max_position_embeddings: int = 8192
    rope_theta: float = 10000.0
    rms_norm_eps: float = 1e-6
    hidden_activation: str = "gelu_pytorch_tanh"
    initializer_range: float = 0.02
    tie_word_embeddings: bool = True
    pad_token_id: int = 0
    eos_token_id: int | list[int] = 1
    bos_token_id: int = 2

    def __post_init__(self) -> None:
        if not self.layer_types:
            # Gemma 2 alternates: even layers local (sliding window), odd layers global.
            self.layer_types = [SLIDING if i % 2 == 0 else GLOBAL for i in range(self.num_hidden_layers)]
        if len(self.layer_types) != self.num_hidden_layers:
            raise ValueError(
                f"layer_types has {len(self.layer_types)} entries for {self.num_hidden_layers} layers"
            )
        if unknown := set(self.layer_types) - {SLIDING, GLOBAL}:
            raise ValueError(f"unknown layer types {sorted(unknown)}")
        if self.num_attention_heads % self.num_key_value_heads:
            raise ValueError("num_attention_heads must be a multiple of num_key_value_heads")
        if self.hidden_activation not in ("gelu_pytorch_tanh", "gelu_tanh"):
            raise ValueError(f"Gemma 2 uses tanh-approximate GELU, not {self.hidden_activation!r}")
        if not self.tie_word_embeddings:
            raise ValueError("Gemma 2 ties input and output embeddings (tie_word_embeddings must be true)")

    @property
    def num_sliding_layers(self) -> int:
        return sum(t == SLIDING for t in self.layer_types)

    def num_parameters(self) -> int:
        """Parameter count (tied embeddings counted once), computed from the shapes alone."""
        h, d = self.hidden_size, self.head_dim
        attn = h * d * (2 * self.num_attention_heads + 2 * self.num_key_value_heads)
        mlp = 3 * h * self.intermediate_size
        return self.vocab_size * h + self.num_hidden_layers * (attn + mlp + 4 * h) + h

    # -- config.json ---------------------------------------------------------------

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> CriticConfig:
        """Read a Gemma 2 config.json (transformers 4.x or 5.x layout); unknown keys are ignored."""
        if raw.get("model_type", "gemma2") != "gemma2":
            raise ValueError(f"not a Gemma 2 config (model_type={raw.get('model_type')!r})")
        values = {f.name: raw[f.name] for f in dataclasses.fields(cls) if raw.get(f.name) is not None}
        for soft_cap in ("attn_logit_softcapping", "final_logit_softcapping"):
            if soft_cap in raw:  # an explicit null disables the cap
                values[soft_cap] = raw[soft_cap]
        rope = raw.get("rope_parameters") or {}
        if rope.get("rope_type", "default") != "default":
            raise ValueError(f"unsupported RoPE type {rope['rope_type']!r}")
        if "rope_theta" in rope:
            values["rope_theta"] = rope["rope_theta"]
        if raw.get("hidden_act") and "hidden_activation" not in raw:
            values["hidden_activation"] = raw["hidden_act"]
        return cls(**values)

    def to_dict(self) -> dict[str, Any]:
        """The config.json that transformers' `Gemma2Config` reads (5.x layout)."""
        out = dataclasses.asdict(self)
        out["rope_parameters"] = {"rope_type": "default", "rope_theta": out.pop("rope_theta")}
        out["model_type"] = "gemma2"
        out["architectures"] = ["Gemma2ForCausalLM"]
        return out

    @classmethod
    def from_json_file(cls, path: str | Path) -> CriticConfig:
        return cls.from_dict(json.loads(Path(path).read_text()))

    @classmethod
    def from_preset(cls, name: str, **overrides: Any) -> CriticConfig:
        if name not in PRESETS:
            raise ValueError(f"unknown preset {name!r}; choose from {', '.join(PRESETS)}")
        return cls(**{**PRESETS[name], **overrides})


PRESETS: dict[str, dict[str, Any]] = {
    # CPU-sized: trains in minutes on 2 cores; vocab matches the shipped tokenizer.
    "tiny": dict(
        vocab_size=8192,
        hidden_size=128,
        intermediate_size=512,
        num_hidden_layers=4,
        num_attention_heads=4,
        num_key_value_heads=2,
        head_dim=32,
        query_pre_attn_scalar=32,
        sliding_window=256,
        max_position_embeddings=2048,
    ),
    # A CPU-trainable teacher for `tiny` (critic train distill): 10 M parameters, 4.9x tiny's.
    "small": dict(
        vocab_size=8192,
        hidden_size=256,
        intermediate_size=1024,
        num_hidden_layers=8,
        num_attention_heads=4,
        num_key_value_heads=2,
        head_dim=64,
        query_pre_attn_scalar=64,
        sliding_window=256,
        max_position_embeddings=2048,
    ),
    # The published shapes (Gemma 2 report, table 1).
    "gemma-2-2b": dict(
        hidden_size=2304,
        intermediate_size=9216,
        num_hidden_layers=26,
        num_attention_heads=8,
        num_key_value_heads=4,
        head_dim=256,
        query_pre_attn_scalar=256,
    ),
    "gemma-2-9b": dict(
        hidden_size=3584,
        intermediate_size=14336,
        num_hidden_layers=42,
        num_attention_heads=16,
        num_key_value_heads=8,
        head_dim=256,
        query_pre_attn_scalar=256,
    ),
    "gemma-2-27b": dict(
        hidden_size=4608,
        intermediate_size=36864,
        num_hidden_layers=46,
        num_attention_heads=32,
        num_key_value_heads=16,
        head_dim=128,
        query_pre_attn_scalar=144,
    ),
}
