"""Decode speed: our sampling loop against generate(), same weights, same run.

    python bench/decode.py [--threads 2] [--repeats 3] [--prompt 500] [--new 128] [--configs tiny cpu-30m]

Three ways to continue the same prompts greedily with the same weights (float32, CPU):
`critic.inference.sampling.generate` (ours), `CriticForCausalLM.generate()` (our modules under
transformers' generation loop) and `Gemma2ForCausalLM.generate()` (transformers, eager
attention). min_new_tokens = max_new_tokens, so every run makes the same number of tokens.

Two rates per contender, best of --repeats, contenders taking turns:
- whole: batch x new tokens / time of the whole call (prefill included), what a caller sees;
- steps: batch x (new - 1) / (time for `new` tokens - time for 1), the decode steps alone.
Ratios are ours / theirs (> 1: ours faster).
"""

from __future__ import annotations

import argparse

import torch
from common import CONFIGS, best_times, same_weights

from critic.inference.sampling import generate
from critic.model import Gemma2CausalLM, new_causal_lm

CONTENDERS = ("ours", "wrapper", "transformers")
LABELS = {
    "ours": "critic.inference.sampling.generate",
    "wrapper": "CriticForCausalLM.generate()",
    "transformers": "Gemma2ForCausalLM.generate()",
}


@torch.inference_mode()
def decode_rates(
    model: Gemma2CausalLM,
    prompt_len: int = 500,
    new_tokens: int = 128,
    batches: tuple[int, ...] = (1, 4),
    repeats: int = 3,
) -> list[dict]:
    """One dict per batch size: tokens/s of each contender (whole call, decode steps alone),
    ratios of ours to the others, and whether all three made the same tokens."""
    model = model.eval()
    wrapped, ref = same_weights(model)
    gen = torch.Generator().manual_seed(0)
    results = []
    for batch in batches:
        ids = torch.randint(3, model.config.vocab_size, (batch, prompt_len), generator=gen)
        prompts = ids.tolist()

        def runs(n: int, ids=ids, prompts=prompts) -> dict:
            hf = dict(max_new_tokens=n, min_new_tokens=n, do_sample=False, pad_token_id=0)
            return {
                "ours": lambda: generate(model, prompts, n),
                "wrapper": lambda: wrapped.generate(ids, **hf)[:, prompt_len:].tolist(),
                "transformers": lambda: ref.generate(ids, **hf)[:, prompt_len:].tolist(),
            }

        outputs = {name: fn() for name, fn in runs(new_tokens).items()}
        whole = best_times(runs(new_tokens), repeats)
        first = best_times(runs(1), repeats)
        row = {"batch": batch, "prompt": prompt_len, "new_tokens": new_tokens}
        for name in CONTENDERS:
            row[f"{name}_tok_s"] = batch * new_tokens / whole[name]
            row[f"{name}_steps_tok_s"] = batch * (new_tokens - 1) / (whole[name] - first[name])
            row[f"{name}_prefill_ms"] = 1000 * first[name]
        for other in CONTENDERS[1:]:
            row[f"ratio_vs_{other}"] = row["ours_tok_s"] / row[f"{other}_tok_s"]
            row[f"steps_ratio_vs_{other}"] = row["ours_steps_tok_s"] / row[f"{other}_steps_tok_s"]
        row["same_tokens"] = outputs["ours"] == outputs["wrapper"] == outputs["transformers"]
        results.append(row)
    return results


def print_rates(rows: list[dict]) -> None:
    head = (
        f"{'':28}"
        + "".join(f"{LABELS[n]:>30}" for n in CONTENDERS)
        + f"{'ours/wrapper':>14}{'ours/transf.':>14}"
    )
    print(head)
    for row in rows:
        b = row["batch"]
        for kind, key, ratio in (("whole", "tok_s", "ratio_vs"), ("steps", "steps_tok_s", "steps_ratio_vs")):
            label = f"batch {b}, tok/s ({kind})"
            rates = "".join(f"{row[f'{n}_{key}']:30.0f}" for n in CONTENDERS)
            ratios = "".join(f"{row[f'{ratio}_{o}']:13.2f}x" for o in CONTENDERS[1:])
            print(f"{label:28}{rates}{ratios}")
        prefill = "".join(f"{row[f'{n}_prefill_ms']:30.1f}" for n in CONTENDERS)
        print(f"{f'batch {b}, ms for 1 token':28}{prefill}")
        if not row["same_tokens"]:
            print(f"  (batch {b}: the three did not make identical tokens)")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--prompt", type=int, default=500)
    parser.add_argument("--new", type=int, default=128)
    parser.add_argument("--configs", nargs="*", default=list(CONFIGS), choices=list(CONFIGS))
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, {args.threads} threads, float32, CPU; greedy, random weights (seed 0)")
    for name in args.configs:
        config = CONFIGS[name]
        print(
            f"\n{name}: {config.num_parameters() / 1e6:.1f} M parameters, window {config.sliding_window}; "
            f"prompt {args.prompt}, {args.new} new tokens, best of {args.repeats}"
        )
        model = new_causal_lm(config, seed=0)
        print_rates(decode_rates(model, args.prompt, args.new, repeats=args.repeats))


if __name__ == "__main__":
    main()
