"""Load test of the annotation app: concurrent annotators rating critiques through the JSON API.

    python bench/annotation_load.py [--annotators 20] [--tasks 100] [--overlap 3] [--out FILE]

A real server (`critic annotate`, uvicorn, API + Gradio UI) on a free port over a SQLite WAL file in a
temporary directory, seeded through the store: HumanEval imported; `--tasks` tamperings, each a bug
inserted by the automatic tamperer (critic.datagen.tamper) and submitted by one of two author accounts with
three critiques from the random-line baseline (critic.evaluate.random_line_critiques, origin
`baseline:random_line`) plus the gold critique. Then `--annotators` threads, each its own HTTP client:
log in, fetch the next compare task, rate its four critiques, submit, repeat until no task is left.

Reports submissions/s and p50/p95 latency of fetching and of submitting, then checks the database:
4 ratings per accepted submission, no (critique, rater) twice, every tampering rated by exactly
`--overlap` annotators, no task left open. The sandboxed test runs of a submission are skipped while
seeding (verify_tests=False): they measure the sandbox, not the app.
"""

from __future__ import annotations

import argparse
import os
import random
import shlex
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx
from sqlalchemy import func
from sqlmodel import Session, select

from critic.annotation_app import store
from critic.annotation_app.checker import CheckResult
from critic.annotation_app.db import Assignment, Rating, Tampering, init_db, make_engine
from critic.datagen.rating import FLAG_FIELDS, SCORE_FIELDS, SCORE_MAX, SCORE_MIN
from critic.datagen.tamper import tamper
from critic.evaluate import random_line_critiques

PASSWORD = "load-test-password"
ORIGIN = "baseline:random_line"


def seed(url: str, tasks: int, annotators: int, overlap: int) -> None:
    engine = make_engine(url)
    init_db(engine)
    with Session(engine) as session:
        admin = store.create_user(session, "admin", "admin", PASSWORD)
        authors = [store.create_user(session, f"author{i}", "annotator", PASSWORD) for i in range(2)]
        for i in range(annotators):
            store.create_user(session, f"annotator{i:02d}", "annotator", PASSWORD)
        store.import_samples(session, admin, "humaneval")
        store.set_overlap(session, admin, overlap)
        rng = random.Random(0)
        made = 0
        while made < tasks:
            author = authors[made % len(authors)]
            sample = store.next_tamper_sample(session, author)
            if sample is None:
                raise SystemExit(f"only {made} tamperings could be made from HumanEval")
            bugs = tamper(sample.code, rng)
            if not bugs:
                store.skip_sample(session, author, sample.sample_id)  # nothing to tamper in it
                continue
            bug = bugs[0]
            seeds = list(range(store.CHECK_SEARCHES))
            critiques = [random_line_critiques([{"code": bug.code}], seed)[0] for seed in seeds]
            check = CheckResult(
                [False] * len(seeds), critiques, True, {"origin": ORIGIN, "seeds": seeds}, bug.code
            )
            store.submit_tampering(
                session,
                author,
                sample.sample_id,
                bug.code,
                bug.bug_lines,
                bug.description,
                check,
                verify_tests=False,
            )
            made += 1
    engine.dispose()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(url: str, port: int) -> subprocess.Popen:
    proc = subprocess.Popen(
        [sys.executable, "-m", "critic.cli", "annotate", "--db", url, "--port", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit("the server exited during start-up")
        try:
            if httpx.get(f"http://127.0.0.1:{port}/api/health", timeout=2).status_code == 200:
                return proc
        except httpx.TransportError:
            time.sleep(0.5)
    proc.kill()
    raise SystemExit("the server did not start in 180 s")


class Stats:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.fetch: list[float] = []
        self.submit: list[float] = []
        self.accepted = 0
        self.errors: list[str] = []


def annotate(base: str, name: str, stats: Stats, seed: int) -> None:
    """One simulated annotator: rate tasks until the queue is empty."""
    rng = random.Random(seed)
    with httpx.Client(base_url=base, timeout=120) as client:
        token = client.post("/login", json={"name": name, "password": PASSWORD}).json()["token"]
        client.headers["Authorization"] = f"Bearer {token}"
        while True:
            start = time.perf_counter()
            response = client.get("/compare/next")
            fetched = time.perf_counter() - start
            task = response.json()["task"] if response.status_code == 200 else None
            with stats.lock:
                stats.fetch.append(fetched)
                if response.status_code != 200:
                    stats.errors.append(f"{name} next: {response.status_code} {response.text[:200]}")
            if task is None:
                return
            ratings = [
                {
                    "critique_id": c["critique_id"],
                    **{k: rng.randint(SCORE_MIN, SCORE_MAX) for k in SCORE_FIELDS},
                    **{k: rng.random() < 0.3 for k in FLAG_FIELDS},
                    "rationale": f"{name}: rated at random by the load test.",
                }
                for c in task["critiques"]
            ]
            start = time.perf_counter()
            response = client.post(f"/compare/{task['tampering_id']}", json={"ratings": ratings})
            submitted = time.perf_counter() - start
            with stats.lock:
                stats.submit.append(submitted)
                if response.status_code == 200:
                    stats.accepted += 1
                else:
                    stats.errors.append(f"{name} submit: {response.status_code} {response.text[:200]}")
                    return


def percentile(values: list[float], q: float) -> float:
    return statistics.quantiles(values, n=100, method="inclusive")[q - 1] if len(values) > 1 else values[0]


def check_database(url: str, accepted: int, tasks: int, overlap: int, say) -> list[str]:
    """Lost or duplicated rows, over-assigned or unfinished tasks: one line per problem found."""
    engine = make_engine(url)
    problems = []
    with Session(engine) as session:
        ratings = session.exec(select(func.count()).select_from(Rating)).one()
        repeated = (
            select(Rating.critique_id, Rating.rater_id)
            .group_by(Rating.critique_id, Rating.rater_id)
            .having(func.count() > 1)
            .subquery()
        )
        duplicates = session.exec(select(func.count()).select_from(repeated)).one()
        done = session.exec(
            select(Assignment.item_id, func.count())
            .where(Assignment.kind == "compare")
            .group_by(Assignment.item_id)
        ).all()
        still_open = session.exec(
            select(func.count()).where(Assignment.kind == "compare", Assignment.status == "open")
        ).one()
        tamperings = session.exec(select(func.count()).select_from(Tampering)).one()
    engine.dispose()
    say(f"database: {ratings} ratings, {tamperings} tamperings, {len(done)} tasks claimed, {still_open} open")
    expected = store.CRITIQUES_PER_TASK * accepted
    if ratings != expected:
        problems.append(f"{ratings} rating rows for {accepted} accepted submissions (expected {expected})")
    if duplicates:
        problems.append(f"{duplicates} (critique, rater) pairs rated more than once")
    if tamperings != tasks or sorted(n for _, n in done) != [overlap] * tasks:
        problems.append(f"tasks not rated by exactly {overlap} annotators each: {sorted(n for _, n in done)}")
    if still_open:
        problems.append(f"{still_open} compare tasks left open")
    if accepted != overlap * tasks:
        problems.append(f"{accepted} accepted submissions, expected {overlap * tasks}")
    return problems


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--annotators", type=int, default=20)
    parser.add_argument("--tasks", type=int, default=100)
    parser.add_argument("--overlap", type=int, default=3)
    parser.add_argument("--out", type=Path, help="Also write the report here, the command line at the top.")
    args = parser.parse_args()
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    lines: list[str] = [
        f"# python {shlex.join(sys.argv)} ({os.cpu_count()} CPUs, load average {load} at start)"
    ]

    def say(line: str = "") -> None:
        print(line, flush=True)
        lines.append(line)

    with tempfile.TemporaryDirectory() as tmp:
        url = f"sqlite:///{Path(tmp) / 'annotations.db'}"
        start = time.perf_counter()
        seed(url, args.tasks, args.annotators, args.overlap)
        say(
            f"seeded {args.tasks} tamperings x {store.CRITIQUES_PER_TASK} critiques in "
            f"{time.perf_counter() - start:.1f} s ({url})"
        )
        port = free_port()
        proc = start_server(url, port)
        try:
            stats = Stats()
            threads = [
                threading.Thread(
                    target=annotate, args=(f"http://127.0.0.1:{port}/api", f"annotator{i:02d}", stats, i)
                )
                for i in range(args.annotators)
            ]
            start = time.perf_counter()
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            wall = time.perf_counter() - start
        finally:
            proc.terminate()
            proc.wait(timeout=30)
        say(
            f"{args.annotators} annotators, overlap {args.overlap}: {stats.accepted} submissions "
            f"({store.CRITIQUES_PER_TASK} ratings each) in {wall:.1f} s = "
            f"{stats.accepted / wall:.1f} submissions/s"
        )
        for label, values in (("fetch next task", stats.fetch), ("submit ratings", stats.submit)):
            say(
                f"{label:<16} n={len(values):<5} p50 {percentile(values, 50) * 1000:7.1f} ms   "
                f"p95 {percentile(values, 95) * 1000:7.1f} ms   max {max(values) * 1000:7.1f} ms"
            )
        for error in stats.errors[:10]:
            say(f"error: {error}")
        problems = check_database(url, stats.accepted, args.tasks, args.overlap, say)
    for problem in problems:
        say(f"PROBLEM: {problem}")
    say(
        "database check: OK (no lost or duplicated rows, every task rated exactly overlap times)"
        if not problems
        else ""
    )
    if args.out:
        args.out.write_text("\n".join(lines) + "\n")
    if problems or stats.errors:
        raise SystemExit(1)


if __name__ == "__main__":
    main()
