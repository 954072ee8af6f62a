"""Baselines: findings already known, so `critic review` reports only new ones.

A baseline file is small JSON meant to be committed beside the code:

    {
      "version": 1,
      "findings": [
        {"fingerprint": "3f0c...", "rule": "CRT101", "quote": "for i in range(len(xs) - 1):"},
        {"fingerprint": "9a41...", "rule": "CRT104", "quote": "return cache[key]", "reason": "never empty"}
      ]
    }

`fingerprint` is `Finding.fingerprint`: a hash of the rule and the quoted code with its whitespace
collapsed. Only it is matched; `rule` and `quote` say what it is to someone reading the file (`critic
dismiss FINGERPRINT` writes neither, having no finding to copy them from). There are no line numbers
and no paths, so a known finding stays known when its code moves, and in every file of the
repository that holds the same code. Entries are sorted by fingerprint, so the file diffs cleanly.

An entry with a `reason` (written by `critic dismiss`, an empty string when none was given) is a
dismissal: a person looked at the finding and decided it is not a bug. `critic review
--write-baseline FILE` replaces the other entries with the findings of that run, and keeps every
dismissal.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from critic.core.errors import UserError

if TYPE_CHECKING:  # the review's types only: reading a baseline must not load torch
    from critic.review.reviewer import Finding

VERSION = 1
FINGERPRINT = re.compile(r"^[0-9a-f]{32}$")


@dataclass(frozen=True)
class Entry:
    fingerprint: str
    rule: str | None = None
    quote: str | None = None
    reason: str | None = None  # None: recorded by --write-baseline; a string: dismissed by a person

    @property
    def dismissed(self) -> bool:
        return self.reason is not None

    @staticmethod
    def of(finding: Finding, reason: str | None = None) -> Entry:
        return Entry(finding.fingerprint, finding.rule, " ".join(finding.quote.split()), reason)

    def as_dict(self) -> dict[str, str]:
        fields = {
            "fingerprint": self.fingerprint,
            "rule": self.rule,
            "quote": self.quote,
            "reason": self.reason,
        }
        return {k: v for k, v in fields.items() if v is not None}


def load(path: Path, missing_ok: bool = False) -> dict[str, Entry]:
    """fingerprint -> entry. A missing file is an error (it would report everything it was meant to
    hide) unless `missing_ok`, when it is an empty baseline about to be written."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        if missing_ok:
            return {}
        raise UserError(
            f"{path}: no such baseline file (write one with `critic review --write-baseline {path}`)"
        ) from None
    except (OSError, UnicodeDecodeError) as err:
        raise UserError(f"{path}: cannot read baseline ({getattr(err, 'strerror', None) or err})") from err
    try:
        data = json.loads(text)
    except json.JSONDecodeError as err:
        raise UserError(f"{path}: baseline is not valid JSON ({err})") from err
    if not isinstance(data, dict) or not isinstance(data.get("findings"), list):
        raise UserError(f'{path}: not a critic baseline (expected {{"version": 1, "findings": [...]}})')
    if data.get("version") != VERSION:
        raise UserError(f"{path}: unsupported baseline version {data.get('version')!r} (expected {VERSION})")
    entries: dict[str, Entry] = {}
    for number, item in enumerate(data["findings"], start=1):
        entry = _entry(item)
        if entry is None:
            raise UserError(
                f"{path}: baseline entry {number} is not a finding "
                "(a 32-hex-digit fingerprint, with optional rule, quote and reason strings)"
            )
        entries[entry.fingerprint] = entry
    return entries


def _entry(item: object) -> Entry | None:
    if not isinstance(item, dict) or set(item) - {"fingerprint", "rule", "quote", "reason"}:
        return None
    if not all(isinstance(v, str) for v in item.values()):
        return None
    if not FINGERPRINT.match(item.get("fingerprint", "")):
        return None
    return Entry(item["fingerprint"], item.get("rule"), item.get("quote"), item.get("reason"))


def save(path: Path, entries: Iterable[Entry]) -> None:
    ordered = sorted({e.fingerprint: e for e in entries}.values(), key=lambda e: e.fingerprint)
    data = {"version": VERSION, "findings": [e.as_dict() for e in ordered]}
    try:
        path.write_text(json.dumps(data, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    except OSError as err:
        raise UserError(f"{path}: cannot write baseline ({err.strerror})") from err


def rewrite(path: Path, findings: Iterable[Finding]) -> tuple[int, int]:
    """Record `findings` as the baseline at `path`, keeping its dismissals; (findings, dismissals)."""
    kept = {fp: e for fp, e in load(path, missing_ok=True).items() if e.dismissed}
    recorded = {f.fingerprint: Entry.of(f) for f in findings}
    save(path, [*recorded.values(), *kept.values()])
    return len(recorded.keys() - kept.keys()), len(kept)


def dismiss(path: Path, entries: Iterable[Entry]) -> None:
    """Add dismissals to the baseline at `path` (created if missing). An entry already there keeps what
    the new one leaves out (its rule and quote, and its reason unless a new one is given)."""
    known = load(path, missing_ok=True)
    for new in entries:
        old = known.get(new.fingerprint, Entry(new.fingerprint))
        reason = new.reason if new.reason is not None else old.reason or ""
        known[new.fingerprint] = Entry(new.fingerprint, new.rule or old.rule, new.quote or old.quote, reason)
    save(path, known.values())


def unknown(reports: list[list[Finding]], known: dict[str, Entry]) -> tuple[list[list[Finding]], int]:
    """The findings not in the baseline, per source, and how many were left out."""
    kept = [[f for f in found if f.fingerprint not in known] for found in reports]
    return kept, sum(map(len, reports)) - sum(map(len, kept))
