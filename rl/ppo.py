"""PPO with TRL 1.12's PPOTrainer: policy and frozen reference from SFT, value model from the reward model.

Held-out reward: the reward model's mean score of the policy's greedy critiques on a fixed set of
validation prompts, measured before and after PPO with the plain model (cheap and deterministic).
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from types import SimpleNamespace

import torch
from datasets import Dataset, DatasetDict
from torch import nn
from trl.experimental.ppo import PPOConfig, PPOTrainer

from critic.core.critique import (
    END_OF_TURN,
    critique_completion_end,
    parse_critique,
    request,
    split_request,
    terminate_critique,
)
from critic.core.tokenizer import load_hf_tokenizer, load_tokenizer
from critic.core.tokens import EOS, PAD
from critic.inference.sampling import generate
from critic.model import CriticForCausalLM, CriticForSequenceClassification, load_causal_lm
from critic.rl.common import check_checkpoint, merged, trainer_defaults
from critic.rl.config import PPOStage


def quotes_missing_code(code: str, critique: str) -> bool:
    """Whether a critique quotes code that is not in `code`."""
    return bool(parse_critique(critique, code).hallucinated)


def critique_of(text: str) -> tuple[str, str] | None:
    """(code, critique) of a decoded request and sampled answer, the answer cut where the model ended
    its turn; None if `text` holds no request."""
    parts = split_request(text.replace(PAD, ""))
    if parts is None:
        return None
    code, answer = parts
    end = critique_completion_end(answer)
    return code, (answer if end is None else answer[:end]).replace(EOS, "")


@torch.no_grad()
def critique_scores(reward_model: nn.Module, tokenizer, pairs: list[tuple[str, str]]) -> torch.Tensor:
    """Reward-model scores of (code, critique) pairs, each read exactly as `critic review` scores a
    critique (critic.inference.fsbs): the request, the critique ended as a model turn, then <eos>. The
    policy's raw tokens are not: a critique cut short by the response length, or followed by tokens after its
    end of turn, is text the reward model never saw in training."""
    texts = [request(code) + terminate_critique(critique) + tokenizer.eos_token for code, critique in pairs]
    side, tokenizer.padding_side = tokenizer.padding_side, "left"
    try:
        enc = tokenizer(texts, padding=True, return_tensors="pt").to(next(reward_model.parameters()).device)
    finally:
        tokenizer.padding_side = side
    return reward_model(**enc).logits[:, 0].float()


class CritiqueReward(nn.Module):
    """The reward PPO optimizes: `critique_scores` of each rollout, minus `penalty` for a critique that
    quotes code that is not in the code.

    TRL's PPO reads rewards as `model.score(getattr(model, model.base_model_prefix)(...).hidden_states[-1])`
    at each rollout's last token; this wrapper's backbone decodes the rollouts, scores them whole and
    hands the scores on as that hidden state, so no change to TRL is needed.
    """

    base_model_prefix = "backbone"

    def __init__(self, reward_model: nn.Module, tokenizer, penalty: float) -> None:
        super().__init__()
        self.reward_model, self.tokenizer, self.penalty = reward_model, tokenizer, penalty

    def backbone(self, input_ids: torch.Tensor, **kwargs) -> SimpleNamespace:
        texts = self.tokenizer.batch_decode(input_ids, skip_special_tokens=False)
        pairs = [critique_of(t) or ("", t) for t in texts]
        scores = critique_scores(self.reward_model, self.tokenizer, pairs)
        if self.penalty:
            flags = torch.tensor([quotes_missing_code(code, c) for code, c in pairs], device=scores.device)
            scores = scores - flags.float() * self.penalty
        hidden = scores.to(input_ids.device)[:, None, None].expand(-1, input_ids.shape[1], 1)
        return SimpleNamespace(hidden_states=(hidden,))

    def score(self, hidden: torch.Tensor) -> torch.Tensor:
        return hidden


def eval_codes(rows: Dataset, n: int) -> list[str]:
    """The codes of `n` validation prompts, one per function before any function's second.

    The data stage writes a function's tamperings next to each other, so the first n rows would be
    only about n / per_item functions: a held-out reward that mostly measures a handful of functions.
    Deterministic: the same rows give the same codes, in the same order."""
    by_function: dict[str, list[str]] = {}
    for code, original in zip(rows["code"], rows["original"], strict=True):
        codes = by_function.setdefault(original, [])
        if code not in codes:
            codes.append(code)
    picked: list[str] = []
    for depth in range(max(map(len, by_function.values()), default=0)):
        picked += [codes[depth] for codes in by_function.values() if depth < len(codes)]
    return picked[:n]


@torch.no_grad()
def held_out_reward(
    policy_dir: Path,
    reward_dir: Path,
    codes: list[str],
    max_new_tokens: int,
    temperature: float = 0.0,
    samples: int = 1,
    seed: int = 0,
    batch_size: int = 16,
) -> float:
    """The reward model's mean score (`critique_scores`) of the policy's critiques of `codes`: greedy
    (temperature 0), or `samples` critiques per code drawn at `temperature` from generators seeded by
    `seed`. Deterministic: the same policy, codes and seed give the same critiques, so the measurements
    before and after PPO use the same random draws and differ only by the policy."""
    policy = load_causal_lm(policy_dir)
    reward = CriticForSequenceClassification.from_pretrained(reward_dir, num_labels=1).eval()
    tokenizer, hf_tokenizer = load_tokenizer(policy_dir), load_hf_tokenizer(policy_dir)
    eot, eos = tokenizer.token_to_id(END_OF_TURN), policy.config.eos_token_id
    samples = 1 if temperature <= 0 else samples
    codes = [code for code in codes for _ in range(samples)]
    scores: list[torch.Tensor] = []
    for start in range(0, len(codes), batch_size):
        batch = codes[start : start + batch_size]
        prompts = [tokenizer.encode(request(code)).ids for code in batch]
        completions = generate(
            policy, prompts, max_new_tokens, stop_ids=[eos, eot], temperature=temperature, seed=seed + start
        )
        critiques = [tokenizer.decode(c, skip_special_tokens=False) for c in completions]
        pairs = [(code, critique_of(request(code) + c)[1]) for code, c in zip(batch, critiques, strict=True)]
        scores.append(critique_scores(reward, hf_tokenizer, pairs))
    return torch.cat(scores).mean().item()


def run_ppo(cfg: PPOStage, data: DatasetDict, sft_dir: Path, reward_dir: Path, out: Path) -> dict:
    sft_dir, reward_dir = check_checkpoint(sft_dir), check_checkpoint(reward_dir)
    tokenizer = load_hf_tokenizer(sft_dir)
    tokenizer.padding_side = "left"
    codes = eval_codes(data["validation"], cfg.eval_prompts)

    def measure(policy: Path) -> tuple[float, float]:
        """(sampled as PPO samples, greedy) held-out reward; the same draws before and after."""
        n = cfg.response_length
        sampled = held_out_reward(policy, reward_dir, codes, n, cfg.temperature, cfg.eval_samples, cfg.seed)
        return sampled, held_out_reward(policy, reward_dir, codes, n)

    reward_first, greedy_first = measure(sft_dir)

    torch.manual_seed(cfg.seed)
    policy = CriticForCausalLM.from_pretrained(sft_dir)
    lora = cfg.lora("CAUSAL_LM")  # with adapters, the frozen reference is the policy with them off
    reference = None if lora else CriticForCausalLM.from_pretrained(sft_dir)
    value = CriticForSequenceClassification.from_pretrained(reward_dir, num_labels=1)
    reward = CriticForSequenceClassification.from_pretrained(reward_dir, num_labels=1)
    reward = CritiqueReward(reward, tokenizer, cfg.hallucination_penalty)
    prompts = Dataset.from_dict(
        {"input_ids": [tokenizer(request(c))["input_ids"] for c in data["train"]["code"]]}
    )
    with tempfile.TemporaryDirectory() as scratch:
        args = PPOConfig(
            output_dir=scratch,
            total_episodes=cfg.total_episodes,
            per_device_train_batch_size=cfg.batch_size,
            num_mini_batches=1,
            response_length=cfg.response_length,
            learning_rate=cfg.learning_rate,
            kl_coef=cfg.kl_coef,
            temperature=cfg.temperature,
            stop_token="eos",
            num_sample_generations=0,
            **trainer_defaults(cfg.seed),
        )
        trainer = PPOTrainer(
            args=args,
            processing_class=tokenizer,
            model=policy,
            ref_model=reference,
            reward_model=reward,
            value_model=value,
            train_dataset=prompts,
            peft_config=lora,
        )
        trainer.train()
    if trainer.accelerator.is_main_process:
        merged(trainer.policy_model).save_pretrained(out)
        tokenizer.save_pretrained(out)
    trainer.accelerator.wait_for_everyone()
    scores = [h["objective/scores"] for h in trainer.state.log_history if "objective/scores" in h]
    reward_last, greedy_last = measure(out)
    return {
        "episodes": trainer.state.episode,
        "reward_first": reward_first,
        "reward_last": reward_last,
        "greedy_reward_first": greedy_first,
        "greedy_reward_last": greedy_last,
        "eval_critiques": len(codes) * cfg.eval_samples,
        "train_scores": scores,
    }
