"""What a browser transfers and waits for on the annotation app's pages.

    python bench/annotation_pages.py [--repeats 3] [--chromium /usr/bin/chromium] [--out FILE]

A real server (`critic annotate`, as annotation_load.py starts it) over a fresh SQLite database with
one annotator, and a headless Chromium (through Playwright) that accepts gzip as every browser does.
Each repeat is a new browser profile (empty cache), which:

1. opens the login page (cold cache): bytes transferred until the login form shows;
2. logs in: seconds from the click on *Log in* to the app's page ("Logged in as ...", the landing tab
   opened), and the bytes that took;
3. reloads with the saved login (warm cache): seconds and bytes until the app's page shows again.

Bytes are Chrome's own count of what crossed the network (CDP `Network.loadingFinished`, headers and
compressed bodies; an open event stream counts what it received), and beside them the bodies'
decoded size. Reported per step: the median over the repeats, and the best. Read seconds with the load
average printed at the top: on a busy machine they measure the machine as much as the app.
"""

from __future__ import annotations

import argparse
import os
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from annotation_load import free_port, start_server
from sqlmodel import Session

from critic.annotation_app.auth import create_user
from critic.annotation_app.db import init_db, make_engine

NAME = "annotator"
PASSWORD = "bench-pages-password"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--no-first-run"]
TIMEOUT_MS = 180_000


@dataclass
class Traffic:
    """Bytes a page received since the last `take()`, counted from Chrome's network events."""

    transferred: int = 0
    decoded: int = 0
    requests: int = 0
    gradio_files: int = 0  # of `transferred`: Gradio's own scripts, styles and fonts (the same for any app)
    _open: dict[str, int] = field(default_factory=dict)  # request id: encoded bytes received so far
    _urls: dict[str, str] = field(default_factory=dict)

    def attach(self, cdp) -> None:
        cdp.send("Network.enable")
        cdp.on(
            "Network.requestWillBeSent", lambda e: self._urls.update({e["requestId"]: e["request"]["url"]})
        )
        cdp.on("Network.dataReceived", self._data)
        cdp.on("Network.loadingFinished", self._finished)

    def _data(self, event: dict) -> None:
        self.decoded += event["dataLength"]
        self._open[event["requestId"]] = self._open.get(event["requestId"], 0) + event["encodedDataLength"]

    def _finished(self, event: dict) -> None:
        self._open.pop(event["requestId"], None)
        self.transferred += int(event["encodedDataLength"])
        self.requests += 1
        path = urlsplit(self._urls.get(event["requestId"], "")).path
        if path.startswith(("/assets/", "/static/")) or path == "/theme.css":
            self.gradio_files += int(event["encodedDataLength"])

    def take(self) -> tuple[int, int, int, int]:
        """(transferred, decoded, requests, of transferred Gradio's files) since the last take; streams
        still open count what came."""
        taken = (self.transferred + sum(self._open.values()), self.decoded, self.requests, self.gradio_files)
        self.transferred = self.decoded = self.requests = self.gradio_files = 0
        self._open = dict.fromkeys(self._open, 0)
        return taken


@dataclass
class Step:
    seconds: list[float] = field(default_factory=list)
    transferred: list[int] = field(default_factory=list)
    decoded: list[int] = field(default_factory=list)
    requests: list[int] = field(default_factory=list)
    gradio_files: list[int] = field(default_factory=list)

    def add(self, seconds: float, traffic: tuple[int, int, int, int]) -> None:
        self.seconds.append(seconds)
        self.transferred.append(traffic[0])
        self.decoded.append(traffic[1])
        self.requests.append(traffic[2])
        self.gradio_files.append(traffic[3])

    def line(self, name: str) -> str:
        med, best = statistics.median, min
        return (
            f"{name:<28} {med(self.seconds):6.2f} s (best {best(self.seconds):5.2f})   "
            f"{med(self.transferred) / 1024:8.1f} KB transferred (best {best(self.transferred) / 1024:.1f}), "
            f"{med(self.gradio_files) / 1024:.1f} KB of it Gradio's scripts/styles/fonts; "
            f"{med(self.decoded) / 1024:.1f} KB decoded, {med(self.requests):.0f} requests"
        )


def settle(page, traffic: Traffic, quiet_s: float = 1.0) -> None:
    """Wait until no request has finished for `quiet_s` (Gradio keeps an event stream open, so
    Playwright's networkidle never comes)."""
    last = (-1, -1)
    while True:
        now = (traffic.requests, traffic.transferred)
        if now == last:
            return
        last = now
        page.wait_for_timeout(quiet_s * 1000)


def one_visit(chromium, url: str, steps: dict[str, Step]) -> None:
    context = chromium.new_context()
    page = context.new_page()
    traffic = Traffic()
    traffic.attach(context.new_cdp_session(page))
    start = time.perf_counter()
    page.goto(url)
    page.locator("#login-button").wait_for(state="visible", timeout=TIMEOUT_MS)
    shown = time.perf_counter() - start
    settle(page, traffic)
    steps["login page (cold cache)"].add(shown, traffic.take())

    page.locator("#login-name textarea, #login-name input").fill(NAME)
    page.locator("#login-password input").fill(PASSWORD)
    start = time.perf_counter()
    page.locator("#login-button").click()
    page.locator("#who", has_text=f"Logged in as {NAME}").wait_for(timeout=TIMEOUT_MS)
    shown = time.perf_counter() - start
    settle(page, traffic)
    steps["log in to the app page"].add(shown, traffic.take())

    start = time.perf_counter()
    page.reload()
    page.locator("#who", has_text=f"Logged in as {NAME}").wait_for(timeout=TIMEOUT_MS)
    shown = time.perf_counter() - start
    settle(page, traffic)
    steps["reload, saved login (warm)"].add(shown, traffic.take())
    context.close()


def commit() -> str:
    done = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True)
    dirty = subprocess.run(
        ["git", "status", "--porcelain", "--untracked-files=no"], capture_output=True, text=True
    )
    return done.stdout.strip() + (" plus uncommitted changes" if dirty.stdout.strip() else "")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--chromium", type=Path, default=Path("/usr/bin/chromium"))
    parser.add_argument("--out", type=Path, help="Also write the report here, the command line at the top.")
    args = parser.parse_args()
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        raise SystemExit("needs playwright (pip install playwright) and a Chromium") from None
    if not args.chromium.exists():
        raise SystemExit(f"{args.chromium}: no Chromium there (--chromium PATH)")
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    machine = f"{os.cpu_count()} CPUs, load average {load} at start"
    lines = [f"# python {shlex.join(sys.argv)} (commit {commit()}; {machine})"]
    steps = {
        name: Step()
        for name in ("login page (cold cache)", "log in to the app page", "reload, saved login (warm)")
    }
    with tempfile.TemporaryDirectory() as tmp:
        db = f"sqlite:///{Path(tmp) / 'annotations.db'}"
        engine = make_engine(db)
        init_db(engine)
        with Session(engine) as session:
            create_user(session, NAME, "annotator", PASSWORD)
        engine.dispose()
        port = free_port()
        server = start_server(db, port)
        try:
            with sync_playwright() as p:
                chromium = p.chromium.launch(executable_path=str(args.chromium), args=CHROMIUM_ARGS)
                try:
                    for _ in range(args.repeats):
                        one_visit(chromium, f"http://127.0.0.1:{port}/", steps)
                finally:
                    chromium.close()
        finally:
            server.terminate()
            server.wait(timeout=30)
    lines.append(f"median of {args.repeats} fresh browser profiles, one server:")
    lines.extend(step.line(name) for name, step in steps.items())
    lines.append(f"load average at the end: {', '.join(f'{x:.1f}' for x in os.getloadavg())}")
    print("\n".join(lines))
    if args.out:
        args.out.write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
