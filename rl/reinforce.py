"""Reinforcement learning of the critic against the reward model, on TRL's GRPOTrainer.

CriticGPT trained its critics with PPO, which current TRL no longer ships. GRPO keeps what matters
of it here: the clipped surrogate objective and a KL penalty to the SFT policy. It drops the value
model: each prompt gets `group_size` rollouts, and a rollout's advantage is its reward against its
group's mean.

Rollouts are sampled as FSBS samples a critique at review time: they begin with an opened highlight,
and (`constrain_quotes`, the default) our sampler holds the quote and the comment's inline code to
verbatim code (critic.inference.quoting), through TRL's `rollout_func`. They are read as `critic review`
reads one: cut where the model ended its turn, ended as a model turn, then scored by the reward model.
A critique that still quotes code which is not in the code (a later highlight, or any with the
constraint off, as vLLM's rollouts are) loses `hallucination_penalty`, through a second reward
function that TRL logs on its own.

Without the constraint, 98% of the default critic's rollouts quoted lines that are not in the file:
RL then optimised critiques that `critic review` never shows, and against the rubric rater every
rollout scored the same. With it, the gradient is still the unmasked policy's (TRL scores each
rollout's tokens under the policy, not under the mask): on a quote's tokens it raises the line the
rollout quoted when its critique beat its group, and lowers it when it lost.

`reward: rater` replaces the reward model by the rubric rater the rate stage labels preferences with
(it knows the inserted bug): the reward model learns to predict its overall score, so this is RL
against a perfect reward model, an ablation that says how much a better reward model would give.

Held-out reward: the reward model's reward of critiques the policy samples for fixed validation prompts,
before and after, with the same random draws, so the two differ by the policy alone; and afterwards
the KL of the policy to the SFT policy on its own critiques.
"""

from __future__ import annotations

import dataclasses
import json
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path

import torch
from datasets import Dataset, DatasetDict
from torch import nn
from trl import GRPOConfig, GRPOTrainer
from trl.trainer.utils import add_fused_lm_head, disable_dropout_in_model

from critic.core.critique import (
    END_OF_TURN,
    critique_completion_end,
    open_highlight,
    parse_critique,
    request,
    terminate_critique,
)
from critic.core.tokenizer import load_hf_tokenizer, load_tokenizer
from critic.core.tokens import EOS, PAD
from critic.datagen.rating import rate_critique
from critic.evaluate import bootstrap_ratio
from critic.inference.quoting import QuoteConstraint, TokenTrie
from critic.inference.sampling import generate
from critic.model import CriticForCausalLM, CriticForSequenceClassification, load_causal_lm
from critic.rl.common import (
    CHECKPOINTS,
    check_checkpoint,
    merged,
    resumable_args,
    resume_point,
    resumed_step,
    save_stage,
    skip_final_checkpoint,
    write_json,
)
from critic.rl.config import RLStage

OPENING = open_highlight("")  # how FSBS's first round begins every critique


def read_critique(answer: str) -> str:
    """A sampled answer (the text after OPENING) as `critic review` reads it: the critique up to where
    the model ended its turn, without padding or <eos>."""
    text = (OPENING + answer).replace(PAD, "")
    end = critique_completion_end(text)
    return (text if end is None else text[:end]).replace(EOS, "")


def quotes_missing_code(code: str, critique: str) -> bool:
    """Whether a critique quotes code that is not in `code`."""
    return bool(parse_critique(critique, code).hallucinated)


@torch.no_grad()
def critique_scores(reward_model: nn.Module, tokenizer, pairs: Sequence[tuple[str, str]]) -> torch.Tensor:
    """Reward-model scores of (code, critique) pairs, each read exactly as `critic review` scores a
    critique (critic.inference.fsbs): the request, the critique ended as a model turn, then <eos>. A
    rollout's raw tokens are not: one cut short by the length limit, or followed by tokens after its
    end of turn, is text the reward model never saw in training."""
    texts = [request(code) + terminate_critique(critique) + tokenizer.eos_token for code, critique in pairs]
    side, tokenizer.padding_side = tokenizer.padding_side, "left"
    try:
        enc = tokenizer(texts, padding=True, return_tensors="pt").to(next(reward_model.parameters()).device)
    finally:
        tokenizer.padding_side = side
    return reward_model(**enc).logits[:, 0].float()


def review_constraints(codes: Sequence[str], trie: TokenTrie) -> list[QuoteConstraint]:
    """Each code's critique held as FSBS holds it by default: its opening quote and its comment's
    inline code spans verbatim code."""
    return [QuoteConstraint(code, trie, code_spans=True) for code in codes]


def constrained_rollouts(
    prompts: Dataset, tokenizer, max_new_tokens: int, stop_ids: Sequence[int], temperature: float
) -> Callable[[list[str], GRPOTrainer], dict]:
    """TRL's `rollout_func` for the rows of `prompts` (its `prompt` and `code` columns): one rollout
    per prompt (TRL has already repeated each prompt for its group), sampled by the policy under
    `review_constraints` from the global random stream, which the trainer seeds. The prompts are
    tokenized as TRL tokenizes them itself."""
    code_of = dict(zip(prompts["prompt"], prompts["code"], strict=True))
    trie = TokenTrie.of(tokenizer.backend_tokenizer)

    def rollout(prompts: list[str], trainer: GRPOTrainer) -> dict:
        prompt_ids = trainer.processing_class(text=prompts)["input_ids"]
        model = trainer.accelerator.unwrap_model(trainer.model)
        if hasattr(model, "get_base_model"):  # PEFT: its adapters live in the base model's layers
            model = model.get_base_model()
        training = model.training
        model.eval()
        try:
            held = review_constraints([code_of[p] for p in prompts], trie)
            completions = generate(model, prompt_ids, max_new_tokens, stop_ids, temperature, constraints=held)
        finally:
            model.train(training)
        return {"prompt_ids": prompt_ids, "completion_ids": completions, "logprobs": None}

    return rollout


def critique_rewards(
    reward_model: nn.Module, tokenizer, codes: Sequence[str], critiques: Sequence[str], penalty: float
) -> torch.Tensor:
    """The reward RL maximises, whole: the reward model's score minus `penalty` per made-up quote."""
    scores = critique_scores(reward_model, tokenizer, list(zip(codes, critiques, strict=True)))
    made_up = torch.tensor([quotes_missing_code(c, k) for c, k in zip(codes, critiques, strict=True)])
    return scores - penalty * made_up.float().to(scores.device)


def reward_functions(
    reward_model: nn.Module, tokenizer, rater: bool = False
) -> list[Callable[..., list[float]]]:
    """GRPO's reward functions, weighted 1 and `hallucination_penalty`: the two terms of
    `critique_rewards`, or with `rater` the rubric rater's overall score in place of the reward
    model's. Each reads the rollouts' tokens (TRL's text drops <end_of_turn>) and the prompts'
    columns: `code`, and for the rater `bug_lines` and `description`."""

    def critiques(completion_ids: list[list[int]]) -> list[str]:
        return [read_critique(tokenizer.decode(ids, skip_special_tokens=False)) for ids in completion_ids]

    def reward_model_score(completion_ids, code, **_) -> list[float]:
        pairs = list(zip(code, critiques(completion_ids), strict=True))
        return critique_scores(reward_model, tokenizer, pairs).tolist()

    def rubric_overall(completion_ids, code, bug_lines, description, **_) -> list[float]:
        rows = zip(critiques(completion_ids), code, bug_lines, description, strict=True)
        return [float(rate_critique(*row).overall) for row in rows]

    def made_up_quote(completion_ids, code, **_) -> list[float]:
        texts = critiques(completion_ids)
        return [-float(quotes_missing_code(c, k)) for c, k in zip(code, texts, strict=True)]

    return [rubric_overall if rater else reward_model_score, made_up_quote]


class GRPOWithReference(GRPOTrainer):
    """GRPOTrainer whose frozen reference is built as the policy was, from our Gemma 2 classes.

    TRL builds the reference itself with the transformers class that config.json names, which is not
    one of transformers' (CriticForCausalLM), so it is handed in here instead: the trainer starts with
    a KL weight of 0 (TRL then builds none), then takes `reference` and `kl_coef`. With LoRA the
    reference is the policy with its adapters off, and `reference` is None."""

    def __init__(self, *args, reference: CriticForCausalLM | None, kl_coef: float, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.beta = self.args.beta = kl_coef
        if reference is None or kl_coef == 0.0:
            return
        disable_dropout_in_model(reference)
        add_fused_lm_head(
            reference, temperature=self.temperature, cast_lm_head_to_fp32=self.args.cast_lm_head_to_fp32
        )
        if self.is_deepspeed_enabled:
            from trl.models import prepare_deepspeed

            self.ref_model = prepare_deepspeed(reference, self.accelerator)
        else:
            self.ref_model = self.accelerator.prepare_model(reference, evaluation_mode=True)


def vllm_view(checkpoint: Path, into: Path) -> Path:
    """`checkpoint` as vLLM can load it: TRL starts its vLLM engine from the directory the policy was
    loaded from, building the model class that config.json names, and vLLM has no CriticForCausalLM.
    Our weights carry Gemma 2's names, so a folder of links to them with a config that names
    Gemma2ForCausalLM is the same model to vLLM (TRL then syncs the policy's weights into it)."""
    into.mkdir(parents=True, exist_ok=True)
    for source in checkpoint.iterdir():
        if source.is_file() and source.name != "config.json":
            (into / source.name).unlink(missing_ok=True)
            (into / source.name).symlink_to(source.resolve())
    config = json.loads((checkpoint / "config.json").read_text())
    write_json(into / "config.json", {**config, "architectures": ["Gemma2ForCausalLM"]})
    return into


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
def completion_log_probs(
    model: nn.Module, prompts: list[list[int]], completions: list[list[int]], temperature: float
) -> torch.Tensor:
    """Each completion's summed log-probability after its prompt, at `temperature` (one row at a
    time: rows of different lengths need no padding)."""
    totals = []
    for prompt, completion in zip(prompts, completions, strict=True):
        ids = torch.tensor([prompt + completion])
        logits = model(ids)[0, len(prompt) - 1 : -1].float() / max(temperature, 1e-6)
        picked = logits.log_softmax(-1).gather(-1, torch.tensor(completion)[:, None])
        totals.append(picked.sum())
    return torch.stack(totals)


@torch.no_grad()
def held_out_reward(
    policy_dir: Path,
    reward_dir: Path,
    codes: list[str],
    max_new_tokens: int,
    temperature: float = 0.0,
    samples: int = 1,
    seed: int = 0,
    penalty: float = 0.0,
    reference_dir: Path | None = None,
    batch_size: int = 16,
    constrain_quotes: bool = False,
) -> dict[str, float]:
    """The mean reward (`critique_rewards`) of the policy's critiques of `codes`: greedy (temperature
    0), or `samples` critiques per code drawn at `temperature` from generators seeded by `seed`, so the
    same policy, codes and seed give the same critiques ("rewards": each one's, in the order of
    `codes`, each code's samples together), under `review_constraints` with `constrain_quotes`, as
    the rollouts are sampled. With `reference_dir`, also the KL of the
    policy to that reference on these critiques (the mean over critiques of their summed per-token
    log-ratio, at `temperature`), the KL RL's penalty holds down."""
    policy = load_causal_lm(policy_dir)
    reward = CriticForSequenceClassification.from_pretrained(reward_dir, num_labels=1).eval()
    tokenizer, hf_tokenizer = load_tokenizer(policy_dir), load_hf_tokenizer(policy_dir)
    eot, eos = tokenizer.token_to_id(END_OF_TURN), policy.config.eos_token_id
    trie = TokenTrie.of(tokenizer) if constrain_quotes else None
    samples = 1 if temperature <= 0 else samples
    codes = [code for code in codes for _ in range(samples)]
    rewards: list[torch.Tensor] = []
    prompts: list[list[int]] = []
    completions: list[list[int]] = []
    for start in range(0, len(codes), batch_size):
        batch = codes[start : start + batch_size]
        encoded = [tokenizer.encode(request(code) + OPENING).ids for code in batch]
        constraints = review_constraints(batch, trie) if trie is not None else None
        sampled = generate(
            policy,
            encoded,
            max_new_tokens,
            stop_ids=[eos, eot],
            temperature=temperature,
            seed=seed + start,
            constraints=constraints,
        )
        critiques = [read_critique(tokenizer.decode(c, skip_special_tokens=False)) for c in sampled]
        rewards.append(critique_rewards(reward, hf_tokenizer, batch, critiques, penalty))
        prompts += encoded
        completions += sampled
    per_critique = torch.cat(rewards)
    result = {"reward": per_critique.mean().item(), "critiques": len(codes), "rewards": per_critique.tolist()}
    if reference_dir is not None:
        reference = load_causal_lm(reference_dir)
        mine = completion_log_probs(policy, prompts, completions, temperature or 1.0)
        theirs = completion_log_probs(reference, prompts, completions, temperature or 1.0)
        result["kl"] = (mine - theirs).mean().item()
    return result


def run_rl(cfg: RLStage, data: DatasetDict, sft_dir: Path, reward_dir: Path, out: Path) -> dict:
    sft_dir, reward_dir = check_checkpoint(sft_dir), check_checkpoint(reward_dir)
    tokenizer = load_hf_tokenizer(sft_dir)
    tokenizer.padding_side = "left"
    codes = eval_codes(data["validation"], cfg.eval_prompts)
    sampled = dict(temperature=cfg.temperature, samples=cfg.eval_samples, seed=cfg.seed)

    def measure(policy: Path, reference: Path | None = None) -> tuple[dict, dict]:
        """(sampled as the rollouts are, greedy) held-out reward; the same draws before and after."""
        n, penalty = cfg.max_new_tokens, cfg.hallucination_penalty
        held = dict(penalty=penalty, constrain_quotes=cfg.constrain_quotes)
        first = held_out_reward(policy, reward_dir, codes, n, **sampled, **held, reference_dir=reference)
        return first, held_out_reward(policy, reward_dir, codes, n, **held)

    before, greedy_before = measure(sft_dir)

    torch.manual_seed(cfg.seed)
    policy = CriticForCausalLM.from_pretrained(sft_dir)
    # rollouts end where the model ends its turn, as `critic review` reads a critique
    stops = [tokenizer.eos_token_id, tokenizer.convert_tokens_to_ids(END_OF_TURN)]
    policy.generation_config.eos_token_id = stops
    if cfg.use_vllm:
        policy.config._name_or_path = str(vllm_view(sft_dir, out / CHECKPOINTS / "vllm"))
    lora = cfg.lora("CAUSAL_LM")  # with adapters, the frozen reference is the policy with them off
    reference = None if lora else CriticForCausalLM.from_pretrained(sft_dir)
    reward_model = CriticForSequenceClassification.from_pretrained(reward_dir, num_labels=1).eval()
    train = data["train"]
    rater = cfg.reward == "rater"
    prompts = Dataset.from_dict(
        {"prompt": [request(c) + OPENING for c in train["code"]], "code": train["code"]}
        | ({"bug_lines": train["bug_lines"], "description": train["description"]} if rater else {})
    )
    rollouts = None
    if cfg.constrain_quotes:
        rollouts = constrained_rollouts(prompts, tokenizer, cfg.max_new_tokens, stops, cfg.temperature)
    # the penalty's reward function only where it weighs something
    functions = reward_functions(reward_model, tokenizer, rater)[: 2 if cfg.hallucination_penalty else 1]
    args = GRPOConfig(
        max_steps=cfg.max_steps,
        per_device_train_batch_size=cfg.batch_size,
        num_generations=cfg.group_size,
        num_iterations=cfg.iterations,
        max_completion_length=cfg.max_new_tokens,
        learning_rate=cfg.learning_rate,
        beta=0.0,  # GRPOWithReference sets cfg.kl_coef, with our reference
        epsilon=cfg.clip_epsilon,
        scale_rewards=cfg.scale_rewards,
        loss_type="dapo",  # token-level mean over the batch: no bias towards short or long critiques
        temperature=cfg.temperature,
        reward_weights=[1.0, cfg.hallucination_penalty][: len(functions)],
        use_vllm=cfg.use_vllm,
        vllm_mode="colocate",
        remove_unused_columns=False,  # the reward functions read `code`
        # every step's reward and KL in the report: RL runs tens of steps, not thousands
        **(resumable_args(cfg.seed, out, cfg.save_steps) | {"logging_steps": 1}),
    )
    with warnings.catch_warnings():  # rollout_func is marked experimental in TRL; we test it ourselves
        warnings.filterwarnings("ignore", "You are using 'rollout_func'", UserWarning)
        trainer = GRPOWithReference(
            model=policy,
            reward_funcs=functions,
            args=args,
            train_dataset=prompts,
            processing_class=tokenizer,
            peft_config=lora,
            callbacks=[skip_final_checkpoint()],
            reference=reference,
            kl_coef=cfg.kl_coef,
            rollout_func=rollouts,
        )
    reward_model.to(trainer.accelerator.device)
    checkpoint = resume_point(
        out, {**dataclasses.asdict(cfg), "policy": str(sft_dir), "reward": str(reward_dir)}
    )
    trainer.train(resume_from_checkpoint=checkpoint)
    save_stage(trainer.accelerator, merged(trainer.model), tokenizer, out)
    trainer.accelerator.wait_for_everyone()
    after, greedy_after = measure(out, sft_dir)
    # each critique against the one drawn from the same random stream before: paired, resampled by prompt
    gain = bootstrap_ratio(
        [a - b for a, b in zip(after["rewards"], before["rewards"], strict=True)],
        [1.0] * len(before["rewards"]),
        [code for code in codes for _ in range(len(before["rewards"]) // len(codes))],
        seed=cfg.seed,
    )
    history = [h for h in trainer.state.log_history if "reward" in h]
    return {
        "steps": trainer.state.global_step,
        "resumed_from": resumed_step(checkpoint),
        # each batch of rollouts serves `iterations` steps
        "rollouts": trainer.state.global_step
        * cfg.batch_size
        * trainer.accelerator.num_processes
        // cfg.iterations,
        "reward_first": before["reward"],
        "reward_last": after["reward"],
        "reward_gain": gain,  # reward_last - reward_first, with its 95% bootstrap interval
        "greedy_reward_first": greedy_before["reward"],
        "greedy_reward_last": greedy_after["reward"],
        "kl": after["kl"],
        "eval_critiques": after["critiques"],
        "train_rewards": [round(h["reward"], 4) for h in history],
        "train_kl": [round(h["kl"], 4) for h in history if "kl" in h],
        "processes": trainer.accelerator.num_processes,
    }
