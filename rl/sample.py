"""Sample K critiques per tampered sample from a policy, for rating.

Uses the plain model and the lean sampler (no transformers generate()): sampling is the slowest
part of data collection on CPU.
"""

from __future__ import annotations

from pathlib import Path

from datasets import Dataset, DatasetDict
from rich.console import Console
from rich.progress import track

from critic.core.critique import END_OF_TURN, HIGHLIGHT_FENCE, critique_completion_end, request
from critic.core.tokenizer import load_tokenizer
from critic.core.tokens import EOS
from critic.inference.quoting import QuoteConstraint, TokenTrie
from critic.inference.sampling import generate
from critic.model import load_causal_lm
from critic.rl.common import check_checkpoint
from critic.rl.config import SampleStage

SPLITS = ("train", "validation")  # reward-model training pairs, and its held-out accuracy


def run_sample(cfg: SampleStage, data: DatasetDict, policy_dir: Path, out: Path) -> dict:
    policy = load_causal_lm(check_checkpoint(policy_dir))
    tokenizer = load_tokenizer(policy_dir)
    stops = [policy.config.eos_token_id, tokenizer.token_to_id(END_OF_TURN)]
    trie = TokenTrie.of(tokenizer)
    result, console = {}, Console(stderr=True)
    for split in SPLITS:
        rows = data[split]
        if cfg.max_tasks is not None:
            rows = rows.select(range(min(cfg.max_tasks, len(rows))))
        records: dict[str, list] = {
            k: [] for k in ("task_id", "code", "original", "bug_lines", "description", "critique", "origin")
        }
        # Each critique opens with a highlight whose quote is constrained to the code (as FSBS samples
        # at review time): the reward model must learn which lines are worth quoting, and samples
        # that misspell their quotes would only teach it to spot misspellings.
        opening = HIGHLIGHT_FENCE if cfg.constrain_quotes else ""
        encoded = [tokenizer.encode(request(code) + opening).ids for code in rows["code"]]
        jobs = [(i, k) for i in range(len(rows)) for k in range(cfg.samples_per_task)]
        batches = range(0, len(jobs), cfg.batch_size)
        for start in track(batches, f"sampling {split}", console=console, disable=not console.is_terminal):
            batch = jobs[start : start + cfg.batch_size]
            prompts = [encoded[i] for i, _ in batch]
            constraints = (
                [QuoteConstraint(rows[i]["code"], trie) for i, _ in batch] if cfg.constrain_quotes else None
            )
            outs = generate(
                policy,
                prompts,
                cfg.max_new_tokens,
                stops,
                cfg.temperature,
                seed=cfg.seed + start,
                constraints=constraints,
            )
            for (i, k), tokens in zip(batch, outs, strict=True):
                text = opening + tokenizer.decode(tokens, skip_special_tokens=False)
                end = critique_completion_end(text)
                row = rows[i]
                records["task_id"].append(row["task_id"])
                records["code"].append(row["code"])
                records["original"].append(row["original"])
                records["bug_lines"].append(row["bug_lines"])
                records["description"].append(row["description"])
                records["critique"].append(text[:end].replace(EOS, "").strip() if end is not None else text)
                records["origin"].append(f"policy/{k}")
        result[split] = Dataset.from_dict(records)
    samples = DatasetDict(result)
    samples.save_to_disk(str(out))
    return {f"{split}_critiques": len(ds) for split, ds in samples.items()}
