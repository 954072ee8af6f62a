"""The repair search's pieces: candidate repairs, their descriptions, exact packed margins, the localizer."""

from __future__ import annotations

import ast
import random

import pytest
import torch
from conftest import randomize_

from critic.core.critique import code_spans
from critic.core.rules import RULES_BY_CODE, for_kind
from critic.core.tokenizer import load_tokenizer
from critic.datagen.finders import BUG_KINDS
from critic.datagen.repairs import REPAIR_KINDS, candidate_repairs, describe_repair
from critic.datagen.tamper import tamper
from critic.inference import localizer as loc
from critic.inference.repair_scoring import repair_margins
from critic.model import CriticConfig, Gemma2CausalLM
from critic.model.gemma2 import branch_masks

CODE = '''def count_between(xs, low, high):
    """How many values lie in [low, high)."""
    total = 0
    for i in range(len(xs)):
        if xs[i] >= low and xs[i] < high:
            total += 1
    return total
'''

SYMMETRIC = (
    "flip_comparison",
    "loosen_comparison",
    "swap_arithmetic_operator",
    "swap_boolean_operator",
    "negation",
)


def tamperings(code: str, kind: str, count: int = 4):
    return tamper(code, random.Random(0), max_samples=count, kinds=[kind])


def test_every_repair_parses_and_differs():
    repairs = candidate_repairs(CODE)
    assert repairs
    assert len({r.code for r in repairs}) == len(repairs)
    for r in repairs:
        ast.parse(r.code)
        assert r.code != CODE
        assert r.code == CODE[: r.start] + r.text + CODE[r.end :]
        assert 1 <= r.line <= r.end_line <= CODE.count("\n")
        assert r.kind in REPAIR_KINDS


@pytest.mark.parametrize("kind", SYMMETRIC)
def test_the_inverse_of_a_symmetric_bug_is_a_candidate(kind):
    found = tamperings(CODE, kind)
    assert found, f"no {kind} tampering of the test code"
    for t in found:
        assert any(r.code == CODE for r in candidate_repairs(t.code)), (kind, t.code)


def test_code_that_does_not_parse_has_no_repairs():
    assert candidate_repairs("def f(:\n    return 1\n") == []


def test_a_repair_is_described_as_the_bug_it_undoes():
    for kind in SYMMETRIC:
        for t in tamperings(CODE, kind, 2):
            repair = next(r for r in candidate_repairs(t.code) if r.code == CODE)
            comment, lines = describe_repair(t.code, repair)
            assert lines == t.bug_lines
            assert (comment[0].isupper() or comment[0] == "`") and comment.rstrip().endswith("."), comment
            for span in code_spans(comment):
                assert span in t.code or span in repair.text, (span, comment)


def test_descriptions_do_not_depend_on_where_the_code_is():
    t = tamperings(CODE, "flip_comparison", 1)[0]
    moved = "# a comment\n# another\n" + t.code
    first = [describe_repair(t.code, r)[0] for r in candidate_repairs(t.code)]
    second = [describe_repair(moved, r)[0] for r in candidate_repairs(moved)]
    assert first == second


def test_every_bug_kind_has_a_rule():
    for kind in BUG_KINDS:
        assert for_kind(kind).code != "CRT001", kind
    assert for_kind("no_such_kind") is RULES_BY_CODE["CRT001"]


# --- margins ----------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def lm():
    torch.manual_seed(0)
    config = CriticConfig.from_preset("tiny")
    config.sliding_window = 16  # shorter than the code: the window must follow positions in branches
    return randomize_(Gemma2CausalLM(config), scale=0.05).eval(), load_tokenizer()


def _whole(model, tokenizer, text: str) -> float:
    ids = [tokenizer.token_to_id("<bos>"), *tokenizer.encode(text, add_special_tokens=False).ids]
    ids.append(tokenizer.token_to_id("<eos>"))
    x = torch.tensor([ids])
    with torch.no_grad():
        logprobs = torch.log_softmax(model(x)[0].float(), -1)
    return logprobs[:-1].gather(1, x[0, 1:, None]).sum().item()


def test_packed_margins_equal_whole_sequence_log_probabilities(lm):
    model, tokenizer = lm
    repaired = [r.code for r in candidate_repairs(CODE)][::3]
    # A small row forces several rows, each repeating the code as its prefix.
    packed = repair_margins(model, tokenizer, CODE, repaired, window=10**6, row_tokens=200)
    base = _whole(model, tokenizer, CODE)
    for margin, text in zip(packed, repaired, strict=True):
        assert margin == pytest.approx(_whole(model, tokenizer, text) - base, abs=2e-3)


def test_margins_ignore_the_tokenizers_batch_padding(lm):
    model, tokenizer = lm
    padded = load_tokenizer()
    padded.enable_padding(pad_id=0, pad_token="<pad>")
    repaired = [r.code for r in candidate_repairs(CODE)][:5]
    assert repair_margins(model, padded, CODE, repaired) == pytest.approx(
        repair_margins(model, tokenizer, CODE, repaired)
    )


def test_a_branch_sees_only_the_prefix_before_it():
    segments = torch.tensor([[0, 0, 0, 0, 1, 1, 2, -1]])
    positions = torch.tensor([[0, 1, 2, 3, 2, 3, 4, 0]])
    allowed = branch_masks(segments, positions, 100, torch.float32)["full_attention"][0, 0] == 0
    assert allowed[4].tolist() == [True, True, False, False, True, False, False, False]
    assert allowed[5].tolist() == [True, True, False, False, True, True, False, False]
    assert allowed[6].tolist() == [True, True, True, True, False, False, True, False]


# --- the localizer ----------------------------------------------------------------------------------


def test_localizer_features_and_fit_round_trip(tmp_path):
    repairs = candidate_repairs(CODE)
    margins = [float(i % 7) - 3 for i in range(len(repairs))]
    rows = loc.features(CODE, repairs, margins)
    assert all(len(row) == len(loc.feature_names()) for row in rows)
    labels = [m > 2 for m in margins]
    fitted = loc.fit(rows, labels)
    scores = fitted.probabilities(rows)
    assert min(s for s, y in zip(scores, labels, strict=True) if y) > max(
        s for s, y in zip(scores, labels, strict=True) if not y
    )
    fitted.save(tmp_path, fitted_on="test")
    again = loc.Localizer.load(tmp_path)
    assert again.probabilities(rows) == pytest.approx(scores)


def test_a_localizer_file_with_unknown_features_is_refused(tmp_path):
    (tmp_path / loc.FILE).write_text('{"features": {"margin": 1.0, "astrology": 2.0}, "bias": 0}')
    with pytest.raises(ValueError, match="astrology"):
        loc.Localizer.load(tmp_path)
    (tmp_path / loc.FILE).write_text("[1, 2]")
    with pytest.raises(ValueError, match="not a localizer file"):
        loc.Localizer.load(tmp_path)


def test_locate_ranks_lines_and_carries_fixes(lm):
    model, tokenizer = lm
    t = tamperings(CODE, "flip_comparison", 1)[0]
    found = loc.locate(model, tokenizer, loc.Localizer(), t.code, max_lines=3)
    assert 1 <= len(found) <= 3
    assert [b.score for b in found] == sorted((b.score for b in found), reverse=True)
    assert len({b.line for b in found}) == len(found)
    for bug in found:
        ast.parse(t.code[: bug.start] + bug.text + t.code[bug.end :])
        assert loc.LocatedBug.from_dict(bug.as_dict()) == bug
    with pytest.raises(ValueError):
        loc.LocatedBug.from_dict({**found[0].as_dict(), "line": "3"})
