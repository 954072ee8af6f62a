"""Our Gemma 2 against transformers' eager Gemma2 with the same random weights (float32)."""

from __future__ import annotations

import pytest
import torch
from conftest import randomize_, stress_config
from transformers import Gemma2ForCausalLM, Gemma2ForSequenceClassification

from critic.model import (
    CriticForCausalLM,
    CriticForSequenceClassification,
    Gemma2CausalLM,
    KVCache,
    to_hf_config,
)

TOL = 1e-4


def pair(config, seed: int = 0):
    """(transformers reference, our HF wrapper, our plain model) sharing one set of weights."""
    torch.manual_seed(seed)
    ref = randomize_(Gemma2ForCausalLM(to_hf_config(config, attn_implementation="eager")), seed).eval()
    ours = CriticForCausalLM(to_hf_config(config)).eval()
    ours.load_state_dict(ref.state_dict(), strict=True)
    plain = Gemma2CausalLM(config).eval()
    plain.load_state_dict(ref.state_dict(), strict=True)
    return ref, ours, plain


def left_padded(batch: int, length: int, vocab: int, pads: list[int], seed: int = 0):
    gen = torch.Generator().manual_seed(seed)
    ids = torch.randint(3, vocab, (batch, length), generator=gen)
    mask = torch.ones_like(ids)
    for row, n in enumerate(pads):
        ids[row, :n] = 0
        mask[row, :n] = 0
    return ids, mask


def max_diff(a: torch.Tensor, b: torch.Tensor, mask: torch.Tensor | None = None) -> float:
    d = (a - b).abs()
    return (d[mask.bool()] if mask is not None else d).max().item()


@pytest.mark.parametrize("length", [7, 8, 9, 25])  # window edges W-1, W, W+1 and 3W+1 (W=8)
def test_forward_matches_transformers(config, length):
    ref, ours, plain = pair(config)
    ids, _ = left_padded(2, length, config.vocab_size, [0, 0])
    with torch.no_grad():
        expected = ref(input_ids=ids).logits
        assert max_diff(ours(input_ids=ids).logits, expected) <= TOL
        assert max_diff(plain(ids), expected) <= TOL
    # The caps must actually bend the logits, or the test would not see a missing tanh.
    assert expected.abs().max() > 0.5 * config.final_logit_softcapping


def test_left_padded_batch_matches_transformers(config):
    ref, ours, plain = pair(config, seed=1)
    ids, mask = left_padded(3, 21, config.vocab_size, [0, 5, 12])
    positions = (mask.cumsum(-1) - 1).clamp(min=0)
    with torch.no_grad():
        expected = ref(input_ids=ids, attention_mask=mask, position_ids=positions).logits
        got = ours(input_ids=ids, attention_mask=mask, position_ids=positions).logits
        got_plain = plain(ids, mask, positions)
        # Without explicit positions both count from the first (padded) slot.
        expected_np = ref(input_ids=ids, attention_mask=mask).logits
        got_np = ours(input_ids=ids, attention_mask=mask).logits
    assert max_diff(got, expected, mask) <= TOL
    assert max_diff(got_plain, expected, mask) <= TOL
    assert max_diff(got_np, expected_np, mask) <= TOL


def test_all_global_and_all_local_layer_patterns():
    for types in (["full_attention"] * 3, ["sliding_attention"] * 3):
        config = stress_config(num_hidden_layers=3, layer_types=types)
        ref, ours, _ = pair(config, seed=2)
        ids, _ = left_padded(1, 20, config.vocab_size, [0])
        with torch.no_grad():
            assert max_diff(ours(input_ids=ids).logits, ref(input_ids=ids).logits) <= TOL


@pytest.mark.parametrize("prefill", [1, 5, 8, 13])
def test_incremental_decoding_matches_full_forward(config, prefill):
    """Token-by-token with the ring cache, far past the window, equals one full pass."""
    ref, _, plain = pair(config, seed=3)
    ids, mask = left_padded(2, 40, config.vocab_size, [0, 3])
    positions = (mask.cumsum(-1) - 1).clamp(min=0)
    with torch.no_grad():
        expected = ref(input_ids=ids, attention_mask=mask, position_ids=positions).logits
        cache = KVCache(config)
        steps = [plain(ids[:, :prefill], mask[:, :prefill], positions[:, :prefill], cache)]
        for t in range(prefill, ids.shape[1]):
            steps.append(plain(ids[:, t : t + 1], mask[:, : t + 1], positions[:, t : t + 1], cache))
    got = torch.cat(steps, dim=1)
    assert max_diff(got, expected, mask) <= TOL
    # Local layers hold exactly W slots however long the sequence.
    local = [k for k, g in zip(cache.keys, cache.is_global, strict=True) if not g]
    assert all(k.shape[2] == config.sliding_window for k in local)


def test_chunked_prefill_matches_full_forward(config):
    """Several tokens at a time on a non-empty cache (attend over ring + chunk)."""
    ref, _, plain = pair(config, seed=4)
    ids, _ = left_padded(2, 37, config.vocab_size, [0, 0])
    with torch.no_grad():
        expected = ref(input_ids=ids).logits
        cache = KVCache(config)
        chunks = [plain(ids[:, s : s + 6], cache=cache) for s in range(0, 37, 6)]
    assert max_diff(torch.cat(chunks, dim=1), expected) <= TOL


def test_hf_wrapper_cache_through_forward(config):
    _, ours, plain = pair(config, seed=5)
    ids, _ = left_padded(1, 30, config.vocab_size, [0])
    with torch.no_grad():
        full = plain(ids)
        out = ours(input_ids=ids[:, :20], use_cache=True)
        nxt = ours(input_ids=ids[:, 20:], cache=out.cache, use_cache=True)
    assert out.cache.get_seq_length() == 30
    assert max_diff(torch.cat([out.logits, nxt.logits], 1), full) <= TOL


@pytest.mark.parametrize("batch_pads", [[0], [0, 4, 9]])
def test_greedy_generate_matches_transformers(config, batch_pads):
    ref, ours, _ = pair(config, seed=6)
    ids, mask = left_padded(len(batch_pads), 12, config.vocab_size, batch_pads)
    kwargs = dict(attention_mask=mask, max_new_tokens=32, do_sample=False, pad_token_id=0, eos_token_id=None)
    expected = ref.generate(ids, **kwargs)
    got = ours.generate(ids, **kwargs)
    assert got.shape == (len(batch_pads), 12 + 32)  # 12 + 32 > 5W: decoding wraps the ring several times
    assert torch.equal(got, expected)


def test_sampling_generate_matches_transformers_with_same_seed(config):
    ref, ours, _ = pair(config, seed=7)
    ids, mask = left_padded(2, 10, config.vocab_size, [0, 2])
    kwargs = dict(attention_mask=mask, max_new_tokens=20, do_sample=True, top_k=0, temperature=1.0)
    torch.manual_seed(123)
    expected = ref.generate(ids, pad_token_id=0, eos_token_id=None, **kwargs)
    torch.manual_seed(123)
    got = ours.generate(ids, pad_token_id=0, eos_token_id=None, **kwargs)
    assert torch.equal(got, expected)


def test_sequence_classification_matches_transformers(config):
    torch.manual_seed(0)
    hf_config = to_hf_config(config, num_labels=1, attn_implementation="eager")
    ref = randomize_(Gemma2ForSequenceClassification(hf_config), seed=8).eval()
    ours = CriticForSequenceClassification(to_hf_config(config, num_labels=1)).eval()
    ours.load_state_dict(ref.state_dict(), strict=True)
    ids, mask = left_padded(3, 15, config.vocab_size, [0, 4, 9])
    right = torch.stack([torch.roll(r, -int((r == 0).sum())) for r in ids])  # same rows, right-padded
    with torch.no_grad():
        for batch in (ids, right):
            expected = ref(input_ids=batch, attention_mask=(batch != 0).long()).logits
            got = ours(input_ids=batch, attention_mask=(batch != 0).long()).logits
            assert got.shape == (3, 1)
            assert max_diff(got, expected) <= TOL
