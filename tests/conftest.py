"""Shared fixtures: tiny Gemma 2 configs that stress every architectural detail."""

from __future__ import annotations

import fcntl
import functools
import os
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest
import torch

from critic.model import CriticConfig

# Under pytest-xdist (`-n auto`) each worker gets one core's worth of threads, and so do the programs its
# tests start (OMP_NUM_THREADS is inherited), so two workers do not fight over two cores.
XDIST_WORKER = os.environ.get("PYTEST_XDIST_WORKER")
if XDIST_WORKER:
    os.environ.setdefault("OMP_NUM_THREADS", "1")
torch.set_num_threads(1 if XDIST_WORKER else 2)


def stress_config(**overrides) -> CriticConfig:
    """Small, but with every Gemma 2 quirk switched on and far from its linear regime.

    Soft caps small enough that tanh bends, query_pre_attn_scalar != head_dim,
    heads x head_dim != hidden, GQA, and a short sliding window.
    """
    values = dict(
        vocab_size=320,
        hidden_size=96,
        intermediate_size=160,
        num_hidden_layers=4,
        num_attention_heads=4,
        num_key_value_heads=2,
        head_dim=32,
        query_pre_attn_scalar=24,
        sliding_window=8,
        attn_logit_softcapping=2.0,
        final_logit_softcapping=3.0,
        max_position_embeddings=256,
    )
    values.update(overrides)
    return CriticConfig(**values)


def randomize_(model: torch.nn.Module, seed: int = 0, scale: float = 0.2) -> torch.nn.Module:
    """Perturb every weight, norms included (their zero init would hide (1 + w) bugs)."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn(p.shape, generator=gen) * scale)
    return model


@pytest.fixture
def config() -> CriticConfig:
    return stress_config()


# --- a critic that knows one bug ------------------------------------------------------------------

BUGGY_CODE = """def average(xs):
    total = 0
    for i in range(len(xs) - 1):
        total += xs[i]
    return total / len(xs)
"""
BUG_LINE = 3
BUG_QUOTE = "for i in range(len(xs) - 1):"
BUG_CRITIQUE = (
    f"```\n{BUG_QUOTE}\n```\nOff-by-one: the loop stops before the last element, so the total misses it."
)
BUG_RULE = "CRT101"


def with_comment(comment: str, code: str = BUGGY_CODE) -> str:
    """BUGGY_CODE with `comment` at the end of the bug line."""
    lines = code.split("\n")
    lines[BUG_LINE - 1] += f"  {comment}"
    return "\n".join(lines)


# The code the memorized critic answers (tests sample it at temperature 0.5, where it writes the
# critique nearly every time) with BUG_CRITIQUE: the bug as is, and under suppression
# comments (the critic still finds it; the comment must silence it).
KNOWN_CODES = (BUGGY_CODE, with_comment("# critic: ignore"), with_comment("# critic: ignore[CRT105]"))


def memorize_critic(out, steps: int = 150, seed: int = 0):
    """A tiny critic trained until it writes BUG_CRITIQUE for KNOWN_CODES, plus a random reward model.

    Tests of `critic review` need a model with known findings; training one on three examples takes
    seconds, where any real critic would make the tests slow or vague.
    """
    from critic.core.critique import build_prompt, terminate_critique
    from critic.core.tokenizer import load_tokenizer, save_tokenizer
    from critic.model import Gemma2RewardModel, new_causal_lm, save_checkpoint
    from critic.model.gemma2 import init_weights

    out = Path(out)
    config = CriticConfig.from_preset("tiny")
    tokenizer = load_tokenizer()
    policy = new_causal_lm(config, seed)
    answer = tokenizer.encode(terminate_critique(BUG_CRITIQUE), add_special_tokens=False).ids
    rows = []
    for code in KNOWN_CODES:
        prompt = [config.bos_token_id, *tokenizer.encode(build_prompt(code), add_special_tokens=False).ids]
        rows.append((prompt, answer))
    width = max(len(p) + len(a) for p, a in rows)
    ids = torch.zeros(len(rows), width, dtype=torch.long)
    labels = torch.full_like(ids, -100)
    for i, (prompt, answer) in enumerate(rows):
        ids[i, : len(prompt) + len(answer)] = torch.tensor(prompt + answer)
        labels[i, len(prompt) : len(prompt) + len(answer)] = torch.tensor(answer)
    mask = (labels != -100) | (ids != 0)
    optimizer = torch.optim.AdamW(policy.parameters(), lr=3e-3)
    policy.train()
    for _ in range(steps):
        logits = policy(ids, mask.long())[:, :-1]
        loss = torch.nn.functional.cross_entropy(
            logits.reshape(-1, logits.shape[-1]), labels[:, 1:].reshape(-1)
        )
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    policy.eval()
    torch.manual_seed(seed)
    reward = Gemma2RewardModel(config)
    reward.apply(lambda m: init_weights(m, config.initializer_range))
    for name, model in (("policy", policy), ("reward", reward)):
        save_checkpoint(model, out / name)
        save_tokenizer(tokenizer, out / name)
    return out / "policy", out / "reward", loss.item()


def built_once(tmp_path_factory, name: str, build: Callable[[Path], None]) -> Path:
    """A folder `build` fills once per test run. Under pytest-xdist every worker asks for the session's
    fixtures; the first to get the lock builds in the run's shared temporary root, the others wait and
    reuse it, so two workers never pay for the same tiny model twice."""
    if not XDIST_WORKER:
        out = tmp_path_factory.mktemp(name)
        build(out)
        return out
    out = tmp_path_factory.getbasetemp().parent / name
    with open(out.with_suffix(".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not (out / ".built").exists():
            shutil.rmtree(out, ignore_errors=True)  # what a crashed worker left half built
            out.mkdir()
            build(out)
            (out / ".built").touch()
    return out


@pytest.fixture(scope="session")
def known_critic(tmp_path_factory):
    """(policy dir, reward dir) of the memorized critic, built once per test run."""

    def build(out: Path) -> None:
        _, _, loss = memorize_critic(out)
        (out / "loss.txt").write_text(str(loss))

    out = built_once(tmp_path_factory, "known_critic", build)
    loss = float((out / "loss.txt").read_text())
    assert loss < 0.05, f"the memorized critic did not learn its critique (loss {loss:.3f})"
    return out / "policy", out / "reward"


# --- interrupted training stages ---------------------------------------------------------------


class Interrupt(Exception):
    pass


@pytest.fixture
def interrupt_after_checkpoint(monkeypatch):
    """Make the next Trainer checkpoint of each output directory the last thing a run does, as if it
    were killed right after writing it."""
    from transformers import Trainer

    save = Trainer._save_checkpoint
    interrupted: set[str] = set()

    def save_then_stop(self, model, trial):
        save(self, model, trial)
        if self.args.output_dir not in interrupted:
            interrupted.add(self.args.output_dir)
            raise Interrupt(f"stopped after step {self.state.global_step}")

    monkeypatch.setattr(Trainer, "_save_checkpoint", save_then_stop)
    return monkeypatch


# --- the annotation app's database, on SQLite and (when configured) PostgreSQL --------------------


def postgres_url() -> str:
    """CRITIC_TEST_POSTGRES_URL, or under pytest-xdist a schema of its own in that database for this
    worker (search_path set per connection), so workers never drop each other's tables."""
    url = os.environ.get("CRITIC_TEST_POSTGRES_URL")
    if not url:
        pytest.skip("CRITIC_TEST_POSTGRES_URL is not set")  # CI sets it (.ci/run)
    return _worker_schema_url(url) if XDIST_WORKER else url


@functools.cache
def _worker_schema_url(url: str) -> str:
    """`url` with this worker's schema, created once per worker rather than once per test."""
    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url

    schema = f"xdist_{XDIST_WORKER}"
    engine = create_engine(url)
    with engine.begin() as connection:
        connection.execute(text(f'CREATE SCHEMA IF NOT EXISTS "{schema}"'))
    engine.dispose()
    worker_url = make_url(url).update_query_dict({"options": f"-csearch_path={schema}"})
    return worker_url.render_as_string(hide_password=False)


@pytest.fixture(params=["sqlite", "postgresql"])
def annotation_url(request, tmp_path):
    """A fresh, empty annotation database URL: a SQLite file, or the PostgreSQL database named by
    CRITIC_TEST_POSTGRES_URL with every table dropped (skipped when that is not set)."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'annotations.db'}"
    url = postgres_url()
    from sqlmodel import SQLModel

    from critic.annotation_app.db import make_engine

    engine = make_engine(url)
    SQLModel.metadata.drop_all(engine)
    engine.dispose()
    return url


@pytest.fixture
def annotation_engine(annotation_url):
    """An engine on a fresh annotation database with the schema created."""
    from critic.annotation_app.db import init_db, make_engine

    engine = make_engine(annotation_url)
    init_db(engine)
    yield engine
    engine.dispose()


# --- the fast loop: `pytest -m "not slow"` ---------------------------------------------------------

# Modules whose tests train models or run pipeline stages (test_pipeline, test_distill, test_reinforce,
# test_pretrain, test_rank, test_recipe, test_trl, test_eval), run the critic over datasets or through
# its cache in many processes (test_audit, test_cache), or start servers, browsers, sandboxed
# programs and fresh installs (test_annotation_e2e, test_annotation_faults, test_sandbox,
# test_packaging): minutes on 2 CPU cores. Every test in them is marked `slow` (registered in
# pyproject.toml) here, so the test files stay as they are; plain `pytest` (CI) still runs them all.
SLOW_MODULES = frozenset(
    {
        "test_annotation_backup",
        "test_annotation_deploy",
        "test_annotation_e2e",
        "test_annotation_e2e_compare",
        "test_annotation_e2e_sessions",
        "test_annotation_e2e_tasks",
        "test_annotation_e2e_write",
        "test_annotation_faults",
        "test_audit",
        "test_cache",
        "test_distill",
        "test_eval",
        "test_packaging",
        "test_pipeline",
        "test_pretrain",
        "test_rank",
        "test_recipe",
        "test_reinforce",
        "test_sandbox",
        "test_trl",
    }
)


def pytest_collection_modifyitems(config, items):
    for item in items:
        if item.path.stem in SLOW_MODULES:
            item.add_marker(pytest.mark.slow)


# --- time ----------------------------------------------------------------------------------------------


class Clock:
    """A clock the test moves by hand (`critic.annotation_app.db.now` reads it while the fixture holds)."""

    def __init__(self) -> None:
        from datetime import UTC, datetime

        self.time = datetime(2030, 1, 1, tzinfo=UTC)

    def __call__(self):
        return self.time

    def advance(self, hours: float = 0, **delta: float) -> None:
        from datetime import timedelta

        self.time += timedelta(hours=hours, **delta)


@pytest.fixture
def clock():
    """The annotation app's clock, stopped at 2030-01-01 until the test advances it."""
    from critic.annotation_app import db

    moved = Clock()
    db.set_clock(moved)
    yield moved
    db.set_clock(None)


@pytest.fixture
def crew(annotation_engine, tmp_path):
    """An admin, alice (who tampers), and bob, carol, dave, erin (who write and rate); four samples."""
    from types import SimpleNamespace

    from annotation_helpers import make_team, make_users

    engine = annotation_engine
    admin, alice, bob, carol = make_team(engine, tmp_path / "src", samples=4)
    dave, erin = make_users(engine, "dave", "erin")
    return SimpleNamespace(
        engine=engine, admin=admin, alice=alice, bob=bob, carol=carol, dave=dave, erin=erin
    )
