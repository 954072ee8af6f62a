"""Training speed in TRL of our Gemma 2 against transformers' Gemma2 (eager), same weights, same run.

    python bench/train.py [--threads 2] [--steps 20] [--episodes 32] [--repeats 1] [--quick]
                          [--stages sft reward rl]

On the `tiny` preset, for our classes (CriticForCausalLM / CriticForSequenceClassification) and
transformers' (Gemma2ForCausalLM / Gemma2ForSequenceClassification, attn_implementation="eager"),
built from one state dict per head, so both families start from identical weights:

- SFT tokens/s: TRL's SFTTrainer as the sft stage runs it (rl/sft.py's LeanSFTTrainer) on
  prompt-completion rows (critique request for a tampered HumanEval
  solution, gold critique as completion, loss on the completion only). Tokens are the non-pad tokens
  of the batches (prompt + completion, the trainer's `num_input_tokens_seen` with "non_padding").
- reward pairs/s: TRL's RewardTrainer on (gold critique, "no bug" critique) pairs, batch x steps.
- RL episodes/s: TRL's GRPOTrainer as the rl stage runs it (rl/reinforce.py), policy + frozen
  reference + reward model all of one family; an episode is one rollout, a critique sampled and
  trained on (batch per step, in groups of --group per prompt). Every rollout runs to
  --response-length tokens in both families. Both sample with TRL's generate() path, the same work
  in each family; the rl stage itself samples with critic's sampler under the quote constraint
  (rl/reinforce.py's `constrained_rollouts`), which transformers' model cannot run: the line after
  the table times ours that way, to the same length, against ours through generate().

Each rate is timed by a callback over the steps after the first --warmup ones, so the
first steps (allocator, dataloader start-up, lazy init) are not counted; TRL's own
`train_tokens_per_second` is timed from the start of train() and so includes them. With --repeats > 1
the families alternate and the best rate of each is kept. Ratio = ours / transformers (>1: ours faster).
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import io
import random
import tempfile
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass

import datasets
import torch
import transformers
import trl
from datasets import Dataset
from transformers import Gemma2ForCausalLM, Gemma2ForSequenceClassification, TrainerCallback
from trl import GRPOConfig, RewardConfig, RewardTrainer, SFTConfig

from critic.core.critique import request, terminate_critique
from critic.core.tokenizer import load_hf_tokenizer
from critic.datagen.rating import gold_critique
from critic.datagen.tamper import tamper
from critic.datagen.tamper_data import humaneval_items
from critic.model import CriticConfig, CriticForCausalLM, CriticForSequenceClassification, to_hf_config
from critic.rl.common import trainer_defaults
from critic.rl.reinforce import OPENING, GRPOWithReference, constrained_rollouts, reward_functions
from critic.rl.sft import LeanSFTTrainer

CONFIG = CriticConfig.from_preset("tiny")
FAMILIES = {
    "ours": (CriticForCausalLM, CriticForSequenceClassification, {}),
    "transformers": (Gemma2ForCausalLM, Gemma2ForSequenceClassification, {"attn_implementation": "eager"}),
}
NO_BUG = terminate_critique("I found no bugs in this code.")


@dataclass
class Sizes:
    batch: int  # SFT / reward / RL batch (rows, pairs, rollouts)
    steps: int  # timed SFT and reward optimizer steps
    warmup: int  # untimed steps before them
    episodes: int  # timed RL episodes, one rollout each (a multiple of batch)
    response_length: int  # RL tokens sampled per rollout
    group: int  # RL rollouts per prompt (GRPO's group)
    max_length: int  # SFT / reward sequence cap


@dataclass
class Result:
    rate: float  # per second, over the timed steps
    seconds: float  # the timed steps' wall time
    check: float  # mean loss (SFT, reward) or last mean reward (RL): equal across families = same work


class StepClock(TrainerCallback):
    """perf_counter and tokens seen at the start of training and at the end of every step."""

    def __init__(self) -> None:
        self.marks: list[tuple[float, int]] = []

    def _mark(self, state) -> None:
        self.marks.append((time.perf_counter(), state.num_input_tokens_seen))

    def on_train_begin(self, args, state, control, **kwargs):
        self._mark(state)

    def on_step_end(self, args, state, control, **kwargs):
        self._mark(state)

    def since(self, warmup: int) -> tuple[float, int]:
        """Seconds and tokens between the end of step `warmup` and the end of the last step."""
        if len(self.marks) - 1 <= warmup:
            raise RuntimeError(f"only {len(self.marks) - 1} steps ran, none after {warmup} warm-up steps")
        (t0, tok0), (t1, tok1) = self.marks[warmup], self.marks[-1]
        return t1 - t0, tok1 - tok0


def samples(n: int, seed: int) -> list[dict[str, str]]:
    """Critique requests for `n` tampered HumanEval solutions, their gold critique and a wrong one."""
    rng = random.Random(seed)
    rows = []
    for item in humaneval_items():
        found = tamper(item.code, rng)
        if not found:
            continue
        bug = found[0]
        gold = terminate_critique(gold_critique(bug.code, bug.bug_lines, bug.description))
        rows.append({"prompt": request(bug.code), "code": bug.code, "completion": gold, "rejected": NO_BUG})
        if len(rows) == n:
            break
    return rows


def common_args(out: str, seed: int, sizes: Sizes) -> dict:
    defaults = trainer_defaults(seed)
    defaults.update(
        output_dir=out,
        use_cpu=True,
        bf16=False,
        dataloader_pin_memory=False,
        logging_steps=10_000,  # logging (a loss sync) only at the end: nothing inside the timed steps
        learning_rate=1e-4,
        per_device_train_batch_size=sizes.batch,
    )
    return defaults


def build(cls, state: dict[str, torch.Tensor], **extra) -> torch.nn.Module:
    model = cls(to_hf_config(CONFIG, **extra))
    model.load_state_dict(state, strict=True)
    implementation = model.config._attn_implementation
    if cls.__module__.startswith("transformers") and implementation != "eager":
        raise RuntimeError(f"{cls.__name__} runs {implementation!r} attention, not eager (no soft-cap)")
    return model


def quiet_train(trainer):
    """trainer.train() without the per-log dicts on stdout (errors still reach stderr)."""
    with contextlib.redirect_stdout(io.StringIO()):
        return trainer.train()


def run_sft(family: str, states: dict, data: list[dict], sizes: Sizes, seed: int) -> Result:
    lm_cls, _, extra = FAMILIES[family]
    model = build(lm_cls, states["lm"], **extra)
    tokenizer = load_hf_tokenizer()
    rows = Dataset.from_list([{"prompt": r["prompt"], "completion": r["completion"]} for r in data])
    clock = StepClock()
    with tempfile.TemporaryDirectory() as out:
        args = SFTConfig(
            max_steps=sizes.warmup + sizes.steps,
            max_length=sizes.max_length,
            completion_only_loss=True,
            include_num_input_tokens_seen="non_padding",
            **common_args(out, seed, sizes),
        )
        trainer = LeanSFTTrainer(
            model, args, train_dataset=rows, processing_class=tokenizer, callbacks=[clock]
        )
        result = quiet_train(trainer)
    seconds, tokens = clock.since(sizes.warmup)
    return Result(tokens / seconds, seconds, result.training_loss)


def run_reward(family: str, states: dict, data: list[dict], sizes: Sizes, seed: int) -> Result:
    _, cls_cls, extra = FAMILIES[family]
    model = build(cls_cls, states["reward"], num_labels=1, **extra)
    tokenizer = load_hf_tokenizer()
    pairs = Dataset.from_list(
        [{"prompt": r["prompt"], "chosen": r["completion"], "rejected": r["rejected"]} for r in data]
    )
    clock = StepClock()
    with tempfile.TemporaryDirectory() as out:
        args = RewardConfig(
            max_steps=sizes.warmup + sizes.steps,
            max_length=sizes.max_length,
            **common_args(out, seed, sizes),
        )
        trainer = RewardTrainer(
            model=model, args=args, train_dataset=pairs, processing_class=tokenizer, callbacks=[clock]
        )
        result = quiet_train(trainer)
    seconds, _ = clock.since(sizes.warmup)
    return Result(sizes.batch * sizes.steps / seconds, seconds, result.training_loss)


def run_rl(
    family: str, states: dict, data: list[dict], sizes: Sizes, seed: int, quoted: bool = False
) -> Result:
    """The RL stage's trainer as rl/reinforce.py runs it: GRPO, KL to a frozen reference, the reward
    model's score of each rollout read as `critic review` reads a critique; every model of `family`.
    `quoted`: rollouts by the stage's quote-constrained sampler (ours only), never stopped early."""
    lm_cls, cls_cls, extra = FAMILIES[family]
    policy = build(lm_cls, states["lm"], **extra)
    reference = copy.deepcopy(policy)
    reward = build(cls_cls, states["reward"], num_labels=1, **extra).eval()
    tokenizer = load_hf_tokenizer()
    tokenizer.padding_side = "left"
    prompts = Dataset.from_dict(
        {"prompt": [r["prompt"] + OPENING for r in data], "code": [r["code"] for r in data]}
    )
    rollouts = constrained_rollouts(prompts, tokenizer, sizes.response_length, (), 0.7) if quoted else None
    clock = StepClock()
    with tempfile.TemporaryDirectory() as out:
        args = GRPOConfig(
            max_steps=sizes.warmup + sizes.episodes // sizes.batch,
            num_generations=sizes.group,
            max_completion_length=sizes.response_length,
            generation_kwargs={"min_new_tokens": sizes.response_length},  # no early stop in either family
            temperature=0.7,
            beta=0.0,  # GRPOWithReference sets it
            remove_unused_columns=False,
            **common_args(out, seed, sizes),
        )
        trainer = GRPOWithReference(
            model=policy,
            reward_funcs=reward_functions(reward, tokenizer)[:1],
            args=args,
            train_dataset=prompts,
            processing_class=tokenizer,
            callbacks=[clock],
            reference=reference,
            kl_coef=0.05,
            rollout_func=rollouts,
        )
        quiet_train(trainer)
    seconds, _ = clock.since(sizes.warmup)
    rewards = [h["reward"] for h in trainer.state.log_history if "reward" in h]
    return Result(sizes.episodes / seconds, seconds, rewards[-1] if rewards else float("nan"))


STAGES: dict[str, tuple[str, str, Callable]] = {
    "sft": ("SFT tokens/s", "loss", run_sft),
    "reward": ("reward pairs/s", "loss", run_reward),
    "rl": ("RL episodes/s", "reward", run_rl),
}


def rate(value: float) -> str:
    return f"{value:.0f}" if value >= 100 else f"{value:.3g}"


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--steps", type=int, default=20, help="timed SFT / reward steps")
    parser.add_argument("--episodes", type=int, default=32, help="timed RL episodes (multiple of --batch)")
    parser.add_argument("--warmup", type=int, default=1, help="untimed first steps")
    parser.add_argument("--group", type=int, default=4, help="RL rollouts per prompt")
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--response-length", type=int, default=48)
    parser.add_argument("--max-length", type=int, default=768)
    parser.add_argument("--repeats", type=int, default=1, help="runs per family; the best rate is kept")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--stages", nargs="*", default=list(STAGES), choices=list(STAGES))
    parser.add_argument("--quick", action="store_true", help="smoke test: batch 2, 2 steps, 1 warm-up")
    args = parser.parse_args()
    if args.quick:
        sizes = Sizes(2, 2, 1, 2, 8, 2, args.max_length)
    else:
        sizes = Sizes(
            args.batch,
            args.steps,
            args.warmup,
            args.episodes,
            args.response_length,
            args.group,
            args.max_length,
        )
    if sizes.episodes % sizes.batch or sizes.batch % sizes.group:
        parser.error(f"--episodes must be a multiple of --batch ({sizes.batch}), and that of --group")

    torch.set_num_threads(args.threads)
    transformers.logging.set_verbosity_error()
    datasets.disable_progress_bars()
    warnings.filterwarnings("ignore")
    print(
        f"torch {torch.__version__}, transformers {transformers.__version__}, trl {trl.__version__}, "
        f"{torch.get_num_threads()} threads, float32, CPU"
    )
    print(
        f"tiny preset: {CONFIG.num_parameters() / 1e6:.1f} M parameters; batch {sizes.batch}, "
        f"{sizes.warmup} warm-up + {sizes.steps} timed steps (SFT, reward), "
        f"{sizes.warmup} warm-up + {sizes.episodes // sizes.batch} timed RL steps of "
        f"{sizes.batch} rollouts ({sizes.group} per prompt) of {sizes.response_length} sampled tokens"
    )

    data = samples(max(64, sizes.batch * 4), args.seed)
    torch.manual_seed(args.seed)
    states = {
        "lm": CriticForCausalLM(to_hf_config(CONFIG)).state_dict(),
        "reward": CriticForSequenceClassification(to_hf_config(CONFIG, num_labels=1)).state_dict(),
    }
    states = {k: {name: t.detach().clone() for name, t in s.items()} for k, s in states.items()}

    table = []
    for stage, check, fn in (STAGES[name] for name in args.stages):
        runs: dict[str, list[Result]] = {family: [] for family in FAMILIES}
        for repeat in range(args.repeats):
            order = list(FAMILIES) if repeat % 2 == 0 else list(reversed(FAMILIES))
            for family in order:
                runs[family].append(fn(family, states, data, sizes, args.seed))
        best = {family: max(results, key=lambda r: r.rate) for family, results in runs.items()}
        table.append((stage, best["ours"].rate, best["transformers"].rate))
        detail = ", ".join(f"{f} {r.seconds:.1f} s, {check} {r.check:.4f}" for f, r in best.items())
        print(f"  {stage}: timed part {detail}", flush=True)

    print(f"\n{'stage':16} {'ours':>10} {'transformers':>13} {'ratio':>7}")
    for stage, ours, ref in table:
        print(f"{stage:16} {rate(ours):>10} {rate(ref):>13} {ours / ref:6.2f}x")
    if "rl" in args.stages:
        quoted = max(
            (run_rl("ours", states, data, sizes, args.seed, quoted=True) for _ in range(args.repeats)),
            key=lambda r: r.rate,
        )
        generated = next(ours for stage, ours, _ in table if stage == STAGES["rl"][0])
        print(
            f"\nrl, as the stage samples (critic's sampler, quote-constrained): {rate(quoted.rate)} "
            f"episodes/s, {quoted.rate / generated:.2f}x ours through generate()"
        )


if __name__ == "__main__":
    main()
