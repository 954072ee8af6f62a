"""Load test of the annotation app: concurrent annotators rating critiques through the JSON API, on SQLite
and on PostgreSQL in one run.

    python bench/annotation_load.py [--annotators 20] [--tasks 100] [--overlap 3] [--think 0 [2 ...]]
                                    [--postgres URL] [--out FILE] [--backup-during FILE]

For each backend (SQLite, then PostgreSQL when `--postgres` or $CRITIC_BENCH_POSTGRES_URL names a
database; its tables are dropped first) and each `--think` value: a real server (`critic annotate`,
uvicorn, API + Gradio UI) on a free port over a fresh database, seeded through the store: HumanEval
imported; `--tasks` tamperings, each a bug inserted by the automatic tamperer (critic.datagen.tamper) and
submitted by one of two author accounts with three critiques from the random-line baseline
(critic.evaluate.random_line_critiques, origin `baseline:random_line`) plus the gold critique. Then
`--annotators` threads, each its own HTTP client, log in (all of them before the clock starts: a login
is one scrypt hash, timed on its own line) and repeat until no task is left: fetch the next compare
task, pause, rate its four critiques, submit.

What the two kinds of run measure:
- `--think 0` (the default): no pause. A closed loop of 20 clients that never rest keeps the server
  saturated, so the latencies are queueing at full throughput: about annotators / throughput per
  fetch + submit cycle, whatever one request costs alone. It measures capacity, and the server's CPU
  per submission (the cost of a cycle) is the number to lower.
- `--think S`: each annotator starts after a random 0 to S seconds and pauses a random 0.5 S to 1.5 S
  between fetch and submit, as a person reads and rates (real ones take minutes per task, so any S of
  a second or more is still a far heavier load than 20 people make). The latencies are what an
  annotator waits for the server.

Reported per run: submissions/s, p50/p95/max latency of logging in, fetching and submitting, the CPU
seconds the server and this process (the clients) used per submission, then a check of the database:
4 ratings per accepted submission, no (critique, rater) twice, every tampering rated by exactly
`--overlap` annotators, no task left open. A last line compares the backends. The sandboxed test runs of
a submission are skipped while seeding (verify_tests=False): they measure the sandbox, not the app.

With `--backup-during FILE`, each SQLite run also takes a backup (`critic annotate backup --out FILE`)
as soon as the first submission is in, reports how long it took, and checks the copy: it opens, passes
`PRAGMA integrity_check`, is a snapshot (4 ratings per finished compare task, none for an unfinished
one) and was taken mid-run (fewer ratings than the run ends with: the command's start-up takes seconds,
so a run too short for it is a problem; add --tasks or --think). The run still fails on any annotator's
error or any problem in the live database.
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
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import httpx
from sqlalchemy import func
from sqlalchemy.engine import make_url
from sqlmodel import Session, SQLModel, select

from critic.annotation_app import store
from critic.annotation_app.checker import CheckResult
from critic.annotation_app.db import Assignment, Rating, Tampering, init_db, make_engine
from critic.datagen.rating import FLAG_FIELDS, SCORE_FIELDS, SCORE_MAX, SCORE_MIN
from critic.datagen.tamper import tamper
from critic.evaluate import random_line_critiques

PASSWORD = "load-test-password"
ORIGIN = "baseline:random_line"
POSTGRES_ENV = "CRITIC_BENCH_POSTGRES_URL"

Say = Callable[[str], None]


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


def drop_tables(url: str) -> None:
    """Empty a PostgreSQL bench database: every run starts from nothing, like SQLite's new file."""
    engine = make_engine(url)
    SQLModel.metadata.drop_all(engine)
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


def cpu_seconds(pid: int) -> float | None:
    """User + system CPU time of a process so far (Linux: /proc), None where it cannot be read."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime, stime


@dataclass
class Stats:
    lock: threading.Lock = field(default_factory=threading.Lock)
    login: list[float] = field(default_factory=list)
    fetch: list[float] = field(default_factory=list)
    submit: list[float] = field(default_factory=list)
    accepted: int = 0
    errors: list[str] = field(default_factory=list)


def annotate(base: str, name: str, stats: Stats, seed: int, think: float, ready: threading.Barrier) -> None:
    """One simulated annotator: log in, wait for the others, then rate tasks until the queue is empty."""
    rng = random.Random(seed)
    with httpx.Client(base_url=base, timeout=120) as client:
        start = time.perf_counter()
        try:
            response = client.post("/login", json={"name": name, "password": PASSWORD})
            with stats.lock:
                stats.login.append(time.perf_counter() - start)
        finally:
            ready.wait()  # even after a failed login: the others must not wait for this one forever
        if response.status_code != 200:
            with stats.lock:
                stats.errors.append(f"{name} login: {response.status_code} {response.text[:200]}")
            return
        client.headers["Authorization"] = f"Bearer {response.json()['token']}"
        time.sleep(rng.uniform(0, think))  # people do not all start at the same instant
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
            if think:
                time.sleep(rng.uniform(0.5 * think, 1.5 * think))
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


def percentile(values: list[float], q: int) -> float:
    return statistics.quantiles(values, n=100, method="inclusive")[q - 1] if len(values) > 1 else values[0]


def check_database(url: str, accepted: int, tasks: int, overlap: int, say: Say) -> list[str]:
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


@dataclass
class Backup:
    """A `critic annotate backup` run while the annotators submit."""

    out: Path
    seconds: float = float("nan")
    at_submissions: int = 0
    ratings: int = 0  # in the copy
    said: str = ""  # the command's own report: rows, bytes, and the copy's time without start-up
    problems: list[str] = field(default_factory=list)


def backup_when_started(url: str, backup: Backup, stats: Stats, done: threading.Event) -> None:
    """Wait for the first accepted submission (or the end of the run), then run the backup command."""
    while stats.accepted < 1 and not done.wait(0.01):
        pass
    backup.at_submissions = stats.accepted
    start = time.perf_counter()
    command = ["annotate", "backup", "--db", url, "--out", str(backup.out)]
    proc = subprocess.run([sys.executable, "-m", "critic.cli", *command], capture_output=True, text=True)
    backup.seconds = time.perf_counter() - start
    backup.said = proc.stderr.strip().splitlines()[-1] if proc.stderr.strip() else ""
    if proc.returncode != 0:
        backup.problems.append(f"backup exited {proc.returncode}: {proc.stderr.strip()[-300:]}")


def check_backup(backup: Backup, final_ratings: int) -> None:
    """The copy opens, is intact, and holds a snapshot: every finished compare task has its ratings, and
    no ratings exist without their finished task (a submission is one transaction); and it was taken
    while the annotators were still submitting."""
    if backup.problems:
        return
    engine = make_engine(f"sqlite:///{backup.out}")
    try:
        with engine.connect() as conn:
            check = conn.exec_driver_sql("PRAGMA integrity_check").scalar()
        with Session(engine) as session:
            ratings = session.exec(select(func.count()).select_from(Rating)).one()
            done = session.exec(
                select(func.count()).where(Assignment.kind == "compare", Assignment.status == "done")
            ).one()
    finally:
        engine.dispose()
    if check != "ok":
        backup.problems.append(f"backup integrity_check: {check}")
    if ratings != store.CRITIQUES_PER_TASK * done:
        backup.problems.append(f"backup is no snapshot: {ratings} ratings for {done} finished tasks")
    backup.ratings = ratings
    if ratings >= final_ratings:
        backup.problems.append("the backup was taken after the last submission: make the run longer")


@dataclass
class Result:
    label: str
    rate: float
    fetch_p95: float
    submit_p95: float
    ok: bool


def run(
    label: str, url: str, args: argparse.Namespace, think: float, say: Say, backup: Backup | None = None
) -> Result:
    """Seed a fresh database at `url`, serve it, let the annotators empty the queue; report and check.
    With `backup`, a backup is taken half-way through and checked."""
    say(f"## {label}, think {think:g} s")
    start = time.perf_counter()
    seed(url, args.tasks, args.annotators, args.overlap)
    where = make_url(url).render_as_string(hide_password=True)
    say(
        f"seeded {args.tasks} tamperings x {store.CRITIQUES_PER_TASK} critiques in "
        f"{time.perf_counter() - start:.1f} s ({where})"
    )
    port = free_port()
    proc = start_server(url, port)
    stats = Stats()
    ready = threading.Barrier(args.annotators + 1)
    finished = threading.Event()
    backup_thread = None
    if backup is not None:
        backup_thread = threading.Thread(target=backup_when_started, args=(url, backup, stats, finished))
    try:
        threads = [
            threading.Thread(
                target=annotate,
                args=(f"http://127.0.0.1:{port}/api", f"annotator{i:02d}", stats, i, think, ready),
            )
            for i in range(args.annotators)
        ]
        for t in threads:
            t.start()
        ready.wait()  # everyone is logged in: the clock starts
        server_cpu, own_cpu = cpu_seconds(proc.pid), sum(os.times()[:2])
        start = time.perf_counter()
        if backup_thread is not None:
            backup_thread.start()
        for t in threads:
            t.join()
        wall = time.perf_counter() - start
        finished.set()
        if backup_thread is not None:
            backup_thread.join()
        server_end = cpu_seconds(proc.pid)
        own_cpu = sum(os.times()[:2]) - own_cpu
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    per = max(stats.accepted, 1)
    cpu = (
        f"server {(server_end - server_cpu) / per * 1000:.1f} ms"
        if server_cpu is not None and server_end is not None
        else "server not measured"
    )
    say(
        f"{args.annotators} annotators, overlap {args.overlap}: {stats.accepted} submissions "
        f"({store.CRITIQUES_PER_TASK} ratings each) in {wall:.1f} s = "
        f"{stats.accepted / wall:.1f} submissions/s; CPU per submission: {cpu}, "
        f"clients {own_cpu / per * 1000:.1f} ms"
    )
    for name, values in (
        ("log in", stats.login),
        ("fetch next task", stats.fetch),
        ("submit ratings", stats.submit),
    ):
        if values:
            say(
                f"{name:<16} n={len(values):<5} p50 {percentile(values, 50) * 1000:7.1f} ms   "
                f"p95 {percentile(values, 95) * 1000:7.1f} ms   max {max(values) * 1000:7.1f} ms"
            )
    for error in stats.errors[:10]:
        say(f"error: {error}")
    problems = check_database(url, stats.accepted, args.tasks, args.overlap, say)
    if backup is not None:
        check_backup(backup, store.CRITIQUES_PER_TASK * stats.accepted)
        say(
            f"backup during the run: {backup.seconds:.2f} s with the command's start-up, started at "
            f"{backup.at_submissions} submissions, the copy holds {backup.ratings} of "
            f"{store.CRITIQUES_PER_TASK * stats.accepted} ratings"
            + ("" if backup.problems else "; it opens, integrity ok, a consistent snapshot")
        )
        say(f"  {backup.said}")
        problems += backup.problems
    for problem in problems:
        say(f"PROBLEM: {problem}")
    if not problems:
        say("database check: OK (no lost or duplicated rows, every task rated exactly overlap times)")
    say("")
    return Result(
        label,
        stats.accepted / wall,
        percentile(stats.fetch, 95) if stats.fetch else float("nan"),
        percentile(stats.submit, 95) if stats.submit else float("nan"),
        not problems and not stats.errors,
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--annotators", type=int, default=20)
    parser.add_argument("--tasks", type=int, default=100)
    parser.add_argument("--overlap", type=int, default=3)
    parser.add_argument(
        "--think",
        type=float,
        nargs="+",
        default=[0.0],
        metavar="SECONDS",
        help="Mean pause between fetching a task and submitting it (0: none); several values, one run each.",
    )
    parser.add_argument(
        "--postgres",
        default=os.environ.get(POSTGRES_ENV),
        metavar="URL",
        help=f"PostgreSQL database to run on after SQLite, tables dropped first (default: ${POSTGRES_ENV})",
    )
    parser.add_argument("--out", type=Path, help="Also write the report here, the command line at the top.")
    parser.add_argument(
        "--backup-during",
        type=Path,
        metavar="FILE",
        help="Back up each SQLite run's database to FILE mid-run (several --think: FILE-thinkS).",
    )
    args = parser.parse_args()
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    lines: list[str] = [
        f"# python {shlex.join(sys.argv)} ({os.cpu_count()} CPUs, load average {load} at start)"
    ]

    def say(line: str = "") -> None:
        print(line, flush=True)
        lines.append(line)

    if not args.postgres:
        say(f"no PostgreSQL database given (--postgres or ${POSTGRES_ENV}): SQLite only")
    results: list[tuple[float, Result, Result | None]] = []
    with tempfile.TemporaryDirectory() as tmp:
        for think in args.think:
            sqlite_url = f"sqlite:///{Path(tmp) / f'annotations-think{think:g}.db'}"
            backup = None
            if args.backup_during:
                out = args.backup_during
                if len(args.think) > 1:
                    out = out.with_name(f"{out.stem}-think{think:g}{out.suffix}")
                backup = Backup(out)
            lite = run("SQLite", sqlite_url, args, think, say, backup)
            postgres = None
            if args.postgres:
                drop_tables(args.postgres)
                postgres = run("PostgreSQL", args.postgres, args, think, say)
            results.append((think, lite, postgres))
    for think, lite, postgres in results:
        line = (
            f"think {think:g} s: SQLite p95 fetch {lite.fetch_p95 * 1000:.0f} ms, "
            f"submit {lite.submit_p95 * 1000:.0f} ms"
        )
        if postgres is not None:
            line += (
                f" | PostgreSQL p95 fetch {postgres.fetch_p95 * 1000:.0f} ms, submit "
                f"{postgres.submit_p95 * 1000:.0f} ms | {lite.rate:.1f} vs {postgres.rate:.1f} submissions/s"
            )
        say(line)
    if args.out:
        args.out.write_text("\n".join(lines) + "\n")
    if not all(r.ok for _, lite, postgres in results for r in (lite, postgres) if r is not None):
        raise SystemExit(1)


if __name__ == "__main__":
    main()
