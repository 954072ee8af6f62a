"""The reward model's ranking warm-up: packed branches score exactly as alone, and training on them
teaches the orderings."""

from __future__ import annotations

import random

import pytest
import torch
from conftest import Interrupt, randomize_, stress_config
from test_pairs import ROW

from critic.model import CriticForSequenceClassification, to_hf_config
from critic.rl.pairs import Ranking, synthetic_rankings
from critic.rl.rank import branch_scores, collate, margins, pack


class CharTokenizer:
    """Just enough of a Hugging Face tokenizer for `pack`: one id per character."""

    eos_token = "\x01"
    pad_token_id = 0

    def __call__(self, text: str, add_special_tokens: bool = True) -> dict[str, list[int]]:
        return {"input_ids": [2 + ord(c) % 300 for c in text]}


def reward_model(seed: int = 0) -> CriticForSequenceClassification:
    torch.manual_seed(seed)
    config = to_hf_config(stress_config(max_position_embeddings=1024))
    config.num_labels = 1
    return randomize_(CriticForSequenceClassification(config), seed).eval()


def alone(model, ids: list[int]) -> float:
    return model(torch.tensor([ids])).logits[0, 0].item()


def test_packed_branches_score_as_if_alone():
    """A branch sees the prompt (longer than the sliding window) and itself, never another branch."""
    model = reward_model()
    tokenizer = CharTokenizer()
    prompt = "<prompt of forty characters, or so: code>"
    ranking = Ranking(prompt, ["short", "a longer critique", "x"], [(0, 1)])
    row = pack(ranking, tokenizer, max_length=200)
    batch = collate([row], tokenizer.pad_token_id)
    with torch.no_grad():
        packed = branch_scores(model, batch)[0]
    prompt = tokenizer(ranking.prompt)["input_ids"]
    for i, critique in enumerate(ranking.critiques):
        ids = prompt + tokenizer(critique + "<end_of_turn>" + tokenizer.eos_token)["input_ids"]
        assert abs(packed[i].item() - alone(model, ids)) < 1e-4


def test_padding_rows_do_not_change_scores():
    model = reward_model()
    tokenizer = CharTokenizer()
    short = pack(Ranking("p", ["a", "b"], [(0, 1)]), tokenizer, 100)
    long = pack(Ranking("a longer prompt", ["c" * 30, "d", "e"], [(0, 1), (1, 2)]), tokenizer, 100)
    with torch.no_grad():
        together = branch_scores(model, collate([short, long], 0))
        apart = branch_scores(model, collate([short], 0))
    assert torch.allclose(together[0, :2], apart[0], atol=1e-5)


def test_critiques_that_do_not_fit_are_left_out_with_their_orderings():
    tokenizer = CharTokenizer()
    ranking = Ranking("prompt", ["ok", "x" * 50, "fine"], [(0, 1), (1, 2), (0, 2)])
    row = pack(ranking, tokenizer, max_length=len("prompt") + 2 * len("fine<end_of_turn>\x01"))
    assert len(row["ends"]) == 2  # "ok" and "fine"; the long one would not fit
    assert list(zip(row["better"], row["worse"], strict=True)) == [(0, 1)]
    assert pack(Ranking("prompt", ["x" * 50, "ok"], [(0, 1)]), tokenizer, 20) is None


def test_synthetic_rankings_give_the_pairs_of_synthetic_pairs():
    """Rankings and pairs are one definition: every pair is an ordering of a ranking."""
    rankings = list(synthetic_rankings(ROW, negatives=3, rng=random.Random(0), clean_negatives=2))
    tampered, clean = rankings
    assert len(tampered.critiques) == 2 + 3 + 1 and len(tampered.wins) == 1 + 3 + 1
    assert clean.wins == [(0, 1), (0, 2)]


def test_training_on_packed_rankings_learns_the_orderings():
    model = reward_model(1).train()
    tokenizer = CharTokenizer()
    rankings = [
        Ranking("x = 1 / 0", ["divides by zero", "no bugs", "`x` is fine"], [(0, 1), (1, 2)]),
        Ranking("y = 2", ["no bugs", "`y` is wrong", "divides by zero"], [(0, 1), (0, 2)]),
    ]
    batch = collate([pack(r, tokenizer, 200) for r in rankings], 0)
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3)
    mask = batch["pairs"].bool()
    with torch.no_grad():
        before = (margins(model, batch)[mask] > 0).float().mean().item()
    for _ in range(30):
        loss = -torch.nn.functional.logsigmoid(margins(model, batch)[mask]).mean()
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
    with torch.no_grad():
        after = (margins(model, batch)[mask] > 0).float().mean().item()
    assert after == 1.0 and after > before


def test_an_interrupted_rank_stage_resumes_to_the_same_weights(tmp_path, interrupt_after_checkpoint):
    from datasets import Dataset, DatasetDict
    from safetensors.torch import load_file

    from critic.core.tokenizer import load_tokenizer, save_tokenizer
    from critic.model import CriticConfig, new_causal_lm, save_checkpoint
    from critic.rl.config import RankStage
    from critic.rl.rank import run_rank

    policy = tmp_path / "policy"
    save_checkpoint(new_causal_lm(CriticConfig.from_preset("tiny"), 0), policy)
    save_tokenizer(load_tokenizer(), policy)
    rows = Dataset.from_list([ROW | {"task_id": f"t{i}"} for i in range(4)])
    data = DatasetDict(train=rows, validation=rows)
    cfg = RankStage(negatives=2, max_steps=4, save_steps=2, batch_size=2, eval_samples=2)
    with pytest.raises(Interrupt, match="after step 2"):
        run_rank(cfg, data, policy, tmp_path / "rank")
    resumed = run_rank(cfg, data, policy, tmp_path / "rank")
    assert resumed["resumed_from"] == 2 and resumed["steps"] == 4
    # per row: tampered 1 + 2 + 1 and 1 + 2 line claims; clean 2 and 2 line claims
    assert resumed["train_orderings"] == 4 * (7 + 4)
    interrupt_after_checkpoint.undo()
    whole = run_rank(cfg, data, policy, tmp_path / "whole")
    assert whole["resumed_from"] == 0
    a, b = (load_file(tmp_path / run / "model.safetensors") for run in ("rank", "whole"))
    assert all(torch.allclose(a[k], b[k], atol=1e-6) for k in b)
    assert not (tmp_path / "rank" / "checkpoints").exists()
