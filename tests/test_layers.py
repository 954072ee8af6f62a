"""Imports go down the layers, never up or sideways, so each layer can be read, tested and reused
without the ones above it. The layers of the installed package `critic`, bottom first:

    critic.core          formats: the critique and prompt, special tokens, sources, rule codes, errors
    critic.model         the Gemma 2 model
    critic.datagen       tampering, the sandbox, tampered datasets, the rubric rater
    critic.inference     sampling, quote-constrained decoding, FSBS, calibration
    critic.review        `critic review`: files, chunks, findings, settings, reports
    critic.evaluate      `critic eval`: the review operating point, baselines, the ladder
    critic.rl | critic.annotation_app    training | annotation (neither imports the other)
    critic.cli | critic.commands         the command line

rl/ and annotation_app/ sit at the repository's top level and install as critic.rl and
critic.annotation_app. Imports inside functions count too: a lazy import is still a dependency.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
FOLDERS = {"critic": "critic", "rl": "critic.rl", "annotation_app": "critic.annotation_app"}
# Bottom first; each layer holds one or more groups, a group one or more module prefixes.
LAYERS: list[list[tuple[str, ...]]] = [
    [("critic.core",)],
    [("critic.model",)],
    [("critic.datagen",)],
    [("critic.inference",)],
    [("critic.review",)],
    [("critic.evaluate",)],
    [("critic.rl",), ("critic.annotation_app",)],
    [("critic.cli", "critic.commands")],
]
GROUPS = {group: level for level, groups in enumerate(LAYERS) for group in groups}


def modules() -> dict[str, Path]:
    """Installed module name -> source file, for every module of the package."""
    found = {}
    for folder, package in FOLDERS.items():
        for path in sorted((ROOT / folder).rglob("*.py")):
            parts = path.relative_to(ROOT / folder).with_suffix("").parts
            parts = parts[:-1] if parts[-1] == "__init__" else parts
            found[".".join((package, *parts))] = path
    return found


def group_of(module: str) -> tuple[str, ...] | None:
    """The layer group a module belongs to, or None for `critic` itself and critic.data."""
    for group in GROUPS:
        if any(module == prefix or module.startswith(prefix + ".") for prefix in group):
            return group
    return None


def imports(path: Path, module: str) -> list[tuple[int, str]]:
    """(line, imported module) for every import in the file, at any depth; relative imports resolved."""
    found = []
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            found += [(node.lineno, f"{base}.{alias.name}") for alias in node.names]
    return found


def violations() -> list[str]:
    known = modules()
    bad = []
    for module, path in known.items():
        source = group_of(module)
        for line, target in imports(path, module):
            where = f"{path.relative_to(ROOT)}:{line}: {module} imports {target}"
            if target.split(".")[0] in ("rl", "annotation_app"):
                bad.append(f"{where} (import it as critic.{target})")
                continue
            if not target.startswith("critic.") or source is None:
                continue
            to = group_of(target)
            if to is None or to == source:
                continue
            if GROUPS[to] > GROUPS[source]:
                bad.append(f"{where} (up: {to[0]} is above {source[0]})")
            elif GROUPS[to] == GROUPS[source]:
                bad.append(f"{where} (sideways: {to[0]} beside {source[0]})")
    return bad


def test_imports_only_go_down_the_layers():
    assert violations() == []


def test_every_module_has_a_layer():
    unplaced = [m for m in modules() if group_of(m) is None and m not in ("critic", "critic.data")]
    assert unplaced == []


def test_the_check_sees_up_sideways_and_lazy_imports(tmp_path, monkeypatch):
    """The checker itself: an upward import inside a function and a sideways import are both caught."""
    package = tmp_path / "critic"
    for folder in ("core", "review", "inference"):
        (package / folder).mkdir(parents=True)
        (package / folder / "__init__.py").write_text("")
    (package / "__init__.py").write_text("")
    (package / "core" / "a.py").write_text("def f():\n    from critic.review import reviewer\n")
    (package / "inference" / "b.py").write_text("from critic.core import a\nfrom ..core import a as c\n")
    (tmp_path / "rl").mkdir()
    (tmp_path / "rl" / "x.py").write_text("from critic.evaluate import y\nimport annotation_app.db\n")
    (tmp_path / "annotation_app").mkdir()
    (tmp_path / "annotation_app" / "z.py").write_text("from critic.rl import x\n")
    monkeypatch.setattr(__import__(__name__), "ROOT", tmp_path)
    found = violations()
    assert any("critic.core.a imports critic.review.reviewer (up" in v for v in found)
    assert any("critic.annotation_app.z imports critic.rl.x (sideways" in v for v in found)
    assert any("import it as critic.annotation_app.db" in v for v in found)
    assert not any("critic.inference.b" in v for v in found)
    assert not any("critic.rl.x imports critic.evaluate" in v for v in found)
