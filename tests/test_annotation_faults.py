"""A server killed in the middle of a rating submission leaves no half-written rating behind.

The real server runs as a subprocess, started through tests/annotate_with_delay.py: the same CLI, with
a pause after the first rating row of a submission is written and before the commit, announced on
stderr. The test SIGKILLs the server during that pause, reopens the database and finds the task
untouched.
"""

from __future__ import annotations

import os
import queue
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
from annotation_helpers import PASSWORD, make_team, rating, tamper_next
from sqlmodel import Session, func, select

from critic.annotation_app import store
from critic.annotation_app.db import Assignment, Critique, Rating, init_db, make_engine

START_TIMEOUT_S = 180  # the server imports gradio; a busy CI machine is slow
DELAYED_CLI = Path(__file__).with_name("annotate_with_delay.py")  # `python -m critic.cli`, with a pause


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(url: str, port: int, delay_s: float) -> tuple[subprocess.Popen, queue.Queue]:
    """The annotation server, pausing `delay_s` seconds in the middle of each rating submission."""
    proc = subprocess.Popen(
        [sys.executable, str(DELAYED_CLI), str(delay_s), "annotate", "--db", url, "--port", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    lines: queue.Queue = queue.Queue()
    threading.Thread(target=lambda: [lines.put(line) for line in proc.stderr], daemon=True).start()
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        assert proc.poll() is None, "the server exited during start-up"
        try:
            if httpx.get(f"http://127.0.0.1:{port}/api/health", timeout=2).status_code == 200:
                return proc, lines
        except httpx.TransportError:
            time.sleep(0.5)
    proc.kill()
    raise AssertionError("the server did not start")


def wait_for(lines: queue.Queue, needle: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if needle in lines.get(timeout=0.5):
                return
        except queue.Empty:
            pass
    raise AssertionError(f"the server never printed {needle!r}")


def test_sigkill_mid_submission_leaves_the_task_open(annotation_url, tmp_path):
    engine = make_engine(annotation_url)
    init_db(engine)
    _, alice, bob, _ = make_team(engine, tmp_path / "src", samples=1)
    tampering_id = tamper_next(engine, alice)
    with Session(engine) as session:
        task = store.next_compare_task(session, bob)
    engine.dispose()
    body = {"ratings": [{"critique_id": c.critique_id, **vars(rating())} for c in task.critiques]}

    port = free_port()
    proc, lines = start_server(annotation_url, port, delay_s=120)
    try:
        base = f"http://127.0.0.1:{port}/api"
        token = httpx.post(f"{base}/login", json={"name": "bob", "password": PASSWORD}).json()["token"]
        headers = {"Authorization": f"Bearer {token}"}
        outcome: list = []

        def submit() -> None:
            try:
                outcome.append(
                    httpx.post(f"{base}/compare/{tampering_id}", json=body, headers=headers, timeout=180)
                )
            except httpx.TransportError as err:
                outcome.append(err)

        sender = threading.Thread(target=submit)
        sender.start()
        wait_for(lines, "sleeping 120 s mid-transaction", timeout=60)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
        sender.join(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert outcome and isinstance(outcome[0], httpx.TransportError)  # the client saw the connection die

    engine = make_engine(annotation_url)
    with Session(engine) as session:
        ids = session.exec(select(Critique.id).where(Critique.tampering_id == tampering_id)).all()
        written = session.exec(
            select(func.count()).select_from(Rating).where(Rating.critique_id.in_(ids))
        ).one()
        held = session.exec(
            select(Assignment).where(Assignment.kind == "compare", Assignment.user_id == bob.id)
        ).one()
        assert written == 0 and held.status == "open"
        # and the database takes the same submission afterwards
        store.submit_ratings(session, bob, tampering_id, {c.critique_id: rating() for c in task.critiques})
        assert session.exec(select(func.count()).select_from(Rating)).one() == store.CRITIQUES_PER_TASK
    engine.dispose()
