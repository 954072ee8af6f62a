"""Dataset building: HumanEval and directory sources, verification, splits, the `critic data tamper` CLI."""

from __future__ import annotations

import difflib
import random
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest
from cli_process import run_critic
from datasets import load_from_disk

from critic.core.errors import UserError
from critic.datagen.tamper_data import (
    FIELDS,
    SPLITS,
    assign_splits,
    build_samples,
    directory_items,
    humaneval_items,
    split_functions,
    to_dataset_dict,
)

STDLIB_JSON = Path(sysconfig.get_paths()["stdlib"]) / "json"


def critic(*args: str) -> subprocess.CompletedProcess:
    return run_critic(*args)


def run_plain(code: str, test: str) -> bool:
    """An independent check, outside critic.datagen.sandbox: does code + test exit 0?"""
    try:
        done = subprocess.run([sys.executable, "-c", code + "\n\n" + test], capture_output=True, timeout=10)
    except subprocess.TimeoutExpired:
        return False
    return done.returncode == 0


@pytest.fixture(scope="module")
def humaneval_subset():
    items = humaneval_items()
    assert len(items) == 164
    subset = random.Random(0).sample(items, 24)
    samples, stats = build_samples(subset, per_item=3, seed=0)
    return subset, samples, stats


def test_verified_samples_really_break_their_tests(humaneval_subset):
    _, samples, stats = humaneval_subset
    assert samples and all(s["verified"] for s in samples)
    assert len({s["bug_kind"] for s in samples}) >= 6
    for sample in random.Random(1).sample(samples, 12):
        assert run_plain(sample["original"], sample["test"]), sample["task_id"]
        assert not run_plain(sample["code"], sample["test"]), (sample["task_id"], sample["bug_kind"])
    assert sum(stats.kept.values()) == len(samples)


def test_bug_lines_point_at_changed_code(humaneval_subset):
    _, samples, _ = humaneval_subset
    for s in samples:
        original, tampered = s["original"].splitlines(), s["code"].splitlines()
        allowed = set()
        for tag, _, _, j1, j2 in difflib.SequenceMatcher(None, original, tampered).get_opcodes():
            if tag in ("replace", "insert"):
                allowed |= set(range(j1 + 1, j2 + 1))
            elif tag == "delete":  # 1-based: the nearest code line before or after the removed ones
                before = next((n for n in range(j1, 0, -1) if tampered[n - 1].strip()), None)
                after = next((n for n in range(j1 + 1, len(tampered) + 1) if tampered[n - 1].strip()), None)
                allowed |= {j1, j1 + 1, before, after}
        assert allowed, s["task_id"]
        assert set(s["bug_lines"]) <= allowed, (s["task_id"], s["bug_kind"], s["bug_lines"])
        assert s["description"].strip()


def test_splits_are_by_task_and_complete(humaneval_subset):
    subset, samples, _ = humaneval_subset
    dsd = to_dataset_dict(samples, seed=0)
    assert list(dsd) == list(SPLITS)
    assert sum(len(ds) for ds in dsd.values()) == len(samples)
    assert set(dsd["train"].column_names) == set(FIELDS)
    tasks = [set(dsd[name]["task_id"]) for name in SPLITS]
    assert not (tasks[0] & tasks[1] or tasks[0] & tasks[2] or tasks[1] & tasks[2])
    tasks = [f"HumanEval/{i}" for i in range(164)]
    splits = assign_splits(tasks, 0)
    assert splits == assign_splits(reversed(tasks), 0)  # order of arrival does not matter
    assert splits != assign_splits(tasks, 1)
    counts = {name: list(splits.values()).count(name) for name in SPLITS}
    assert 115 <= counts["train"] <= 147 and min(counts.values()) >= 8
    # a group's split does not depend on which other groups are present (sampled sources stay held out)
    assert assign_splits(tasks[::3], 0) == {t: splits[t] for t in tasks[::3]}
    assert set(assign_splits(["a.py", "b.py", "c.py"], 0).values()) == set(SPLITS)
    with pytest.raises(UserError, match="at least 3"):
        assign_splits(["a.py", "b.py"], 0)


def test_directory_source_splits_functions_and_marks_unverified():
    items = directory_items(STDLIB_JSON)
    assert len(items) > 10
    assert all(i.task_id.split("::")[0].endswith(".py") and not i.test for i in items)
    samples, _ = build_samples(items[:10], per_item=2, seed=3)
    assert samples and not any(s["verified"] for s in samples)
    for s in samples:
        compile(s["code"], s["task_id"], "exec")
        assert s["code"] != s["original"]


def test_split_functions_keeps_methods_and_decorators():
    source = "import x\n\n@deco\ndef f(a):\n    return a\n\nclass C:\n    def m(self):\n        return 1\n"
    names = dict(split_functions(source))
    assert set(names) == {"f", "C.m"}
    assert names["f"].startswith("@deco\ndef f")
    assert names["C.m"].startswith("def m(self):")


def test_cli_builds_dataset_from_a_stdlib_directory(tmp_path):
    out = tmp_path / "ds"
    result = critic("data", "tamper", "--source", str(STDLIB_JSON), "--out", str(out), "--per-item", "1")
    assert result.returncode == 0, result.stderr
    dsd = load_from_disk(str(out))
    assert sum(len(ds) for ds in dsd.values()) > 10
    assert (out / "README.md").read_text().startswith("---")
    again = critic("data", "tamper", "--source", str(STDLIB_JSON), "--out", str(out))
    assert again.returncode == 2 and "not empty" in again.stderr


@pytest.mark.parametrize("kind", ["missing", "empty", "no-python", "bad-kind"])
def test_cli_bad_sources_exit_2(tmp_path, kind):
    source = tmp_path / "src"
    args = ["--source", str(source), "--out", str(tmp_path / "out")]
    if kind == "empty":
        source.mkdir()
    elif kind == "no-python":
        source.mkdir()
        (source / "notes.txt").write_text("hello")
        (source / "blob.py.bak").write_bytes(b"\x00\x01")
    elif kind == "bad-kind":
        args = ["--source", str(STDLIB_JSON), "--out", str(tmp_path / "out"), "--kinds", "nope"]
    result = critic("data", "tamper", *args)
    assert result.returncode == 2, result.stderr
    assert result.stderr.startswith("critic: error: ") and len(result.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "out").exists()


def test_each_source_is_split_on_its_own():
    """Adding a source never moves another source's groups: HumanEval's test tasks stay held out."""

    def sample(source: str, group: str) -> dict:
        row = dict.fromkeys(FIELDS, "")
        return row | {"bug_lines": [1], "verified": False, "source": source, "group": group, "task_id": group}

    humaneval = [sample("humaneval", f"HumanEval/{i}") for i in range(40)]
    other = [sample("/usr/lib/python3", f"mod{i}.py") for i in range(30)]

    def test_tasks(samples):
        return set(to_dataset_dict(samples, seed=0)["test"]["task_id"])

    alone = test_tasks(humaneval)
    combined = test_tasks(humaneval + other)
    assert alone and alone == {t for t in combined if t.startswith("HumanEval/")}
    assert any(t.startswith("mod") for t in combined)  # the other source has its own test split
