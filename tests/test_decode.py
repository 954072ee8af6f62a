"""The one-token decode path (critic.model.decode) against the general forward, and the
sampling state operations (select / extend) against plain prompts."""

from __future__ import annotations

import pytest
import torch
from conftest import randomize_, stress_config

from critic.inference import sampling
from critic.inference.sampling import _argmax, extend, generate, left_pad, sample, select, start
from critic.model import CriticConfig, CriticForCausalLM, KVCache, new_causal_lm, to_hf_config
from critic.model.decode import FUSE_LIMIT, Decoder, fused_bytes

PROMPTS = [[5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15], [40, 41], [90, 91, 92, 93, 94, 95]]
STEPS = 40  # 5 windows of 8: the local ring wraps several times


def model_for(config: CriticConfig, seed: int = 1):
    return randomize_(new_causal_lm(config, seed=0), seed).eval()


@torch.inference_mode()
def decode_both(model, rows_fast, rows_slow, steps: int, fuse: bool, seed: int = 1):
    """Logits per step from Decoder and from Gemma2CausalLM.forward, fed the same tokens."""
    decoder = Decoder(model, rows_fast.cache, rows_fast.position, steps, fuse=fuse)
    position, gen = rows_slow.position, torch.Generator().manual_seed(seed)
    fast, slow = [], []
    for _ in range(steps):
        token = torch.randint(3, model.config.vocab_size, (len(rows_fast),), generator=gen)
        fast.append(decoder.step(token))
        slow.append(model(token[:, None], None, position, rows_slow.cache, last_only=True)[:, -1])
        position = position + 1
    return torch.stack(fast), torch.stack(slow)


def assert_close(got: torch.Tensor, expected: torch.Tensor, tol: float = 1e-5) -> None:
    """Within `tol` of the logits' scale (uncapped logits reach ~15 here)."""
    scale = max(1.0, expected.abs().max().item())
    assert (got - expected).abs().max().item() <= tol * scale


CONFIGS = {
    "stress": {},
    "no caps": dict(attn_logit_softcapping=None, final_logit_softcapping=None),
    "all global": dict(num_hidden_layers=3, layer_types=["full_attention"] * 3),
    "all local": dict(num_hidden_layers=3, layer_types=["sliding_attention"] * 3),
    "mha": dict(num_key_value_heads=4),
}


@pytest.mark.parametrize("fuse", [True, False], ids=["fused", "plain"])
@pytest.mark.parametrize("name", list(CONFIGS))
def test_decoder_matches_general_forward(name, fuse):
    """Left-padded rows, prompts and decode longer than the window, every layer pattern."""
    model = model_for(stress_config(**CONFIGS[name]))
    with torch.inference_mode():
        fast, slow = decode_both(model, start(model, PROMPTS), start(model, PROMPTS), STEPS, fuse)
    assert_close(fast, slow)


@pytest.mark.parametrize("fuse", [True, False], ids=["fused", "plain"])
def test_decoder_after_extend_and_select(fuse):
    """Padding in the middle of rows (uneven suffixes), repeated rows, a cache grown past its size."""
    model = model_for(stress_config(), seed=2)
    with torch.inference_mode():
        states = []
        for _ in range(2):
            rows = start(model, PROMPTS, max_length=12)
            rows = extend(model, select(rows, [0, 1, 1, 2]), [[20, 21, 22], [], [23], [24, 25, 26, 27, 28]])
            states.append(rows)
        fast, slow = decode_both(model, *states, STEPS, fuse)
    assert_close(fast, slow)


@pytest.mark.parametrize("fuse", [True, False], ids=["fused", "plain"])
def test_cache_stays_valid_for_the_general_forward(fuse):
    """Decode some steps fast, then go on with Gemma2Model.forward (several tokens at once)."""
    model = model_for(stress_config(), seed=3)
    suffix = torch.tensor([[30, 31, 32]] * 3)
    with torch.inference_mode():
        rows_fast, rows_slow = start(model, PROMPTS), start(model, PROMPTS)
        decode_both(model, rows_fast, rows_slow, 10, fuse)
        after = []
        for rows in (rows_fast, rows_slow):
            positions = rows.position + 10 + torch.arange(3)
            after.append(model(suffix, None, positions, rows.cache))
    assert rows_fast.cache.seen == rows_slow.cache.seen
    assert_close(after[0], after[1])


def test_decoder_in_bfloat16_is_as_accurate_as_the_general_forward():
    """Rounding differs in bfloat16, so judge both against the float32 model."""
    exact = model_for(stress_config(), seed=4)
    model = model_for(stress_config(), seed=4).to(torch.bfloat16)
    with torch.inference_mode():
        reference, _ = decode_both(exact, start(exact, PROMPTS), start(exact, PROMPTS), 12, fuse=False)
        fast, slow = decode_both(model, start(model, PROMPTS), start(model, PROMPTS), 12, fuse=None)
    assert fast.dtype == torch.bfloat16
    fast_error, slow_error = ((x.float() - reference).abs().mean().item() for x in (fast, slow))
    assert fast_error <= 1.25 * slow_error


def test_decoder_refuses_steps_beyond_its_size():
    model = model_for(stress_config())
    with torch.inference_mode():
        rows = start(model, PROMPTS)
        decoder = Decoder(model, rows.cache, rows.position, 1)
        decoder.step(torch.tensor([3, 4, 5]))
        with pytest.raises(RuntimeError, match="sized for 1 steps"):
            decoder.step(torch.tensor([3, 4, 5]))


def test_fusing_is_for_small_models_only():
    assert fused_bytes(CriticConfig.from_preset("tiny")) <= FUSE_LIMIT
    assert fused_bytes(CriticConfig.from_preset("gemma-2-2b")) > FUSE_LIMIT
    with torch.inference_mode():
        for dtype, fused in ((torch.float32, True), (torch.bfloat16, False)):
            model = model_for(stress_config()).to(dtype)
            rows = start(model, PROMPTS)
            assert Decoder(model, rows.cache, rows.position, 2).fused == fused


def test_select_then_sample_equals_generate_per_prompt():
    model = model_for(stress_config(), seed=5)
    rows = start(model, PROMPTS, max_length=40)
    got = sample(model, select(rows, [2, 0, 2, 1]), 25)
    alone = [generate(model, [p], 25)[0] for p in PROMPTS]
    assert got == [alone[2], alone[0], alone[2], alone[1]]
    assert sample(model, rows, 25) == alone  # select left `rows` as it was


def test_extend_then_sample_equals_generate_on_joined_prompts():
    # Padding in mid-row (an empty suffix) takes ring slots by absolute index, so a row with
    # such padding sees fewer real keys in a local window than alone: keep the window wide.
    model = model_for(stress_config(sliding_window=64), seed=6)
    suffixes = [[20, 21, 22], [], [23, 24, 25, 26, 27, 28, 29, 30, 31]]
    rows = extend(model, start(model, PROMPTS), suffixes)
    joined = [p + s for p, s in zip(PROMPTS, suffixes, strict=True)]
    assert sample(model, rows, 25) == [generate(model, [p], 25)[0] for p in joined]


def test_sample_with_one_token_and_with_stops():
    model = model_for(stress_config(), seed=7)
    free = generate(model, PROMPTS, 20)
    assert generate(model, PROMPTS, 1) == [row[:1] for row in free]
    stop = free[1][5]
    cut = generate(model, PROMPTS, 20, stop_ids=[stop])
    for row, full in zip(cut, free, strict=True):
        assert row == (full[: full.index(stop) + 1] if stop in full else full)


def test_fused_weights_follow_parameter_changes():
    """The rearranged copies are kept between Decoders, but never outlive a weight change."""
    model = model_for(stress_config(), seed=8)
    with torch.inference_mode():
        decode_both(model, start(model, PROMPTS), start(model, PROMPTS), 2, fuse=True)  # builds, keeps
    with torch.no_grad():
        model.model.layers[1].self_attn.q_proj.weight.add_(0.3)
        model.model.layers[2].mlp.down_proj.weight.mul_(1.5)
    with torch.inference_mode():
        fast, slow = decode_both(model, start(model, PROMPTS), start(model, PROMPTS), 6, fuse=True)
    assert_close(fast, slow)


def test_last_only_forward_matches_full_forward():
    """Gemma2Model(last_only=True): the last layer's queries and MLP for the last token only."""
    model = model_for(stress_config(), seed=9)
    ids, mask = left_pad([[5, 6, 7, 8, 9, 10, 11, 12, 13, 14], [40, 41, 42]], 0)
    positions = (mask.cumsum(-1) - 1).clamp(min=0)
    with torch.inference_mode():
        full = model(ids, mask, positions)[:, -1:]
        last = model(ids, mask, positions, last_only=True)
        caches = [KVCache(model.config), KVCache(model.config)]
        model(ids, mask, positions, caches[0])
        model(ids, mask, positions, caches[1], last_only=True)
    assert last.shape == full.shape
    assert_close(last, full)
    for a, b in zip(caches[0].keys + caches[0].values, caches[1].keys + caches[1].values, strict=True):
        assert torch.equal(a, b)  # keys and values of every token still go to the cache
    with pytest.raises(ValueError, match="last_only"):
        model.model(ids, mask, positions, last_only=True, output_hidden_states=True)


def test_chunked_prefill_matches_one_pass(monkeypatch):
    """start()/extend() feed long inputs in chunks; the state matches one pass over them."""
    model = model_for(stress_config(), seed=10)
    prompts = [list(range(3, 40)), list(range(50, 61))]  # 37 tokens: 4 windows of 8
    suffixes = [list(range(100, 121)), [7]]
    states = []
    for chunk in (5, 1000):
        monkeypatch.setattr(sampling, "PREFILL_CHUNK", chunk)
        states.append(extend(model, start(model, prompts, max_length=80), suffixes))
    chunked, whole = states
    assert_close(chunked.hidden, whole.hidden)
    assert torch.equal(chunked.position, whole.position)
    assert sample(model, chunked, 20) == sample(model, whole, 20)


def test_argmax_is_torch_argmax_with_ties():
    gen = torch.Generator().manual_seed(0)
    for vocab in (8192, 320):  # 320 is no multiple of the block: plain argmax
        logits = torch.randint(0, 40, (6, vocab), generator=gen).float()  # many equal maxima
        logits[2] = 0.0
        logits[3, 5000 % vocab :] = 39.0
        assert torch.equal(_argmax(logits), logits.argmax(-1))


def test_sample_takes_the_hugging_face_wrapper():
    model = model_for(stress_config(), seed=11)
    wrapped = CriticForCausalLM(to_hf_config(model.config)).eval()
    wrapped.load_state_dict(model.state_dict())
    assert generate(wrapped, PROMPTS, 20) == generate(model, PROMPTS, 20)


def test_generate_runs_under_bfloat16_autocast():
    """Trainers on a bf16 GPU run generate() under autocast, where keys leave RoPE in float32 and
    values leave v_proj in bfloat16: the cache holds both in one dtype (TRL's GRPO rollouts)."""
    model = CriticForCausalLM(to_hf_config(stress_config())).eval()
    ids = torch.tensor([PROMPTS[0]])
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = model.generate(ids, max_new_tokens=6, do_sample=False, min_new_tokens=6)
    assert out.shape == (1, ids.shape[1] + 6)
