"""Speed of our Gemma 2 against transformers' Gemma2 (eager), same weights, same run.

    python bench/model.py [--threads 2] [--repeats 3]

Prints prefill and decode tokens/s for each model and their ratio (ours / transformers),
and the KV-cache bytes of our sliding-window ring at 4 x window vs a full cache.
Decode is greedy, 64 new tokens after a 128-token prompt, whole calls, best of --repeats;
bench/decode.py measures decode alone, at a longer prompt, in more detail.
"""

from __future__ import annotations

import argparse

import torch
from common import CONFIGS, best_times, same_weights
from decode import decode_rates

from critic.model import CriticConfig, KVCache, new_causal_lm

PROMPT, NEW = 128, 64


@torch.inference_mode()
def bench(name: str, config: CriticConfig, repeats: int) -> None:
    ours = new_causal_lm(config, seed=0).eval()
    _, ref = same_weights(ours)
    print(f"\n{name}: {config.num_parameters() / 1e6:.1f} M parameters, window {config.sliding_window}")
    print(f"{'measure':34} {'ours':>10} {'transformers':>13} {'ratio':>7}")

    gen = torch.Generator().manual_seed(0)
    for batch, length in ((1, 512), (4, 512)):
        ids = torch.randint(3, config.vocab_size, (batch, length), generator=gen)
        t = best_times(
            {"ours": lambda ids=ids: ours(ids), "ref": lambda ids=ids: ref(input_ids=ids)}, repeats
        )
        n = batch * length
        row = f"prefill tok/s (batch {batch} x {length})"
        print(f"{row:34} {n / t['ours']:10.0f} {n / t['ref']:13.0f} {t['ref'] / t['ours']:6.2f}x")

    for rates in decode_rates(ours, PROMPT, NEW, repeats=repeats):
        batch, theirs = rates["batch"], rates["transformers_tok_s"]
        for label, key in (("our loop", "ours_tok_s"), ("generate()", "wrapper_tok_s")):
            row = f"decode tok/s, batch {batch} ({label})"
            print(f"{row:34} {rates[key]:10.0f} {theirs:13.0f} {rates[key] / theirs:6.2f}x")

    length = 4 * config.sliding_window
    cache = KVCache(config, max_length=length)
    ours(torch.randint(3, config.vocab_size, (1, length)), cache=cache)
    full = 2 * config.num_hidden_layers * config.num_key_value_heads * length * config.head_dim * 4
    print(
        f"KV cache at {length} tokens (4 x window), fp32: {cache.nbytes() / 2**20:.2f} MiB "
        f"vs full {full / 2**20:.2f} MiB ({1 - cache.nbytes() / full:.1%} saved)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--configs", nargs="*", default=list(CONFIGS), choices=list(CONFIGS))
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, {args.threads} threads, float32, CPU")
    for name in args.configs:
        bench(name, CONFIGS[name], args.repeats)


if __name__ == "__main__":
    main()
