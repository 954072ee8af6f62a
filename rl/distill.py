"""Distillation: a small critic learns a larger critic's whole next-token distribution, as Gemma 2's
small models learned from a larger teacher instead of from one-hot next tokens alone.

Trainer: TRL's GKDTrainer (trl.experimental). With `lmbda` 0 (the default) every step is supervised KD
on fixed text, the Gemma 2 recipe: the critique requests of the tampering data with their gold
critiques (and, first, plain Python for `pretrain_steps`), the loss the forward KL from the teacher's
distribution at every completion token (`beta` 0; 1 is reverse KL, between a generalized JSD). `lmbda`
> 0 makes that share of steps on-policy, on critiques the student samples itself (GKD). TRL's stable
DistillationTrainer (still in 1.16) is on-policy only, which fits a student that already writes
critiques; ours starts from random weights, so its first samples are not critiques and the teacher's
distribution over them teaches little.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import torch
from datasets import Dataset, DatasetDict

from critic.core.errors import UserError
from critic.core.tokenizer import load_hf_tokenizer
from critic.core.tokens import BOS
from critic.model import CriticConfig, CriticForCausalLM, to_hf_config
from critic.model.checkpoint import read_config, verify_checkpoint, weight_files
from critic.rl.common import check_checkpoint, trainer_defaults
from critic.rl.config import DistillStage
from critic.rl.sft import fitting, pretraining_corpus, sft_examples

KL_EXAMPLES = 64  # validation critiques the KL to the teacher is measured on, before and after


class PromptCompletionCollator:
    """GKDTrainer batches from prompt/completion text: the sequence right-padded with the loss on the
    completion only, and the prompt left-padded on its own for the student's on-policy samples."""

    def __init__(self, tokenizer, max_length: int) -> None:
        self.tokenizer, self.max_length = tokenizer, max_length

    def __call__(self, examples: list[dict[str, Any]]) -> dict[str, torch.Tensor]:
        tok, pad = self.tokenizer, self.tokenizer.pad_token_id
        prompts = [tok(e["prompt"], add_special_tokens=False).input_ids for e in examples]
        completions = [
            tok(e["completion"], add_special_tokens=False).input_ids + [tok.eos_token_id] for e in examples
        ]
        ids = [(p + c)[: self.max_length] for p, c in zip(prompts, completions, strict=True)]
        labels = [([-100] * len(p) + c)[: self.max_length] for p, c in zip(prompts, completions, strict=True)]
        width, prompt_width = max(map(len, ids)), max(map(len, prompts))

        def right(rows: list[list[int]], value: int) -> torch.Tensor:
            return torch.tensor([row + [value] * (width - len(row)) for row in rows])

        return {
            "input_ids": right(ids, pad),
            "attention_mask": right([[1] * len(row) for row in ids], 0),
            "labels": right(labels, -100),
            "prompts": torch.tensor([[pad] * (prompt_width - len(p)) + p for p in prompts]),
            "prompt_attention_mask": torch.tensor(
                [[0] * (prompt_width - len(p)) + [1] * len(p) for p in prompts]
            ),
        }


def load_policy(directory: str | Path) -> tuple[CriticForCausalLM, Any]:
    """A critic checkpoint and its tokenizer, checked first so a bad directory fails naming the file."""
    directory = check_checkpoint(directory)
    return CriticForCausalLM.from_pretrained(directory).eval(), load_hf_tokenizer(directory)


def plan_student(
    spec: str, teacher_config: CriticConfig, teacher_tokenizer
) -> tuple[CriticConfig, Path | None, Any]:
    """The student's config, the checkpoint it starts from (None: new weights) and its tokenizer, read
    without loading weights, so bad input fails in a moment. A preset name gives that shape with the
    teacher's vocabulary (a new model can take any); a directory holds a config.json alone or a whole
    checkpoint."""
    path = Path(spec)
    if not path.is_dir():
        ids = ("vocab_size", "pad_token_id", "eos_token_id", "bos_token_id")
        try:
            config = CriticConfig.from_preset(spec, **{k: getattr(teacher_config, k) for k in ids})
        except ValueError as err:
            raise UserError(f"--student-config: {err}, or a directory") from err
        return config, None, teacher_tokenizer
    config = read_config(path)
    tokenizer = load_hf_tokenizer(path) if (path / "tokenizer.json").is_file() else teacher_tokenizer
    if any(f.is_file() for f in weight_files(path)):
        verify_checkpoint(path)
        return config, path, tokenizer
    return config, None, tokenizer


def check_shared_vocabulary(
    teacher_dir: str | Path,
    teacher: CriticConfig,
    teacher_tokenizer,
    student: CriticConfig,
    student_tokenizer,
) -> None:
    """KD compares distributions token by token: the same ids must mean the same strings."""
    if (
        teacher.vocab_size != student.vocab_size
        or teacher_tokenizer.get_vocab() != student_tokenizer.get_vocab()
    ):
        raise UserError(
            f"teacher {teacher_dir} and the student do not share a vocabulary (teacher {teacher.vocab_size} "
            f"ids, student {student.vocab_size}); distillation matches next-token distributions id by id, "
            "so give the student the teacher's tokenizer (a preset student takes it automatically)"
        )


@torch.no_grad()
def agreement(student, teacher, examples: Dataset, collator, batch_size: int = 8) -> dict[str, float]:
    """Per completion token: the forward KL(teacher || student) the distillation loss minimises, and the
    student's NLL of the gold tokens (what SFT minimises), so either kind of student can be compared."""
    from trl.experimental.gkd import GKDTrainer

    kl = nll = 0.0
    tokens = 0
    was_training = student.training
    student.eval()
    for start in range(0, len(examples), batch_size):
        batch = collator([examples[i] for i in range(start, min(start + batch_size, len(examples)))])
        inputs = {k: batch[k].to(student.device) for k in ("input_ids", "attention_mask")}
        labels = batch["labels"][:, 1:].to(student.device)
        logits = student(**inputs).logits[:, :-1]
        kl += GKDTrainer.generalized_jsd_loss(
            logits, teacher(**inputs).logits[:, :-1], labels, beta=0.0, reduction="sum"
        ).item()
        nll += torch.nn.functional.cross_entropy(
            logits.flatten(0, 1), labels.flatten(), reduction="sum"
        ).item()
        tokens += int((labels != -100).sum())
    student.train(was_training)
    return {"kl": kl / max(tokens, 1), "nll": nll / max(tokens, 1)}


def probe_examples(data: DatasetDict, tokenizer, max_length: int) -> Dataset:
    """The held-out critiques agreement is measured on: the first KL_EXAMPLES of validation that fit."""
    held_out = data["validation"] if "validation" in data else data["train"]
    probe = fitting(sft_examples(held_out, clean_fraction=0.0, seed=0), tokenizer, max_length)
    return probe.select(range(min(KL_EXAMPLES, len(probe))))


def run_distill(cfg: DistillStage, data: DatasetDict, teacher_dir: str | Path, out: Path) -> dict:
    from trl.experimental.gkd import GKDConfig, GKDTrainer

    teacher_config = read_config(check_checkpoint(teacher_dir))
    teacher_tokenizer = load_hf_tokenizer(teacher_dir)
    config, start, tokenizer = plan_student(cfg.student, teacher_config, teacher_tokenizer)
    check_shared_vocabulary(teacher_dir, teacher_config, teacher_tokenizer, config, tokenizer)
    teacher = CriticForCausalLM.from_pretrained(teacher_dir).eval()  # checked above
    torch.manual_seed(cfg.seed)
    student = CriticForCausalLM.from_pretrained(start) if start else CriticForCausalLM(to_hf_config(config))
    collator = PromptCompletionCollator(tokenizer, cfg.max_length)
    probe = probe_examples(data, tokenizer, cfg.max_length)
    before = agreement(student, teacher, probe, collator)
    metrics: dict = {
        "parameters": sum(p.numel() for p in student.parameters()),
        "teacher_parameters": sum(p.numel() for p in teacher.parameters()),
        "kl_before": before["kl"],
        "nll_before": before["nll"],
    }
    with tempfile.TemporaryDirectory() as scratch:

        def train(examples: Dataset, steps: int, lmbda: float) -> GKDTrainer:
            args = GKDConfig(
                output_dir=scratch,
                max_steps=steps,
                per_device_train_batch_size=cfg.batch_size,
                learning_rate=cfg.learning_rate,
                max_length=cfg.max_length,
                lmbda=lmbda,
                beta=cfg.beta,
                temperature=cfg.temperature,
                max_new_tokens=cfg.max_new_tokens,
                **trainer_defaults(cfg.seed),
            )
            trainer = GKDTrainer(
                student,
                teacher,
                args,
                data_collator=collator,
                train_dataset=examples,
                processing_class=tokenizer,
            )
            trainer.train()
            return trainer

        if cfg.pretrain_steps:  # plain code first, as SFT pre-trains, but on the teacher's distributions
            corpus = pretraining_corpus()
            corpus = Dataset.from_dict(
                {"prompt": [BOS] * len(corpus), "completion": [text[len(BOS) :] for text in corpus["text"]]}
            )
            trainer = train(corpus, cfg.pretrain_steps, 0.0)
            metrics["pretrain_loss"] = trainer.state.log_history[-1].get("train_loss")
        examples = sft_examples(data["train"], cfg.clean_fraction, cfg.seed)
        fit = fitting(examples, tokenizer, cfg.max_length)
        metrics.update(examples=len(fit), too_long=len(examples) - len(fit))
        trainer = train(fit, cfg.max_steps, cfg.lmbda)
    history = trainer.state.log_history
    metrics.update(
        loss=history[-1].get("train_loss"),
        steps=trainer.state.global_step,
        losses=[round(h["loss"], 4) for h in history if "loss" in h],
        kl_examples=len(probe),
    )
    after = agreement(student, teacher, probe, collator)
    metrics.update(kl_after=after["kl"], nll_after=after["nll"])
    if trainer.accelerator.is_main_process:
        student.save_pretrained(out)
        tokenizer.save_pretrained(out)
    return metrics
