"""One-token decode steps for `Gemma2CausalLM`, specialised for inference.

`Gemma2Model.forward` serves every caller (training, TRL, transformers' generate(), prefill)
and rebuilds masks, RoPE tables and per-module projections on each call. At one token per
row on a small model that fixed cost, not arithmetic, is most of a step (each tensor op
costs microseconds however small), so `Decoder` computes the same function in fewer ops:

- masks are made once: the global one is a row over the whole cache, sliced to the current
  length each step (keys still to come are all real); the local ring's changes only when a
  slot that held padding or nothing is first overwritten;
- RoPE cos/sin for every step are computed up front, with `rope()`'s own arithmetic;
- attention runs as plain batched matmuls over views of the cache made once.

Small float32 models (whose copies cost at most `FUSE_LIMIT` bytes) also get their weights
rearranged, as copies (the module's parameters are never touched), kept while the weights
are unchanged:

- q|k|v plus q and k with rows rotated by half a head, in one matmul, so RoPE is one
  multiply and one multiply-add; the attention scale is folded into the q rows;
- gate|up in one matmul; the LM head transposed, with the final soft-cap's 1/cap folded in;
- RMSNorm as LayerNorm: the residual stream is carried as [x, -x], whose mean is zero and
  whose variance is x's mean square, so `layer_norm` of it (one fused CPU kernel, where
  `rms_norm` on CPU is six ops) is [x, -x] / rms(x). The embedding is stored mirrored
  ([E, -E], scaled); o_proj and down_proj write y into half a buffer and -y into the other.

Bigger models, whose matmuls dwarf the per-op cost, run on the modules' own weights.
tests/test_decode.py holds both forms to `Gemma2Model.forward` within float rounding.
"""

from __future__ import annotations

import math
import weakref
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from critic.model.cache import KVCache
from critic.model.config import CriticConfig
from critic.model.gemma2 import Gemma2CausalLM, RMSNorm, rope

# Rearrange weights only while the copies take at most this many bytes (they take about twice
# a small model's own: 16 MB for the tiny preset). They are kept with the model (weakly) for
# the next Decoder. A 36 M model (bench/common.py's cpu-30m: 180 MB of copies) decodes no
# faster fused: its matmuls, not the per-op cost, set its pace.
FUSE_LIMIT = 64 * 2**20


def fused_bytes(config: CriticConfig) -> int:
    """Bytes of the float32 copies the fused form makes."""
    h, d, inter = config.hidden_size, config.head_dim, config.intermediate_size
    n, kv = config.num_attention_heads, config.num_key_value_heads
    layer = (2 * (n + kv) + kv) * d * h + 3 * inter * h + h * n * d
    return 4 * (config.num_hidden_layers * layer + 3 * config.vocab_size * h)


@dataclass
class _Layer:
    norms: list[torch.Tensor]  # (1 + w) of input, post-attention, pre- and post-feedforward norms
    o: torch.Tensor
    down: torch.Tensor
    qkv: torch.Tensor | None = None  # fused form
    gate_up: torch.Tensor | None = None
    q: torch.Tensor | None = None  # plain form
    k: torch.Tensor | None = None
    v: torch.Tensor | None = None
    gate: torch.Tensor | None = None
    up: torch.Tensor | None = None


@dataclass
class _Weights:
    fused: bool
    layers: list[_Layer]
    final_norm: torch.Tensor
    embed: torch.Tensor  # fused: [V, 2H], [E, -E] * sqrt(H)
    lm_head: torch.Tensor  # fused: [H, V], divided by the final soft-cap
    normalizer: torch.Tensor


# Per model, the weights last built for it and the parameter versions they were built from.
_BUILT: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def _rotate_rows(w: torch.Tensor, heads: int) -> torch.Tensor:
    """W with rows permuted and negated so that W' x == rotate_half(W x) in every head."""
    w = w.view(heads, 2, -1, w.shape[-1])
    return torch.cat([-w[:, 1:], w[:, :1]], dim=1).reshape(-1, w.shape[-1])


def _t(w: torch.Tensor) -> torch.Tensor:
    return w.t().contiguous()  # [in, out]: the layout torch.mm runs fastest here


@torch.no_grad()
def _build(model: Gemma2CausalLM, fused: bool, q_scale: float) -> _Weights:
    backbone, config = model.model, model.model.config
    embed = backbone.embed_tokens.weight
    normalizer = torch.tensor(math.sqrt(config.hidden_size), dtype=embed.dtype)

    def norm(n: RMSNorm) -> torch.Tensor:
        weight = 1.0 + n.weight.float()  # RMSNorm scales in float32 whatever the model's dtype
        return torch.cat([weight, weight]) if fused else weight

    layers = []
    for layer in backbone.layers:
        attn, mlp = layer.self_attn, layer.mlp
        q, k, v = attn.q_proj.weight, attn.k_proj.weight, attn.v_proj.weight
        gate, up = mlp.gate_proj.weight, mlp.up_proj.weight
        norms = [
            norm(layer.input_layernorm),
            norm(layer.post_attention_layernorm),
            norm(layer.pre_feedforward_layernorm),
            norm(layer.post_feedforward_layernorm),
        ]
        if fused:  # stored [in, out] for torch.mm: F.linear is several ops more per call
            qs = q * q_scale
            qkv = torch.cat([qs, k, _rotate_rows(qs, attn.n_head), _rotate_rows(k, attn.n_kv_head), v])
            o, down = _t(attn.o_proj.weight), _t(mlp.down_proj.weight)
            layers.append(_Layer(norms, o, down, qkv=_t(qkv), gate_up=_t(torch.cat([gate, up]))))
        else:
            layers.append(
                _Layer(norms, attn.o_proj.weight, mlp.down_proj.weight, q=q, k=k, v=v, gate=gate, up=up)
            )
    lm_head = model.lm_head.weight
    if fused:
        embed = torch.cat([embed * normalizer, embed * -normalizer], dim=1)
        lm_head = (lm_head / (config.final_logit_softcapping or 1.0)).t().contiguous()
    return _Weights(fused, layers, norm(backbone.norm), embed, lm_head, normalizer)


def _weights(model: Gemma2CausalLM, fused: bool, q_scale: float) -> _Weights:
    """`_build`'s result, reused while no parameter has been replaced or changed in place."""
    if not fused:
        return _build(model, fused, q_scale)  # views of the parameters: nothing to keep
    try:
        versions = tuple((p.data_ptr(), p._version) for p in model.parameters())
    except RuntimeError:  # parameters made under inference_mode keep no version: build afresh
        return _build(model, fused, q_scale)
    kept = _BUILT.get(model)
    if kept is not None and kept[0] == versions:
        return kept[1]
    weights = _build(model, fused, q_scale)
    _BUILT[model] = (versions, weights)
    return weights


class Decoder:
    """Feeds one token per row to `model` over `cache`, at most `steps` times (inference only).

    `positions` [B, 1] holds each row's position for the first token fed. Fed tokens count
    as real (not padding), as in `Gemma2Model.forward` without an attention mask. The cache
    is updated in place and stays usable by `Gemma2Model.forward` after any step.
    """

    def __init__(
        self,
        model: Gemma2CausalLM,
        cache: KVCache,
        positions: torch.Tensor,
        steps: int,
        fuse: bool | None = None,
    ) -> None:
        config = model.model.config  # a CriticConfig, also under the Hugging Face wrapper
        dtype, device = model.lm_head.weight.dtype, model.lm_head.weight.device
        self.cache, self.steps, self.done = cache, steps, 0
        b = self.batch = positions.shape[0]
        self.n_head, self.n_kv, self.head_dim = (
            config.num_attention_heads,
            config.num_key_value_heads,
            config.head_dim,
        )
        self.hidden, self.eps = config.hidden_size, config.rms_norm_eps
        self.attn_cap, self.final_cap = config.attn_logit_softcapping, config.final_logit_softcapping
        scaling = config.query_pre_attn_scalar**-0.5
        self.q_scale = scaling if self.attn_cap is None else scaling / self.attn_cap
        self.float32 = dtype == torch.float32
        if fuse is None:
            fuse = self.float32 and fused_bytes(config) <= FUSE_LIMIT
        self.fused = fuse
        self.w = _weights(model, fuse, self.q_scale)
        if fuse:  # o_proj and down_proj write x into one half of this, -x into the other
            self.mirror = torch.empty(b, 2 * self.hidden, dtype=dtype, device=device)
            self.halves = self.mirror[:, : self.hidden], self.mirror[:, self.hidden :]
            self.split = (self.n_head + self.n_kv, self.n_head + self.n_kv, self.n_kv)
            self.inter, self.bk, self.group = (
                config.intermediate_size,
                b * self.n_kv,
                self.n_head // self.n_kv,
            )
            self.final_cap_t = torch.tensor(self.final_cap or 1.0, dtype=dtype, device=device)
        self.is_global = cache.is_global

        cache.reserve(steps, b, self.n_kv, self.head_dim, dtype, device)
        # Batched-matmul views of the cache, made once: keys as [B * KVH, D, S], values as [B * KVH, S, D].
        self.keys_t = [k.view(b * self.n_kv, k.shape[2], -1).transpose(1, 2) for k in cache.keys]
        self.values = [v.view(b * self.n_kv, v.shape[2], -1) for v in cache.values]
        self.plan = list(
            zip(
                self.w.layers, cache.keys, cache.values, self.keys_t, self.values, self.is_global, strict=True
            )
        )
        table = positions[:, 0][None] + torch.arange(steps, device=device)[:, None]
        cos, sin = rope(table, self.head_dim, config.rope_theta, dtype)
        self.cos, self.sin = cos[:, :, None], sin[:, :, None]  # [steps, B, 1, D]

        # Additive masks as [B * KVH, 1, S], to broadcast over the scores of each query group.
        neg = torch.finfo(dtype).min
        zero = torch.zeros((), dtype=dtype, device=device)

        def per_group(allowed: torch.Tensor) -> torch.Tensor:
            mask = torch.where(allowed, zero, neg)
            return mask.repeat_interleave(self.n_kv, dim=0)[:, None]

        self.global_mask = per_group(cache.valid)  # over the whole capacity
        w, start = cache.window, cache.seen
        if start:
            last = start - 1
            index = last - torch.remainder(last - torch.arange(w, device=device), w)  # key in each slot
            filled = (index >= 0) & cache.valid[:, index.clamp(min=0)]
        else:
            filled = torch.zeros(b, w, dtype=torch.bool, device=device)
        self.local_mask = per_group(filled)  # over the ring's slots
        # Steps whose ring slot held padding or nothing in some row: that slot opens then.
        first = (torch.arange(min(steps, w), device=device) + start) % w
        self.opens = (~filled[:, first]).any(0).tolist()

    def step(self, tokens: torch.Tensor) -> torch.Tensor:
        """Feed `tokens` [B]; return the next logits [B, V], soft-capped."""
        j = self.done
        if j == self.steps:
            raise RuntimeError(f"this Decoder was sized for {self.steps} steps")
        cache = self.cache
        index = cache.seen
        slot = index % cache.window
        if j < len(self.opens) and self.opens[j]:
            self.local_mask[:, :, slot] = 0
        logits = (self._fused if self.fused else self._plain)(tokens, j, index, slot)
        self.done += 1
        cache.seen += 1
        return logits

    def _attend(self, i: int, qk: torch.Tensor, v: torch.Tensor, index: int, at: int, mask) -> torch.Tensor:
        """Store layer i's new key (qk's last KVH heads) and value at `at`; attention output [B, H * D]."""
        b, kv, nh = self.batch, self.n_kv, self.n_head
        self.cache.keys[i][:, :, at] = qk[:, nh:]
        self.cache.values[i][:, :, at] = v
        keys_t, values = self.keys_t[i], self.values[i]
        if self.is_global[i]:
            keys_t, values = keys_t[:, :, : index + 1], values[:, : index + 1]
        scores = torch.bmm(qk[:, :nh].reshape(b * kv, nh // kv, -1), keys_t)
        if self.attn_cap is None:
            scores = scores + mask
        else:  # the cap's 1/cap is in q already
            scores = torch.add(mask, scores.tanh_(), alpha=self.attn_cap)
        if self.float32:
            probs = torch.softmax(scores, -1)
        else:
            probs = torch.softmax(scores, -1, dtype=torch.float32).to(v.dtype)
        return torch.bmm(probs, values).view(b, -1)

    def _fused(self, tokens: torch.Tensor, j: int, index: int, slot: int) -> torch.Tensor:
        """The step on rearranged weights, every op spelled out (each one costs microseconds):
        the stream x is [x, -x] (see the module docstring)."""
        w, eps, hidden, b, nh = self.w, self.eps, self.hidden, self.batch, self.n_head
        shape, sizes, cap = (2 * hidden,), self.split, self.attn_cap
        cos, sin = self.cos[j], self.sin[j]
        end = index + 1
        global_mask, local_mask = self.global_mask[:, :, :end], self.local_mask
        first, second, mirror = *self.halves, self.mirror
        x = w.embed.index_select(0, tokens)
        for layer, keys, values, keys_t, values_b, is_global in self.plan:
            h = torch.layer_norm(x, shape, layer.norms[0], None, eps)
            plain, rotated, v = torch.mm(h[:, :hidden], layer.qkv).view(b, -1, self.head_dim).split(sizes, 1)
            qk = torch.addcmul(plain * cos, rotated, sin)
            at = index if is_global else slot
            keys[:, :, at] = qk[:, nh:]
            values[:, :, at] = v
            if is_global:
                keys_t, values_b, mask = keys_t[:, :, :end], values_b[:, :end], global_mask
            else:
                mask = local_mask
            scores = torch.bmm(qk[:, :nh].reshape(self.bk, self.group, -1), keys_t)
            scores = scores.add_(mask) if cap is None else torch.add(mask, scores.tanh_(), alpha=cap)
            torch.mm(torch.bmm(torch.softmax(scores, -1), values_b).view(b, -1), layer.o, out=first)
            torch.neg(first, out=second)
            x.add_(torch.layer_norm(mirror, shape, layer.norms[1], None, eps))
            h = torch.layer_norm(x, shape, layer.norms[2], None, eps)
            gate_up = torch.mm(h[:, :hidden], layer.gate_up)
            gate, up = gate_up.split(self.inter, 1)
            torch.mm(F.gelu(gate, approximate="tanh").mul_(up), layer.down, out=first)
            torch.neg(first, out=second)
            x.add_(torch.layer_norm(mirror, shape, layer.norms[3], None, eps))
        h = torch.layer_norm(x, shape, w.final_norm, None, eps)
        logits = torch.mm(h[:, :hidden], w.lm_head)  # 1/cap is in the head already
        return logits if self.final_cap is None else logits.tanh_().mul_(self.final_cap_t)

    def _plain(self, tokens: torch.Tensor, j: int, index: int, slot: int) -> torch.Tensor:
        """The step on the modules' own weights."""
        w, b, d = self.w, self.batch, self.head_dim
        cos, sin = self.cos[j], self.sin[j]
        global_mask = self.global_mask[:, :, : index + 1]
        x = F.embedding(tokens, w.embed) * w.normalizer
        for i, layer in enumerate(w.layers):
            h = self._rms_norm(x, layer.norms[0])
            q = F.linear(h, layer.q) * self.q_scale
            qk = torch.cat([q, F.linear(h, layer.k)], dim=-1).view(b, -1, d)
            rotated = torch.cat([-qk[..., d // 2 :], qk[..., : d // 2]], dim=-1)
            qk = qk * cos + rotated * sin
            v = F.linear(h, layer.v).view(b, self.n_kv, d)
            is_global = self.is_global[i]
            out = self._attend(
                i, qk, v, index, index if is_global else slot, global_mask if is_global else self.local_mask
            )
            x = x + self._rms_norm(F.linear(out, layer.o), layer.norms[1])
            h = self._rms_norm(x, layer.norms[2])
            y = F.linear(
                F.gelu(F.linear(h, layer.gate), approximate="tanh") * F.linear(h, layer.up), layer.down
            )
            x = x + self._rms_norm(y, layer.norms[3])
        logits = F.linear(self._rms_norm(x, w.final_norm), w.lm_head)
        cap = self.final_cap
        return logits if cap is None else logits.div_(cap).tanh_().mul_(cap)

    def _rms_norm(self, x: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
        if self.float32:
            return F.rms_norm(x, weight.shape, weight, self.eps)
        return F.rms_norm(x.float(), weight.shape, weight, self.eps).to(x.dtype)  # as RMSNorm does
