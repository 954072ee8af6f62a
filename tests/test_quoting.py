"""Quote-constrained decoding: a forced highlight's quote is always a verbatim run of code lines."""

from __future__ import annotations

import random

import pytest
import torch
from conftest import BUGGY_CODE

from critic.core.critique import code_spans, parse_critique
from critic.core.tokenizer import load_tokenizer
from critic.inference.fsbs import Critic, FSBSSettings
from critic.inference.quoting import CLOSE, QuoteConstraint, TokenTrie, constrain
from critic.model import CriticConfig, Gemma2RewardModel, new_causal_lm

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


# --- inline code in the comment (code_spans) -------------------------------------------------------

SPAN_CODES = [
    BUGGY_CODE,
    # backticks in strings, and characters of several bytes
    'def greet(name):\n    """Grüße, 名前."""\n    s = "a`b``c"\n    return f"hi {name} `{s}`"\n',
    "def f(xs):\n    return [x for x in xs if x]\n",
]


def tokens(text: str) -> list[int]:
    return TOKENIZER.encode(text).ids


def closed(code: str, quote: str, **kw) -> QuoteConstraint:
    """A constraint whose forced quote `quote` is written and closed: the comment starts."""
    constraint = QuoteConstraint(code, TRIE, code_spans=True, **kw)
    for token in tokens(f"\n{quote}\n```"):
        assert token in constraint.allowed()
        constraint.advance(token)
    return constraint


def comment_walk(constraint: QuoteConstraint, rng: random.Random, steps: int, ticks: float = 0.3) -> str:
    """What a model writes that picks among the allowed tokens, a backtick-holding one with
    probability `ticks` (a uniform pick would almost never open a span)."""
    text = b""
    for _ in range(steps):
        only, ids = constraint.mask()
        listed = set(ids)
        ok = (lambda t, listed=listed: t in listed) if only else (lambda t, no=listed: t not in no)
        ticked = [t for t in TRIE.ticked if ok(t)]
        if ticked and rng.random() < ticks:
            token = rng.choice(ticked)
        elif only:
            token = rng.choice(ids)
        else:
            token = next(t for t in iter(lambda: rng.randrange(len(TRIE.pieces)), None) if ok(t))
        text += TRIE.pieces[token] or b""
        constraint.advance(token)
        assert constraint.active  # with code_spans the constraint follows the whole critique
    return text.decode("utf-8", "replace")


@pytest.mark.parametrize("code", SPAN_CODES)
def test_random_comments_keep_every_inline_code_span_verbatim(code):
    spans = fences = 0
    for seed in range(30):
        text = "```" + comment_walk(QuoteConstraint(code, TRIE, code_spans=True), random.Random(seed), 120)
        critique = parse_critique(text, code)
        for highlight in critique.highlights:
            if highlight.quote.strip():  # (a fence opened at the very end has no quote yet)
                assert not highlight.hallucinated, text
            for span in code_spans(highlight.comment):
                assert span and span in code, (span, text)
                spans += 1
        fences += len(critique.highlights) - 1
    assert spans > 100 and fences  # the walks did open spans, and fences that start new quotes


def test_a_span_that_would_leave_the_code_is_impossible():
    code = "def f(a):\n    return a + 1\n"
    constraint = closed(code, "return a + 1")
    for token in tokens(" The `"):
        constraint.advance(token)
    allowed = set(constraint.allowed())
    assert tokens("return")[0] in allowed and tokens("a")[0] in allowed
    assert tokens("xyz")[0] not in allowed  # not in the code
    assert tokens("`")[0] in allowed  # not an empty span (a span holds a byte): a `` opening run
    for token in tokens("return a"):
        constraint.advance(token)
    allowed = set(constraint.allowed())
    assert tokens(" +")[0] in allowed and tokens("`")[0] in allowed  # may go on, or close
    assert tokens(" -")[0] not in allowed
    assert tokens("\n")[0] not in allowed  # inline code is one line
    assert tokens("`.")[0] in allowed  # a token that closes the span and goes on: "." is prose
    for token in tokens("` is"):
        constraint.advance(token)
    assert not constraint.mask()[0]  # prose again: a (short) list of forbidden tokens


def test_text_outside_backticks_is_free():
    constraint = closed(SPAN_CODES[0], "total = 0")
    for token in tokens(" This is wrong (really!): see below.\n\nAnd `total` too; 名前 is fine."):
        only, forbidden = constraint.mask()
        if not only:  # outside a span: only backtick tokens are ever checked
            assert set(forbidden) <= set(TRIE.ticked)
        assert token in constraint.allowed()
        constraint.advance(token)
    assert constraint.states == {("free", False)}


def test_spans_close_only_at_a_character_boundary():
    code = 'x = "é"\n'
    constraint = closed(code, 'x = "é"')
    for token in tokens(" `"):
        constraint.advance(token)
    first = next(t for t, p in enumerate(TRIE.pieces) if p == "é".encode()[:1])
    assert first in constraint.allowed()
    constraint.advance(first)
    allowed = set(constraint.allowed())
    assert tokens("`")[0] not in allowed  # inside é
    second = next(t for t, p in enumerate(TRIE.pieces) if p == "é".encode()[1:])
    assert second in allowed
    constraint.advance(second)
    assert tokens("`")[0] in constraint.allowed()


def test_double_backtick_spans_may_hold_a_backtick():
    code = SPAN_CODES[1]
    constraint = closed(code, 'return f"hi {name} `{s}`"')
    for token in tokens(" ``"):
        constraint.advance(token)
    for token in tokens("a`b"):  # a single backtick does not close a `` span: it is content
        assert token in constraint.allowed()
        constraint.advance(token)
    for token in tokens("`` is"):
        constraint.advance(token)
    assert constraint.states == {("free", False)}
    text = "The `` `{s}` `` part and ``a`b``."
    assert code_spans(text) == ["`{s}`", "a`b"]


def test_a_fence_in_the_comment_opens_a_new_constrained_quote():
    code = BUGGY_CODE
    constraint = closed(code, "total = 0")
    for token in tokens(" Also:\n\n```"):
        constraint.advance(token)
    assert tokens("python")[0] in constraint.allowed()  # a language tag
    assert tokens("`")[0] not in constraint.allowed()  # a longer fence could not be closed by ```
    for token in tokens("python\n"):
        constraint.advance(token)
    allowed = set(constraint.allowed())
    assert tokens("return")[0] in allowed and tokens("xyz")[0] not in allowed  # quoting again
    for token in tokens("    return total / len(xs)\n```\nDivides."):
        assert token in constraint.allowed()
        constraint.advance(token)
    assert constraint.states == {("free", False)}


def test_without_code_spans_the_constraint_is_as_before():
    code = BUGGY_CODE
    old, new = QuoteConstraint(code, TRIE), QuoteConstraint(code, TRIE, code_spans=True)
    for token in tokens("\n    for i in range(len(xs) - 1):\n```"):
        assert sorted(old.allowed()) == sorted(new.allowed())  # the quote: the same tokens
        old.advance(token)
        new.advance(token)
    assert not old.active and new.active  # old: closed, then free; new: follows the comment


def test_free_quotes_with_constrained_spans():
    constraint = QuoteConstraint(BUGGY_CODE, TRIE, code_spans=True, quotes=False)
    for token in tokens("\nanything at all\n```"):
        assert not constraint.mask()[0]  # the quote is free
        constraint.advance(token)
    for token in tokens(" `"):
        constraint.advance(token)
    assert tokens("xyz")[0] not in constraint.allowed()
    with pytest.raises(ValueError):
        QuoteConstraint(BUGGY_CODE, TRIE, quotes=False)


def test_code_spans_reads_inline_code_like_the_constraint_writes_it():
    assert code_spans("`a` and ``b`c`` and `` `d` ``, `x ``y``") == ["a", "b`c", "`d`", "y"]
    assert code_spans("not `e\nf`") == code_spans("`` g`") == []  # one line; runs of one length
    assert code_spans("```\nx\n```") == []  # fences are not inline code
    assert code_spans("`` x ``, ` `") == ["x", " "]


def test_fsbs_comments_quote_real_code_from_an_untrained_policy():
    config = CriticConfig.from_preset("tiny")
    critic = Critic(new_causal_lm(config, seed=0), Gemma2RewardModel(config), TOKENIZER)
    codes = SPAN_CODES[:2]
    prompts = [critic.prompt_ids(c) for c in codes]
    settings = FSBSSettings(samples=4, rounds=1, keep=1, max_new_tokens=48)
    assert settings.constrain_code_spans
    for result, code in zip(critic.search(prompts, codes, settings, seed=1), codes, strict=True):
        for candidate in result.candidates:
            for highlight in parse_critique(candidate.critique, code).highlights:
                assert all(span in code for span in code_spans(highlight.comment)), candidate.critique
