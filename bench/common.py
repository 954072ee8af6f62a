"""Helpers shared by the bench scripts: configs, best-of timing, one model in three implementations."""

from __future__ import annotations

import time
from collections.abc import Callable

from transformers import Gemma2ForCausalLM

from critic.model import CriticConfig, CriticForCausalLM, Gemma2CausalLM, to_hf_config

CONFIGS = {
    "tiny": CriticConfig.from_preset("tiny"),
    "cpu-30m": CriticConfig.from_preset(
        "tiny",
        hidden_size=512,
        intermediate_size=2048,
        num_hidden_layers=8,
        num_attention_heads=8,
        num_key_value_heads=4,
        head_dim=64,
        query_pre_attn_scalar=64,
    ),
}


def best_times(fns: dict[str, Callable[[], object]], repeats: int) -> dict[str, float]:
    """Best wall time of each function; one warm-up each, then rounds in turn, so that a
    busy spell on a shared machine hits every contender rather than one."""
    for fn in fns.values():
        fn()
    best = dict.fromkeys(fns, float("inf"))
    for _ in range(repeats):
        for name, fn in fns.items():
            start = time.perf_counter()
            fn()
            best[name] = min(best[name], time.perf_counter() - start)
    return best


def same_weights(ours: Gemma2CausalLM) -> tuple[CriticForCausalLM, Gemma2ForCausalLM]:
    """Our HF wrapper and transformers' eager Gemma2 (the reference), loaded with `ours`' weights."""
    wrapped = CriticForCausalLM(to_hf_config(ours.config)).eval()
    wrapped.load_state_dict(ours.state_dict())
    ref = Gemma2ForCausalLM(to_hf_config(ours.config, attn_implementation="eager")).eval()
    ref.load_state_dict(ours.state_dict())
    return wrapped, ref
