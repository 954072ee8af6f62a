"""One YAML file configures a whole run: a dataclass per stage, in pipeline order.

Unknown keys are errors (a typo must not silently fall back to a default).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from critic.errors import UserError

LORA_TARGETS = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]


@dataclass
class LoraOptions:
    """For the trainer stages: full fine-tuning, or LoRA adapters merged into the saved checkpoint."""

    lora_r: int = 0  # > 0: train LoRA adapters of this rank (merged into the saved checkpoint)
    lora_alpha: int = 16
    lora_targets: list[str] = field(default_factory=lambda: list(LORA_TARGETS))

    def lora(self, task_type: str):
        from rl.common import lora_config

        return lora_config(self.lora_r, self.lora_alpha, self.lora_targets, task_type)


@dataclass
class DataStage:
    # "humaneval", "stdlib" (this interpreter's standard library), a directory of Python files, or a
    # list of these (each is split into train/validation/test on its own)
    source: str | list[str] = "humaneval"
    per_item: int = 4
    max_items: int | None = None  # first N source items only (quick runs and tests)
    max_per_source: int | None = None  # a seeded random sample of at most N items from each source
    seed: int = 0


@dataclass
class SFTStage(LoraOptions):
    preset: str = "tiny"  # architecture when training from scratch
    init: str | None = None  # or start from a checkpoint directory (e.g. public Gemma 2 weights)
    pretrain_steps: int = 0  # continued pre-training on plain Python source before SFT
    clean_fraction: float = 0.0  # also teach "no bugs" on this share of the untampered originals
    max_steps: int = 200
    batch_size: int = 8
    learning_rate: float = 1e-3
    max_length: int = 768
    seed: int = 0


@dataclass
class DistillStage:
    """A `student` learns the teacher's next-token distributions (rl/distill.py); the later stages then
    sample from, reward-model and PPO the student."""

    teacher: str | None = None  # checkpoint directory; None: this run's sft stage is the teacher
    student: str = "tiny"  # a preset (taking the teacher's vocabulary) or a config/checkpoint directory
    pretrain_steps: int = 0  # distil on plain Python first, as the sft stage pre-trains
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
    # open each critique with a highlight quoted verbatim from the code, as FSBS does (critic.quoting)
    constrain_quotes: bool = True


@dataclass
class RateStage:
    include_gold: bool = True  # the tamperer's own description, as CriticGPT's comparisons do
    # the "no bugs" answer: rated among the tampered code's critiques, and preferred on the untampered
    # original over a critique of the same lines (review's confidence compares a finding against it)
    include_no_bugs: bool = True
    automatic: bool = True  # rate the sampled critiques with the automatic rubric rater
    human_ratings: str | None = None  # and/or add pairs from `critic data export` output (a directory)


@dataclass
class RewardStage(LoraOptions):
    max_steps: int = 150
    batch_size: int = 8
    learning_rate: float = 5e-4
    max_length: int = 768
    seed: int = 0


@dataclass
class PPOStage(LoraOptions):
    total_episodes: int = 64
    batch_size: int = 8
    response_length: int = 64
    learning_rate: float = 3e-5
    kl_coef: float = 0.05
    hallucination_penalty: float = 0.0  # subtracted from the reward when a quote is not in the code
    eval_prompts: int = 16
    seed: int = 0


@dataclass
class PipelineConfig:
    data: DataStage = field(default_factory=DataStage)
    sft: SFTStage = field(default_factory=SFTStage)
    distill: DistillStage | None = field(default=None, metadata={"section": DistillStage})  # off unless given
    sample: SampleStage = field(default_factory=SampleStage)
    rate: RateStage = field(default_factory=RateStage)
    reward: RewardStage = field(default_factory=RewardStage)
    ppo: PPOStage = field(default_factory=PPOStage)

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> PipelineConfig:
        sections = {f.name: f for f in dataclasses.fields(cls)}
        if unknown := set(raw) - set(sections):
            raise UserError(f"unknown config section(s): {', '.join(sorted(unknown))}")
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
