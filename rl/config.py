"""One YAML file configures a whole run: a dataclass per stage, in pipeline order.

Unknown keys are errors (a typo must not silently fall back to a default).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from critic.core.errors import UserError
from critic.core.sources import HUMANEVAL, STDLIB

LORA_TARGETS = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]


@dataclass
class LoraOptions:
    """For the trainer stages: full fine-tuning, or LoRA adapters merged into the saved checkpoint."""

    lora_r: int = 0  # > 0: train LoRA adapters of this rank (merged into the saved checkpoint)
    lora_alpha: int = 16
    lora_targets: list[str] = field(default_factory=lambda: list(LORA_TARGETS))

    def lora(self, task_type: str):
        from critic.rl.common import lora_config

        return lora_config(self.lora_r, self.lora_alpha, self.lora_targets, task_type)


@dataclass
class DataStage:
    # a source name (critic.core.sources: humaneval, stdlib, site-packages), a directory of Python files,
    # or a list of these (each is split into train/validation/test on its own)
    source: str | list[str] = HUMANEVAL
    per_item: int = 4
    max_items: int | None = None  # first N source items only (quick runs and tests)
    max_per_source: int | None = None  # a seeded random sample of at most N items from each source
    line_uniform_fraction: float = 0.0  # share of items whose bugs sit on uniformly drawn lines
    seed: int = 0


@dataclass
class PretrainStage:
    """Plain next-token loss on whole Python files (rl/pretrain.py), before SFT; the sft stage then starts
    from this stage's checkpoint. Files the data stage holds out (split != train) are never read."""

    preset: str = "tiny"  # architecture when training from scratch: a preset, or a directory with config.json
    init: str | None = None  # or continue from a checkpoint directory (e.g. public Gemma 2 weights)
    # stdlib (tests left out), site-packages or directories (critic.core.sources); never humaneval
    sources: list[str] = field(default_factory=lambda: [STDLIB])
    max_tokens: int | None = 20_000_000  # corpus cap (None: every file of the sources)
    max_file_chars: int = 200_000  # a longer file is cut at the last line end before this
    max_steps: int = 1000
    batch_size: int = 8
    max_length: int = 512  # files are packed, <bos>...<eos> each, into full rows of this many tokens
    learning_rate: float = 1e-3
    warmup_ratio: float = 0.02  # linear warm-up over this share of max_steps, then cosine decay to 0
    adam_beta2: float = 0.99  # above the 0.95 of large-batch recipes: small batches need the longer average
    weight_decay: float = 0.0
    save_steps: int = 200  # a resumable checkpoint every this many steps (RUN/pretrain/checkpoints/)
    seed: int = 0  # weights of a new model, file order, batch order

    def __post_init__(self) -> None:
        if isinstance(self.sources, str):
            self.sources = [self.sources]
        if not self.sources:
            raise UserError("pretrain.sources is empty; give stdlib, site-packages or directories")
        if not 0.0 <= self.warmup_ratio < 1.0:
            raise UserError(f"pretrain.warmup_ratio must be in [0, 1), not {self.warmup_ratio}")
        if not 0.0 < self.adam_beta2 < 1.0:
            raise UserError(f"pretrain.adam_beta2 must be in (0, 1), not {self.adam_beta2}")
        for name in ("max_steps", "batch_size", "max_length", "save_steps", "max_file_chars"):
            if getattr(self, name) <= 0:
                raise UserError(f"pretrain.{name} must be positive, not {getattr(self, name)}")
        if self.max_tokens is not None and self.max_tokens < self.max_length:
            raise UserError(f"pretrain.max_tokens ({self.max_tokens}) is below one row of max_length tokens")


@dataclass
class SFTStage(LoraOptions):
    # where the policy starts, unless the config has a pretrain section (then from RUN/pretrain)
    preset: str = "tiny"  # architecture when training from scratch
    init: str | None = None  # or start from a checkpoint directory (e.g. public Gemma 2 weights)
    clean_fraction: float = 0.0  # also teach "no bugs" on this share of the untampered originals
    max_steps: int = 200
    batch_size: int = 8
    learning_rate: float = 1e-3
    max_length: int = 768
    save_steps: int = 200  # a resumable checkpoint every this many steps (RUN/sft/checkpoints/)
    seed: int = 0


@dataclass
class DistillStage:
    """A `student` learns the teacher's next-token distributions (rl/distill.py); the later stages then
    sample from, reward-model and RL-train the student."""

    teacher: str | None = None  # checkpoint directory; None: this run's sft stage is the teacher
    student: str = "tiny"  # a preset (taking the teacher's vocabulary) or a config/checkpoint directory
    pretrain_steps: int = 0  # distil on plain Python first (train-split stdlib functions, critic.rl.sft)
    clean_fraction: float = 0.0
    max_steps: int = 200
    batch_size: int = 8
    learning_rate: float = 1e-3
    max_length: int = 768
    beta: float = 0.0  # 0: forward KL from the teacher (Gemma 2); 1: reverse KL; between: generalized JSD
    lmbda: float = 0.0  # share of steps on the student's own sampled critiques (on-policy GKD)
    temperature: float = 1.0  # of those samples
    max_new_tokens: int = 128
    seed: int = 0

    def __post_init__(self) -> None:
        for name in ("beta", "lmbda"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise UserError(f"distill.{name} must be between 0 and 1, not {getattr(self, name)}")


@dataclass
class SampleStage:
    samples_per_task: int = 4
    max_new_tokens: int = 96
    temperature: float = 1.0
    max_tasks: int | None = None  # per split; None = all
    batch_size: int = 16
    seed: int = 0
    # open each critique with a highlight quoted verbatim from the code, as FSBS does
    # (critic.inference.quoting)
    constrain_quotes: bool = True


@dataclass
class RateStage:
    include_gold: bool = True  # the tamperer's own description, as CriticGPT's comparisons do
    # the "no bugs" answer: rated among the tampered code's critiques, and preferred on the untampered
    # original over a critique of the same lines (review's confidence compares a finding against it)
    include_no_bugs: bool = True
    automatic: bool = True  # rate the sampled critiques with the automatic rubric rater
    human_ratings: str | None = None  # and/or add pairs from `critic data export` output (a directory)
    # > 0: also rank, on every tampered sample of the data stage, the gold critique above "no bugs"
    # above critiques of this many other lines (critic.rl.pairs): localizer pairs that need no sampling
    synthetic_negatives: int = 0
    seed: int = 0


@dataclass
class RankStage:
    """Ranking warm-up of the reward model on packed synthetic orderings (rl/rank.py), before the reward
    stage, which then starts from this stage's checkpoint instead of the policy."""

    negatives: int = 6  # the gold critique moved to this many other lines, per tampered sample
    clean_negatives: int = 2  # ... and to this many lines of its untampered original
    line_claims: bool = True  # also rank line claims of the same lines: what a finding's confidence scores
    max_steps: int = 1000
    batch_size: int = 8  # packed rows (one prompt and all its critiques each) per step
    learning_rate: float = 3e-4
    warmup_ratio: float = 0.02
    max_length: int = 1024  # tokens of a packed row; critiques that do not fit are left out
    save_steps: int = 100
    eval_samples: int = 256  # validation samples whose orderings measure held-out accuracy
    seed: int = 0


@dataclass
class RewardStage(LoraOptions):
    max_steps: int = 150
    batch_size: int = 8
    learning_rate: float = 5e-4
    max_length: int = 768
    save_steps: int = 200  # a resumable checkpoint every this many steps (RUN/reward/checkpoints/)
    eval_pairs: int = 1024  # held-out accuracy on at most this many validation pairs (seeded sample)
    seed: int = 0


@dataclass
class RLStage(LoraOptions):
    """Reinforcement learning of the policy against the reward model (rl/reinforce.py): TRL's GRPO, which
    keeps PPO's clipped objective and KL to the SFT policy, with a group baseline for a value model."""

    max_steps: int = 8  # optimizer steps; each reads `batch_size` rollouts
    batch_size: int = 8  # rollouts per step and process: batch_size / group_size prompts
    group_size: int = 4  # rollouts per prompt; each is judged against its group's mean reward
    iterations: int = 1  # optimizer passes over each batch of rollouts (GRPO's mu): > 1 makes clipping bite
    max_new_tokens: int = 64  # of each rollout
    learning_rate: float = 3e-5
    kl_coef: float = 0.05  # weight of the KL to the SFT policy in the loss (GRPO's beta)
    clip_epsilon: float = 0.2  # the clipped surrogate's range, as in PPO
    scale_rewards: str = "group"  # advantages over the group's reward std ("group"), the batch's, or "none"
    temperature: float = 0.7  # of the rollouts, and of the held-out critiques
    hallucination_penalty: float = 0.0  # a second reward: minus this for a quote that is not in the code
    # "model": the reward model; "rater": the rubric rater that knows the inserted bug, whose overall score
    # the reward model learns to predict (a perfect reward model: an ablation, rl/reinforce.py)
    reward: str = "model"
    eval_prompts: int = 16  # validation prompts of the held-out reward, one per function first
    eval_samples: int = 4  # critiques per prompt for the held-out reward, sampled at `temperature`
    # rollouts' quotes and inline code held to verbatim code, as FSBS samples critiques (rl/reinforce.py)
    constrain_quotes: bool = True
    use_vllm: bool = False  # rollouts by vLLM, colocated on each GPU (pip install vllm; GPU only)
    save_steps: int = 50  # a resumable checkpoint every this many steps (RUN/rl/checkpoints/)
    seed: int = 0

    def __post_init__(self) -> None:
        for name in ("max_steps", "batch_size", "group_size", "iterations", "max_new_tokens", "save_steps"):
            if getattr(self, name) <= 0:
                raise UserError(f"rl.{name} must be positive, not {getattr(self, name)}")
        if self.group_size < 2 or self.batch_size % self.group_size:
            raise UserError(
                f"rl.batch_size ({self.batch_size}) must be a multiple of rl.group_size ({self.group_size}), "
                "which is at least 2: each rollout is judged against the others of its group"
            )
        if self.reward not in ("model", "rater"):
            raise UserError(f"rl.reward must be model or rater, not {self.reward!r}")
        if self.scale_rewards not in ("group", "batch", "none"):
            raise UserError(f"rl.scale_rewards must be group, batch or none, not {self.scale_rewards!r}")
        if self.kl_coef < 0 or self.clip_epsilon <= 0:
            raise UserError("rl.kl_coef must be at least 0 and rl.clip_epsilon above 0")
        if self.use_vllm and self.constrain_quotes:
            raise UserError(
                "rl.use_vllm samples rollouts without the quote constraint: set rl.constrain_quotes: false "
                "with it (rl.hallucination_penalty then scores made-up quotes)"
            )


@dataclass
class CalibrateStage:
    """Platt scaling of the finished critic's confidence on the validation split (rl/calibrate.py)."""

    max_samples: int = 150  # validation samples reviewed (and their originals, as clean code)
    bootstrap: int = 200  # resamples of the intervals in the min-score sweep
    seed: int = 0


@dataclass
class LocalizeStage:
    """The repair search's localizer, fitted on the validation split (rl/localize.py)."""

    max_samples: int = 400  # validation samples scored (and their originals, as clean code)
    bootstrap: int = 200  # resamples of the intervals in the min-score sweep
    # the language model whose repair margins are scored: a stage of the run (its output directory) or a
    # checkpoint directory; the RL policy unless given
    language_model: str = "rl"
    seed: int = 0

    def __post_init__(self) -> None:
        if self.language_model == "ppo":
            raise UserError("localize.language_model: the ppo stage is now `rl`; write `language_model: rl`")


@dataclass
class PipelineConfig:
    data: DataStage = field(default_factory=DataStage)
    # optional stages: off unless the config has their section
    pretrain: PretrainStage | None = field(default=None, metadata={"section": PretrainStage})
    sft: SFTStage = field(default_factory=SFTStage)
    distill: DistillStage | None = field(default=None, metadata={"section": DistillStage})  # off unless given
    sample: SampleStage = field(default_factory=SampleStage)
    rate: RateStage = field(default_factory=RateStage)
    rank: RankStage | None = field(default=None, metadata={"section": RankStage})
    reward: RewardStage = field(default_factory=RewardStage)
    rl: RLStage = field(default_factory=RLStage)
    calibrate: CalibrateStage | None = field(default=None, metadata={"section": CalibrateStage})
    localize: LocalizeStage | None = field(default=None, metadata={"section": LocalizeStage})

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> PipelineConfig:
        sections = {f.name: f for f in dataclasses.fields(cls)}
        if "ppo" in raw:
            raise UserError(
                "the ppo section is gone: TRL no longer ships PPO, and RL now runs on its GRPO trainer; "
                "rename `ppo:` to `rl:` and write max_steps (= total_episodes / batch_size), group_size, "
                "max_new_tokens (was response_length) and the rest as rl/configs/tiny.yaml does"
            )
        if unknown := set(raw) - set(sections):
            raise UserError(f"unknown config section(s): {', '.join(sorted(unknown))}")
        sft = raw.get("sft") if isinstance(raw.get("sft"), dict) else {}
        if "pretrain_steps" in sft:
            raise UserError(
                "sft.pretrain_steps is gone: pre-training is its own stage now; move it to a `pretrain:` "
                "section (max_steps, and the architecture as pretrain.preset or pretrain.init)"
            )
        if raw.get("pretrain") is not None and (given := sorted({"preset", "init"} & set(sft))):
            raise UserError(
                f"sft.{given[0]}: with a pretrain section the sft stage starts from the pretrain stage's "
                "checkpoint; give the architecture as pretrain.preset or pretrain.init instead"
            )
        built = {}
        for name, value in raw.items():
            if value is None and sections[name].default is None:  # an optional stage, left off
                continue
            stage_cls = sections[name].metadata.get("section") or sections[name].default_factory
            if not isinstance(value, dict):
                raise UserError(f"config section {name!r} must be a mapping")
            known = {f.name for f in dataclasses.fields(stage_cls)}
            if unknown := set(value) - known:
                raise UserError(f"unknown key(s) in {name}: {', '.join(sorted(unknown))}")
            built[name] = stage_cls(**value)
        return cls(**built)

    def __post_init__(self) -> None:
        if self.pretrain is not None and self.distill is not None and self.distill.teacher:
            raise UserError(
                "a pretrain section with distill.teacher: no sft stage would start from the pre-trained "
                "checkpoint (the teacher comes from outside the run); drop one of them"
            )

    @classmethod
    def from_yaml(cls, path: str | Path) -> PipelineConfig:
        import yaml

        path = Path(path)
        if not path.is_file():
            raise UserError(f"{path}: no such config file")
        try:
            raw = yaml.safe_load(path.read_text()) or {}
        except yaml.YAMLError as err:
            raise UserError(f"{path}: invalid YAML ({err})") from err
        if not isinstance(raw, dict):
            raise UserError(f"{path}: expected a mapping of stage sections")
        return cls.from_dict(raw)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)
