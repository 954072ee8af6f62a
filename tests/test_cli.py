"""The `critic model` commands as a user runs them: real processes, exit codes, one-line errors."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from cli_process import run_critic

EXAMPLE = Path(__file__).resolve().parents[1] / "data" / "examples" / "average.py"


def critic(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess:
    return run_critic(*args, stdin=stdin, timeout=300)


def test_new_info_generate(tmp_path):
    out = tmp_path / "tiny"
    made = critic("model", "new", "--out", str(out), "--seed", "1")
    assert made.returncode == 0, made.stderr
    assert {"config.json", "model.safetensors", "tokenizer.json"} <= {p.name for p in out.iterdir()}
    info = critic("model", "info", str(out))
    assert info.returncode == 0 and "LGLG" in info.stdout
    first = critic("model", "generate", str(out), str(EXAMPLE), "--max-new-tokens", "8")
    again = critic("model", "generate", str(out), str(EXAMPLE), "--max-new-tokens", "8")
    assert first.returncode == 0, first.stderr
    assert first.stdout.strip() and first.stdout == again.stdout  # greedy is deterministic
    piped = critic("model", "generate", str(out), "-", "--max-new-tokens", "8", stdin=EXAMPLE.read_text())
    assert piped.returncode == 0 and piped.stdout.strip(), piped.stderr


def test_bad_input_is_one_line_and_exit_2(tmp_path):
    out = tmp_path / "tiny"
    assert critic("model", "new", "--out", str(out)).returncode == 0
    before = (out / "model.safetensors").read_bytes()
    binary = tmp_path / "blob.py"
    binary.write_bytes(b"\xff\xfe\x00garbage")
    cases = [
        ("model", "new", "--out", str(out)),  # would overwrite: refused, nothing lost
        ("model", "new", "--out", str(tmp_path / "x"), "--preset", "gemma-3"),
        ("model", "info", str(tmp_path / "missing")),
        ("model", "generate", str(out), str(tmp_path / "missing.py")),
        ("model", "generate", str(out), str(binary)),
        ("model", "generate", str(tmp_path), str(EXAMPLE)),
    ]
    for args in cases:
        result = critic(*args)
        assert result.returncode == 2, (args, result.stderr)
        assert "Traceback" not in result.stderr
        assert len(result.stderr.strip().splitlines()) == 1, result.stderr
        assert result.stderr.startswith("critic: error: ")
    assert (out / "model.safetensors").read_bytes() == before


def test_usage_error_exit_2():
    result = critic("model", "generate")
    assert result.returncode == 2
    assert "Traceback" not in result.stderr


def test_the_forked_cli_is_the_cli_a_user_runs(tmp_path):
    """`run_critic` (a child forked from a process that imported torch) prints exactly what a fresh
    `python -m critic.cli` prints, exits with the same code, and reads the same stdin, folder and
    environment: the tests that use it test what users run."""
    (tmp_path / "pyproject.toml").write_text("[tool.critic]\nmin-score = 0.0\n")
    buggy = "def add(a, b):\n    return a - b\n"
    cases = [
        (["--help"], None, {}),
        (["model", "generate"], None, {}),  # click's usage error
        (["model", "info", str(tmp_path / "missing")], None, {}),  # critic's one-line error
        (["review", "--no-cache", "--format", "json", "-"], buggy, {"NO_COLOR": "1"}),  # with its settings
    ]
    for args, stdin, extra in cases:
        env = os.environ | extra
        real = subprocess.run(
            [sys.executable, "-m", "critic.cli", *args],
            cwd=tmp_path,
            input=stdin,
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
        )
        forked = run_critic(*args, cwd=tmp_path, stdin=stdin, env=env)
        assert forked.returncode == real.returncode, (args, forked, real)
        assert (forked.stdout, forked.stderr) == (real.stdout, real.stderr), args
    assert real.returncode == 1 and json.loads(real.stdout)  # the last case found the bug
