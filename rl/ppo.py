"""PPO with TRL 1.12's PPOTrainer: policy and frozen reference from SFT, value model from the reward model.

Held-out reward: the reward model's mean score of the policy's greedy critiques on a fixed set of
validation prompts, measured before and after PPO with the plain model (cheap and deterministic).
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import torch
from datasets import Dataset, DatasetDict
from torch import nn
from trl.experimental.ppo import PPOConfig, PPOTrainer

from critic.critique import END_OF_TURN, critique_completion_end, parse_critique, split_request
from critic.model import CriticForCausalLM, CriticForSequenceClassification, load_causal_lm, load_reward_model
from critic.sampling import generate
from critic.tokenizer import load_hf_tokenizer, load_tokenizer
from rl.common import check_checkpoint, merged, request, trainer_defaults
from rl.config import PPOStage


def quotes_missing_code(text: str) -> bool:
    """Whether the critique in a decoded request+critique quotes code that is not in the code."""
    parts = split_request(text)
    if parts is None:
        return False
    code, critique = parts
    end = critique_completion_end(critique)
    return bool(parse_critique(critique if end is None else critique[:end], code).hallucinated)


class QuotePenalty(nn.Module):
    """The reward model's score minus `penalty` for every critique with a hallucinated quote.

    TRL's PPO reads rewards as `model.score(getattr(model, model.base_model_prefix)(...).hidden_states[-1])`;
    this wrapper's backbone sees the token ids, so its score head can subtract the penalty without any
    change to TRL.
    """

    base_model_prefix = "backbone"

    def __init__(self, reward_model: nn.Module, tokenizer, penalty: float) -> None:
        super().__init__()
        self.reward_model, self.tokenizer, self.penalty = reward_model, tokenizer, penalty
        self._penalties: torch.Tensor | None = None

    def backbone(self, input_ids: torch.Tensor, **kwargs):
        texts = self.tokenizer.batch_decode(input_ids, skip_special_tokens=False)
        flags = [quotes_missing_code(t) for t in texts]
        self._penalties = torch.tensor(flags, dtype=torch.float32, device=input_ids.device) * self.penalty
        return getattr(self.reward_model, self.reward_model.base_model_prefix)(input_ids=input_ids, **kwargs)

    def score(self, hidden: torch.Tensor) -> torch.Tensor:
        scores = self.reward_model.score(hidden)
        return scores - self._penalties.to(scores.dtype)[:, None, None]


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
    """The reward model's mean score of the policy's critiques of `codes`: greedy (temperature 0), or
    `samples` critiques per code drawn at `temperature` from generators seeded by `seed`. Deterministic:
    the same policy, codes and seed give the same critiques, so the measurements before and after PPO
    use the same random draws and differ only by the policy."""
    policy, reward = load_causal_lm(policy_dir), load_reward_model(reward_dir)
    tokenizer = load_tokenizer(policy_dir)
    eot, eos = tokenizer.token_to_id(END_OF_TURN), policy.config.eos_token_id
    samples = 1 if temperature <= 0 else samples
    prompts = [tokenizer.encode(request(code)).ids for code in codes for _ in range(samples)]
    scores = []
    for start in range(0, len(prompts), batch_size):
        batch = prompts[start : start + batch_size]
        completions = generate(
            policy, batch, max_new_tokens, stop_ids=[eos, eot], temperature=temperature, seed=seed + start
        )
        for prompt, completion in zip(batch, completions, strict=True):
            ids = prompt + completion
            if not ids or ids[-1] != eos:
                ids = ids + [eos]  # the reward model reads the end-of-sequence token, as it was trained
            scores.append(reward(torch.tensor([ids])).item())
    return sum(scores) / len(scores)


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
    if cfg.hallucination_penalty:
        reward = QuotePenalty(reward, tokenizer, cfg.hallucination_penalty)
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
