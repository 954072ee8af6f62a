"""rl/reinforce.py: how rollouts are read and rewarded, which validation prompts the held-out reward
reads, and that it measures the same way before and after RL (no training run here)."""

from __future__ import annotations

import json

import pytest
import torch
from datasets import Dataset

from critic.core.critique import request
from critic.core.tokenizer import load_hf_tokenizer
from critic.datagen.rating import rate_critique
from critic.model import CriticConfig, CriticForCausalLM, CriticForSequenceClassification, to_hf_config
from critic.rl.common import merged
from critic.rl.reinforce import (
    OPENING,
    constrained_rollouts,
    critique_rewards,
    eval_codes,
    held_out_reward,
    read_critique,
    reward_functions,
    vllm_view,
)

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
    # "after" reads the checkpoint run_rl saves (merged, then save_pretrained): an untrained policy
    # saved that way draws the same critiques and scores as it did before
    again = tmp_path / "again"
    merged(CriticForCausalLM.from_pretrained(policy_dir)).save_pretrained(again)
    load_hf_tokenizer(policy_dir).save_pretrained(again)
    after = held_out_reward(again, reward_dir, codes, 8, **sampling)
    assert after["reward"] == pytest.approx(before["reward"], abs=1e-6)


def test_sampled_held_out_reward_depends_on_the_seed(checkpoints):
    policy_dir, reward_dir = checkpoints
    codes = eval_codes(rows(functions=3, per_function=1), 3)
    scores = {
        held_out_reward(policy_dir, reward_dir, codes, 8, 1.0, samples=2, seed=s)["reward"] for s in range(3)
    }
    assert len(scores) > 1


def test_held_out_kl_is_zero_to_itself_and_grows_as_the_policy_moves(checkpoints, tmp_path):
    policy_dir, reward_dir = checkpoints
    codes = eval_codes(rows(functions=3, per_function=1), 3)
    sampling = {"temperature": 1.0, "samples": 4, "seed": 1}
    same = held_out_reward(policy_dir, reward_dir, codes, 8, **sampling, reference_dir=policy_dir)
    assert same["kl"] == pytest.approx(0.0, abs=1e-5)
    assert same["critiques"] == 12
    moved = tmp_path / "moved"
    model = CriticForCausalLM.from_pretrained(policy_dir)
    with torch.no_grad():
        model.lm_head.weight.add_(torch.randn_like(model.lm_head.weight) * 0.5)  # tied: the embeddings too
    model.save_pretrained(moved)
    load_hf_tokenizer(policy_dir).save_pretrained(moved)
    kls = [
        held_out_reward(moved, reward_dir, codes, 8, **{**sampling, "seed": s}, reference_dir=policy_dir)[
            "kl"
        ]
        for s in range(3)
    ]
    assert sum(kls) / len(kls) > 0.1  # a KL estimate: positive on average over draws


def test_rollouts_are_read_and_rewarded_as_review_reads_a_critique():
    """The reward model's score of each rollout read as `critic review` reads a critique (after FSBS's
    opened highlight, cut at its end of turn, ended, then <eos>), and minus the penalty per made-up quote."""
    tokenizer = load_hf_tokenizer()
    torch.manual_seed(0)
    model = CriticForSequenceClassification(to_hf_config(TINY, num_labels=1)).eval()
    code = "def add(a, b):\n    return a - b"
    critiques = ["```\nreturn a - b\n```\nShould add.", "```\nreturn a * b\n```\nWrong."]
    assert all(c.startswith(OPENING) for c in critiques)
    answers = [
        critiques[0][len(OPENING) :] + "<end_of_turn>",
        critiques[1][len(OPENING) :] + "<end_of_turn>\npast",
    ]
    ids = [tokenizer(a, add_special_tokens=False)["input_ids"] + [tokenizer.eos_token_id] for a in answers]
    assert [read_critique(tokenizer.decode(i, skip_special_tokens=False)) for i in ids] == critiques
    with torch.no_grad():
        alone = torch.stack(
            [
                model(**tokenizer(request(code) + c + "<end_of_turn><eos>", return_tensors="pt")).logits[0, 0]
                for c in critiques
            ]
        )
    score, made_up = reward_functions(model, tokenizer)
    assert score(completion_ids=ids, code=[code, code]) == pytest.approx(alone.tolist(), abs=1e-5)
    assert made_up(completion_ids=ids, code=[code, code]) == [0.0, -1.0]
    whole = critique_rewards(model, tokenizer, [code, code], critiques, 2.5)
    assert torch.allclose(whole, alone - torch.tensor([0.0, 2.5]), atol=1e-5)


def opening_quote(critique: str) -> str:
    """What a critique's opening highlight quotes: up to its closing fence, or all of it if unclosed."""
    body = critique[len(OPENING) :].lstrip("\n")
    return body.split("\n```")[0]


@pytest.mark.parametrize("constrained", [True, False])
def test_rollouts_quote_the_code_verbatim_as_fsbs_samples_them(constrained):
    """TRL's rollout_func under the quote constraint: one rollout per prompt (TRL repeats a prompt for
    its group), the prompts tokenized as TRL would, and every opening quote a piece of the code; the
    same random policy sampling freely (as vLLM's rollouts do) makes quotes up."""
    from types import SimpleNamespace

    from critic.inference.sampling import generate

    tokenizer = load_hf_tokenizer()
    torch.manual_seed(0)
    policy = CriticForCausalLM(to_hf_config(TINY)).train()
    owners = [
        code
        for code in ("def add(a, b):\n    return a - b\n", "def neg(x):\n    return x\n")
        for _ in range(4)
    ]
    prompts = [request(code) + OPENING for code in owners]
    prompt_ids = tokenizer(text=prompts)["input_ids"]
    stops = [tokenizer.eos_token_id, tokenizer.convert_tokens_to_ids("<end_of_turn>")]
    if constrained:
        trainer = SimpleNamespace(
            processing_class=tokenizer, model=policy, accelerator=SimpleNamespace(unwrap_model=lambda m: m)
        )
        rows = Dataset.from_dict({"prompt": prompts, "code": owners})
        rollout = constrained_rollouts(rows, tokenizer, 24, stops, 1.0)
        out = rollout(prompts, trainer)
        assert out["prompt_ids"] == prompt_ids and policy.training  # left as the trainer had it
        completions = out["completion_ids"]
    else:
        completions = generate(policy, prompt_ids, 24, stops, 1.0)
    assert len(completions) == len(prompts)
    critiques = [read_critique(tokenizer.decode(ids, skip_special_tokens=False)) for ids in completions]
    verbatim = [opening_quote(c) in code for c, code in zip(critiques, owners, strict=True)]
    assert all(verbatim) and all(map(opening_quote, critiques)) if constrained else not any(verbatim)


def test_the_rater_reward_is_the_rubric_overall_score_the_reward_model_learns():
    """`reward: rater` (the perfect-reward-model ablation) scores each rollout as the rate stage labels
    it: the rubric's overall score, which knows the bug; the quote penalty stays a second function."""
    tokenizer = load_hf_tokenizer()
    code = "def add(a, b):\n    total = a\n    return a - b"
    critiques = ["```\nreturn a - b\n```\nShould add.", "```\ntotal = a\n```\nUnused."]
    ids = [
        tokenizer(c[len(OPENING) :] + "<end_of_turn>", add_special_tokens=False)["input_ids"]
        for c in critiques
    ]
    rater, made_up = reward_functions(None, tokenizer, rater=True)
    columns = {"code": [code] * 2, "bug_lines": [[3]] * 2, "description": ["`-` should be `+`."] * 2}
    scores = rater(completion_ids=ids, **columns)
    assert scores == [float(rate_critique(c, code, [3], "`-` should be `+`.").overall) for c in critiques]
    assert scores[0] > scores[1]  # the bug line beats a fake problem
    assert made_up(completion_ids=ids, code=columns["code"]) == [0.0, 0.0]


def test_rl_against_the_rater_trains_on_the_tampered_rows(checkpoints, tmp_path):
    from datasets import DatasetDict

    from critic.rl.config import RLStage
    from critic.rl.reinforce import run_rl

    policy_dir, reward_dir = checkpoints
    train = rows(functions=2, per_function=2)
    train = train.add_column("bug_lines", [[2]] * len(train))
    train = train.add_column("description", ["`-` should be `+`."] * len(train))
    data = DatasetDict({"train": train, "validation": rows(functions=2, per_function=1)})
    cfg = RLStage(max_steps=1, batch_size=2, group_size=2, max_new_tokens=6, eval_prompts=2, reward="rater")
    metrics = run_rl(cfg, data, policy_dir, reward_dir, tmp_path / "rl")
    assert metrics["steps"] == 1 and len(metrics["train_rewards"]) == 1
    assert 1.0 <= metrics["train_rewards"][0] <= 7.0  # the rubric's scale, not the reward model's


def test_an_unknown_rl_reward_is_a_one_line_error():
    from critic.core.errors import UserError
    from critic.rl.config import RLStage

    with pytest.raises(UserError, match="rl.reward must be model or rater"):
        RLStage(reward="oracle")
    with pytest.raises(UserError, match="set rl.constrain_quotes: false"):
        RLStage(use_vllm=True)
    assert not RLStage(use_vllm=True, constrain_quotes=False).constrain_quotes


def test_the_vllm_view_is_the_same_model_under_the_name_vllm_knows(checkpoints, tmp_path):
    """vLLM builds the class config.json names; the view names transformers' Gemma 2 and links our
    weights, so a Gemma 2 implementation that is not ours reads the same model from it."""
    from transformers import Gemma2ForCausalLM

    policy_dir, _ = checkpoints
    view = vllm_view(policy_dir, tmp_path / "view")
    assert json.loads((view / "config.json").read_text())["architectures"] == ["Gemma2ForCausalLM"]
    assert (view / "model.safetensors").resolve() == (policy_dir / "model.safetensors").resolve()
    theirs = Gemma2ForCausalLM.from_pretrained(view, attn_implementation="eager").eval()
    ours = CriticForCausalLM.from_pretrained(policy_dir).eval()
    ids = torch.tensor([load_hf_tokenizer(view)("def f(x):\n    return x")["input_ids"]])
    with torch.no_grad():
        assert torch.allclose(theirs(ids).logits, ours(ids).logits, atol=1e-4)
    assert vllm_view(policy_dir, tmp_path / "view") == view  # again, over the old links


def test_an_interrupted_rl_stage_resumes_from_its_last_checkpoint(checkpoints, tmp_path, monkeypatch):
    from datasets import DatasetDict

    from critic.rl.common import CHECKPOINTS
    from critic.rl.config import RLStage
    from critic.rl.reinforce import GRPOWithReference, run_rl

    policy_dir, reward_dir = checkpoints
    data = DatasetDict(
        {"train": rows(functions=4, per_function=2), "validation": rows(functions=2, per_function=1)}
    )
    cfg = RLStage(max_steps=2, batch_size=2, group_size=2, max_new_tokens=6, eval_prompts=2, save_steps=1)
    out = tmp_path / "rl"
    calls = {"n": 0}
    real_step = GRPOWithReference.training_step

    def dies_on_the_second_step(self, *args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 2:
            raise KeyboardInterrupt  # as if killed after step 1's checkpoint was written
        return real_step(self, *args, **kwargs)

    monkeypatch.setattr(GRPOWithReference, "training_step", dies_on_the_second_step)
    with pytest.raises(KeyboardInterrupt):
        run_rl(cfg, data, policy_dir, reward_dir, out)
    assert (out / CHECKPOINTS / "checkpoint-1" / "trainer_state.json").is_file()
    monkeypatch.setattr(GRPOWithReference, "training_step", real_step)
    metrics = run_rl(cfg, data, policy_dir, reward_dir, out)
    assert metrics["resumed_from"] == 1 and metrics["steps"] == 2
    assert not (out / CHECKPOINTS).exists() and (out / "model.safetensors").is_file()
