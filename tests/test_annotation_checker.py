"""*Check against critic*: the critic's critique comes from the repair search (`critic review`'s default),
written from its suspect lines' quotes and template comments, and is rated against the bug as before.

The logic tests give the checker hand-made suspect lines built the way `locate` builds them (real
repairs, real descriptions); the end-to-end tests run the real repair search with a tiny model that has
memorized the untampered code, so the tampered line is the one it suspects most."""

from __future__ import annotations

from dataclasses import asdict, replace

import pytest
import torch
from annotation_helpers import DESCRIPTION, FUNCTION, located
from conftest import BUG_LINE, BUGGY_CODE

from critic.annotation_app.checker import CHECK_SEARCHES, check_tampering, search_of
from critic.annotation_app.server import lazy_critic
from critic.core.critique import NO_BUGS, code_lines, parse_critique
from critic.inference.fsbs import FSBSSettings
from critic.inference.localizer import LocatedBug
from critic.review.settings import ReviewSettings

DEFAULTS = ReviewSettings()
MIN_SCORE, MAX_FINDINGS = DEFAULTS.min_score, DEFAULTS.max_findings
LINES = code_lines(BUGGY_CODE)


class StubCritic:
    """A critic whose repair search reports `found` (most suspect first); it has no other search."""

    name = "stub"

    def __init__(self, found: list[LocatedBug]) -> None:
        self.found, self.searches = found, 0

    def locate(self, code: str, max_lines: int = 10) -> list[LocatedBug]:
        assert code == BUGGY_CODE
        self.searches += 1
        return self.found[:max_lines]


TOP = located(BUGGY_CODE, "len(xs) - 1", "len(xs)", 0.9)  # the tampered line
OTHER = located(BUGGY_CODE, "0", "1", 0.4)  # line 2
WEAK = located(BUGGY_CODE, "total / len(xs)", "total * len(xs)", MIN_SCORE - 0.01)  # line 5


def test_the_critique_is_the_confident_suspect_lines_with_their_comments():
    critic = StubCritic([TOP, OTHER, WEAK])
    started: list[int] = []
    result = check_tampering(critic, BUGGY_CODE, [BUG_LINE], DESCRIPTION, on_search=started.append)
    assert started == [1] and critic.searches == CHECK_SEARCHES == 1  # deterministic: one search
    (critique,) = result.critiques
    parsed = parse_critique(critique, BUGGY_CODE)
    assert not parsed.preamble and not parsed.hallucinated
    # In code order, each quoting its lines verbatim; the line under min-score is left out.
    assert [(h.quote, h.start_line, h.end_line, h.match) for h in parsed.highlights] == [
        (LINES[1], 2, 2, "exact"),
        (LINES[2], 3, 3, "exact"),
    ]
    assert [h.comment for h in parsed.highlights] == [
        f"{OTHER.comment} Suggested fix: replace `0` with `1`.",
        f"{TOP.comment} Suggested fix: replace `len(xs) - 1` with `len(xs)`.",
    ]
    assert result.caught == [True] and not result.adversarial and result.code == BUGGY_CODE
    assert result.settings == {
        "search": "repairs",
        "min_score": MIN_SCORE,
        "max_findings": MAX_FINDINGS,
        "model": "stub",
    }


def test_a_critic_that_suspects_nothing_enough_writes_no_bugs():
    result = check_tampering(
        StubCritic([replace(TOP, score=MIN_SCORE / 2), WEAK]), BUGGY_CODE, [3], DESCRIPTION
    )
    assert result.critiques == [NO_BUGS] and result.caught == [False] and result.adversarial


def test_a_critic_whose_suspects_are_elsewhere_misses_the_bug():
    """Caught is the rubric rater's word on the critique, as before: a confident line that is not the
    bug's does not catch it."""
    elsewhere = replace(WEAK, score=0.95)
    result = check_tampering(StubCritic([elsewhere]), BUGGY_CODE, [BUG_LINE], DESCRIPTION)
    (highlight,) = parse_critique(result.critiques[0], BUGGY_CODE).highlights
    assert (highlight.start_line, result.caught, result.adversarial) == (5, [False], True)


def test_max_findings_overlaps_and_long_fixes():
    """At most max-findings lines, the most confident; a line a more confident one already quotes is
    not quoted again; a fix that spans lines is left out of the comment, which stays the template's."""
    again = located(BUGGY_CODE, "len(xs) - 1", "len(xs) - 2", 0.8)  # the tampered line again
    multiline = replace(TOP, text="len(\n        xs)")
    critic = StubCritic([multiline, again, OTHER])
    settings = ReviewSettings(max_findings=1)
    result = check_tampering(critic, BUGGY_CODE, [BUG_LINE], DESCRIPTION, settings)
    (highlight,) = parse_critique(result.critiques[0], BUGGY_CODE).highlights
    assert (highlight.quote, highlight.comment) == (LINES[2], TOP.comment)
    assert result.settings["max_findings"] == 1 and result.caught == [True]

    wider = check_tampering(StubCritic([TOP, again, OTHER]), BUGGY_CODE, [3], DESCRIPTION)
    quoted = [h.start_line for h in parse_critique(wider.critiques[0], BUGGY_CODE).highlights]
    assert quoted == [2, 3]


def test_stored_settings_of_both_searches_are_read():
    """The critique column's settings: the FSBS checks' dicts (with seeds) and the repair search's."""
    old = {**asdict(FSBSSettings()), "seeds": [0, 1, 2], "model": "policy"}
    new = {"search": "repairs", "min_score": 0.2, "max_findings": 5, "model": "policy"}
    assert [search_of(s) for s in (old, new, None, {"origin": "test:fixed"})] == [
        "fsbs",
        "repairs",
        None,
        None,
    ]


# --- the real repair search, end to end ---------------------------------------------------------------

# What the tiny model memorizes: BUGGY_CODE and the annotation samples (annotation_helpers.FUNCTION)
# before the off-by-one went in.
ORIGINALS = (BUGGY_CODE.replace("range(len(xs) - 1)", "range(len(xs))"), FUNCTION.format(k=0))


@pytest.fixture(scope="module")
def repair_critic(tmp_path_factory):
    """(policy dir, reward dir) of a tiny critic whose language model, read as a plain code model as the
    repair search reads it, has memorized ORIGINALS: the repair that undoes the tampering is the one it
    finds likeliest."""
    from critic.core.tokenizer import load_tokenizer, save_tokenizer
    from critic.model import CriticConfig, Gemma2RewardModel, new_causal_lm, save_checkpoint
    from critic.model.gemma2 import init_weights

    out = tmp_path_factory.mktemp("repair_critic")
    config = CriticConfig.from_preset("tiny")
    tokenizer = load_tokenizer()
    policy = new_causal_lm(config, 0)
    rows = [
        [config.bos_token_id, *tokenizer.encode(code, add_special_tokens=False).ids, config.eos_token_id]
        for code in ORIGINALS
    ]
    width = max(map(len, rows))
    ids = torch.zeros(len(rows), width, dtype=torch.long)
    labels = torch.full_like(ids, -100)
    for i, row in enumerate(rows):
        ids[i, : len(row)] = labels[i, : len(row)] = torch.tensor(row)
    optimizer = torch.optim.AdamW(policy.parameters(), lr=3e-3)
    policy.train()
    for _ in range(100):
        logits = policy(ids, (labels != -100).long())[:, :-1]
        loss = torch.nn.functional.cross_entropy(
            logits.reshape(-1, logits.shape[-1]), labels[:, 1:].reshape(-1)
        )
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    assert loss.item() < 0.05, f"the model did not memorize the code (loss {loss.item():.3f})"
    torch.manual_seed(0)
    reward = Gemma2RewardModel(config)
    reward.apply(lambda m: init_weights(m, config.initializer_range))
    for name, model in (("policy", policy.eval()), ("reward", reward)):
        save_checkpoint(model, out / name)
        save_tokenizer(tokenizer, out / name)
    return out / "policy", out / "reward"


def test_check_runs_the_real_repair_search(repair_critic):
    critic = lazy_critic(*repair_critic)()
    assert critic.name == "policy"  # the critique's origin: model:<policy dir>
    found = critic.locate(BUGGY_CODE)
    top = found[0]
    assert (top.line, BUGGY_CODE[top.start : top.end], top.text) == (BUG_LINE, "len(xs) - 1", "len(xs)")
    assert top.score >= MIN_SCORE

    result = check_tampering(critic, BUGGY_CODE, [BUG_LINE], DESCRIPTION)
    assert result.caught == [True] and not result.adversarial
    parsed = parse_critique(result.critiques[0], BUGGY_CODE)
    by_line = {bug.line: bug for bug in found}
    assert BUG_LINE in {h.start_line for h in parsed.highlights} and not parsed.hallucinated
    for h in parsed.highlights:
        bug = by_line[h.start_line]
        assert h.quote == "\n".join(LINES[bug.line - 1 : bug.end_line]) and bug.score >= MIN_SCORE
        assert h.comment == bug.comment or h.comment.startswith(f"{bug.comment} Suggested fix: ")


def test_a_check_costs_one_repair_search(repair_critic, monkeypatch):
    """What a check costs (issue 26, item 13: at most 10 s for a 30-line function on 2 idle cores;
    bench/annotation_check.py measures it): the repair search alone, every candidate repair of the code
    scored in packed rows of at most ROW_TOKENS tokens, one policy forward pass per row. Never FSBS's
    sampling (the old check's three searches took 17-23 s warm) and never the reward model."""
    import random

    from critic.datagen.tamper import tamper
    from critic.datagen.tamper_data import humaneval_items
    from critic.inference.repair_scoring import ROW_TOKENS

    critic = lazy_critic(*repair_critic)()

    def no_sampling(*args, **kwargs):
        raise AssertionError("a check samples nothing")

    monkeypatch.setattr(critic, "search", no_sampling)
    rows: list[int] = []
    scored: list[str] = []
    hooks = [
        critic.policy.model.register_forward_pre_hook(lambda _, args: rows.append(args[0].shape[-1])),
        critic.reward.register_forward_pre_hook(lambda *_: scored.append("reward")),
        critic.reward.model.register_forward_pre_hook(lambda *_: scored.append("reward model")),
    ]
    # The bench's costliest 30-line function: 32 lines, 120 candidate repairs.
    (item,) = [i for i in humaneval_items() if i.task_id == "HumanEval/140"]
    (tampering,) = tamper(item.code, random.Random("0:HumanEval/140"))
    try:
        result = check_tampering(critic, tampering.code, tampering.bug_lines, tampering.description)
    finally:
        for hook in hooks:
            hook.remove()
    assert result.settings["search"] == "repairs" and len(result.critiques) == 1
    assert scored == [] and 1 <= len(rows) <= 4 and max(rows) <= ROW_TOKENS, (scored, rows)


def test_tamper_submit_over_http_runs_the_critic(repair_critic, annotation_engine, tmp_path):
    """Through the full app (API + UI): the server checks the submitted code itself and stores the
    critic's critique, named after the model with the search it came from, beside the gold critique."""
    from annotation_helpers import PASSWORD, make_team
    from fastapi.testclient import TestClient
    from sqlmodel import Session, select

    from critic.annotation_app.db import Critique, Tampering
    from critic.annotation_app.server import create_app

    engine = annotation_engine
    make_team(engine, tmp_path / "src", samples=1)
    with TestClient(create_app(engine, lazy_critic(*repair_critic))) as client:
        assert client.get("/api/health").json() == {"ok": True}
        assert client.get("/").status_code == 200  # the Gradio UI is mounted at /
        token = client.post("/api/login", json={"name": "alice", "password": PASSWORD}).json()["token"]
        headers = {"Authorization": f"Bearer {token}"}
        sample = client.get("/api/tamper/next", headers=headers).json()["sample"]
        code = sample["code"].replace("range(len(xs))", "range(len(xs) - 1)")
        body = {"sample_id": sample["sample_id"], "code": code, "bug_lines": [3], "description": DESCRIPTION}
        response = client.post("/api/tamper/submit", json=body, headers=headers)
    assert response.status_code == 200, response.text
    result = response.json()
    with Session(engine) as session:
        tampering = session.get(Tampering, result["tampering_id"])
        critiques = session.exec(select(Critique).where(Critique.tampering_id == tampering.id)).all()
    assert result["caught"] == [True] and (tampering.caught, tampering.adversarial) == (1, False)
    (model,) = [c for c in critiques if c.origin != "gold"]
    assert len(critiques) == 2 and model.origin == "model:policy"
    assert model.fsbs_settings == {
        "search": "repairs",
        "min_score": MIN_SCORE,
        "max_findings": MAX_FINDINGS,
        "model": "policy",
    }
    assert (
        code_lines(code)[2] in model.text
        and "Suggested fix: replace `len(xs) - 1` with `len(xs)`." in model.text
    )


def test_the_server_says_which_sandbox_runs_tests(tmp_path, monkeypatch, capsys):
    """At start-up, one line on stderr: the isolation *Run tests* has (critic.datagen.sandbox)."""
    import uvicorn

    from critic.annotation_app import server
    from critic.datagen.sandbox import isolation

    monkeypatch.setattr(server, "create_app", lambda *args, **kwargs: None)
    monkeypatch.setattr(uvicorn, "run", lambda *args, **kwargs: None)
    server.serve(f"sqlite:///{tmp_path / 'a.db'}")
    lines = [line for line in capsys.readouterr().err.splitlines() if line.startswith("Run tests sandbox:")]
    assert lines == [f"Run tests sandbox: {isolation()}"]
