"""Parity and speed at real Gemma 2 shapes on a GPU (or any device), against transformers' eager Gemma2.

    python bench/cuda_parity.py --preset gemma-2-2b --device cuda --length 4200
    python bench/cuda_parity.py --preset gemma-2-27b --layers 4 --device cuda --length 4200

Random weights at the published shapes (no hub access). Checks, per dtype:
- full-forward logits of our model vs transformers' on a sequence longer than the window;
- our token-by-token decoding (ring KV cache) past the window vs our full forward;
- bf16 error of each implementation against the float32 reference, side by side;
and prints prefill and decode tokens/s of both, measured in the same run.
"""

from __future__ import annotations

import argparse
import time

import torch
from transformers import Gemma2ForCausalLM

from critic.model import CriticConfig, Gemma2CausalLM, KVCache, to_hf_config
from critic.model.gemma2 import init_weights


def sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def timed(fn, device: str, repeats: int = 3) -> float:
    fn()
    sync(device)
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        sync(device)
        best = min(best, time.perf_counter() - start)
    return best


@torch.inference_mode()
def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--preset", default="gemma-2-2b")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--length", type=int, default=4200, help="tokens; > sliding_window to cross it")
    parser.add_argument("--window", type=int, default=None, help="override sliding_window")
    parser.add_argument("--layers", type=int, default=None, help="keep the widths, use fewer layers")
    parser.add_argument("--decode-steps", type=int, default=64)
    args = parser.parse_args()
    overrides = {"sliding_window": args.window} if args.window else {}
    if args.layers:
        overrides["num_hidden_layers"] = args.layers
    config = CriticConfig.from_preset(args.preset, **overrides)
    dev = args.device
    print(
        f"{args.preset}: {config.num_parameters() / 1e9:.2f} B params, window {config.sliding_window}, "
        f"length {args.length}, device {torch.cuda.get_device_name() if dev.startswith('cuda') else dev}, "
        f"torch {torch.__version__}"
    )

    torch.manual_seed(0)
    with torch.device(dev):
        ours = Gemma2CausalLM(config)
    ours.apply(lambda m: init_weights(m, config.initializer_range))
    with torch.no_grad():  # non-zero norms so (1 + w) matters
        for name, p in ours.named_parameters():
            if "norm" in name:
                p.normal_(0, 0.1)
    ours.eval()
    with torch.device(dev):
        ref = Gemma2ForCausalLM(to_hf_config(config, attn_implementation="eager"))
    ref.load_state_dict(ours.state_dict())
    ref.eval()

    ids = torch.randint(3, config.vocab_size, (1, args.length), device=dev)
    reference = ours(ids).float()  # float32 reference logits
    theirs = ref(input_ids=ids, use_cache=False).logits.float()
    print(
        f"float32 full forward: max |ours - transformers| = {(reference - theirs).abs().max().item():.2e}"
        f" (logit scale {reference.abs().max().item():.1f})"
    )
    del theirs

    # Token-by-token past the window with the ring cache.
    prefill = args.length - args.decode_steps
    cache = KVCache(config, max_length=args.length)
    steps = [ours(ids[:, :prefill], cache=cache)[:, -1:]]
    for t in range(prefill, args.length):
        steps.append(ours(ids[:, t : t + 1], cache=cache))
    incremental = torch.cat(steps, dim=1).float()
    diff = (incremental - reference[:, prefill - 1 :]).abs().max().item()
    print(
        f"float32 decode ({args.decode_steps} steps from {prefill}): max |cached - full| = {diff:.2e}; "
        f"KV cache {cache.nbytes() / 2**20:.0f} MiB"
    )

    ours_bf, ref_bf = ours.to(torch.bfloat16), ref.to(torch.bfloat16)
    e_ours = (ours_bf(ids).float() - reference).abs().mean().item()
    e_ref = (ref_bf(input_ids=ids, use_cache=False).logits.float() - reference).abs().mean().item()
    print(f"bfloat16 mean |logit error| vs float32: ours {e_ours:.4f}, transformers {e_ref:.4f}")

    n = args.length
    t_ours = timed(lambda: ours_bf(ids, last_only=True), dev)
    t_ref = timed(lambda: ref_bf(input_ids=ids, use_cache=False, logits_to_keep=1), dev)
    print(
        f"bf16 prefill tok/s: ours {n / t_ours:,.0f}, transformers {n / t_ref:,.0f}, "
        f"ratio {t_ref / t_ours:.2f}x"
    )

    from critic.inference.sampling import generate

    prompt = ids[:, :512]
    new = 128
    greedy = dict(max_new_tokens=new, min_new_tokens=new, do_sample=False, pad_token_id=0)
    for batch in (1, 8):
        prompts = prompt.expand(batch, -1)
        t_ours = timed(lambda p=prompts: generate(ours_bf, p.tolist(), new), dev, repeats=2)
        t_ref = timed(lambda p=prompts: ref_bf.generate(p, **greedy), dev, repeats=2)
        print(
            f"bf16 decode tok/s batch {batch}: ours {batch * new / t_ours:,.0f}, transformers generate() "
            f"{batch * new / t_ref:,.0f}, ratio {t_ref / t_ours:.2f}x"
        )


if __name__ == "__main__":
    main()
