"""The sandbox that runs tampered code: verdicts, limits, leftovers and isolation, in each mode.

The `mode` fixture forces every mode this machine supports (bubblewrap, bubblewrap as a per-run uid,
a plain per-run uid, none); modes that cannot work here are skipped with the sandbox's own reason.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from critic.datagen import sandbox

REPO = Path(__file__).resolve().parents[1]
# Per-run uids cannot reach an interpreter under a private directory (pyenv in /root, say); the
# distribution's interpreter of the same version lets those modes be tested there too.
SYSTEM_PYTHON = shutil.which(
    f"python{sys.version_info[0]}.{sys.version_info[1]}", path="/usr/bin:/usr/local/bin"
)


def _use(monkeypatch, mode: str, python: str | None = None) -> sandbox._Mode:
    monkeypatch.setenv("CRITIC_SANDBOX", mode)
    if python:
        monkeypatch.setenv("CRITIC_SANDBOX_PYTHON", python)
    else:
        monkeypatch.delenv("CRITIC_SANDBOX_PYTHON", raising=False)
    return sandbox._config()


@pytest.fixture(params=["bwrap", "bwrap-uid", "unprivileged", "none"])
def mode(request, monkeypatch) -> sandbox._Mode:
    name = request.param.split("-")[0]
    chosen = _use(monkeypatch, name)
    # "bwrap-uid": bubblewrap itself as the per-run uid (in its own user namespace), not started by root
    userns_uid = chosen.drop and not chosen.root_setup
    if request.param == "bwrap-uid" and not chosen.problem and userns_uid:
        pytest.skip("plain bwrap already runs as a per-run uid here")
    if (request.param == "bwrap-uid" or chosen.problem) and SYSTEM_PYTHON and name != "none":
        chosen = _use(monkeypatch, name, SYSTEM_PYTHON)
    if chosen.problem:
        pytest.skip(f"{name} sandbox not available here: {chosen.problem}")
    if request.param == "bwrap-uid" and not (chosen.drop and not chosen.root_setup):
        pytest.skip("bwrap cannot run as a per-run uid here")
    return chosen


def test_pass_and_fail(mode):
    code = "def add(a, b):\n    return a + b\n"
    good = sandbox.run_tests(code, "assert add(2, 3) == 5\nassert add(-1, 1) == 0")
    assert good.status == "passed" and good.passed and good.returncode == 0, good
    bad = sandbox.run_tests(code.replace("a + b", "a - b"), "assert add(2, 3) == 5")
    assert bad.status == "failed" and not bad.passed and bad.returncode != 0
    assert "AssertionError" in bad.stderr


def test_empty_test_only_runs_the_code():
    assert sandbox.run_tests("x = 1", "").passed
    crash = sandbox.run_tests("raise SystemExit(3)", "")
    assert crash.status == "failed" and crash.returncode == 3


def test_syntax_error_fails():
    result = sandbox.run_tests("def f(:\n    pass", "assert True")
    assert result.status == "failed" and "SyntaxError" in result.stderr


def test_infinite_loop_times_out_promptly(mode):
    start = time.monotonic()
    result = sandbox.run_tests("while True:\n    pass", "", timeout=1.0)
    assert result.status == "timeout" and not result.passed
    assert time.monotonic() - start < 5


def test_memory_blowup_is_contained(mode):
    result = sandbox.run_tests("x = bytearray(50 * 1024**3)", "")
    assert result.status in ("memory", "failed") and not result.passed, result
    assert result.status == "memory"  # the MemoryError traceback is recognised
    # 50 GB may be refused by the kernel anyway; 512 MB is not, but it is over a 256 MB limit.
    assert sandbox.run_tests("x = bytearray(512 * 1024**2)", "", memory_mb=256).status == "memory"
    # The limit leaves room for ordinary programs, and the machine is fine afterwards.
    assert sandbox.run_tests("x = bytearray(200 * 1024**2)", "assert len(x) == 200 * 1024**2").passed


def _alive(name: str) -> list[int]:
    """Live (non-zombie) processes called `name` (their comm, set with prctl(PR_SET_NAME))."""
    found = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            comm = Path(f"/proc/{pid}/comm").read_text().strip()
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except (OSError, IndexError):
            continue
        if comm == name and state not in ("Z", "X"):
            found.append(int(pid))
    return found


def _forker(name: str, setsid: bool, hang: bool) -> str:
    """20 children that rename themselves `name` and sleep forever; the parent exits or hangs."""
    return f"""
import ctypes, os, time
libc = ctypes.CDLL(None)
r, w = os.pipe()
for _ in range(20):
    if os.fork() == 0:
        {"os.setsid()" if setsid else "pass"}
        libc.prctl(15, {name.encode()!r}, 0, 0, 0)
        os.write(w, b"x")
        while True:
            time.sleep(100)
os.close(w)
ready = b""
while len(ready) < 20:
    ready += os.read(r, 20)
print("forked", len(ready), flush=True)
while {hang}:
    pass
"""


def test_survivor_check_sees_a_sleeping_process():
    name = "sbx" + secrets.token_hex(5)
    proc = subprocess.Popen([sys.executable, "-c", _forker(name, setsid=False, hang=True)])
    try:
        deadline = time.monotonic() + 10
        while len(_alive(name)) < 20 and time.monotonic() < deadline:
            time.sleep(0.02)
        assert len(_alive(name)) == 20
    finally:
        proc.kill()
        proc.wait()
        for pid in _alive(name):
            os.kill(pid, signal.SIGKILL)


@pytest.mark.parametrize(("setsid", "hang"), [(False, False), (True, False), (True, True)])
def test_forked_children_never_survive(mode, setsid, hang):
    name = "sbx" + secrets.token_hex(5)
    try:
        result = sandbox.run_tests(_forker(name, setsid, hang), "", timeout=1.0 if hang else 5.0)
        assert "forked 20" in result.stdout, result
        assert result.status == ("timeout" if hang else "passed")
        assert _alive(name) == []
    finally:
        for pid in _alive(name):
            os.kill(pid, signal.SIGKILL)


def test_writes_outside_the_run_do_not_land(mode):
    if mode.name == "none":
        pytest.skip("mode none does not isolate the filesystem")
    token = secrets.token_hex(6)
    targets = [REPO / f"STRAY_WRITE_{token}", Path.home() / f"STRAY_{token}", Path("/tmp") / f"STRAY_{token}"]
    code = f"""
for path in {[str(t) for t in targets]!r}:
    try:
        with open(path, "w") as f:
            f.write("x")
    except OSError as exc:
        print("blocked", path, exc)
with open("scratch.txt", "w") as f:  # the run's own directory is writable
    f.write("ok")
assert open("scratch.txt").read() == "ok"
"""
    try:
        result = sandbox.run_tests(code, "")
        assert result.passed, result
        landed = [str(t) for t in targets if t.exists()]
        assert landed == []
    finally:
        for target in targets:
            target.unlink(missing_ok=True)


def test_no_network_under_bubblewrap(mode):
    if mode.name != "bwrap":
        pytest.skip("only bubblewrap isolates the network")
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        port = server.getsockname()[1]
        code = f"""
import socket
try:
    socket.create_connection(("127.0.0.1", {port}), timeout=2).close()
    print("reached the host")
except OSError:
    print("isolated")
"""
        result = sandbox.run_tests(code, "")
    assert result.stdout.strip() == "isolated", result


def test_huge_output_is_capped(mode):
    start = time.monotonic()
    result = sandbox.run_tests('while True:\n    print("x" * 10000)', "", timeout=10.0)
    assert not result.passed
    assert len(result.stdout) <= sandbox.OUTPUT_CAP + 100
    assert "bytes cut" in result.stdout and result.stdout.startswith("xxx")
    assert time.monotonic() - start < 8  # stopped by the file-size limit, not by the timeout


def test_environment_does_not_leak(mode, monkeypatch):
    secret = "sekrit-" + secrets.token_hex(8)
    monkeypatch.setenv("CRITIC_TEST_SECRET", secret)
    monkeypatch.setenv("PYTHONPATH", "/nonexistent/" + secret)
    code = "import json, os, sys\nprint(json.dumps([dict(os.environ), os.getcwd(), sys.path]))"
    result = sandbox.run_tests(code, "")
    assert result.passed, result
    assert secret not in result.stdout
    env, cwd, _ = json.loads(result.stdout)
    assert "PYTHONPATH" not in env and "CRITIC_TEST_SECRET" not in env
    assert env["HOME"] == cwd and cwd.startswith(tempfile.gettempdir())


def test_run_many_keeps_order():
    jobs = [(f"x = {i}\nprint(x)", "assert x % 3 != 0") for i in range(12)]
    results = sandbox.run_many(jobs, workers=3)
    assert [r.stdout for r in results] == [f"{i}\n" for i in range(12)]
    assert [r.passed for r in results] == [i % 3 != 0 for i in range(12)]
    assert sandbox.run_many([]) == []


def test_isolation_is_described():
    line = sandbox.isolation()
    assert line and "\n" not in line and "rlimits" in line


def test_broken_bubblewrap_falls_back(monkeypatch, tmp_path):
    fake = tmp_path / "bwrap"
    fake.write_text("#!/bin/sh\necho 'bwrap: No permissions to create new namespace' >&2\nexit 1\n")
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", f"{tmp_path}:{os.environ['PATH']}")
    monkeypatch.setattr(sandbox, "_resolved", {})  # forget the modes probed with the real bwrap
    # As root, the fallback (a per-run uid without bubblewrap) needs an interpreter every user can reach.
    chosen = _use(monkeypatch, "auto", SYSTEM_PYTHON if os.geteuid() == 0 else None)
    assert chosen.name != "bwrap" and not chosen.problem
    assert "not possible here: bwrap" in sandbox.isolation()
    assert sandbox.run_tests("x = 1", "assert x == 1").passed


def test_unstartable_sandbox_is_an_error_not_a_failure(monkeypatch):
    _use(monkeypatch, "none", "/nonexistent/python")
    result = sandbox.run_tests("x = 1", "")
    assert result.status == "error" and not result.passed and result.returncode is None
    assert "unavailable" in sandbox.isolation()


def test_bad_arguments_raise():
    with pytest.raises(ValueError):
        sandbox.run_tests("x = 1", "", timeout=-1)
    with pytest.raises(ValueError):
        sandbox.run_tests("x = 1", "", memory_mb=0)


def test_signals_map_to_statuses():
    status = sandbox._status
    assert status(-signal.SIGXCPU, False, True, "", bwrap=False) == "timeout"
    assert status(128 + signal.SIGXCPU, False, True, "", bwrap=True) == "timeout"
    assert status(-signal.SIGKILL, False, True, "", bwrap=False) == "memory"
    assert status(-signal.SIGSEGV, False, True, "", bwrap=False) == "failed"
    assert status(1, False, True, "Traceback ...\nMemoryError\n", bwrap=False) == "memory"
    assert status(1, False, True, "AssertionError: MemoryError expected\n", bwrap=False) == "failed"
    assert status(1, True, True, "", bwrap=False) == "timeout"
    assert status(1, False, False, "bwrap: Can't mount proc", bwrap=True) == "error"
    assert status(0, False, True, "", bwrap=False) == "passed"


# --- never as root (issue 26, item 1) -----------------------------------------------------------------


@pytest.fixture
def root_only_secret():
    """(path, contents) of a 0600 file of the test's user outside /tmp, where every mode can see it."""
    value = "secret-" + secrets.token_hex(8)
    path = Path("/var/tmp") / f"critic-test-secret-{secrets.token_hex(6)}"
    path.write_text(value)
    path.chmod(0o600)
    try:
        yield path, value
    finally:
        path.unlink(missing_ok=True)


@pytest.mark.skipif(os.geteuid() != 0, reason="the report is of a server run by root")
def test_tampered_code_never_runs_as_root_with_a_private_interpreter(monkeypatch, tmp_path, root_only_secret):
    """The report: the interpreter in a root-only directory (a venv or pyenv under /root), so no per-run
    uid can reach it, and the sandbox fell back to root with capabilities dropped, which still reads
    root's 0600 files. Now the run is unprivileged or refused with the fix, never root."""
    private = tmp_path / "root-only"
    private.mkdir(mode=0o700)
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(private / "venv")], check=True)
    secret, value = root_only_secret
    monkeypatch.setattr(sandbox, "_resolved", {})
    _use(monkeypatch, "auto", str(private / "venv" / "bin" / "python"))
    result = sandbox.run_tests(f"raise SystemExit('LEAK:' + open({str(secret)!r}).read())", "")
    assert value not in result.stdout + result.stderr, sandbox.isolation()
    refused = result.status == "error" and "never run as root" in result.stderr
    assert refused or (result.status == "failed" and "PermissionError" in result.stderr), result
    assert "as root" not in sandbox.isolation().split(";")[0]


def test_isolation_says_what_is_true(mode, root_only_secret):
    """What `isolation()` claims about who runs the program holds for a program that looks."""
    secret, value = root_only_secret
    code = f"""
import json, os
caps = [line.split()[1] for line in open("/proc/self/status") if line.startswith("CapEff:")][0]
try:
    leaked = open({str(secret)!r}).read()
except OSError:
    leaked = None
print(json.dumps({{"uid": os.getuid(), "gid": os.getgid(), "caps": int(caps, 16), "leaked": leaked}}))
"""
    result = sandbox.run_tests(code, "")
    assert result.passed, result
    seen = json.loads(result.stdout)
    line = sandbox.isolation()
    if os.geteuid() == 0:  # never root, in any mode
        assert seen["uid"] != 0 and seen["gid"] != 0 and seen["leaked"] is None, (line, seen)
    if "per-run unprivileged uid" in line:
        assert seen["uid"] >= sandbox._UID_BASE and seen["caps"] == 0 and seen["leaked"] is None, seen
    elif "NO ISOLATION" in line:
        assert seen["uid"] == os.geteuid() and seen["leaked"] == value
    else:  # bubblewrap as the caller's uid
        assert f"as uid {os.geteuid()}" in line and seen["uid"] == os.geteuid() and seen["caps"] == 0
    if mode.name == "bwrap":
        assert "no capabilities" in line and seen["caps"] == 0


def test_none_is_refused_for_root(monkeypatch):
    if os.geteuid() != 0:
        pytest.skip("only a root parent is refused")
    _use(monkeypatch, "none", SYSTEM_PYTHON)
    result = sandbox.run_tests("x = 1", "")
    assert result.status == "error" and "never done" in result.stderr and "\n" not in result.stderr
