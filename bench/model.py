"""Speed of our Gemma 2 against transformers' Gemma2 (eager), same weights, same run.

    python bench/model.py [--threads 2] [--repeats 3]

Prints prefill and decode tokens/s for each model and their ratio (ours / transformers),
and the KV-cache bytes of our sliding-window ring at 4 x window vs a full cache.
Decode is greedy, 64 new tokens after a 128-token prompt; best of --repeats.
"""

from __future__ import annotations

import argparse
import time

import torch
from transformers import Gemma2ForCausalLM

from critic.model import CriticConfig, CriticForCausalLM, KVCache, new_causal_lm, to_hf_config
from critic.sampling import generate

CONFIGS = {
    "tiny": CriticConfig.from_preset("tiny"),
    "cpu-30m": CriticConfig.from_preset(
        "tiny",
        hidden_size=512,
        intermediate_size=2048,
        num_hidden_layers=8,
        num_attention_heads=8,
        num_key_value_heads=4,
        head_dim=64,
        query_pre_attn_scalar=64,
    ),
}
PROMPT, NEW = 128, 64
GREEDY = dict(max_new_tokens=NEW, min_new_tokens=NEW, do_sample=False, pad_token_id=0)


def best_time(fn, repeats: int) -> float:
    fn()  # warm-up
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


@torch.inference_mode()
def bench(name: str, config: CriticConfig, repeats: int) -> None:
    ours = new_causal_lm(config, seed=0).eval()
    ref = Gemma2ForCausalLM(to_hf_config(config, attn_implementation="eager")).eval()
    ref.load_state_dict(ours.state_dict())
    wrapped = CriticForCausalLM(to_hf_config(config)).eval()
    wrapped.load_state_dict(ours.state_dict())
    print(f"\n{name}: {config.num_parameters() / 1e6:.1f} M parameters, window {config.sliding_window}")
    print(f"{'measure':34} {'ours':>10} {'transformers':>13} {'ratio':>7}")

    gen = torch.Generator().manual_seed(0)
    for batch, length in ((1, 512), (4, 512)):
        ids = torch.randint(3, config.vocab_size, (batch, length), generator=gen)
        t_ours = best_time(lambda ids=ids: ours(ids), repeats)
        t_ref = best_time(lambda ids=ids: ref(input_ids=ids, use_cache=False), repeats)
        n = batch * length
        row = f"prefill tok/s (batch {batch} x {length})"
        print(f"{row:34} {n / t_ours:10.0f} {n / t_ref:13.0f} {t_ref / t_ours:6.2f}x")

    for batch in (1, 4):
        ids = torch.randint(3, config.vocab_size, (batch, PROMPT), generator=gen)
        prompts = ids.tolist()
        t_ours = best_time(lambda p=prompts: generate(ours, p, NEW), repeats)
        t_wrapped = best_time(lambda ids=ids: wrapped.generate(ids, **GREEDY), repeats)
        t_ref = best_time(lambda ids=ids: ref.generate(ids, **GREEDY), repeats)
        n = batch * NEW
        row = f"decode tok/s, batch {batch} (our loop)"
        print(f"{row:34} {n / t_ours:10.0f} {n / t_ref:13.0f} {t_ref / t_ours:6.2f}x")
        row = f"decode tok/s, batch {batch} (generate())"
        print(f"{row:34} {n / t_wrapped:10.0f} {n / t_ref:13.0f} {t_ref / t_wrapped:6.2f}x")

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
