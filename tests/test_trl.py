"""Our model inside TRL's trainers: the reward model in RewardTrainer, the policy and its frozen
reference in GRPOTrainer."""

from __future__ import annotations

import copy

import pytest
import torch
from datasets import Dataset
from trl import GRPOConfig, RewardConfig, RewardTrainer

from critic.core.critique import request
from critic.core.tokenizer import load_hf_tokenizer
from critic.model import CriticConfig, CriticForCausalLM, CriticForSequenceClassification, to_hf_config
from critic.rl.reinforce import OPENING, GRPOWithReference

TINY = CriticConfig.from_preset(
    "tiny", hidden_size=64, intermediate_size=128, num_hidden_layers=2, head_dim=16
)
COMMON = dict(report_to=[], save_strategy="no", use_cpu=True, seed=0, logging_steps=1, disable_tqdm=True)


def snapshot(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def changed(before: dict[str, torch.Tensor], model: torch.nn.Module) -> bool:
    return any(not torch.equal(before[k], v) for k, v in model.state_dict().items())


def test_reward_trainer_step(tmp_path):
    tokenizer = load_hf_tokenizer()
    torch.manual_seed(0)
    model = CriticForSequenceClassification(to_hf_config(TINY, num_labels=1))
    pairs = Dataset.from_dict(
        {
            "chosen": ["```\nreturn a - b\n```\nShould be a + b."] * 4,
            "rejected": ["Looks fine to me."] * 4,
        }
    )
    args = RewardConfig(
        output_dir=str(tmp_path), per_device_train_batch_size=2, max_steps=2, learning_rate=1e-3, **COMMON
    )
    trainer = RewardTrainer(model=model, args=args, train_dataset=pairs, processing_class=tokenizer)
    before = snapshot(model)
    result = trainer.train()
    assert result.global_step == 2
    assert torch.isfinite(torch.tensor(result.training_loss))
    assert changed(before, model)


def test_grpo_trainer_step_keeps_the_kl_to_our_reference(tmp_path):
    """GRPO on our model, with the frozen reference our class too: TRL cannot build one from a
    config.json that names CriticForCausalLM, so GRPOWithReference hands it in."""
    tokenizer = load_hf_tokenizer()
    tokenizer.padding_side = "left"
    torch.manual_seed(0)
    policy = CriticForCausalLM(to_hf_config(TINY))
    reference = copy.deepcopy(policy)
    prompts = [request("def add(a, b):\n    return a - b\n") + OPENING] * 4

    def longer(completions, **_):  # any reward that differs within a group
        return [len(c) / 10 for c in completions]

    args = GRPOConfig(
        output_dir=str(tmp_path),
        per_device_train_batch_size=4,
        num_generations=4,
        max_completion_length=12,
        max_steps=2,
        learning_rate=1e-2,
        beta=0.0,
        bf16=False,
        **COMMON,
    )
    trainer = GRPOWithReference(
        model=policy,
        reward_funcs=longer,
        args=args,
        train_dataset=Dataset.from_dict({"prompt": prompts}),
        processing_class=tokenizer,
        reference=reference,
        kl_coef=0.1,
    )
    assert trainer.ref_model is reference and trainer.beta == 0.1
    before = snapshot(policy)
    reference_before = snapshot(reference)
    trainer.train()
    assert trainer.state.global_step == 2
    assert changed(before, policy) and not changed(reference_before, reference)
    kls = [h["kl"] for h in trainer.state.log_history if "kl" in h]
    assert kls[0] == 0.0 and kls[-1] > 0.0  # the policy moved away from the reference, and it is measured


def test_the_lean_sft_trainer_takes_trls_loss_without_its_tiled_head(tmp_path):
    """On CPU LeanSFTTrainer drops TRL's patched forward (3x slower here) for the model's own loss: the
    same completion-only loss, the same updates, and TRL's token count."""
    from trl import SFTConfig, SFTTrainer

    from critic.rl.sft import LeanSFTTrainer

    rows = Dataset.from_dict(
        {
            "prompt": [request(f"def f{i}(a, b):\n    return a - b\n") for i in range(4)],
            "completion": ["```\nreturn a - b\n```\nShould be a + b.<end_of_turn>"] * 4,
        }
    )
    results = {}
    for cls in (SFTTrainer, LeanSFTTrainer):
        torch.manual_seed(0)
        model = CriticForCausalLM(to_hf_config(TINY))
        args = SFTConfig(
            output_dir=str(tmp_path / cls.__name__),
            per_device_train_batch_size=2,
            max_steps=2,
            learning_rate=1e-3,
            completion_only_loss=True,
            bf16=False,
            **COMMON,
        )
        trainer = cls(model, args, train_dataset=rows, processing_class=load_hf_tokenizer())
        assert ("forward" in vars(model)) == (cls is SFTTrainer)  # TRL's tiled head is an instance patch
        trainer.train()
        history = [h for h in trainer.state.log_history if "loss" in h]
        results[cls] = ([h["loss"] for h in history], history[-1]["num_tokens"], snapshot(model))
    (trl_losses, trl_tokens, trl_weights), (losses, tokens, weights) = results.values()
    assert losses == pytest.approx(trl_losses, rel=1e-4) and tokens == trl_tokens
    assert all(torch.allclose(trl_weights[k], weights[k], atol=1e-5) for k in weights)
