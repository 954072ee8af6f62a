"""Checkpoint directories: transformers <-> ours, strict keys, safetensors only, no transformers import."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import pytest
import torch
from conftest import randomize_
from safetensors.torch import load_file, save_file
from transformers import Gemma2ForCausalLM, Gemma2ForSequenceClassification

from critic.model import (
    CheckpointError,
    CriticConfig,
    CriticForCausalLM,
    CriticForSequenceClassification,
    KVCache,
    load_causal_lm,
    load_reward_model,
    new_causal_lm,
    save_checkpoint,
    to_hf_config,
)

IDS = torch.tensor([[5, 17, 99, 3, 250, 42, 7, 8, 9, 10, 11, 12, 13, 14]])


def hf_reference(config, tmp_path):
    torch.manual_seed(0)
    ref = randomize_(Gemma2ForCausalLM(to_hf_config(config, attn_implementation="eager")), 1).eval()
    ref.save_pretrained(tmp_path / "hf")
    return ref, tmp_path / "hf"


def test_transformers_checkpoint_loads_into_ours(config, tmp_path):
    ref, path = hf_reference(config, tmp_path)
    assert not any(p.suffix == ".bin" for p in path.iterdir())
    with torch.no_grad():
        expected = ref(input_ids=IDS).logits
        hf_wrapped = CriticForCausalLM.from_pretrained(path).eval()
        assert (hf_wrapped(input_ids=IDS).logits - expected).abs().max() <= 1e-4
        plain = load_causal_lm(path)
        assert (plain(IDS) - expected).abs().max() <= 1e-4


def test_our_save_pretrained_loads_in_transformers(config, tmp_path):
    torch.manual_seed(0)
    ours = randomize_(CriticForCausalLM(to_hf_config(config)), 2).eval()
    ours.save_pretrained(tmp_path / "ours")
    saved = json.loads((tmp_path / "ours" / "config.json").read_text())
    assert saved["model_type"] == "gemma2"
    assert (tmp_path / "ours" / "model.safetensors").is_file()
    ref = Gemma2ForCausalLM.from_pretrained(tmp_path / "ours", attn_implementation="eager").eval()
    with torch.no_grad():
        assert (ref(input_ids=IDS).logits - ours(input_ids=IDS).logits).abs().max() <= 1e-4


def test_plain_save_loads_in_transformers_and_back(config, tmp_path):
    model = randomize_(new_causal_lm(config, seed=3), 3).eval()
    save_checkpoint(model, tmp_path / "plain")
    ref = Gemma2ForCausalLM.from_pretrained(tmp_path / "plain", attn_implementation="eager").eval()
    again = load_causal_lm(tmp_path / "plain")
    with torch.no_grad():
        assert (ref(input_ids=IDS).logits - model(IDS)).abs().max() <= 1e-4
        assert torch.equal(again(IDS), model(IDS))
    assert again.lm_head.weight.data_ptr() == again.model.embed_tokens.weight.data_ptr()


def test_reward_model_round_trip(config, tmp_path):
    torch.manual_seed(0)
    ours = randomize_(CriticForSequenceClassification(to_hf_config(config, num_labels=1)), 4).eval()
    ours.save_pretrained(tmp_path / "rm")
    ref = Gemma2ForSequenceClassification.from_pretrained(tmp_path / "rm", attn_implementation="eager").eval()
    plain = load_reward_model(tmp_path / "rm")
    with torch.no_grad():
        expected = ours(input_ids=IDS).logits
        assert (ref(input_ids=IDS).logits - expected).abs().max() <= 1e-4
        assert (plain(IDS) - expected).abs().max() <= 1e-4


def test_reward_model_initialised_from_policy_checkpoint(config, tmp_path):
    """The value/reward model starts from the SFT policy: only `score` is new."""
    _, path = hf_reference(config, tmp_path)
    rm = CriticForSequenceClassification.from_pretrained(path, num_labels=1)
    assert rm.score.weight.shape == (1, config.hidden_size)


def test_strict_keys(config, tmp_path):
    _, path = hf_reference(config, tmp_path)
    state = load_file(path / "model.safetensors")
    state["model.layers.0.extra.weight"] = torch.zeros(3)
    del state["model.layers.1.mlp.up_proj.weight"]
    save_file(state, path / "model.safetensors", metadata={"format": "pt"})
    with pytest.raises(CheckpointError, match="up_proj.*extra|missing.*up_proj"):
        load_causal_lm(path)
    with pytest.raises(ValueError, match="does not match"):
        CriticForCausalLM.from_pretrained(path)


def test_bad_checkpoint_errors_name_the_file(tmp_path):
    with pytest.raises(CheckpointError, match="config.json"):
        load_causal_lm(tmp_path)
    config = CriticConfig.from_preset("tiny", vocab_size=300)
    save_checkpoint(new_causal_lm(config), tmp_path)
    (tmp_path / "model.safetensors").write_bytes(b"not safetensors")
    with pytest.raises(CheckpointError, match="model.safetensors"):
        load_causal_lm(tmp_path)
    (tmp_path / "config.json").write_text('{"model_type": "llama"}')
    with pytest.raises(CheckpointError, match="not a Gemma 2 config"):
        load_causal_lm(tmp_path)


def test_sharded_checkpoint(config, tmp_path):
    torch.manual_seed(0)
    ref = randomize_(Gemma2ForCausalLM(to_hf_config(config, attn_implementation="eager")), 5).eval()
    ref.save_pretrained(tmp_path, max_shard_size="100KB")
    assert (tmp_path / "model.safetensors.index.json").is_file()
    with torch.no_grad():
        assert (load_causal_lm(tmp_path)(IDS) - ref(input_ids=IDS).logits).abs().max() <= 1e-4


def test_config_reads_public_gemma2_layout():
    """transformers 4.x config.json of google/gemma-2-2b (no layer_types, top-level rope_theta)."""
    raw = {
        "architectures": ["Gemma2ForCausalLM"],
        "attn_logit_softcapping": 50.0,
        "cache_implementation": "hybrid",
        "final_logit_softcapping": 30.0,
        "head_dim": 256,
        "hidden_act": "gelu_pytorch_tanh",
        "hidden_activation": "gelu_pytorch_tanh",
        "hidden_size": 2304,
        "intermediate_size": 9216,
        "model_type": "gemma2",
        "num_attention_heads": 8,
        "num_hidden_layers": 26,
        "num_key_value_heads": 4,
        "query_pre_attn_scalar": 256,
        "rope_theta": 10000.0,
        "sliding_window": 4096,
        "vocab_size": 256000,
    }
    config = CriticConfig.from_dict(raw)
    assert config == CriticConfig.from_preset("gemma-2-2b")
    assert config.layer_types[:2] == ["sliding_attention", "full_attention"]
    assert 2.5e9 < config.num_parameters() < 2.7e9  # "2B": 2.61 B with the 256k embedding


def test_presets_have_published_shapes():
    for name, billions in (("gemma-2-9b", 9.24), ("gemma-2-27b", 27.2)):
        assert abs(CriticConfig.from_preset(name).num_parameters() / 1e9 - billions) < 0.1
    assert CriticConfig.from_preset("gemma-2-27b").query_pre_attn_scalar == 144
    assert 1e6 < CriticConfig.from_preset("tiny").num_parameters() < 1e7


def test_sliding_window_cache_is_smaller(config):
    model = new_causal_lm(config).eval()
    length = 4 * config.sliding_window
    ids = torch.randint(3, config.vocab_size, (1, length))
    cache = KVCache(config, max_length=length)
    with torch.no_grad():
        model(ids, cache=cache)
    full = 2 * config.num_hidden_layers * config.num_key_value_heads * length * config.head_dim * 4
    # Half the layers keep W of L = 4W slots: (L - W) / 2L = 3/8 saved.
    assert cache.nbytes() == full * (1 - 3 / 8)


def test_review_path_does_not_import_transformers(config, tmp_path):
    save_checkpoint(new_causal_lm(config), tmp_path)
    code = textwrap.dedent(
        f"""
        import sys, torch
        from critic.model import load_causal_lm, KVCache
        model = load_causal_lm({str(tmp_path)!r})
        cache = KVCache(model.config)
        logits = model(torch.tensor([[5, 6, 7]]), cache=cache)
        logits = model(torch.tensor([[8]]), cache=cache)
        assert logits.shape == (1, 1, {config.vocab_size}), logits.shape
        heavy = [m for m in ("transformers", "trl", "datasets", "gradio") if m in sys.modules]
        assert not heavy, heavy
        print("ok")
        """
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "ok"
