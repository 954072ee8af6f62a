"""Shared fixtures: tiny Gemma 2 configs that stress every architectural detail."""

from __future__ import annotations

import pytest
import torch

from critic.model import CriticConfig

torch.set_num_threads(2)


def stress_config(**overrides) -> CriticConfig:
    """Small, but with every Gemma 2 quirk switched on and far from its linear regime.

    Soft caps small enough that tanh bends, query_pre_attn_scalar != head_dim,
    heads x head_dim != hidden, GQA, and a short sliding window.
    """
    values = dict(
        vocab_size=320,
        hidden_size=96,
        intermediate_size=160,
        num_hidden_layers=4,
        num_attention_heads=4,
        num_key_value_heads=2,
        head_dim=32,
        query_pre_attn_scalar=24,
        sliding_window=8,
        attn_logit_softcapping=2.0,
        final_logit_softcapping=3.0,
        max_position_embeddings=256,
    )
    values.update(overrides)
    return CriticConfig(**values)


def randomize_(model: torch.nn.Module, seed: int = 0, scale: float = 0.2) -> torch.nn.Module:
    """Perturb every weight, norms included (their zero init would hide (1 + w) bugs)."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn(p.shape, generator=gen) * scale)
    return model


@pytest.fixture
def config() -> CriticConfig:
    return stress_config()
