"""FSBS and the pieces `critic review` builds on: chunking, continuation trimming, rules, settings, git."""

from __future__ import annotations

import subprocess
from dataclasses import replace

import pytest
import torch
from conftest import BUGGY_CODE

from critic.cli import expand_optional_values
from critic.core.critique import format_critique, parse_critique, terminate_critique, trim_for_continuation
from critic.core.rules import RULES, classify
from critic.core.tokenizer import load_tokenizer, stdlib_files
from critic.inference.fsbs import Critic, FSBSSettings
from critic.model import CriticConfig, Gemma2RewardModel, new_causal_lm
from critic.model.gemma2 import init_weights
from critic.review.chunking import chunk_source
from critic.review.files import changed_lines
from critic.review.settings import ReviewSettings, load_settings

TOKENIZER = load_tokenizer()


def count(text: str) -> int:
    return len(TOKENIZER.encode(text).ids)


@pytest.fixture(scope="module")
def random_critic() -> Critic:
    config = CriticConfig.from_preset("tiny")
    policy = new_causal_lm(config, seed=0)
    torch.manual_seed(1)
    reward = Gemma2RewardModel(config)
    reward.apply(lambda m: init_weights(m, 0.2))  # far from zero, so scores differ between critiques
    return Critic(policy, reward, TOKENIZER)


# --- FSBS ------------------------------------------------------------------------------------------


def test_fsbs_samples_n_k_d_candidates_and_picks_by_the_objective(random_critic):
    settings = FSBSSettings(samples=3, rounds=3, keep=2, max_new_tokens=12)
    codes = [BUGGY_CODE, "def f(a, b):\n    return a - b\n"]
    prompts = [random_critic.prompt_ids(c) for c in codes]
    results = random_critic.search(prompts, codes, settings, seed=0)
    for result in results:
        assert len(result.candidates) == settings.candidates == 3 * (2 * (3 - 1) + 1)
        assert result.best == max(result.candidates, key=lambda c: c.rm_score)  # length_modifier 0
        assert all(c.critique.startswith("```") for c in result.candidates)  # every round forces a highlight
    greedy_for_length = FSBSSettings(samples=3, rounds=3, keep=2, max_new_tokens=12, length_modifier=100.0)
    best = random_critic.search(prompts, codes, greedy_for_length, seed=0)[0].best
    assert best.highlights == max(c.highlights for c in results[0].candidates)


def test_fsbs_later_rounds_continue_the_kept_critiques(random_critic):
    settings = FSBSSettings(samples=2, rounds=2, keep=1, max_new_tokens=10)
    (result,) = random_critic.search([random_critic.prompt_ids(BUGGY_CODE)], [BUGGY_CODE], settings, seed=3)
    first, second = result.candidates[:2], result.candidates[2:]
    kept = max(first, key=lambda c: c.rm_score)
    prefix = trim_for_continuation(kept.critique)
    assert all(c.critique.startswith(prefix) for c in second)


def test_reward_scores_are_exactly_the_plain_forward(random_critic):
    from critic.inference.sampling import start

    code = BUGGY_CODE
    prompt = random_critic.prompt_ids(code)
    critiques = [
        "```\nreturn total\n```\nWrong.",
        format_critique([("total = 0", "Starts at zero; fine.")]),
        "ok",
    ]
    rows = start(random_critic.reward, [prompt])
    got = random_critic.score(rows, [0, 0, 0], critiques)
    for critique, score in zip(critiques, got, strict=True):
        ids = prompt + random_critic.encode(terminate_critique(critique)) + [random_critic.eos]
        expected = random_critic.reward(torch.tensor([ids])).item()
        assert score == pytest.approx(expected, abs=1e-5)


def test_a_findings_confidence_is_the_reward_models_belief_in_its_line_claim(random_critic):
    """The confidence scores the quoted lines with one fixed comment, not the policy's prose."""
    import math

    from critic.core.critique import NO_BUGS
    from critic.datagen.rating import line_claim
    from critic.inference.sampling import start

    settings = FSBSSettings(samples=2, rounds=2, keep=1, max_new_tokens=12)
    prompt = random_critic.prompt_ids(BUGGY_CODE)
    (result,) = random_critic.search([prompt], [BUGGY_CODE], settings, seed=0)
    assert result.findings
    rows = start(random_critic.reward, [prompt])
    clean = random_critic.score(rows, [0], [NO_BUGS])[0]
    for highlight, confidence in result.findings:
        claim = line_claim(BUGGY_CODE, range(highlight.start_line, highlight.end_line + 1))
        margin = random_critic.score(rows, [0], [claim])[0] - clean
        assert confidence == pytest.approx(1 / (1 + math.exp(-margin)), abs=1e-5)


def test_settings_are_validated():
    for bad in (dict(samples=0), dict(keep=5, samples=4), dict(rounds=0), dict(temperature=-1)):
        with pytest.raises(ValueError):
            FSBSSettings(**bad)


def test_trim_for_continuation():
    fence = "```"
    critique = (
        f"Intro.\n\n{fence}\nx = 1\n{fence}\nWrong x.\nStill the comment.\n\nOverall fine.<end_of_turn>"
    )
    assert (
        trim_for_continuation(critique) == f"Intro.\n\n{fence}\nx = 1\n{fence}\nWrong x.\nStill the comment."
    )
    unclosed = f"{fence}\nx = 1\n{fence}\n\nWrong x.\n\n{fence}\ny = "
    assert trim_for_continuation(unclosed) == f"{fence}\nx = 1\n{fence}\n\nWrong x."
    assert trim_for_continuation("No highlight at all.") == ""
    assert trim_for_continuation(f"{fence}\nx\n{fence} Comment on the fence line.\n\nMore.") == (
        f"{fence}\nx\n{fence} Comment on the fence line."
    )
    trimmed = trim_for_continuation(critique)
    quotes = [h.quote for h in parse_critique(trimmed, "x = 1").highlights]
    assert quotes == [h.quote for h in parse_critique(critique, "x = 1").highlights]


# --- chunking --------------------------------------------------------------------------------------


@pytest.mark.parametrize("budget", [64, 384])
def test_chunks_cover_every_line_and_map_back_exactly(budget):
    for path in stdlib_files()[:40]:
        source = path.read_text(encoding="utf-8")
        lines = source.replace("\r\n", "\n").replace("\r", "\n").split("\n")
        covered = set()
        for chunk in chunk_source(source, budget, count):
            for offset, text in enumerate(chunk.code.split("\n")):
                original = lines[chunk.start_line - 1 + offset]
                assert (original[chunk.indent :] if original.strip() else "") == text
                assert original[: chunk.indent].strip() == ""
            covered.update(chunk.lines)
        assert {n for n, line in enumerate(lines, 1) if line.strip()} <= covered, path


def test_chunks_follow_functions_and_fit_the_budget():
    functions = "".join(f"def f{i}(x):\n    y = x + {i}\n    return y * {i}\n\n\n" for i in range(30))
    chunks = chunk_source(functions, 64, count)
    assert all(count(c.code) <= 64 for c in chunks)
    assert all(c.code.startswith("def f") for c in chunks)  # never cut inside a function
    big_class = "class C:\n    '''Doc.'''\n\n" + "".join(
        f"    def m{i}(self):\n        return self.v + {i}\n\n" for i in range(40)
    )
    chunks = chunk_source(big_class, 64, count)
    assert len(chunks) > 1 and all(count(c.code) <= 64 for c in chunks)
    assert any(c.indent == 4 and c.code.startswith("def m") for c in chunks)  # methods dedented


def test_unparsable_and_empty_sources():
    assert chunk_source("", 64, count) == []
    broken = "def f(:\n" + "x = 1\n" * 200
    chunks = chunk_source(broken, 64, count)
    assert chunks[0].start_line == 1 and sum(len(c.lines) for c in chunks) == 201


# --- rules, settings, git --------------------------------------------------------------------------


def test_rules_are_stable_and_classify_comments():
    codes = [r.code for r in RULES]
    assert len(set(codes)) == len(codes) and codes[-1] == "CRT001"
    assert classify("Off-by-one: the loop skips the last element.").code == "CRT101"
    assert classify("`x > y` should be `x >= y`: the comparison is inverted.").code == "CRT102"
    assert classify("The arguments are swapped in the call to `pow`.").code == "CRT105"
    assert classify("Something smells here.").code == "CRT001"


def test_pyproject_settings(tmp_path):
    nested = tmp_path / "pkg" / "sub"
    nested.mkdir(parents=True)
    (tmp_path / "pyproject.toml").write_text(
        '[tool.critic]\nmodel = "models/policy"\nmin-score = 0.7\nsamples = 2\nkeep = 1\n'
        'exclude = ["gen/*"]\n'
    )
    (tmp_path / "pkg" / "pyproject.toml").write_text('[project]\nname = "pkg"\n')  # no [tool.critic]: skipped
    settings, path = load_settings(nested)
    assert path == tmp_path / "pyproject.toml"
    assert settings.model == (tmp_path / "models" / "policy").resolve()
    assert (settings.min_score, settings.samples, settings.keep, settings.exclude) == (0.7, 2, 1, ("gen/*",))
    assert settings.reward_model == ReviewSettings().reward_model  # untouched keys keep their defaults
    assert settings.updated(min_score=0.9, samples=None).min_score == 0.9


def git(cwd, *args):
    subprocess.run(
        ["git", "-c", "user.name=t", "-c", "user.email=t@e", *args], cwd=cwd, check=True, capture_output=True
    )


def test_changed_lines_from_git(tmp_path):
    (tmp_path / "a.py").write_text("a = 1\nb = 2\nc = 3\n")
    git(tmp_path, "init", "-q")
    git(tmp_path, "add", ".")
    git(tmp_path, "commit", "-q", "-m", "x")
    (tmp_path / "a.py").write_text("a = 1\nb = 20\nc = 3\nd = 4\n")
    (tmp_path / "new.py").write_text("x = 1\ny = 2\n")
    changed = changed_lines(None, staged=False, cwd=tmp_path)
    assert changed[(tmp_path / "a.py").resolve()] == {2, 4}
    assert changed[(tmp_path / "new.py").resolve()] == {1, 2}
    assert changed_lines(None, staged=True, cwd=tmp_path) == {}
    git(tmp_path, "add", "a.py")
    assert changed_lines(None, staged=True, cwd=tmp_path) == {(tmp_path / "a.py").resolve(): {2, 4}}


def test_diff_takes_an_optional_ref(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    git(tmp_path, "init", "-q")
    git(tmp_path, "commit", "-q", "--allow-empty", "-m", "x")
    (tmp_path / "src").mkdir()
    assert expand_optional_values(["review", "--diff"]) == ["review", "--diff=HEAD"]
    assert expand_optional_values(["review", "--diff", "src"]) == ["review", "--diff=HEAD", "src"]
    assert expand_optional_values(["review", "--diff", "HEAD", "src"]) == ["review", "--diff", "HEAD", "src"]
    assert expand_optional_values(["review", "--diff", "--staged"]) == ["review", "--diff=HEAD", "--staged"]
    assert expand_optional_values(["review", "x.py"]) == ["review", "x.py"]


def test_critic_rejects_mismatched_vocabularies():
    config = CriticConfig.from_preset("tiny")
    small = replace(config, vocab_size=4096)
    with pytest.raises(ValueError, match="vocabular"):
        Critic(new_causal_lm(config), Gemma2RewardModel(small), TOKENIZER)


def test_a_chunks_draws_do_not_depend_on_its_batch(random_critic):
    """Same-length prompts: a chunk's first-round samples are the same alone or batched (later rounds
    may pad beams of other lengths, which moves logits by rounding)."""
    settings = FSBSSettings(samples=2, rounds=2, keep=1, max_new_tokens=8)
    code_a, code_b = "def f(a, b):\n    return a - b\n", "def g(a, b):\n    return a + b\n"
    prompt_a, prompt_b = (random_critic.prompt_ids(c) for c in (code_a, code_b))
    assert len(prompt_a) == len(prompt_b)
    alone = random_critic.search([prompt_a], [code_a], settings, seed=5)[0]
    batched = random_critic.search([prompt_b, prompt_a], [code_b, code_a], settings, seed=5)[1]
    assert [c.critique for c in alone.candidates[:2]] == [c.critique for c in batched.candidates[:2]]
