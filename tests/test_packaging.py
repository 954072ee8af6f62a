"""The wheel must carry every package: pyproject lists them by hand (data/, rl/ and annotation_app/ are
mapped into critic), and it must install no import name but `critic`."""

from __future__ import annotations

import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_every_package_is_listed_in_pyproject():
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    listed = set(config["packages"])
    mapped = {Path(d).as_posix(): name for name, d in config["package-dir"].items()}
    found = set()
    tops = [d for d in ROOT.iterdir() if (d / "__init__.py").is_file() and d.name not in {"tests", "bench"}]

    def package(relative: str) -> str:
        """The import name of a folder: under the deepest package-dir mapping that contains it."""
        for directory, name in sorted(mapped.items(), key=lambda item: -len(item[0])):
            if relative == directory or relative.startswith(directory + "/"):
                return name + relative[len(directory) :].replace("/", ".")
        return relative.replace("/", ".")

    for top in tops:
        for init in top.rglob("__init__.py"):
            found.add(package(init.parent.relative_to(ROOT).as_posix()))
    assert found == listed


def test_wheel_ships_the_default_critic_and_hook_files(tmp_path):
    """pre-commit installs the package with a plain (non-editable) pip install: the wheel itself must
    carry the default critic, the tokenizer and the pipeline configs, all inside the one top-level
    package `critic`, so installing it can clash with no other package's names."""
    import subprocess
    import sys
    import zipfile

    built = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "-q",
            "-w",
            str(tmp_path),
            str(ROOT),
        ],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert built.returncode == 0, built.stderr
    (wheel,) = tmp_path.glob("critic-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    for role in ("policy", "reward"):
        for file in ("config.json", "model.safetensors", "tokenizer.json"):
            assert f"critic/data/default_critic/{role}/{file}" in names
    assert {"critic/data/tokenizer.json", "critic/rl/configs/tiny.yaml", "critic/commands/review.py"} <= names
    assert {"critic/rl/pipeline.py", "critic/annotation_app/store.py"} <= names
    tops = {name.split("/")[0] for name in names if not name.split("/")[0].endswith(".dist-info")}
    assert tops == {"critic"}
