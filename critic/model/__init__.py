"""The one Gemma 2 architecture shared by policy, reference, reward and value models.

Plain-PyTorch pieces import eagerly; the Hugging Face wrappers (which import
transformers, ~5 s) load only when first asked for.
"""

from critic.model.cache import KVCache
from critic.model.checkpoint import (
    CheckpointError,
    load_causal_lm,
    load_reward_model,
    new_causal_lm,
    save_checkpoint,
)
from critic.model.config import PRESETS, CriticConfig
from critic.model.gemma2 import Gemma2CausalLM, Gemma2Model, Gemma2RewardModel

_HF_NAMES = {"CriticForCausalLM", "CriticForSequenceClassification", "to_hf_config", "from_hf_config"}


def __getattr__(name: str):
    if name in _HF_NAMES:
        from critic.model import hf

        return getattr(hf, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "PRESETS",
    "CheckpointError",
    "CriticConfig",
    "CriticForCausalLM",
    "CriticForSequenceClassification",
    "Gemma2CausalLM",
    "Gemma2Model",
    "Gemma2RewardModel",
    "KVCache",
    "from_hf_config",
    "load_causal_lm",
    "load_reward_model",
    "new_causal_lm",
    "save_checkpoint",
    "to_hf_config",
]
