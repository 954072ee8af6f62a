"""What a distillation step costs against an SFT step, for the same student on the same batch.

    python bench/distill_step.py [--threads 2] [--repeats 5] [--batch 8] [--length 400]

Both steps are forward, backward and an AdamW update of a `tiny` student (2.0 M parameters) on one
batch of critique-length sequences, with the loss on every token. The distillation step adds the
teacher's forward pass (`small`, 10.0 M) and replaces the one-hot cross-entropy by the forward KL from
the teacher's distribution, TRL's GKD loss as `critic train distill` uses it. The trainers' own
overhead (data loading, logging) is left out: it is the same for both.
"""

from __future__ import annotations

import argparse

import torch
from common import best_times
from trl.experimental.gkd import GKDTrainer

from critic.model import CriticConfig, CriticForCausalLM, to_hf_config


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--length", type=int, default=400)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)

    student = CriticForCausalLM(to_hf_config(CriticConfig.from_preset("tiny"))).train()
    teacher = CriticForCausalLM(to_hf_config(CriticConfig.from_preset("small"))).eval()
    optimizer = torch.optim.AdamW(student.parameters(), lr=1e-4)
    ids = torch.randint(3, student.config.vocab_size, (args.batch, args.length))
    labels = ids[:, 1:]

    def sft_step() -> None:
        logits = student(input_ids=ids).logits[:, :-1]
        loss = torch.nn.functional.cross_entropy(logits.flatten(0, 1), labels.flatten())
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()

    def distill_step() -> None:
        with torch.no_grad():
            teacher_logits = teacher(input_ids=ids).logits[:, :-1]
        logits = student(input_ids=ids).logits[:, :-1]
        loss = GKDTrainer.generalized_jsd_loss(logits, teacher_logits, labels, beta=0.0)
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()

    def teacher_forward() -> None:
        with torch.no_grad():
            teacher(input_ids=ids)

    times = best_times(
        {"sft": sft_step, "distill": distill_step, "teacher forward": teacher_forward}, args.repeats
    )
    tokens = args.batch * args.length
    shape = f"batch {args.batch} x {args.length} tokens"
    print(f"torch {torch.__version__}, {args.threads} threads, float32, {shape}")
    print(f"{'step':<18} {'ms':>8} {'tokens/s':>9} {'vs sft':>7}")
    for name, seconds in times.items():
        print(f"{name:<18} {seconds * 1e3:>8.0f} {tokens / seconds:>9.0f} {seconds / times['sft']:>6.2f}x")


if __name__ == "__main__":
    main()
