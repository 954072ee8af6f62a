"""The Gemma 2 decoder in plain PyTorch (Gemma 2 report, arXiv 2408.00118).

Module and parameter names match the Hugging Face checkpoints, so a state dict maps
onto this code by eye. Nothing here imports transformers: `critic review` loads and
runs these modules directly; `critic.model.hf` wraps them for TRL and `generate()`.

Order of data flow: embed (scaled by sqrt(hidden)) -> N x DecoderLayer -> norm ->
tied lm_head -> final soft-cap.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.checkpoint import checkpoint

from critic.model.cache import KVCache
from critic.model.config import GLOBAL, SLIDING, CriticConfig


def softcap(x: torch.Tensor, cap: float | None) -> torch.Tensor:
    """cap * tanh(x / cap): bounds logits smoothly (attention and final logits)."""
    return x if cap is None else torch.tanh(x / cap) * cap


class RMSNorm(nn.Module):
    def __init__(self, dim: int, eps: float = 1e-6) -> None:
        super().__init__()
        self.eps = eps
        # Gemma stores w and scales by (1 + w), so zeros is the identity.
        self.weight = nn.Parameter(torch.zeros(dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = x.float()
        h = h * torch.rsqrt(h.pow(2).mean(-1, keepdim=True) + self.eps)
        return (h * (1.0 + self.weight.float())).type_as(x)


def rope(positions: torch.Tensor, head_dim: int, theta: float, dtype: torch.dtype):
    """cos/sin tables [B, T, head_dim] for rotate-half RoPE, computed in float32.

    inv_freq is rebuilt per call rather than kept as a buffer, so casting the model
    to bf16 can never round it.
    """
    exponent = torch.arange(0, head_dim, 2, device=positions.device, dtype=torch.float32) / head_dim
    inv_freq = 1.0 / (theta**exponent)
    freqs = positions[..., None].float() * inv_freq
    emb = torch.cat([freqs, freqs], dim=-1)
    return emb.cos().to(dtype), emb.sin().to(dtype)


def apply_rope(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    half = x.shape[-1] // 2
    rotated = torch.cat([-x[..., half:], x[..., :half]], dim=-1)
    return x * cos + rotated * sin


class Attention(nn.Module):
    def __init__(self, config: CriticConfig, layer_idx: int) -> None:
        super().__init__()
        self.layer_idx = layer_idx
        self.n_head = config.num_attention_heads
        self.n_kv_head = config.num_key_value_heads
        self.head_dim = config.head_dim
        # Gemma 2 scales by query_pre_attn_scalar, which differs from head_dim in 27B.
        self.scaling = config.query_pre_attn_scalar**-0.5
        self.softcap = config.attn_logit_softcapping
        hidden, d = config.hidden_size, config.head_dim
        self.q_proj = nn.Linear(hidden, self.n_head * d, bias=False)
        self.k_proj = nn.Linear(hidden, self.n_kv_head * d, bias=False)
        self.v_proj = nn.Linear(hidden, self.n_kv_head * d, bias=False)
        self.o_proj = nn.Linear(self.n_head * d, hidden, bias=False)

    def forward(self, x, cos, sin, mask, cache: KVCache | None, last_only: bool = False) -> torch.Tensor:
        """last_only: keys and values for every token, queries (and output) for the last one only."""
        b, t, _ = x.shape
        k = self.k_proj(x).view(b, t, self.n_kv_head, self.head_dim).transpose(1, 2)
        v = self.v_proj(x).view(b, t, self.n_kv_head, self.head_dim).transpose(1, 2)
        k = apply_rope(k, cos, sin)
        if last_only:
            x, cos, sin, mask = x[:, -1:], cos[:, :, -1:], sin[:, :, -1:], mask[:, :, -1:]
        tq = x.shape[1]
        q = apply_rope(self.q_proj(x).view(b, tq, self.n_head, self.head_dim).transpose(1, 2), cos, sin)
        if cache is not None:
            k, v = cache.update(self.layer_idx, k, v)

        # GQA without copying K/V: fold each KV head's query group into the row axis.
        group = self.n_head // self.n_kv_head
        qg = q.reshape(b, self.n_kv_head, group * tq, self.head_dim)
        # Soft-cap (before the mask): cap * tanh(q.k * scaling / cap). Folding scaling / cap
        # into q, tanh in place and cap into the mask's add make it one pass over the [T, S]
        # scores besides tanh's.
        if self.softcap is None:
            scores = ((qg * self.scaling) @ k.transpose(-1, -2)).view(b, self.n_head, tq, -1) + mask
        else:
            scores = ((qg * (self.scaling / self.softcap)) @ k.transpose(-1, -2)).tanh_()
            scores = torch.add(mask, scores.view(b, self.n_head, tq, -1), alpha=self.softcap)
        if scores.dtype == torch.float32:
            probs = F.softmax(scores, dim=-1)  # the dtype argument alone costs a fifth more on CPU
        else:
            probs = F.softmax(scores, dim=-1, dtype=torch.float32).to(q.dtype)
        out = probs.view(b, self.n_kv_head, group * tq, -1) @ v
        out = out.view(b, self.n_head, tq, self.head_dim).transpose(1, 2).reshape(b, tq, -1)
        return self.o_proj(out)


class MLP(nn.Module):
    def __init__(self, config: CriticConfig) -> None:
        super().__init__()
        self.gate_proj = nn.Linear(config.hidden_size, config.intermediate_size, bias=False)
        self.up_proj = nn.Linear(config.hidden_size, config.intermediate_size, bias=False)
        self.down_proj = nn.Linear(config.intermediate_size, config.hidden_size, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.down_proj(F.gelu(self.gate_proj(x), approximate="tanh") * self.up_proj(x))


class DecoderLayer(nn.Module):
    def __init__(self, config: CriticConfig, layer_idx: int) -> None:
        super().__init__()
        self.is_sliding = config.layer_types[layer_idx] == SLIDING
        self.self_attn = Attention(config, layer_idx)
        self.mlp = MLP(config)
        eps = config.rms_norm_eps
        # Four norms: Gemma 2 normalises both the input and the output of each sub-block.
        self.input_layernorm = RMSNorm(config.hidden_size, eps)
        self.post_attention_layernorm = RMSNorm(config.hidden_size, eps)
        self.pre_feedforward_layernorm = RMSNorm(config.hidden_size, eps)
        self.post_feedforward_layernorm = RMSNorm(config.hidden_size, eps)

    def forward(self, x, cos, sin, mask, cache: KVCache | None, last_only: bool = False) -> torch.Tensor:
        """last_only: the output at the last position only (see Attention.forward)."""
        h = self.self_attn(self.input_layernorm(x), cos, sin, mask, cache, last_only)
        x = (x[:, -1:] if last_only else x) + self.post_attention_layernorm(h)
        return x + self.post_feedforward_layernorm(self.mlp(self.pre_feedforward_layernorm(x)))


@dataclass
class BackboneOutput:
    """What TRL reads from a backbone: `hidden_states[-1]` is the final (normed) state."""

    last_hidden_state: torch.Tensor
    hidden_states: tuple[torch.Tensor, ...] | None = None
    cache: KVCache | None = None


class Gemma2Model(nn.Module):
    """The decoder stack (checkpoint prefix `model.`)."""

    def __init__(self, config: CriticConfig) -> None:
        super().__init__()
        self.config = config
        self.embed_tokens = nn.Embedding(config.vocab_size, config.hidden_size, config.pad_token_id)
        self.layers = nn.ModuleList(DecoderLayer(config, i) for i in range(config.num_hidden_layers))
        self.norm = RMSNorm(config.hidden_size, config.rms_norm_eps)
        # Set by transformers' gradient_checkpointing_enable(); plain users may set it too.
        self.gradient_checkpointing = False
        self._gradient_checkpointing_func = functools.partial(checkpoint, use_reentrant=False)

    def forward(
        self,
        input_ids: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        position_ids: torch.Tensor | None = None,
        cache: KVCache | None = None,
        inputs_embeds: torch.Tensor | None = None,
        output_hidden_states: bool = False,
        last_only: bool = False,
        segment_ids: torch.Tensor | None = None,
        **_: object,  # return_dict, use_cache, ... from Hugging Face callers
    ) -> BackboneOutput:
        """attention_mask: [B, T] or [B, past + T] with 1 for real tokens (left padding allowed).

        segment_ids: [B, T] for rows that pack several continuations of one shared prefix (see
        `branch_masks`); then position_ids are required and attention_mask and cache are not used.

        last_only: the caller wants the last position's state alone (prefill for sampling), so
        the last layer computes its queries, attention and MLP for that position only (keys
        and values for all) and last_hidden_state is [B, 1, H]. Not with output_hidden_states.
        """
        if last_only and output_hidden_states:
            raise ValueError("last_only drops the hidden states output_hidden_states asks for")
        x = self.embed_tokens(input_ids) if inputs_embeds is None else inputs_embeds
        b, t, _ = x.shape
        past = cache.seen if cache is not None else 0
        if position_ids is None:
            position_ids = torch.arange(past, past + t, device=x.device)[None]
        # Gemma scales embeddings by sqrt(hidden), rounded to the activation dtype first.
        x = x * torch.tensor(math.sqrt(self.config.hidden_size), dtype=x.dtype)
        cos, sin = rope(position_ids, self.config.head_dim, self.config.rope_theta, x.dtype)
        cos, sin = cos[:, None], sin[:, None]  # broadcast over heads
        if segment_ids is None:
            masks = self._masks(attention_mask, cache, b, t, x)
        else:
            masks = branch_masks(segment_ids, position_ids, self.config.sliding_window, x.dtype)

        hidden_states = [x] if output_hidden_states else None
        for i, layer in enumerate(self.layers):
            mask = masks[SLIDING if layer.is_sliding else GLOBAL]
            last = last_only and i == len(self.layers) - 1
            if self.gradient_checkpointing and self.training:
                x = self._gradient_checkpointing_func(layer.__call__, x, cos, sin, mask, cache, last)
            else:
                x = layer(x, cos, sin, mask, cache, last)
            if hidden_states is not None:
                hidden_states.append(x)
        x = self.norm(x)
        if cache is not None:
            cache.advance(t)
        if hidden_states is not None:
            hidden_states[-1] = x
        return BackboneOutput(x, tuple(hidden_states) if hidden_states is not None else None, cache)

    def _masks(self, attention_mask, cache, b: int, t: int, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """Additive masks [B, 1, T, S] per layer type: causal, window, padding.

        Keys are identified by absolute index in the (padded) sequence; a local query
        at index q sees keys q - W < k <= q, a global one every k <= q.
        """
        past = cache.seen if cache is not None else 0
        if attention_mask is None:
            new_valid = torch.ones(b, t, dtype=torch.bool, device=x.device)
        else:
            new_valid = attention_mask[:, -t:].bool()
        if cache is not None:
            cache.append_padding_mask(new_valid)
            valid = cache.valid
        else:
            valid = new_valid
        q_idx = torch.arange(past, past + t, device=x.device)[:, None]
        masks = {}
        for kind in (GLOBAL, SLIDING):
            k_idx = cache.key_indices(kind == GLOBAL, t) if cache is not None else None
            if k_idx is None:
                k_idx = torch.arange(past, past + t, device=x.device)
            allowed = (k_idx >= 0) & (k_idx <= q_idx)
            if kind == SLIDING:
                allowed &= k_idx > q_idx - self.config.sliding_window
            allowed = allowed[None] & valid[:, k_idx.clamp(min=0)][:, None]  # [B, T, S]
            zero = torch.zeros((), dtype=x.dtype, device=x.device)
            masks[kind] = torch.where(allowed, zero, torch.finfo(x.dtype).min)[:, None]
        return masks


def branch_masks(
    segment_ids: torch.Tensor, position_ids: torch.Tensor, window: int, dtype: torch.dtype
) -> dict[str, torch.Tensor]:
    """Additive masks [B, 1, T, T] for rows packing one shared prefix (segment 0) and branches
    (segments 1, 2, ...), padding being -1. A branch sees itself and the prefix's positions before its
    own first position, never another branch, so each branch's states equal those of that part of the
    prefix + branch alone while the prefix is computed once. A branch that continues the whole prefix
    sees all of it; one that starts at position p replaces the prefix from p on (an edited copy of the
    prefix, scored without recomputing what comes before the edit). Order and window follow
    positions, not indices."""
    seg_q, seg_k = segment_ids[:, :, None], segment_ids[:, None, :]
    pos = position_ids.expand(segment_ids.shape)
    pos_q, pos_k = pos[:, :, None], pos[:, None, :]
    # Each segment's first position; a prefix (or padding) query sees prefix keys up to itself.
    segments = int(segment_ids.max().item()) + 1 if segment_ids.numel() else 1
    never = torch.iinfo(pos.dtype).max
    first = torch.full((pos.shape[0], segments), never, dtype=pos.dtype, device=pos.device)
    first = first.scatter_reduce(1, segment_ids.clamp(min=0), pos, "amin")
    limit = torch.where(segment_ids > 0, first.gather(1, segment_ids.clamp(min=0)), pos + 1)[:, :, None]
    from_prefix = (seg_k == 0) & (pos_k < limit)
    allowed = (seg_k >= 0) & (from_prefix | ((seg_k == seg_q) & (pos_k <= pos_q)))
    zero = torch.zeros((), dtype=dtype, device=segment_ids.device)
    low = torch.finfo(dtype).min
    return {
        GLOBAL: torch.where(allowed, zero, low)[:, None],
        SLIDING: torch.where(allowed & (pos_k > pos_q - window), zero, low)[:, None],
    }


def last_token_indices(input_ids: torch.Tensor, pad_token_id: int) -> torch.Tensor:
    """Index of each row's last non-pad token (works for left and right padding)."""
    positions = torch.arange(input_ids.shape[-1], device=input_ids.device)
    return (positions * (input_ids != pad_token_id)).argmax(-1)


class Gemma2CausalLM(nn.Module):
    """Decoder + tied LM head: the policy, in the form `critic review` runs it."""

    def __init__(self, config: CriticConfig) -> None:
        super().__init__()
        self.config = config
        self.model = Gemma2Model(config)
        self.lm_head = nn.Linear(config.hidden_size, config.vocab_size, bias=False)
        self.lm_head.weight = self.model.embed_tokens.weight

    def forward(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        position_ids: torch.Tensor | None = None,
        cache: KVCache | None = None,
        last_only: bool = False,
    ) -> torch.Tensor:
        """Logits [B, T, V] (or [B, 1, V] with last_only, all decoding needs)."""
        h = self.model(input_ids, attention_mask, position_ids, cache, last_only=last_only).last_hidden_state
        return softcap(self.lm_head(h), self.config.final_logit_softcapping)


class Gemma2RewardModel(nn.Module):
    """Decoder + scalar `score` head read at the last non-pad token: reward/value model."""

    def __init__(self, config: CriticConfig, num_labels: int = 1) -> None:
        super().__init__()
        self.config = config
        self.model = Gemma2Model(config)
        self.score = nn.Linear(config.hidden_size, num_labels, bias=False)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None) -> torch.Tensor:
        """Scores [B, num_labels]; pad with config.pad_token_id."""
        h = self.model(input_ids, attention_mask).last_hidden_state
        last = last_token_indices(input_ids, self.config.pad_token_id)
        return self.score(h[torch.arange(h.shape[0], device=h.device), last])


def init_weights(module: nn.Module, std: float) -> None:
    """Gemma-style init: normal(0, std) matrices, zero norms (identity), zero pad row."""
    if isinstance(module, nn.Linear):
        nn.init.normal_(module.weight, std=std)
    elif isinstance(module, nn.Embedding):
        nn.init.normal_(module.weight, std=std)
        if module.padding_idx is not None:
            with torch.no_grad():
                module.weight[module.padding_idx].zero_()
    elif isinstance(module, RMSNorm):
        nn.init.zeros_(module.weight)
