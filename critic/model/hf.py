"""Hugging Face wrappers around the plain Gemma 2 modules.

They exist so TRL trainers, `generate()`, `save_pretrained`, PEFT and accelerate
work with our model. The config class is transformers' own `Gemma2Config` and the
weight names are the checkpoint's, so a directory written here loads in
`Gemma2ForCausalLM` and vice versa. The backbone (`model`, the
`base_model_prefix`) is the plain `Gemma2Model`, which TRL's GRPO calls for the
hidden states its fused LM head turns into per-token log-probabilities.
"""

from __future__ import annotations

import torch
from torch import nn
from transformers import Gemma2Config, GenerationMixin, PreTrainedModel
from transformers import initialization as init
from transformers.modeling_outputs import CausalLMOutputWithPast, SequenceClassifierOutputWithPast

from critic.model.cache import KVCache
from critic.model.config import CriticConfig
from critic.model.gemma2 import Gemma2Model, RMSNorm, last_token_indices, softcap


def to_hf_config(config: CriticConfig, **extra: object) -> Gemma2Config:
    values = config.to_dict()
    values.pop("architectures")
    values.pop("model_type")
    return Gemma2Config(**{**values, **extra})


def from_hf_config(config: Gemma2Config) -> CriticConfig:
    return CriticConfig.from_dict(config.to_dict())


class CriticPreTrainedModel(PreTrainedModel):
    config_class = Gemma2Config
    config: Gemma2Config
    base_model_prefix = "model"
    supports_gradient_checkpointing = True
    _no_split_modules = ["DecoderLayer"]
    _supports_sdpa = False  # SDPA cannot soft-cap attention logits
    # Checkpoint keys a class may lack or ignore when built from another head's checkpoint.
    _optional_keys: frozenset[str] = frozenset()
    _ignored_keys: frozenset[str] = frozenset()

    def _init_weights(self, module: nn.Module) -> None:
        super()._init_weights(module)
        if isinstance(module, RMSNorm):
            init.zeros_(module.weight)

    def get_input_embeddings(self) -> nn.Embedding:
        return self.model.embed_tokens

    def set_input_embeddings(self, value: nn.Embedding) -> None:
        self.model.embed_tokens = value

    @classmethod
    def from_pretrained(cls, pretrained_model_name_or_path, *args, **kwargs):
        """transformers' loader, with strict key matching: a mismatch raises instead of warning."""
        want_info = kwargs.pop("output_loading_info", False)
        model, info = super().from_pretrained(
            pretrained_model_name_or_path, *args, output_loading_info=True, **kwargs
        )
        missing = set(info["missing_keys"]) - set(cls._optional_keys)
        unexpected = set(info["unexpected_keys"]) - set(cls._ignored_keys)
        mismatched = info.get("mismatched_keys") or []
        if missing or unexpected or mismatched:
            raise ValueError(
                f"{pretrained_model_name_or_path}: checkpoint does not match {cls.__name__} "
                f"(missing {sorted(missing)[:5]}, unexpected {sorted(unexpected)[:5]}, "
                f"shape mismatch {[k for k, *_ in mismatched][:5]})"
            )
        return (model, info) if want_info else model


class CriticForCausalLM(CriticPreTrainedModel, GenerationMixin):
    _tied_weights_keys = {"lm_head.weight": "model.embed_tokens.weight"}
    _optional_keys = frozenset({"lm_head.weight"})

    def __init__(self, config: Gemma2Config) -> None:
        super().__init__(config)
        self.critic_config = from_hf_config(config)
        self.model = Gemma2Model(self.critic_config)
        self.lm_head = nn.Linear(config.hidden_size, config.vocab_size, bias=False)
        self.post_init()

    def get_output_embeddings(self) -> nn.Linear:
        return self.lm_head

    @classmethod
    def _supports_default_dynamic_cache(cls) -> bool:
        # generate() must not build a transformers DynamicCache: forward makes our KVCache.
        return False

    def forward(
        self,
        input_ids: torch.LongTensor | None = None,
        attention_mask: torch.Tensor | None = None,
        position_ids: torch.LongTensor | None = None,
        cache: KVCache | None = None,
        inputs_embeds: torch.Tensor | None = None,
        labels: torch.LongTensor | None = None,
        use_cache: bool | None = None,
        output_hidden_states: bool | None = None,
        logits_to_keep: int = 0,
        past_key_values: KVCache | None = None,
        return_dict: bool | None = None,
        **kwargs,
    ) -> CausalLMOutputWithPast:
        cache = cache if cache is not None else past_key_values
        if use_cache and cache is None:
            cache = KVCache(self.critic_config)
        out = self.model(
            input_ids,
            attention_mask,
            position_ids,
            cache,
            inputs_embeds=inputs_embeds,
            output_hidden_states=bool(output_hidden_states),
        )
        h = out.last_hidden_state
        if logits_to_keep:
            h = h[:, -logits_to_keep:]
        logits = softcap(self.lm_head(h), self.config.final_logit_softcapping)
        loss = None
        if labels is not None:
            loss = self.loss_function(logits, labels, self.config.vocab_size, **kwargs)
        return CausalLMOutputWithPast(loss=loss, logits=logits, cache=cache, hidden_states=out.hidden_states)


class CriticForSequenceClassification(CriticPreTrainedModel):
    """Scalar head on the last non-pad token: the reward model."""

    _optional_keys = frozenset({"score.weight"})  # a reward model starts from a policy checkpoint
    _ignored_keys = frozenset({"lm_head.weight"})

    def __init__(self, config: Gemma2Config) -> None:
        super().__init__(config)
        self.num_labels = config.num_labels
        self.model = Gemma2Model(from_hf_config(config))
        self.score = nn.Linear(config.hidden_size, config.num_labels, bias=False)
        self.post_init()

    def forward(
        self,
        input_ids: torch.LongTensor | None = None,
        attention_mask: torch.Tensor | None = None,
        position_ids: torch.LongTensor | None = None,
        inputs_embeds: torch.Tensor | None = None,
        labels: torch.Tensor | None = None,
        output_hidden_states: bool | None = None,
        return_dict: bool | None = None,
        **kwargs,
    ) -> SequenceClassifierOutputWithPast:
        out = self.model(
            input_ids,
            attention_mask,
            position_ids,
            inputs_embeds=inputs_embeds,
            output_hidden_states=bool(output_hidden_states),
        )
        h = out.last_hidden_state
        if input_ids is not None:
            last = last_token_indices(input_ids, self.config.pad_token_id)
        else:
            last = torch.full((h.shape[0],), h.shape[1] - 1, device=h.device)
        logits = self.score(h[torch.arange(h.shape[0], device=h.device), last])
        loss = None
        if labels is not None:
            if self.num_labels == 1:
                loss = nn.functional.mse_loss(logits.squeeze(-1), labels.to(logits.dtype))
            else:
                loss = nn.functional.cross_entropy(logits, labels)
        return SequenceClassifierOutputWithPast(loss=loss, logits=logits, hidden_states=out.hidden_states)
