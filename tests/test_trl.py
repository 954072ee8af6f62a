"""Our model inside TRL 1.12: RewardTrainer model, and PPO policy/reference/reward/value."""

from __future__ import annotations

import copy

import torch
from datasets import Dataset
from trl import RewardConfig, RewardTrainer
from trl.experimental.ppo import PPOConfig, PPOTrainer

from critic.core.critique import build_prompt
from critic.core.tokenizer import load_hf_tokenizer
from critic.model import CriticConfig, CriticForCausalLM, CriticForSequenceClassification, to_hf_config

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


def test_ppo_trainer_step(tmp_path):
    tokenizer = load_hf_tokenizer()
    torch.manual_seed(0)
    policy = CriticForCausalLM(to_hf_config(TINY))
    ref_policy = copy.deepcopy(policy)
    value = CriticForSequenceClassification(to_hf_config(TINY, num_labels=1))
    reward = CriticForSequenceClassification(to_hf_config(TINY, num_labels=1))
    prompts = [build_prompt("def add(a, b):\n    return a - b\n")] * 4
    dataset = Dataset.from_dict({"input_ids": [tokenizer(p)["input_ids"] for p in prompts]})
    args = PPOConfig(
        output_dir=str(tmp_path),
        per_device_train_batch_size=2,
        gradient_accumulation_steps=1,
        num_mini_batches=1,
        num_ppo_epochs=1,
        total_episodes=4,
        response_length=12,
        stop_token="eos",
        num_sample_generations=0,
        learning_rate=1e-3,
        **COMMON,
    )
    trainer = PPOTrainer(
        args=args,
        processing_class=tokenizer,
        model=policy,
        ref_model=ref_policy,
        reward_model=reward,
        value_model=value,
        train_dataset=dataset,
    )
    policy_before, value_before = snapshot(policy), snapshot(value)
    trainer.train()
    assert trainer.state.episode == 4
    assert changed(policy_before, policy)
    assert changed(value_before, value)
