"""The lean sampling loop against transformers' generate(), and training-time features."""

from __future__ import annotations

import torch
from conftest import randomize_
from peft import LoraConfig, get_peft_model
from transformers import Gemma2ForCausalLM

from critic.inference.sampling import generate, left_pad
from critic.model import CriticForCausalLM, new_causal_lm, to_hf_config


def test_greedy_loop_matches_transformers_generate(config):
    model = randomize_(new_causal_lm(config, seed=0), 1).eval()
    ref = Gemma2ForCausalLM(to_hf_config(config, attn_implementation="eager")).eval()
    ref.load_state_dict(model.state_dict())
    prompts = [[5, 6, 7, 8, 9, 10, 11], [40, 41], [90, 91, 92, 93, 94]]
    got = generate(model, prompts, max_new_tokens=30)
    ids, mask = left_pad(prompts, 0)
    expected = ref.generate(ids, attention_mask=mask, max_new_tokens=30, do_sample=False, pad_token_id=0)
    assert got == expected[:, ids.shape[1] :].tolist()


def test_stop_ids_cut_rows_independently(config):
    model = randomize_(new_causal_lm(config, seed=0), 2).eval()
    prompts = [[5, 6, 7], [50, 51, 52, 53]]
    free = generate(model, prompts, max_new_tokens=12)
    stop = free[0][3]
    cut = generate(model, prompts, max_new_tokens=12, stop_ids=[stop])
    assert cut[0] == free[0][: free[0].index(stop) + 1]
    if stop in free[1]:
        assert cut[1] == free[1][: free[1].index(stop) + 1]
    else:
        assert cut[1] == free[1]


def test_sampling_is_seeded(config):
    model = randomize_(new_causal_lm(config, seed=0), 3).eval()
    a = generate(model, [[5, 6, 7]] * 3, 16, temperature=1.0, seed=11)
    b = generate(model, [[5, 6, 7]] * 3, 16, temperature=1.0, seed=11)
    c = generate(model, [[5, 6, 7]] * 3, 16, temperature=1.0, seed=12)
    assert a == b and a != c
    assert len({tuple(r) for r in a}) > 1  # rows sample independently


def test_gradient_checkpointing_gives_the_same_gradients(config):
    torch.manual_seed(0)
    model = randomize_(CriticForCausalLM(to_hf_config(config)), 4).train()
    ids = torch.randint(3, config.vocab_size, (2, 20))

    def grads():
        model.zero_grad()
        model(input_ids=ids, labels=ids).loss.backward()
        return {n: p.grad.clone() for n, p in model.named_parameters()}

    plain = grads()
    model.activation_checkpointing_enable()
    assert model.model.gradient_checkpointing
    checkpointed = grads()
    assert all(torch.allclose(plain[n], checkpointed[n], atol=1e-6) for n in plain)


def test_lora_adapter_trains_and_generates(config):
    torch.manual_seed(0)
    model = CriticForCausalLM(to_hf_config(config))
    lora = get_peft_model(model, LoraConfig(r=4, target_modules=["q_proj", "v_proj"], task_type="CAUSAL_LM"))
    ids = torch.randint(3, config.vocab_size, (2, 12))
    lora(input_ids=ids, labels=ids).loss.backward()
    trainable = [n for n, p in lora.named_parameters() if p.requires_grad]
    assert trainable and all("lora_" in n for n in trainable)
    out = lora.generate(input_ids=ids, max_new_tokens=5, do_sample=False, pad_token_id=0)
    assert out.shape == (2, 17)
