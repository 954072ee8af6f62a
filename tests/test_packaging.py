"""The wheel must carry every package: pyproject lists them by hand (data/ is mapped to critic.data)."""

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
    for top in tops:
        for init in top.rglob("__init__.py"):
            relative = init.parent.relative_to(ROOT).as_posix()
            found.add(mapped.get(relative, relative.replace("/", ".")))
    assert found == listed
