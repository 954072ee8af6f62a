"""Quote-constrained decoding: a forced highlight's quote is always a verbatim run of code lines."""

from __future__ import annotations

import random

import pytest
import torch
from conftest import BUGGY_CODE

from critic.critique import parse_critique
from critic.fsbs import Critic, FSBSSettings
from critic.model import CriticConfig, Gemma2RewardModel, new_causal_lm
from critic.quoting import CLOSE, QuoteConstraint, TokenTrie, constrain
from critic.tokenizer import load_tokenizer

TOKENIZER = load_tokenizer()
TRIE = TokenTrie.of(TOKENIZER)
CODES = [
    BUGGY_CODE,
    "def f(xs):\n    total = 0\n\n    for x in xs:\n        total += x\n    return total\n",
    'def greet(name):\n    """Grüße, 名前."""\n    return f"hi {name}"\n',
    "x = 1\nx = 1\ny = x\n",  # a repeated line
]


def write(constraint: QuoteConstraint, rng: random.Random) -> str:
    """What a model that picks uniformly among the allowed tokens writes until the block closes."""
    text = b""
    while constraint.active:
        token = rng.choice(constraint.allowed())
        text += TRIE.pieces[token]
        constraint.advance(token)
    return text.decode()


@pytest.mark.parametrize("code", CODES)
def test_any_allowed_path_quotes_code_verbatim_from_a_line_start(code):
    for seed in range(40):
        text = "```" + write(QuoteConstraint(code, TRIE), random.Random(seed))
        quote = text[len("```\n") : text.index(CLOSE.decode(), 3)]
        assert quote.strip() and quote in code  # verbatim
        first = quote.split("\n")[0]
        lines = code.splitlines()
        assert any(line.startswith(first) or line.lstrip().startswith(first) for line in lines)
        parsed = parse_critique(text + "\nThis is wrong.", code)
        assert parsed.highlights and parsed.highlights == parsed.valid_highlights


def test_a_quote_closes_only_after_real_text_and_is_never_misspelled():
    constraint = QuoteConstraint("def f(a):\n    return a + 1\n", TRIE)
    pieces = enumerate(TRIE.pieces)
    closing = {t for t, p in pieces if p and (CLOSE.startswith(p) or p.startswith(CLOSE))}
    for token in TOKENIZER.encode("\n    ").ids:
        constraint.advance(token)
    assert not closing & set(constraint.allowed())  # nothing but indentation quoted yet
    for token in TOKENIZER.encode("return a").ids:
        assert token in constraint.allowed()
        constraint.advance(token)
    assert TOKENIZER.encode(" x").ids[0] not in constraint.allowed()  # a misspelling
    assert closing & set(constraint.allowed())  # part of a line is a valid quote
    for token in TOKENIZER.encode("\n```").ids:
        constraint.advance(token)
    assert not constraint.active  # closed: the comment is free


def test_constrain_masks_active_rows_only():
    logits = torch.zeros(2, TOKENIZER.get_vocab_size())
    masked = constrain(logits, [QuoteConstraint("a = 1\n", TRIE), None])
    assert torch.isfinite(masked[1]).all()
    assert set(torch.isfinite(masked[0]).nonzero().flatten().tolist()) == set(
        QuoteConstraint("a = 1\n", TRIE).allowed()
    )


def test_fsbs_forced_highlights_quote_the_code_even_from_an_untrained_policy():
    config = CriticConfig.from_preset("tiny")
    critic = Critic(new_causal_lm(config, seed=0), Gemma2RewardModel(config), TOKENIZER)
    prompts = [critic.prompt_ids(c) for c in CODES[:2]]
    settings = FSBSSettings(samples=3, rounds=2, keep=1, max_new_tokens=48)
    for result, code in zip(critic.search(prompts, CODES[:2], settings, seed=0), CODES[:2], strict=True):
        for candidate in result.candidates:
            first = parse_critique(candidate.critique, code).highlights[0]
            assert first.start_line is not None, candidate.critique  # found in the code
    free = critic.search(prompts, CODES[:2], FSBSSettings(**{**settings.__dict__, "constrain_quotes": False}))
    assert any(
        not parse_critique(c.critique, code).valid_highlights
        for result, code in zip(free, CODES[:2], strict=True)
        for c in result.candidates
    )  # without the constraint, a random policy misquotes
