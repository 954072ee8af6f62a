"""`critic` as a user runs it, a real process each time, without paying torch's import each time.

Most CLI tests start `python -m critic.cli ...` and check its exit code and output. On 2 cores, 1 to 2 s
of each of those runs is importing torch. Here a zygote process (one per test process) imports torch
once and forks a child per command: the child gets its own stdin, stdout and stderr files, working
folder and environment, runs `critic.cli` as `python -m` would, and exits with its code. So a test
still sees a real process (file descriptors, exit code, atexit, anything printed at the C level)
started from a clean import state; only torch comes pre-imported (nothing of critic's, nor
transformers, trl, datasets or gradio, whose absence some tests check).

Run as a script, this file is the zygote: it reads one JSON request a line and answers with the
child's pid, then its exit status.
"""

from __future__ import annotations

import atexit
import json
import os
import select
import signal
import subprocess
import sys
import tempfile
import threading
import traceback
from pathlib import Path

PRELOADED = ("torch",)


def run_critic(
    *args: str,
    cwd: str | Path | None = None,
    stdin: str | None = None,
    env: dict[str, str] | None = None,
    timeout: float = 600,
) -> subprocess.CompletedProcess:
    """`subprocess.run([python, -m, critic.cli, *args], capture_output=True, text=True, ...)`, forked
    from the zygote. Raises `subprocess.TimeoutExpired` (after killing it) as subprocess.run does."""
    with tempfile.TemporaryDirectory(prefix="critic-cli-") as folder:
        files = {name: os.path.join(folder, name) for name in ("stdin", "stdout", "stderr")}
        Path(files["stdin"]).write_text(stdin or "")
        request = {
            "args": list(args),
            "cwd": str(cwd or os.getcwd()),
            "env": dict(os.environ if env is None else env),
            **files,
        }
        code = _zygote().run(request, timeout, [sys.executable, "-m", "critic.cli", *args])
        out, err = (Path(files[name]).read_text(errors="replace") for name in ("stdout", "stderr"))
    return subprocess.CompletedProcess([sys.executable, "-m", "critic.cli", *args], code, out, err)


class _Zygote:
    def __init__(self) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, __file__],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            bufsize=1,
        )
        self.lock = threading.Lock()
        atexit.register(self.proc.kill)

    def run(self, request: dict, timeout: float, argv: list[str]) -> int:
        with self.lock:
            assert self.proc.stdin and self.proc.stdout
            self.proc.stdin.write(json.dumps(request) + "\n")
            pid = int(self.proc.stdout.readline())
            ready, _, _ = select.select([self.proc.stdout], [], [], timeout)
            if not ready:
                os.kill(pid, signal.SIGKILL)
                self.proc.stdout.readline()
                raise subprocess.TimeoutExpired(argv, timeout)
            return int(self.proc.stdout.readline())


_started: list[_Zygote] = []


def _zygote() -> _Zygote:
    if not _started or _started[0].proc.poll() is not None:
        _started[:] = [_Zygote()]
    return _started[0]


# --- the zygote's side --------------------------------------------------------------------------------


def _serve() -> None:
    for module in PRELOADED:
        __import__(module)
    for line in sys.stdin:
        request = json.loads(line)
        pid = os.fork()
        if pid == 0:
            _child(request)
        print(pid, flush=True)
        _, status = os.waitpid(pid, 0)
        print(os.waitstatus_to_exitcode(status), flush=True)


def _child(request: dict) -> None:
    """Become `python -m critic.cli ARGS` in the requested folder, environment and files; never return."""
    os.chdir(request["cwd"])
    os.environ.clear()
    os.environ.update(request["env"])
    for fd, name in enumerate(("stdin", "stdout", "stderr")):
        opened = os.open(request[name], os.O_WRONLY | os.O_CREAT | os.O_TRUNC if fd else os.O_RDONLY)
        os.dup2(opened, fd)
        os.close(opened)
    sys.stdin = sys.__stdin__ = open(0, closefd=False)
    sys.stdout = sys.__stdout__ = open(1, "w", closefd=False)
    sys.stderr = sys.__stderr__ = open(2, "w", closefd=False, errors="backslashreplace", buffering=1)
    sys.path[0] = request["cwd"]  # as `python -m` puts the working folder first
    code = 0
    try:
        import runpy

        sys.argv = ["-m", *request["args"]]  # runpy sets argv[0] to the module's file
        runpy.run_module("critic.cli", run_name="__main__", alter_sys=True)
    except SystemExit as exit:
        code = _exit_code(exit.code)
    except BaseException:
        traceback.print_exc()
        code = 1
    try:
        atexit._run_exitfuncs()
        sys.stdout.flush()
        sys.stderr.flush()
    finally:
        os._exit(code)


def _exit_code(code: object) -> int:
    if code is None:
        return 0
    if isinstance(code, int):
        return code
    print(code, file=sys.stderr)
    return 1


if __name__ == "__main__":
    _serve()
