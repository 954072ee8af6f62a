"""rl/ppo.py's held-out reward: which validation prompts it reads, and that it measures the same way
before and after PPO (no training run here)."""

from __future__ import annotations

import pytest
import torch
from datasets import Dataset

from critic.core.tokenizer import load_hf_tokenizer
from critic.model import CriticConfig, CriticForCausalLM, CriticForSequenceClassification, to_hf_config
from critic.rl.common import merged
from critic.rl.ppo import eval_codes, held_out_reward

TINY = CriticConfig.from_preset(
    "tiny", hidden_size=64, intermediate_size=128, num_hidden_layers=2, head_dim=16
)


def rows(functions: int, per_function: int) -> Dataset:
    """Validation rows as the data stage writes them: each function's tamperings next to each other."""
    originals = [f"def f{i}(x):\n    return x + {i}\n" for i in range(functions)]
    return Dataset.from_dict(
        {
            "original": [o for o in originals for _ in range(per_function)],
            "code": [o.replace("+", "-") + f"# {t}\n" for o in originals for t in range(per_function)],
        }
    )


def test_eval_codes_take_one_tampering_per_function_first():
    val = rows(functions=5, per_function=4)
    codes = eval_codes(val, 8)
    assert len(codes) == len(set(codes)) == 8
    # the first rows would be two functions' tamperings; these are every function's first, then seconds
    assert codes[:5] == [val["code"][4 * i] for i in range(5)]
    assert codes[5:] == [val["code"][4 * i + 1] for i in range(3)]
    assert eval_codes(val, 8) == codes  # deterministic
    assert sorted(eval_codes(val, 100)) == sorted(val["code"])  # all of them when asked for more


def test_eval_codes_skip_repeated_codes():
    val = Dataset.from_dict({"original": ["a", "a", "b"], "code": ["x", "x", "y"]})
    assert eval_codes(val, 3) == ["x", "y"]


@pytest.fixture
def checkpoints(tmp_path):
    tokenizer = load_hf_tokenizer()
    torch.manual_seed(0)
    policy_dir, reward_dir = tmp_path / "policy", tmp_path / "reward"
    CriticForCausalLM(to_hf_config(TINY)).save_pretrained(policy_dir)
    CriticForSequenceClassification(to_hf_config(TINY, num_labels=1)).save_pretrained(reward_dir)
    for directory in (policy_dir, reward_dir):
        tokenizer.save_pretrained(directory)
    return policy_dir, reward_dir


@pytest.mark.parametrize("sampling", [{}, {"temperature": 0.7, "samples": 3, "seed": 5, "batch_size": 4}])
def test_held_out_reward_is_deterministic_and_reads_the_saved_policy(checkpoints, tmp_path, sampling):
    policy_dir, reward_dir = checkpoints
    codes = eval_codes(rows(functions=3, per_function=2), 3)
    before = held_out_reward(policy_dir, reward_dir, codes, 8, **sampling)
    assert held_out_reward(policy_dir, reward_dir, codes, 8, **sampling) == before
    # "after" reads the checkpoint run_ppo saves (merged, then save_pretrained): an untrained policy
    # saved that way draws the same critiques and scores as it did before
    again = tmp_path / "again"
    merged(CriticForCausalLM.from_pretrained(policy_dir)).save_pretrained(again)
    load_hf_tokenizer(policy_dir).save_pretrained(again)
    assert held_out_reward(again, reward_dir, codes, 8, **sampling) == pytest.approx(before, abs=1e-6)


def test_sampled_held_out_reward_depends_on_the_seed(checkpoints):
    policy_dir, reward_dir = checkpoints
    codes = eval_codes(rows(functions=3, per_function=1), 3)
    scores = {held_out_reward(policy_dir, reward_dir, codes, 8, 1.0, samples=2, seed=s) for s in range(3)}
    assert len(scores) > 1
