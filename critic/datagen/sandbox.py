"""Run untrusted Python ("code + test") in a sandboxed subprocess (Linux only).

Bugs are kept only when tests tell the tampered code from the original, so tampered code is run
here: `run_tests(code, test)` writes ``code + "\\n\\n" + test`` to a fresh temporary directory and runs
it with ``python -I`` (isolated mode: no PYTHON* variables, no user site, no cwd on sys.path) in a
clean environment (PATH, LANG, HOME and TMPDIR pointing at that directory, single-threaded BLAS)
and that directory as cwd. Exit status 0 means passed.

Isolation. One mode is chosen once per process, the strongest that runs a trivial probe here
(``isolation()`` says which; ``CRITIC_SANDBOX=bwrap|unprivileged|none`` forces one,
``CRITIC_SANDBOX_PYTHON`` picks the interpreter):

* ``bwrap`` (bubblewrap): the filesystem is read-only except the run's temp dir; /tmp is a private
  tmpfs (64 MB where bubblewrap has --size); no network at all (own, empty network namespace);
  own PID, IPC and UTS namespaces; no capabilities. When the parent is root, the program runs as a
  fresh per-run uid, so root-only files are unreadable too: bubblewrap itself runs as that uid in
  its own user namespace where it can reach the interpreter; where it cannot (a pyenv or venv
  under /root, say), bubblewrap is started by root without a user namespace, lays a tmpfs over each
  private directory on the interpreter's path (the interpreter's own directories bound back,
  read-only), and the program drops to the per-run uid before it starts (``_RUNNER``).
* ``unprivileged`` (no working bubblewrap, parent is root): the program runs as a fresh per-run
  uid/gid with no supplementary groups, so it cannot write the project tree or $HOME; it can read
  every world-readable file, use the network, and write world-writable directories (what it
  leaves at the top of /tmp, /var/tmp and /dev/shm is deleted afterwards). It needs an interpreter
  every user can reach.
* ``none`` (neither, and the parent is not root): no isolation beyond the points below; the program
  can read, write and connect to whatever the calling user can, and signal the user's processes.

Tampered code never runs as root: for a root parent, every mode runs the program as a per-run uid,
and where none can, nothing runs and ``isolation()`` / the run's error say what to fix (install
bubblewrap, or point ``CRITIC_SANDBOX_PYTHON`` at an interpreter every user can read).

In every mode: rlimits on CPU time (the timeout, rounded up), address space (``memory_mb``),
file size (10 MB, which also caps stdout/stderr, kept as files), no core dumps and -- where the
count is per run, i.e. not in ``none`` -- 64 processes/threads; a wall-clock timeout; and no
process outlives the run: its PID namespace (bwrap) or per-run uid (unprivileged) is swept with
SIGKILL, or, in ``none``, its process group and every process carrying its environment marker
(best effort: one that leaves the group and re-executes with a new environment escapes).
Not enforced: no seccomp syscall filtering; no cgroups, so CPU time and memory are per-process
limits (a run may hold 64 x ``memory_mb`` across processes and keep several cores busy until the
timeout); no disk quota beyond the per-file cap; reads are confined only by file permissions
(bwrap as a per-run uid: world-readable files only); if the calling process is SIGKILLed, only
bubblewrap (--die-with-parent) still takes the run down with it.
"""

from __future__ import annotations

import math
import os
import queue
import re
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from typing import Literal

OUTPUT_CAP = 4096  # bytes of stdout / stderr kept in a RunResult (head and tail when longer)
FILE_LIMIT = 10 * 1024**2  # RLIMIT_FSIZE: no file (stdout and stderr included) grows past this
NPROC_LIMIT = 64  # RLIMIT_NPROC (processes + threads) where the count is per run
TMPFS_BYTES = 64 * 1024**2  # size of the private /tmp under bubblewrap
_UID_BASE = 1_000_000_000  # per-run uids: base + pid * 256 + slot, far above any real account
_SLOTS: queue.SimpleQueue[int] = queue.SimpleQueue()
for _slot in range(256):
    _SLOTS.put(_slot)
_WORLD_WRITABLE = ("/tmp", "/var/tmp", "/dev/shm")
_MEMORY_ERROR = re.compile(r"^(?:[\w.]+\.)?\w*MemoryError\b", re.M)
_JOB_VAR = "CRITIC_SANDBOX_JOB"
_KILL_WAIT = 10.0  # seconds to see every process of a run gone (they go in milliseconds when idle)

Status = Literal["passed", "failed", "timeout", "memory", "error"]

# Run by the sandboxed interpreter first: drop to the per-run uid when bubblewrap was started by root
# (uid 0: nothing to drop), set the limits, leave a start marker (its absence means the sandbox
# failed), then run the program as __main__ (runpy would cost ~10 ms of imports).
_RUNNER = """\
import os, resource as R, sys
def cap(kind, soft, hard):
    top = R.getrlimit(kind)[1]
    R.setrlimit(kind, tuple(v if top == R.RLIM_INFINITY else min(v, top) for v in (soft, hard)))
cpu, mem, fsize, nproc, uid = map(int, sys.argv[1:6])
if uid:
    os.setgroups([])
    os.setresgid(uid, uid, uid)
    os.setresuid(uid, uid, uid)
    if os.getresuid() != (uid,) * 3 or os.getresgid() != (uid,) * 3 or os.getgroups():
        raise SystemExit("sandbox: could not drop to the per-run uid")
    os.chdir(os.path.dirname(sys.argv[6]))  # the run's dir, 0700 and the uid's: root could not enter it
cap(R.RLIMIT_CPU, cpu, cpu + 1)
cap(R.RLIMIT_AS, mem, mem)
cap(R.RLIMIT_FSIZE, fsize, fsize)
cap(R.RLIMIT_CORE, 0, 0)
if nproc:
    cap(R.RLIMIT_NPROC, nproc, nproc)
open(".started", "w").close()
sys.argv = sys.argv[6:]
main = sys.modules["__main__"] = type(sys)("__main__")  # a fresh module, as for `python prog.py`
main.__file__ = sys.argv[0]
with open(sys.argv[0], "rb") as f:
    source = f.read()
exec(compile(source, sys.argv[0], "exec"), vars(main))
"""


@dataclass(frozen=True)
class RunResult:
    status: Status  # "error": the sandbox itself failed, so the verdict is unknown (neither pass nor fail)
    returncode: int | None
    stdout: str  # at most OUTPUT_CAP bytes of it, decoded with errors="replace"
    stderr: str
    seconds: float

    @property
    def passed(self) -> bool:
        return self.status == "passed"


@dataclass(frozen=True)
class _Mode:
    name: str  # "bwrap" | "unprivileged" | "none"
    python: str
    drop: bool  # run as a fresh unprivileged uid (the parent is root)
    # bubblewrap started by root, no user namespace; the runner drops to the per-run uid (needs drop)
    root_setup: bool = False
    problem: str = ""  # why no mode of the requested kind works ("" when it does)
    skipped: list[str] = field(default_factory=list, compare=False)  # stronger modes that failed


def run_tests(code: str, test: str, timeout: float = 5.0, memory_mb: int = 1024) -> RunResult:
    """Run `code` then `test` (Python source that exits non-zero iff the code is wrong) in a sandbox.

    An empty `test` just checks that the code runs. Never raises for what the program does.
    """
    if not isinstance(code, str) or not isinstance(test, str):
        raise TypeError("code and test must be str")
    if not 0 < timeout < math.inf or not memory_mb > 0:
        raise ValueError(f"timeout and memory_mb must be positive, got {timeout!r}, {memory_mb!r}")
    mode = _config()
    if mode.problem:
        return RunResult("error", None, "", f"sandbox unavailable: {mode.problem}", 0.0)
    return _execute(mode, code, test, timeout, memory_mb)


def run_many(jobs: Sequence[tuple[str, str]], workers: int | None = None, **limits) -> list[RunResult]:
    """`run_tests` over (code, test) pairs on a thread pool; results in the order of `jobs`."""
    jobs = list(jobs)
    if not jobs:
        return []
    with ThreadPoolExecutor(workers or min(len(jobs), os.cpu_count() or 1)) as pool:
        return list(pool.map(lambda job: run_tests(job[0], job[1], **limits), jobs))


def isolation() -> str:
    """One line describing the isolation in force on this machine."""
    mode = _config()
    if mode.problem:
        return f"sandbox unavailable ({mode.name} requested): {mode.problem}"
    what = {
        "bwrap": "bubblewrap as a per-run unprivileged uid: read-only filesystem except the run's temp dir, "
        "private /tmp, no network, own PID/IPC/UTS/user namespaces, no capabilities",
        "unprivileged": "no bubblewrap; per-run unprivileged uid: cannot write the project tree or $HOME, "
        "but can read world-readable files, write world-writable dirs (its /tmp, /var/tmp, /dev/shm entries "
        "are deleted afterwards) and use the network",
        "none": f"NO ISOLATION: runs as uid {os.geteuid()} like the caller, can read and write whatever "
        "that user can and use the network",
    }[mode.name]
    if mode.name == "bwrap" and not mode.drop:
        what = what.replace("as a per-run unprivileged uid", f"as uid {os.geteuid()}")
    if mode.root_setup:
        hidden = ", ".join(_hidden_private_dirs(mode.python)) or "none"
        what = what.replace("bubblewrap as", "bubblewrap started by root (no user namespace), program as")
        what = what.replace(
            "/UTS/user namespaces", f"/UTS namespaces, private dirs hidden but the interpreter's ({hidden})"
        )
    nproc = f", {NPROC_LIMIT} processes" if mode.name != "none" else ""
    sweep = {"bwrap": "PID namespace", "unprivileged": "uid", "none": "process group + env marker"}[mode.name]
    line = (
        f"{what}; rlimits: CPU = timeout, address space = memory_mb, files {FILE_LIMIT >> 20} MB{nproc}, "
        f"no core; clean env, python -I ({mode.python}), temp cwd; leftovers killed by {sweep}"
    )
    if mode.skipped:
        line += "; not possible here: " + "; ".join(mode.skipped)
    return line


# --- mode selection ---------------------------------------------------------------------------------

_config_lock = threading.Lock()


def _config() -> _Mode:
    request = os.environ.get("CRITIC_SANDBOX", "auto") or "auto"
    if request not in ("auto", "bwrap", "unprivileged", "none"):
        raise ValueError(f"CRITIC_SANDBOX must be auto, bwrap, unprivileged or none, not {request!r}")
    with _config_lock:
        return _resolve(request, os.environ.get("CRITIC_SANDBOX_PYTHON") or sys.executable)


_resolved: dict[tuple[str, str], _Mode] = {}


def _resolve(request: str, python: str) -> _Mode:
    """The strongest mode of the requested kind that runs a trivial program here (probed once). For a
    root parent only modes that run the program as a per-run uid are candidates."""
    if (request, python) in _resolved:
        return _resolved[request, python]
    root = os.geteuid() == 0
    candidates = []
    if request in ("auto", "bwrap"):
        candidates += [_Mode("bwrap", python, drop=True), _Mode("bwrap", python, True, True)] if root else []
        candidates += [] if root else [_Mode("bwrap", python, drop=False)]
    if request in ("auto", "unprivileged") and root:
        candidates += [_Mode("unprivileged", python, drop=True)]
    if request in ("auto", "none") and not root:
        candidates += [_Mode("none", python, drop=False)]
    skipped = []
    for mode in candidates:
        if mode.name == "bwrap" and not shutil.which("bwrap"):
            problem = "bwrap not found"
        else:
            probe = _execute(mode, "import sys", "", timeout=20.0, memory_mb=512)
            problem = "" if probe.passed else f"{probe.status}: {probe.stderr.strip()[-160:]}"
        if not problem:
            chosen = replace(mode, skipped=skipped)
            break
        skipped.append(f"{_label(mode)} ({' '.join(problem.split())})")
    else:
        chosen = _Mode(request, python, drop=False, problem=_why_none(request, python, root, skipped))
    _resolved[request, python] = chosen
    return chosen


def _label(mode: _Mode) -> str:
    if mode.root_setup:
        return f"{mode.name} started by root, as a per-run uid"
    return f"{mode.name}{' as a per-run uid' if mode.drop else ''}"


def _why_none(request: str, python: str, root: bool, skipped: list[str]) -> str:
    """One line: why no mode of the requested kind runs here and, for a root parent, what to fix."""
    if not root:
        return "; ".join(skipped) if skipped else "dropping privileges needs root"
    if request == "none":
        return "CRITIC_SANDBOX=none would run tampered code as root, which is never done: unset it"
    tried = f" (tried: {'; '.join(skipped)})" if skipped else ""
    return (
        f"tampered code is never run as root, and no sandbox here can run {python} as an unprivileged "
        "user: install bubblewrap, or set CRITIC_SANDBOX_PYTHON to an interpreter every user can read "
        f"(e.g. /usr/bin/python3){tried}"
    )


# --- one run ----------------------------------------------------------------------------------------


def _execute(mode: _Mode, code: str, test: str, timeout: float, memory_mb: int) -> RunResult:
    work = tempfile.mkdtemp(prefix="critic-sandbox-")
    slot = _SLOTS.get() if mode.drop else None
    uid = None if slot is None else _UID_BASE + (os.getpid() % (1 << 22)) * 256 + slot
    token = uuid.uuid4().hex
    prog = os.path.join(work, "prog.py")
    out = err = None
    try:
        with open(prog, "w", encoding="utf-8") as f:
            f.write(code + "\n\n" + test)
        if uid is not None:
            os.chown(work, uid, uid)
            os.chown(prog, uid, uid)
        out = open(os.path.join(work, "stdout"), "w+b")  # read back through these descriptors
        err = open(os.path.join(work, "stderr"), "w+b")
        nproc = 0 if mode.name == "none" else NPROC_LIMIT
        drop_to = uid if mode.root_setup and uid is not None else 0  # the runner drops; else Popen does
        limits = [math.ceil(timeout), int(memory_mb * 1024**2), FILE_LIMIT, nproc, drop_to]
        argv = [mode.python, "-I", "-B", "-c", _RUNNER, *map(str, limits), prog]
        if mode.name == "bwrap":
            argv = _bwrap_argv(work, mode.python, mode.root_setup) + argv
        env = {
            "PATH": "/usr/local/bin:/usr/bin:/bin",
            "LANG": "C.UTF-8",
            "HOME": work,
            "TMPDIR": work,
            _JOB_VAR: token,
            **{var: "1" for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")},
        }
        user = {} if uid is None or mode.root_setup else {"user": uid, "group": uid, "extra_groups": []}
        start = time.monotonic()
        try:
            proc = subprocess.Popen(
                argv, cwd=work, env=env, stdin=subprocess.DEVNULL, stdout=out, stderr=err,
                start_new_session=True, **user,
            )  # fmt: skip
        except (OSError, subprocess.SubprocessError) as exc:
            return RunResult("error", None, "", f"sandbox failed to start: {exc}", time.monotonic() - start)
        try:
            timed_out = not _wait_exit(proc, timeout)
        finally:  # also on KeyboardInterrupt: nothing may survive the run
            _kill_all(proc, uid, token)
        seconds = time.monotonic() - start
        stdout, stderr = _read_capped(out), _read_capped(err)
        started = os.path.lexists(os.path.join(work, ".started"))
        status = _status(proc.returncode, timed_out, started, stderr, mode.name == "bwrap")
        return RunResult(status, proc.returncode, stdout, stderr, seconds)
    finally:
        for f in (out, err):
            if f is not None:
                f.close()
        shutil.rmtree(work, ignore_errors=True)
        if slot is not None:
            _remove_owned(uid)
            _SLOTS.put(slot)


def _bwrap_argv(work: str, python: str, root_setup: bool = False) -> list[str]:
    argv = [shutil.which("bwrap") or "bwrap", "--ro-bind", "/", "/", "--dev", "/dev", "--proc", "/proc"]
    argv += (["--size", str(TMPFS_BYTES)] if _bwrap_has_size() else []) + ["--tmpfs", "/tmp"]
    hidden = ["/tmp"]
    if root_setup:  # private directories on the interpreter's path: hidden, its own directories shown
        hidden += _hidden_private_dirs(python)
        for path in hidden[1:]:
            argv += ["--tmpfs", path]
    # The interpreter and its environment may live under a hidden directory (a venv in /tmp, a pyenv
    # under /root): show them again, read-only, each on directories any user can pass through.
    for path in _under(hidden, _interpreter_dirs(python)):
        argv += _passable_parents(path, hidden) + ["--ro-bind", path, path]
    argv += _passable_parents(work, hidden) if root_setup else []
    argv += ["--bind", work, work] + ([] if root_setup else ["--chdir", work])  # see _RUNNER
    argv += ["--die-with-parent", "--new-session"]
    if root_setup:  # no user namespace: the runner needs CAP_SETUID/SETGID to drop to the per-run uid
        argv += ["--unshare-ipc", "--unshare-pid", "--unshare-net", "--unshare-uts", "--unshare-cgroup-try"]
        return argv + ["--cap-drop", "ALL", "--cap-add", "CAP_SETUID", "--cap-add", "CAP_SETGID", "--"]
    return argv + ["--unshare-all", "--cap-drop", "ALL", "--"]


def _interpreter_dirs(python: str) -> list[str]:
    """The directories `python` runs from: its own and its installation's (the parent of bin/), the
    venv's base installation (pyvenv.cfg's home), and this process's prefixes when it is this one."""
    dirs = set()
    for exe in (os.path.abspath(python), os.path.realpath(python)):
        dirs |= {os.path.dirname(exe), os.path.dirname(os.path.dirname(exe))}
    try:
        with open(os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(python))), "pyvenv.cfg")) as f:
            home = [line.split("=", 1)[1].strip() for line in f if line.split("=")[0].strip() == "home"]
    except (OSError, IndexError):
        home = []
    for path in home:
        dirs |= {path, os.path.dirname(path), os.path.dirname(os.path.realpath(path))}
    if os.path.realpath(python) == os.path.realpath(sys.executable):
        dirs |= {sys.prefix, sys.base_prefix, sys.exec_prefix, sys.base_exec_prefix}
    return sorted({os.path.abspath(d) for d in dirs if d and d != "/"})


def _hidden_private_dirs(python: str) -> list[str]:
    """What a root-started bubblewrap lays a tmpfs over besides /tmp (hidden already)."""
    return [d for d in _private_dirs(_interpreter_dirs(python)) if not d.startswith("/tmp/")]


def _private_dirs(paths: list[str]) -> list[str]:
    """The topmost directories on the way to `paths` that other users cannot pass (no o+x)."""
    out: list[str] = []
    for path in paths:
        parts = path.strip("/").split("/")
        for i in range(1, len(parts)):
            ancestor = "/" + "/".join(parts[:i])
            try:
                passable = os.stat(ancestor).st_mode & 0o001
            except OSError:
                break
            if not passable:
                if ancestor not in out and not any(ancestor.startswith(q + "/") for q in out):
                    out.append(ancestor)
                break
    return sorted(out)


def _under(tops: list[str], paths: list[str]) -> list[str]:
    """The outermost of `paths` inside one of the `tops` (hidden directories)."""
    inside = {p for p in paths if any(p.startswith(top + "/") for top in tops)}
    return sorted(p for p in inside if not any(p.startswith(q + "/") for q in inside))


def _passable_parents(path: str, tops: list[str]) -> list[str]:
    """`--dir` for each directory between a hidden top and `path`: bubblewrap would create them
    0700, owned by root, which a per-run uid cannot pass."""
    top = next((t for t in tops if path.startswith(t + "/")), None)
    if top is None:
        return []
    parts = path[len(top) + 1 :].split("/")[:-1]
    return [arg for i in range(1, len(parts) + 1) for arg in ("--dir", "/".join([top, *parts[:i]]))]


_bwrap_size: list[bool] = []


def _bwrap_has_size() -> bool:  # --size (for --tmpfs) arrived in bubblewrap 0.7
    if not _bwrap_size:
        bwrap = shutil.which("bwrap") or "bwrap"
        help_text = subprocess.run([bwrap, "--help"], capture_output=True, text=True, check=False)
        _bwrap_size.append("--size" in help_text.stdout + help_text.stderr)
    return _bwrap_size[0]


def _wait_exit(proc: subprocess.Popen, timeout: float) -> bool:
    """True when `proc` exits within `timeout`. It is left unreaped, so its pid (= process group id)
    cannot be reused before the group is killed."""
    try:
        pidfd = os.pidfd_open(proc.pid)
    except (AttributeError, OSError):  # no pidfd: reap while waiting
        try:
            proc.wait(timeout)
            return True
        except subprocess.TimeoutExpired:
            return False
    try:
        poller = select.poll()
        poller.register(pidfd, select.POLLIN)
        return bool(poller.poll(timeout * 1000))
    finally:
        os.close(pidfd)


def _kill_all(proc: subprocess.Popen, uid: int | None, token: str) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)  # bwrap's death also kills its PID namespace
    except OSError:
        pass
    proc.wait()
    # Then every process of the run that left the group: by uid, or by the marker in its environment.
    needle = f"{_JOB_VAR}={token}".encode()
    # Until none is left: killed processes die only when next scheduled, late on a loaded machine.
    deadline = time.monotonic() + _KILL_WAIT
    while time.monotonic() < deadline:
        left = [pid for pid in _pids() if _belongs(pid, uid, needle)]
        if not left:
            return
        for pid in left:
            try:
                pidfd = os.pidfd_open(pid)  # pins the process: no signal to a recycled pid
            except OSError:
                continue
            try:
                if _belongs(pid, uid, needle):
                    signal.pidfd_send_signal(pidfd, signal.SIGKILL)
            except OSError:
                pass
            finally:
                os.close(pidfd)
        time.sleep(0.005)


def _pids() -> list[int]:
    return [int(name) for name in os.listdir("/proc") if name.isdigit()]


def _belongs(pid: int, uid: int | None, needle: bytes) -> bool:
    """Is `pid` a live process of the run (real uid `uid`, or environment entry `needle`)?"""
    try:
        if uid is not None:
            with open(f"/proc/{pid}/status", "rb") as f:
                status = f.read()
            real_uid = re.search(rb"^Uid:\s+(\d+)", status, re.M)
            state = re.search(rb"^State:\s+(\S)", status, re.M)
            return bool(real_uid and state) and int(real_uid[1]) == uid and state[1] not in (b"Z", b"X")
        with open(f"/proc/{pid}/environ", "rb") as f:  # empty for zombies
            return needle in f.read().split(b"\0")
    except OSError:
        return False


def _remove_owned(uid: int) -> None:
    """Delete what the run's uid left at the top of world-writable directories."""
    for top in _WORLD_WRITABLE:
        try:
            entries = list(os.scandir(top))
        except OSError:
            continue
        for entry in entries:
            try:
                if entry.stat(follow_symlinks=False).st_uid != uid:
                    continue
                if entry.is_dir(follow_symlinks=False):
                    shutil.rmtree(entry.path, ignore_errors=True)
                else:
                    os.unlink(entry.path)
            except OSError:
                pass


def _read_capped(f) -> str:
    """At most OUTPUT_CAP bytes of an output file: all of it, or its head and tail around a marker.

    Reads through the parent's own descriptor, so renaming or replacing the file changes nothing."""
    size = os.fstat(f.fileno()).st_size
    if size <= OUTPUT_CAP:
        data = os.pread(f.fileno(), size, 0)
    else:
        half = OUTPUT_CAP // 2
        cut = f"\n[... {size - 2 * half} bytes cut ...]\n".encode()
        data = os.pread(f.fileno(), half, 0) + cut + os.pread(f.fileno(), half, size - half)
    return data.decode("utf-8", errors="replace")


def _status(returncode: int, timed_out: bool, started: bool, stderr: str, bwrap: bool) -> Status:
    if timed_out:
        return "timeout"
    if not started:  # the interpreter never reached the program: bwrap, exec or rlimit failure
        return "error"
    if returncode == 0:
        return "passed"
    # A signal shows as -N, or as 128 + N when bubblewrap passes on its child's death.
    sig = -returncode if returncode < 0 else returncode - 128 if bwrap and returncode > 128 else 0
    if sig == signal.SIGXCPU:  # CPU-time limit (SIGKILL at the hard limit if SIGXCPU is ignored)
        return "timeout"
    if _MEMORY_ERROR.search(stderr) or sig == signal.SIGKILL:  # SIGKILL we did not send: OOM killer
        return "memory"
    return "failed"
