"""Batched sampling over the plain model's KV cache (gpt-fast style).

A decoding state (`Rows`) is built by `start` (prefill left-padded prompts), can be copied row-wise
with `select` (one prompt prefilled once, then shared by n samples), grown with `extend` (feed each
row its own suffix: FSBS's critique-so-far plus a forced fence) and run by `sample` until every row
has stopped. `generate` is the one-call form for plain prompts.

Every row of a batch advances in lock-step; a row's padding, wherever it sits, is masked by the cache,
and positions count real tokens only, so a padded row computes exactly what it would alone. (Short of
one case: padding inside a row, from `extend`'s uneven suffixes, takes slots of the local layers'
window, which counts every token, so such a row's local layers see that many fewer real keys once
the row is longer than `sliding_window`.)

Prefill runs the general `Gemma2Model.forward` in chunks; `sample`'s decode steps run
`critic.model.decode.Decoder`, the same function specialised for one token per row.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch

from critic.inference.quoting import QuoteConstraint, constrain
from critic.model import Gemma2CausalLM, KVCache
from critic.model.decode import Decoder
from critic.model.gemma2 import Gemma2Model, softcap


def left_pad(prompts: Sequence[Sequence[int]], pad_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    width = max(len(p) for p in prompts)
    ids = torch.full((len(prompts), width), pad_id, dtype=torch.long)
    mask = torch.zeros_like(ids)
    for row, prompt in enumerate(prompts):
        if prompt:
            ids[row, width - len(prompt) :] = torch.tensor(prompt)
            mask[row, width - len(prompt) :] = 1
    return ids, mask


# One generator for the batch, or one per row: then a row's random draws depend only on its own
# stream, never on which other rows share its batch (FSBS keys each chunk's streams by the chunk).
Generators = torch.Generator | Sequence[torch.Generator] | None


def sample_next(logits: torch.Tensor, temperature: float, generator: Generators) -> torch.Tensor:
    """[B, V] logits -> [B] token ids; temperature 0 is greedy.

    Sampling inverts each row's CDF at one uniform draw: exact, one random number per row (so a
    generator per row costs little) and vectorised, where torch.multinomial costs milliseconds a
    call on CPU.
    """
    if temperature <= 0:
        return _argmax(logits)
    b = logits.shape[0]
    if generator is None or isinstance(generator, torch.Generator):
        u = torch.rand(b, 1, generator=generator, device=logits.device)
    else:
        u = torch.cat([torch.rand(1, generator=g, device=logits.device) for g in generator])[:, None]
    cdf = torch.softmax(logits.float() / temperature, dim=-1).cumsum_(-1)
    # right=True: the first token whose cumulative probability exceeds the draw, so a token of
    # probability 0 is never chosen.
    token = torch.searchsorted(cdf, u * cdf[:, -1:], right=True).squeeze(-1)
    return token.clamp_(max=logits.shape[-1] - 1)


def _argmax(logits: torch.Tensor, block: int = 128) -> torch.Tensor:
    """`logits.argmax(-1)` (the first of equal maxima) for [B, V], in two vectorised passes:
    the best block by its max, then the best within it. On CPU argmax is a scalar loop (60 us
    at [4, 8192] against 20 us this way)."""
    b, v = logits.shape
    if v % block or logits.device.type != "cpu":
        return logits.argmax(-1)
    blocks = logits.view(b, v // block, block)
    best = blocks.amax(-1).argmax(-1)
    return best * block + blocks[torch.arange(b, device=logits.device), best].argmax(-1)


@dataclass
class Rows:
    """Decoding state of a batch: its cache, each row's next position and last hidden state."""

    cache: KVCache
    position: torch.Tensor  # [B, 1] position of each row's next token
    hidden: torch.Tensor  # [B, H] final (normed) hidden state at each row's last token

    def __len__(self) -> int:
        return self.hidden.shape[0]


def _backbone(model: Gemma2CausalLM | Gemma2Model) -> Gemma2Model:
    return model.model if hasattr(model, "model") else model


# Tokens per forward when prefilling: a later chunk's queries skip the scores of keys they
# cannot see (causal), and the score matrices stay cache-sized. Measured on CPU (tiny and a
# 36 M model, batch 1 to 8): 256 is best or within noise of it.
PREFILL_CHUNK = 256


def _prefill(backbone: Gemma2Model, ids, mask, positions, cache: KVCache) -> torch.Tensor:
    """Feed [B, T] tokens in chunks; the final hidden state at the last position, [B, H]."""
    if not ids.shape[1]:
        raise ValueError("nothing to prefill: every prompt is empty")
    for s in range(0, ids.shape[1], PREFILL_CHUNK):
        chunk = slice(s, s + PREFILL_CHUNK)
        out = backbone(ids[:, chunk], mask[:, chunk], positions[:, chunk], cache, last_only=True)
    return out.last_hidden_state[:, -1]


@torch.inference_mode()
def start(model, prompts: Sequence[Sequence[int]], max_length: int | None = None) -> Rows:
    """Prefill `prompts` (left-padded); `max_length` sizes the cache for what will follow."""
    backbone = _backbone(model)
    device = backbone.embed_tokens.weight.device
    ids, mask = (t.to(device) for t in left_pad(prompts, backbone.config.pad_token_id))
    cache = KVCache(backbone.config, max_length=max(max_length or 0, ids.shape[1]))
    positions = (mask.cumsum(-1) - 1).clamp(min=0)
    h = _prefill(backbone, ids, mask, positions, cache)
    return Rows(cache, positions[:, -1:] + 1, h)


@torch.inference_mode()
def select(rows: Rows, index: Sequence[int] | torch.Tensor) -> Rows:
    """A new state made of rows `index` of `rows` (repeats allowed); `rows` is left untouched."""
    index = torch.as_tensor(index, dtype=torch.long, device=rows.hidden.device)
    return Rows(rows.cache.select_rows(index), rows.position[index], rows.hidden[index])


@torch.inference_mode()
def extend(model, rows: Rows, suffixes: Sequence[Sequence[int]]) -> Rows:
    """Feed each row its own suffix (in place); empty suffixes are allowed."""
    if len(suffixes) != len(rows):
        raise ValueError(f"{len(suffixes)} suffixes for {len(rows)} rows")
    if not any(suffixes):
        return rows
    backbone = _backbone(model)
    ids, mask = (t.to(rows.hidden.device) for t in left_pad(suffixes, backbone.config.pad_token_id))
    positions = rows.position + (mask.cumsum(-1) - 1).clamp(min=0)
    h = _prefill(backbone, ids, mask, positions, rows.cache)
    fed = mask.any(-1)
    rows.hidden = torch.where(fed[:, None], h, rows.hidden)
    rows.position = rows.position + mask.sum(-1, keepdim=True)
    return rows


def logits_of(model: Gemma2CausalLM, hidden: torch.Tensor) -> torch.Tensor:
    return softcap(model.lm_head(hidden), model.config.final_logit_softcapping)


@torch.inference_mode()
def sample(
    model: Gemma2CausalLM,
    rows: Rows,
    max_new_tokens: int,
    stop_ids: Sequence[int] = (),
    temperature: float = 0.0,
    generator: Generators = None,
    constraints: Sequence[QuoteConstraint | None] | None = None,
) -> list[list[int]]:
    """New tokens for each row, cut after the first stop id (which is kept). Consumes `rows`.

    constraints: per row, a quote constraint (critic.inference.quoting) that masks the tokens it forbids."""
    pad = model.config.pad_token_id
    device = rows.hidden.device
    stops = torch.tensor(list(stop_ids), dtype=torch.long, device=device)
    done = torch.zeros(len(rows), dtype=torch.bool, device=device)
    logits = logits_of(model, rows.hidden)
    # The first token comes from the prefilled state; each later one costs a decode step.
    decoder = Decoder(model, rows.cache, rows.position, max_new_tokens - 1) if max_new_tokens > 1 else None
    # Whether every row has stopped is a host sync: on an accelerator, ask only now and then.
    check_every = 1 if device.type == "cpu" else 8
    out = []
    for step in range(max_new_tokens):
        if constraints is not None:
            logits = constrain(logits, constraints)
        token = sample_next(logits, temperature, generator)
        if len(stops):
            token = torch.where(done, pad, token)  # finished rows keep feeding pad
            done |= torch.isin(token, stops)
        if constraints is not None:
            for row, t in enumerate(token.tolist()):
                if constraints[row] is not None and constraints[row].active:
                    constraints[row].advance(t)
        out.append(token)
        if step == max_new_tokens - 1 or (len(stops) and step % check_every == 0 and done.all()):
            break
        logits = decoder.step(token)
    tokens = torch.stack(out, dim=1).tolist() if out else [[] for _ in range(len(rows))]
    stop_set = set(stop_ids)
    result = []
    for row in tokens:
        cut = next((i + 1 for i, t in enumerate(row) if t in stop_set), len(row))
        result.append(row[:cut])
    return result


def generate(
    model: Gemma2CausalLM,
    prompts: Sequence[Sequence[int]],
    max_new_tokens: int,
    stop_ids: Sequence[int] = (),
    temperature: float = 0.0,
    seed: int | None = None,
    constraints: Sequence[QuoteConstraint | None] | None = None,
) -> list[list[int]]:
    """New tokens for each prompt, cut after the first stop id (which is kept)."""
    device = model.lm_head.weight.device
    generator = torch.Generator(device).manual_seed(seed) if seed is not None else None
    rows = start(model, prompts, max_length=max(len(p) for p in prompts) + max_new_tokens)
    return sample(model, rows, max_new_tokens, stop_ids, temperature, generator, constraints)
