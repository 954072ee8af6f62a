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
    try:
        with running(server, thread):
            yield f"http://127.0.0.1:{port}/", engine
    finally:
        engine.dispose()  # once the server has stopped


@contextmanager
def running(server, thread: threading.Thread) -> Iterator[None]:
    """Wait until the uvicorn `server` (started in `thread`) serves; stop it on the way out."""
    deadline = time.monotonic() + 60
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "the annotation server did not start"
        time.sleep(0.05)
    try:
        yield
    finally:
        server.should_exit = True
        thread.join(timeout=30)


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


# WCAG 2.1 AA (1.4.3): the contrast of each visible text against the background it is drawn on. The
# background is the first opaque one up the tree, with the translucent ones above it composited in; a
# disabled control is exempt (WCAG: "part of an inactive user interface component").
_LOW_CONTRAST_JS = """() => {
  const rgba = (s) => { const m = s.match(/[\\d.]+/g) || [0, 0, 0, 0];
    return [+m[0], +m[1], +m[2], m.length > 3 ? +m[3] : 1]; };
  const over = (top, below) => { const a = top[3];
    return [0, 1, 2].map(i => top[i] * a + below[i] * (1 - a)).concat([1]); };
  const luminance = (c) => { const [r, g, b] = c.slice(0, 3).map(v => { v /= 255;
      return v <= 0.03928 ? v / 12.92 : Math.pow((v + 0.055) / 1.055, 2.4); });
    return 0.2126 * r + 0.7152 * g + 0.0722 * b; };
  const background = (el) => { const layers = [];
    for (let node = el; node && node.nodeType === 1; node = node.parentElement) {
      const style = getComputedStyle(node);
      const grad = style.backgroundImage.match(/rgba?\\([^)]*\\)/);
      const color = grad ? rgba(grad[0]) : rgba(style.backgroundColor);
      if (color[3] > 0) { layers.push(color); if (color[3] >= 1) break; } }
    return layers.reverse().reduce((below, top) => over(top, below), [255, 255, 255, 1]); };
  const failures = [];
  const walker = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
  const seen = new Set();
  for (let text = walker.nextNode(); text; text = walker.nextNode()) {
    const el = text.parentElement;
    if (!text.textContent.trim() || !el || seen.has(el)) continue;
    seen.add(el);
    if (el.closest("svg, script, style, [disabled], [aria-hidden=true]")) continue;
    const box = el.getBoundingClientRect();
    if (box.width < 1 || box.height < 1 || !el.checkVisibility({opacityProperty: true,
        visibilityProperty: true})) continue;
    const style = getComputedStyle(el);
    const bg = background(el);
    const fg = over(rgba(style.color), bg);
    const [hi, lo] = [luminance(fg), luminance(bg)].sort((a, b) => b - a);
    const ratio = (hi + 0.05) / (lo + 0.05);
    const size = parseFloat(style.fontSize), bold = parseInt(style.fontWeight) >= 700;
    const needed = size >= 24 || (size >= 18.66 && bold) ? 3 : 4.5;
    if (ratio < needed) failures.push(`${ratio.toFixed(2)} < ${needed}: ${style.color} on ` +
      `rgb(${bg.slice(0, 3).map(Math.round)}) ${el.tagName.toLowerCase()}` +
      `${el.id ? "#" + el.id : ""}.${[...el.classList].join(".")} "${text.textContent.trim().slice(0, 40)}"`);
  }
  return failures;
}"""


def low_contrast(page) -> list[str]:
    """Every visible text on the page below WCAG AA contrast (4.5:1; 3:1 for large text), one line each."""
    return page.evaluate(_LOW_CONTRAST_JS)


def assert_readable(page, where: str) -> None:
    """WCAG AA contrast for all text on the page as it is now (issue 26, item 17)."""
    failures = low_contrast(page)
    assert not failures, f"text below WCAG AA contrast on {where}:\n" + "\n".join(failures)
