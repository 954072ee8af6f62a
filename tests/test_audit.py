"""`critic audit` over small datasets with the memorized critic: the output dataset and summaries, code
that does not parse, a resumed audit that searches no finished row again, two processes under
`accelerate launch` writing what one writes, and bad input as one line with nothing written."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from conftest import BUG_LINE, BUG_QUOTE, BUG_RULE, BUGGY_CODE, Interrupt, with_comment

from critic.inference.fsbs import Critic
from critic.review import audit as audit_module
from critic.review import reviewer
from critic.review.settings import load_settings

BROKEN = "def broken(:\n    return 1 +\n"  # no parse: reviewed as a run of lines
SUPPRESSED_ELSEWHERE = with_comment("# critic: ignore[CRT105]")  # the critic's finding is CRT101
ROWS = [
    {"id": "buggy", "code": BUGGY_CODE, "is_buggy": True},
    {"id": "clean", "code": "x = 1\n", "is_buggy": False},
    {"id": "broken", "code": BROKEN, "is_buggy": False},
    {"id": "empty", "code": "", "is_buggy": False},
    {"id": "null", "code": None, "is_buggy": None},
    {"id": "buggy2", "code": SUPPRESSED_ELSEWHERE, "is_buggy": True},
]
ARGS = ("rows.jsonl", "--column", "code", "--label-column", "is_buggy", "--batch-size", "2")
# One thread a process, as under `accelerate launch`: the comparisons below are byte for byte.
ONE_THREAD = {"OMP_NUM_THREADS": "1"}


def make_project(directory: Path, known_critic) -> Path:
    policy, reward = known_critic
    (directory / "pyproject.toml").write_text(
        f'[tool.critic]\nmodel = "{policy}"\nreward-model = "{reward}"\nmin-score = 0.0\ntemperature = 0.5\n'
        'search = "fsbs"\n'
        "samples = 2\nrounds = 2\nkeep = 1\nmax-new-tokens = 48\n"
    )
    (directory / "rows.jsonl").write_text("".join(json.dumps(row) + "\n" for row in ROWS))
    return directory


def critic_cli(cwd: Path, *args: str, launch: tuple[str, ...] = ()) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, *launch, "-m", "critic.cli", "audit", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        env=os.environ | ONE_THREAD,
        timeout=600,
    )


def outputs(out: Path) -> tuple[list[dict], str, str]:
    from datasets import load_from_disk

    rows = load_from_disk(str(out / "dataset")).to_list()
    return rows, (out / "summary.json").read_text(), (out / "summary.md").read_text()


@pytest.fixture(scope="module")
def single_run(tmp_path_factory, known_critic):
    """(project, out) of one uninterrupted single-process `critic audit` of ROWS."""
    project = make_project(tmp_path_factory.mktemp("audit"), known_critic)
    result = critic_cli(project, *ARGS, "--out", "out")
    assert result.returncode == 0, result.stderr
    assert "audited 6 rows" in result.stderr
    return project, project / "out"


def test_the_audit_adds_findings_columns_and_summaries(single_run):
    _, out = single_run
    rows, summary_text, markdown = outputs(out)
    assert [{k: row[k] for k in ("id", "code", "is_buggy")} for row in rows] == ROWS
    findings = [json.loads(row["critic_findings"]) for row in rows]
    (bug,) = findings[0]
    assert (bug["line"], bug["end_line"], bug["rule"], bug["quote"]) == (
        BUG_LINE,
        BUG_LINE,
        BUG_RULE,
        BUG_QUOTE,
    )
    assert {"message", "comment", "score", "fingerprint"} <= set(bug) and "path" not in bug
    assert [f["rule"] for f in findings[5]] == [BUG_RULE]
    assert findings[1] == findings[3] == findings[4] == []  # nothing to quote, empty, null
    assert isinstance(findings[2], list)  # code that does not parse is still audited
    confidences = [row["critic_max_confidence"] for row in rows]
    assert confidences == [max((f["score"] for f in found), default=0.0) for found in findings]
    assert confidences[0] > 0 and confidences[3] == 0.0

    summary = json.loads(summary_text)
    assert (summary["rows"], summary["column"], summary["settings"]["batch_size"]) == (6, "code", 2)
    assert summary["rows_with_findings"] == sum(1 for found in findings if found)
    top = summary["top_flags"]
    assert [flag["confidence"] for flag in top] == sorted((flag["confidence"] for flag in top), reverse=True)
    assert {"row": 0, "rule": BUG_RULE, "line": BUG_LINE, "code": BUG_QUOTE}.items() <= next(
        flag for flag in top if flag["row"] == 0
    ).items()
    labels = summary["labels"]
    assert (labels["column"], labels["buggy"], labels["clean"], labels["unlabelled"]) == ("is_buggy", 2, 3, 1)
    assert labels["at_min_score"]["recall"] == 1.0 and len(labels["curve"]) == 101
    assert f"| 0 | {confidences[0]:.2f} | {BUG_RULE} | Off-by-one" in markdown
    assert f"| {BUG_LINE}: `{BUG_QUOTE}` |" in markdown
    assert (out / "pr_curve.png").read_bytes()[:4] == b"\x89PNG"
    assert sorted(p.name for p in out.iterdir()) == ["dataset", "pr_curve.png", "summary.json", "summary.md"]


def test_two_processes_under_accelerate_write_what_one_writes(single_run):
    project, out = single_run
    launch = ("-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2")
    launch += ("--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no")
    result = critic_cli(project, *ARGS, "--out", "out2", launch=launch)
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stderr.count("audited 6 rows") == 1  # the main process merges and reports
    assert outputs(project / "out2") == outputs(out)


def test_an_interrupted_audit_resumes_without_searching_finished_rows(single_run, monkeypatch, tmp_path):
    project, out = single_run
    monkeypatch.chdir(project)
    torch.set_num_threads(1)  # as the subprocesses ran
    monkeypatch.setattr(audit_module, "process_state", lambda: _SingleProcess())
    settings, _ = load_settings(project)
    source = audit_module.load_input(Path("rows.jsonl"), "code", None, "is_buggy")
    searched: list[str] = []
    search = Critic.search

    def counted(self, prompts, codes, *args, **kwargs):
        if limit is not None and len(searched) >= limit:
            raise Interrupt("killed")
        searched.extend(codes)
        return search(self, prompts, codes, *args, **kwargs)

    monkeypatch.setattr(Critic, "search", counted)
    resumed = tmp_path / "out"
    try:
        limit = 3  # rows 0-2: batches [0, 1] and [2, 3] (row 3 is empty: nothing to search)
        with pytest.raises(Interrupt):
            audit_module.audit(source, resumed, settings, batch_size=2)
        assert searched == [BUGGY_CODE.rstrip("\n"), "x = 1", BROKEN.rstrip("\n")]
        assert (resumed / audit_module.WORK).is_dir()

        searched.clear()
        limit = None
        save = audit_module.write_outputs

        def killed_while_writing(source, findings, out, *args):
            (out / "summary.json").write_text("{")
            raise Interrupt("killed while writing")

        monkeypatch.setattr(audit_module, "write_outputs", killed_while_writing)
        with pytest.raises(Interrupt):
            audit_module.audit(source, resumed, settings, batch_size=2)
        assert searched == [SUPPRESSED_ELSEWHERE.rstrip("\n")]  # only the row the first run did not reach

        # Everything is searched now: finishing loads no weights at all.
        monkeypatch.setattr(audit_module, "write_outputs", save)
        monkeypatch.setattr(reviewer, "load_critic", _no_weights)
        summary = audit_module.audit(source, resumed, settings, batch_size=2)
    finally:
        torch.set_num_threads(2)
    assert summary is not None and summary["rows"] == 6
    assert outputs(resumed) == outputs(out)
    assert not (resumed / audit_module.WORK).exists()


class _SingleProcess:
    is_main_process, process_index, num_processes = True, 0, 1

    def wait_for_everyone(self) -> None:
        pass


def _no_weights(*args, **kwargs):
    raise AssertionError("a fully cached audit loaded the critic's weights")


def test_bad_input_is_one_line_and_writes_nothing(tmp_path, monkeypatch, capsys):
    from datasets import Dataset, DatasetDict

    from critic.cli import main

    (tmp_path / "rows.jsonl").write_text(json.dumps({"code": "x = 1", "label": "yes"}) + "\n")
    (tmp_path / "bad.jsonl").write_text("not json\n")
    (tmp_path / "notes.txt").write_text("hello\n")
    (tmp_path / "folder").mkdir()
    (tmp_path / "folder" / "a.py").write_text("x = 1\n")
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "keep.txt").write_text("mine\n")
    splits = DatasetDict({name: Dataset.from_dict({"code": ["x = 1"]}) for name in ("train", "test")})
    splits.save_to_disk(str(tmp_path / "splits"))
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(audit_module, "process_state", lambda: _SingleProcess())
    capsys.readouterr()  # datasets' progress bars while saving the splits
    cases = [
        (
            ["rows.jsonl", "--column", "source", "--out", "new"],
            "rows.jsonl: no column 'source' (has code, label)",
        ),
        (["folder", "--column", "code", "--out", "new"], "folder: not a saved `datasets` directory"),
        (["notes.txt", "--column", "code", "--out", "new"], "notes.txt: not a dataset"),
        (["missing.jsonl", "--column", "code", "--out", "new"], "missing.jsonl: no such file or directory"),
        (["bad.jsonl", "--column", "code", "--out", "new"], "bad.jsonl: cannot read as json"),
        (["rows.jsonl", "--column", "code", "--out", "full"], "--out full: directory is not empty"),
        (["rows.jsonl", "--column", "code", "--label-column", "label", "--out", "new"], "not booleans"),
        (["splits", "--column", "code", "--out", "new"], "has splits train, test; choose one with --split"),
        (
            ["splits", "--split", "dev", "--column", "code", "--out", "new"],
            "no split 'dev' (has train, test)",
        ),
        (["rows.jsonl", "--column", "code", "--batch-size", "0", "--out", "new"], "--batch-size must be"),
    ]
    for args, message in cases:
        monkeypatch.setattr(sys, "argv", ["critic", "audit", *args])
        with pytest.raises(SystemExit) as exit:
            main()
        err = capsys.readouterr().err
        assert exit.value.code == 2, (args, err)
        (line,) = err.splitlines()
        assert line.startswith("critic: error: ") and message in line, (args, err)
        assert not (tmp_path / "new").exists()
    assert [p.name for p in (tmp_path / "full").iterdir()] == ["keep.txt"]


def test_every_input_kind_loads(tmp_path):
    from datasets import Dataset, DatasetDict

    table = Dataset.from_dict({"code": ["a = 1", None], "buggy": [True, False]})
    table.to_parquet(str(tmp_path / "rows.parquet"))
    table.to_csv(str(tmp_path / "rows.csv"), index=False)
    table.save_to_disk(str(tmp_path / "one"))
    DatasetDict({"test": table, "train": table.select([0])}).save_to_disk(str(tmp_path / "splits"))
    DatasetDict({"only": table}).save_to_disk(str(tmp_path / "only"))
    for path, split, chosen in (
        ("rows.parquet", None, None),
        ("one", None, None),
        ("splits", "test", "test"),
        ("only", None, "only"),  # a DatasetDict's one split needs no --split
    ):
        source = audit_module.load_input(tmp_path / path, "code", split, "buggy")
        assert (source.texts, source.labels, source.split) == (["a = 1", ""], [True, False], chosen), path
    source = audit_module.load_input(tmp_path / "rows.csv", "code")
    assert source.texts == ["a = 1", ""] and source.labels is None


def test_precision_and_recall_against_confidence():
    # Rows: 0.9 buggy, 0.8 clean, 0.8 buggy (tied), no finding but buggy, and one without a label.
    found = audit_module.precision_recall([0.9, 0.8, 0.8, 0.0, 0.3], [True, False, True, True, None], 0.2)
    assert (found["buggy"], found["clean"], found["unlabelled"]) == (3, 1, 1)
    assert found["average_precision"] == pytest.approx((1 / 1 + 1 * 2 / 3) / 3)
    curve = {point["threshold"]: point for point in found["curve"]}
    assert (curve[0.85]["flagged"], curve[0.85]["precision"], curve[0.85]["recall"]) == (1, 1.0, 1 / 3)
    assert (curve[0.0]["flagged"], curve[0.0]["precision"], curve[0.0]["recall"]) == (3, 2 / 3, 2 / 3)
    assert curve[0.95]["precision"] is None and found["at_min_score"] == curve[0.2] | {"threshold": 0.2}


def test_the_flags_table_survives_pipes_and_backticks():
    summary = {
        "data": "d.jsonl",
        "split": None,
        "column": "code",
        "rows": 1,
        "rows_with_findings": 1,
        "findings": 1,
        "settings": {"min_score": 0.2},
        "top_flags": [
            {
                "row": 0,
                "confidence": 0.5,
                "rule": "CRT101",
                "message": "a | b",
                "line": 2,
                "code": "x = `y` | z",
            }
        ],
    }
    row = audit_module.markdown(summary).splitlines()[-1]
    assert row == r"| 0 | 0.50 | CRT101 | a \| b | 2: `` x = `y` \| z `` |"
