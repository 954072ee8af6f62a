"""KV cache for Gemma 2's hybrid attention.

Sliding-window layers never look further back than `sliding_window` keys, so they
keep a fixed ring of W slots (keys are cached after RoPE, and masked by absolute
index); global layers keep every key. At length L this stores (L + W) per pair of
layers instead of 2L, a saving that tends to one half.

All rows of a batch advance together (padding is explicit, as in transformers), so
one index counter and one padding mask serve every layer.
"""

from __future__ import annotations

import copy

import torch

from critic.model.config import GLOBAL, CriticConfig


class KVCache:
    # Duck-typed for transformers' generate(): it only asks these of a model-made cache.
    is_compileable = False
    is_croppable = False

    def __init__(self, config: CriticConfig, max_length: int | None = None) -> None:
        self.window = config.sliding_window
        self.is_global = [t == GLOBAL for t in config.layer_types]
        self.max_length = max_length
        self.seen = 0  # tokens already in the cache (including left padding)
        self.valid: torch.Tensor | None = None  # [B, capacity] bool: which past tokens are real
        self.keys: list[torch.Tensor | None] = [None] * config.num_hidden_layers
        self.values: list[torch.Tensor | None] = [None] * config.num_hidden_layers

    @property
    def is_linear(self) -> list[bool]:
        return [False] * len(self.keys)

    def get_seq_length(self, layer_idx: int = 0) -> int:
        return self.seen

    def _capacity(self, needed: int) -> int:
        if self.max_length is not None and needed <= self.max_length:
            return self.max_length
        return max(needed, 2 * (self.valid.shape[1] if self.valid is not None else 0), 64)

    # -- called once per forward, before the layers --------------------------------

    def append_padding_mask(self, new_valid: torch.Tensor) -> None:
        """Record which of the T incoming tokens are real ([B, T] bool)."""
        end = self.seen + new_valid.shape[1]
        self._grow_valid(end, new_valid.shape[0], new_valid.device)
        self.valid[:, self.seen : end] = new_valid

    def _grow_valid(self, end: int, batch: int, device: torch.device) -> None:
        if self.valid is None or self.valid.shape[1] < end:
            grown = torch.zeros(batch, self._capacity(end), dtype=torch.bool, device=device)
            if self.valid is not None:
                grown[:, : self.seen] = self.valid[:, : self.seen]
            self.valid = grown

    def reserve(
        self, extra: int, batch: int, kv_heads: int, head_dim: int, dtype: torch.dtype, device: torch.device
    ) -> None:
        """Allocate room for `extra` more tokens now, so steps that follow write in place.

        Marks those tokens real in `valid` already: only entries below `seen` are ever read.
        """
        end = self.seen + extra
        self._grow_valid(end, batch, device)
        self.valid[:, self.seen : end] = True
        for i in range(len(self.keys)):
            self._allocate(i, batch, kv_heads, head_dim, dtype, device)

    def _allocate(self, i: int, b: int, h: int, d: int, dtype: torch.dtype, device: torch.device) -> None:
        """Layer i's buffers: a ring of W slots, or (global) the capacity of `valid`, keeping `seen`."""
        size = self.valid.shape[1] if self.is_global[i] else self.window
        if self.keys[i] is not None and self.keys[i].shape[2] >= size:
            return
        new_k = torch.zeros(b, h, size, d, dtype=dtype, device=device)
        new_v = torch.zeros_like(new_k)
        if self.keys[i] is not None:  # only global buffers grow
            new_k[:, :, : self.seen] = self.keys[i][:, :, : self.seen]
            new_v[:, :, : self.seen] = self.values[i][:, :, : self.seen]
        self.keys[i], self.values[i] = new_k, new_v

    def key_indices(self, layer_global: bool, t: int) -> torch.Tensor | None:
        """Absolute index of each key the next T queries attend over (-1 = empty slot).

        None means "only the T new keys" (nothing cached yet on this layer type).
        """
        device = self.valid.device
        if layer_global:
            return torch.arange(self.seen + t, device=device)
        slots = torch.arange(self.window, device=device)
        if t == 1:  # write-then-attend: the ring already holds the new key
            last = self.seen
            return last - torch.remainder(last - slots, self.window)
        if self.seen == 0:
            return None
        last = self.seen - 1
        ring = (last - torch.remainder(last - slots, self.window))[: self._ring_filled()]
        return torch.cat([ring, torch.arange(self.seen, self.seen + t, device=device)])

    def _ring_filled(self) -> int:
        """Ring slots written so far: until the ring wraps, slot s holds index s."""
        return min(self.seen, self.window)

    # -- called by each attention layer --------------------------------------------

    def update(self, layer_idx: int, k: torch.Tensor, v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Store this step's keys/values ([B, KVH, T, D]); return those to attend over."""
        # Under autocast, keys leave RoPE in its float32 while values leave v_proj in bfloat16: one
        # buffer dtype for both, the keys'.
        v = v.to(k.dtype)
        if self.is_global[layer_idx]:
            return self._update_global(layer_idx, k, v)
        return self._update_ring(layer_idx, k, v)

    def _update_global(self, i: int, k: torch.Tensor, v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        end = self.seen + k.shape[2]
        b, h, _, d = k.shape
        self._allocate(i, b, h, d, k.dtype, k.device)
        self.keys[i][:, :, self.seen : end] = k
        self.values[i][:, :, self.seen : end] = v
        return self.keys[i][:, :, :end], self.values[i][:, :, :end]

    def _update_ring(self, i: int, k: torch.Tensor, v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        t, w = k.shape[2], self.window
        b, h, _, d = k.shape
        self._allocate(i, b, h, d, k.dtype, k.device)
        ring_k, ring_v = self.keys[i], self.values[i]
        if t == 1:
            slot = self.seen % w
            ring_k[:, :, slot] = k[:, :, 0]
            ring_v[:, :, slot] = v[:, :, 0]
            return ring_k, ring_v
        # Several new tokens: attend over the old ring's written slots plus all of them, then
        # keep the last W.
        if self.seen == 0:
            out_k, out_v = k, v
        else:
            filled = self._ring_filled()
            out_k = torch.cat([ring_k[:, :, :filled], k], dim=2)
            out_v = torch.cat([ring_v[:, :, :filled], v], dim=2)
        keep = min(t, w)
        slots = torch.arange(self.seen + t - keep, self.seen + t, device=k.device) % w
        ring_k[:, :, slots] = k[:, :, t - keep :]
        ring_v[:, :, slots] = v[:, :, t - keep :]
        return out_k, out_v

    # -- called once per forward, after the layers ---------------------------------

    def advance(self, t: int) -> None:
        self.seen += t

    def select_rows(self, index: torch.Tensor) -> KVCache:
        """A new cache of rows `index` of this one (repeats allowed: one prefilled prompt, n samples);
        this one is left untouched."""
        rows = copy.copy(self)
        rows.keys, rows.values = list(self.keys), list(self.values)
        rows.reorder_cache(index)
        return rows

    def reorder_cache(self, beam_idx: torch.Tensor) -> None:
        """Follow beams/rows picked by a search (transformers' beam search calls this)."""
        self.valid = self.valid.index_select(0, beam_idx.to(self.valid.device))
        for i, k in enumerate(self.keys):
            if k is not None:
                self.keys[i] = k.index_select(0, beam_idx.to(k.device))
                self.values[i] = self.values[i].index_select(0, beam_idx.to(k.device))

    def nbytes(self) -> int:
        """Bytes held by keys and values (what the sliding-window ring saves on)."""
        return sum(t.numel() * t.element_size() for t in self.keys + self.values if t is not None)
