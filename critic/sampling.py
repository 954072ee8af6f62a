"""Batched sampling over the plain model's KV cache (gpt-fast style).

Three small functions keep the hot loop obvious: `prefill` runs the prompts once,
`decode_one_token` feeds one token per row, `generate` loops until every row has
stopped. Prompts are left-padded so all rows decode in lock-step.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from critic.model import Gemma2CausalLM, KVCache


def left_pad(prompts: Sequence[Sequence[int]], pad_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    width = max(len(p) for p in prompts)
    ids = torch.full((len(prompts), width), pad_id, dtype=torch.long)
    mask = torch.zeros_like(ids)
    for row, prompt in enumerate(prompts):
        if prompt:
            ids[row, width - len(prompt) :] = torch.tensor(prompt)
            mask[row, width - len(prompt) :] = 1
    return ids, mask


def sample_next(logits: torch.Tensor, temperature: float, generator: torch.Generator | None) -> torch.Tensor:
    """[B, V] logits -> [B] token ids; temperature 0 is greedy."""
    if temperature <= 0:
        return logits.argmax(-1)
    probs = torch.softmax(logits.float() / temperature, dim=-1)
    return torch.multinomial(probs, 1, generator=generator).squeeze(-1)


def prefill(model: Gemma2CausalLM, ids, mask, cache: KVCache) -> tuple[torch.Tensor, torch.Tensor]:
    """Run the prompts; return last-position logits and each row's next position."""
    positions = (mask.cumsum(-1) - 1).clamp(min=0)
    logits = model(ids, mask, positions, cache, last_only=True)
    return logits[:, -1], positions[:, -1:] + 1


def decode_one_token(model: Gemma2CausalLM, token, position, cache: KVCache) -> torch.Tensor:
    return model(token[:, None], None, position, cache, last_only=True)[:, -1]


@torch.inference_mode()
def generate(
    model: Gemma2CausalLM,
    prompts: Sequence[Sequence[int]],
    max_new_tokens: int,
    stop_ids: Sequence[int] = (),
    temperature: float = 0.0,
    seed: int | None = None,
) -> list[list[int]]:
    """New tokens for each prompt, cut after the first stop id (which is kept)."""
    pad = model.config.pad_token_id
    device = model.lm_head.weight.device
    ids, mask = (t.to(device) for t in left_pad(prompts, pad))
    generator = torch.Generator(device).manual_seed(seed) if seed is not None else None
    cache = KVCache(model.config, max_length=ids.shape[1] + max_new_tokens)
    logits, position = prefill(model, ids, mask, cache)
    stops = torch.tensor(list(stop_ids), dtype=torch.long, device=device)
    done = torch.zeros(len(prompts), dtype=torch.bool, device=device)
    out = []
    for step in range(max_new_tokens):
        token = sample_next(logits, temperature, generator)
        token = torch.where(done, pad, token)  # finished rows keep feeding pad
        out.append(token)
        done |= torch.isin(token, stops)
        if done.all() or step == max_new_tokens - 1:
            break
        logits = decode_one_token(model, token, position, cache)
        position = position + 1
    tokens = torch.stack(out, dim=1).tolist() if out else [[] for _ in prompts]
    result = []
    for row in tokens:
        cut = next((i + 1 for i, t in enumerate(row) if t in set(stop_ids)), len(row))
        result.append(row[:cut])
    return result
