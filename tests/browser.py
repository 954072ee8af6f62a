"""Shared set-up of the annotation app's browser tests: a real server in a thread, Playwright driving
Debian's /usr/bin/chromium, and small page helpers. Screenshots go to $CRITIC_TEST_ARTIFACTS (default:
test-artifacts/ at the repository root) for a human to look at."""

from __future__ import annotations

import os
import re
import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from sqlalchemy.engine import Engine
from sqlmodel import Session

try:
    from playwright.sync_api import expect, sync_playwright
except ImportError:  # the browser tests skip; the rest of their files run
    expect = sync_playwright = None

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]
PASSWORD = "correct horse battery"
TIMEOUT_MS = 60_000  # generous: the tests share a small machine with whatever else runs on it

needs_browser = pytest.mark.skipif(
    sync_playwright is None or not CHROMIUM.exists(),
    reason=f"needs playwright (python) and chromium at {CHROMIUM} (apt-get install chromium)",
)


def artifacts_dir() -> Path:
    root = Path(__file__).resolve().parent.parent
    path = Path(os.environ.get("CRITIC_TEST_ARTIFACTS") or root / "test-artifacts")
    path.mkdir(parents=True, exist_ok=True)
    return path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def serve_app(
    tmp_path: Path, critic_factory: Callable[[], object], users: tuple[tuple[str, str], ...]
) -> Iterator[tuple[str, Engine]]:
    """The real app (API + UI) served by uvicorn in a thread over a fresh SQLite file with `users`
    ((name, role) pairs, all with PASSWORD); yields its URL and the engine."""
    import uvicorn

    from critic.annotation_app.auth import create_user
    from critic.annotation_app.db import init_db, make_engine
    from critic.annotation_app.server import create_app

    engine = make_engine(f"sqlite:///{tmp_path / 'annotations.db'}")
    init_db(engine)
    with Session(engine) as session:
        for name, role in users:
            create_user(session, name, role, PASSWORD)
    port = free_port()
    config = uvicorn.Config(
        create_app(engine, critic_factory), host="127.0.0.1", port=port, log_level="warning"
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 60
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "the annotation server did not start"
        time.sleep(0.1)
    try:
        yield f"http://127.0.0.1:{port}/", engine
    finally:
        server.should_exit = True
        thread.join(timeout=30)
        engine.dispose()


@contextmanager
def browser() -> Iterator[object]:
    """A headless Chromium; `expect` waits up to TIMEOUT_MS."""
    expect.set_options(timeout=TIMEOUT_MS)
    with sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            yield chromium
        finally:
            chromium.close()


def log_in(page, url: str, name: str) -> None:
    page.goto(url)
    page.locator("#login-name textarea, #login-name input").fill(name)
    page.locator("#login-password input").fill(PASSWORD)
    page.locator("#login-button").click()
    expect(page.locator("#who")).to_contain_text(f"Logged in as {name}", timeout=TIMEOUT_MS)


def fill(page, elem_id: str, text: str) -> None:
    page.locator(f"#{elem_id} textarea, #{elem_id} input").first.fill(text)


def choose(page, elem_id: str, value: int) -> None:
    """Click the radio option `value` of a 1-7 score."""
    page.locator(f"#{elem_id} label").filter(has_text=re.compile(rf"^\s*{value}\s*$")).click()
