"""Findings as text for people and machines: the formats ruff and mypy users already parse.

concise  path:line:col: CRT### message [confidence]    (one line each; editors and grep read it)
full     concise plus the quoted lines and the whole comment, and the fix as a diff
json     a list of finding objects
sarif    SARIF 2.1.0, as GitHub code scanning uploads it (a fix as the result's `fixes`)
github   workflow commands, so findings show as annotations on the pull request

A finding without a fix renders as it did before findings had fixes (json: `"fix": null`).

The text formats (concise, full, github) go to terminals and CI logs, and everything in them (file
names, comments, the quoted source) comes from files anyone may have written: every line they print
has its control characters shown as escapes (`printable`), so no ANSI sequence, bidi override or
stray carriage return reaches the reader's terminal. json and sarif need nothing: JSON escapes every
control character (and, as written here, every non-ASCII one), and their readers want the exact text.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from pathlib import Path

from critic.core.critique import code_lines
from critic.core.rules import RULES, RULES_BY_CODE
from critic.review.fixes import Fix, offsets, region
from critic.review.reviewer import Finding, SourceFile

SARIF_SCHEMA = "https://json.schemastore.org/sarif-2.1.0.json"
INFORMATION_URI = "https://github.com/critic-dev/critic"
# A one-line fix summary ("replace `a < b` with `a <= b`") quotes code up to this long; longer or
# multi-line fixes are only shown in full (a diff) and in SARIF.
FIX_SUMMARY_CHARS = 60
_LINE_END = re.compile(r"\r\n|\r")
_NEWLINE = re.compile(r"\r\n|\r|\n")
# C0 and C1 controls but tab (ESC starts ANSI sequences), line and paragraph separators, and the bidi
# controls of "Trojan Source" (CVE-2021-42574): embeddings, overrides, isolates and marks.
_UNPRINTABLE = re.compile(
    "[\x00-\x08\x0a-\x1f\x7f-\x9f\u061c\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069]"
)


def render(kind: str, findings: Sequence[Finding], sources: Sequence[SourceFile], version: str) -> str:
    texts = {s.path: s.text for s in sources}
    if kind == "concise":
        return "".join(printable(concise_line(f)) + "\n" for f in findings)
    if kind == "full":
        return "".join(_full(f, texts.get(f.path, "")) for f in findings)
    if kind == "json":
        return json.dumps([as_dict(f) for f in findings], indent=2) + "\n"
    if kind == "sarif":
        return json.dumps(sarif(findings, version, texts), indent=2) + "\n"
    if kind == "github":
        return "".join(printable(github_line(f, texts.get(f.path))) + "\n" for f in findings)
    raise ValueError(f"unknown format {kind!r}")


def printable(line: str) -> str:
    """`line` with each control character (a newline too: this is one line) written as its Python
    escape, `\\x1b` or `\\u202e`: the reader sees that it is there, and their terminal does not act on it."""
    return _UNPRINTABLE.sub(lambda m: ascii(m.group())[1:-1], line)


def concise_line(f: Finding) -> str:
    return f"{f.path}:{f.line}:{f.column}: {f.rule} {f.message} [{f.score:.2f}]"


def _full(f: Finding, text: str) -> str:
    lines = code_lines(text)
    diff = None if f.fix is None else fix_diff(f.fix, text)
    last = f.end_line if diff is None else max(f.end_line, diff[0] + max(len(diff[1]), len(diff[2])) - 1)
    width = len(str(last))
    out = [concise_line(f), f"{'':>{width}} |"]
    for number in range(f.line, f.end_line + 1):
        out.append(f"{number:>{width}} | {lines[number - 1] if number <= len(lines) else ''}")
    out.append(f"{'':>{width}} |")
    out.extend(f"{'':>{width}} = {line}" if line else f"{'':>{width}} =" for line in f.comment.split("\n"))
    if f.fix is not None and diff is None:  # the region is not in the text we have: show the new code
        out.append(f"{'':>{width}} = fix: replace {f.fix.where} with:")
        out.extend(_gutter("", width, "+", line) for line in _split(f.fix.text))
    elif diff is not None:
        first, old, new = diff
        out.append(f"{'':>{width}} = fix:")
        out.extend(_gutter(first + i, width, "-", line) for i, line in enumerate(old))
        out.extend(_gutter(first + i, width, "+", line) for i, line in enumerate(new))
    return "\n".join(printable(line) for line in out) + "\n\n"


def _gutter(number: int | str, width: int, mark: str, line: str) -> str:
    return f"{number:>{width}} {mark} {line}" if line else f"{number:>{width}} {mark}"


def _split(text: str) -> list[str]:
    """Lines of a piece of code, a line ending at its end giving a last empty line (unlike code_lines)."""
    return _LINE_END.sub("\n", text).split("\n")


def fix_diff(fix: Fix, text: str) -> tuple[int, list[str], list[str]] | None:
    """(first line number, old lines, new lines) of the lines the fix changes, lines it leaves as they
    were trimmed from both ends; None when the fix's region is not in `text`."""
    try:
        start, end = offsets(text, fix)
    except ValueError:
        return None
    first = start - (fix.column - 1)
    # The end of the fix's last line (before its line ending): whole lines on both sides.
    line_end = _NEWLINE.search(text, end)
    last = line_end.start() if line_end else len(text)
    old, new = _split(text[first:last]), _split(text[first:start] + fix.text + text[end:last])
    number = fix.line
    while old and new and old[0] == new[0] and len(old) + len(new) > 2:
        old, new, number = old[1:], new[1:], number + 1
    while old and new and old[-1] == new[-1] and len(old) + len(new) > 2:
        old, new = old[:-1], new[:-1]
    return number, old, new


def fix_summary(fix: Fix, text: str | None) -> str | None:
    """The fix in words: replace `a < b` with `a <= b` (or insert / delete). None when either side is
    long or spans lines, or the replaced code is not known: a diff (--format full) says it better."""
    if text is None:
        return None
    try:
        old = region(text, fix)
    except ValueError:
        return None
    new = fix.text
    if not (old or new) or any(len(s) > FIX_SUMMARY_CHARS or "\n" in s or "\r" in s for s in (old, new)):
        return None
    if not old:
        return f"insert `{new}`"
    return f"delete `{old}`" if not new else f"replace `{old}` with `{new}`"


def as_dict(f: Finding) -> dict:
    return {
        "path": f.path,
        "line": f.line,
        "column": f.column,
        "end_line": f.end_line,
        "end_column": f.end_column,
        "rule": f.rule,
        "rule_name": RULES_BY_CODE[f.rule].name,
        "message": f.message,
        "comment": f.comment,
        "quote": f.quote,
        "score": round(f.score, 4),
        "fingerprint": f.fingerprint,
        "fix": None if f.fix is None else f.fix.as_dict(),
    }


def sarif(findings: Sequence[Finding], version: str, texts: Mapping[str, str] | None = None) -> dict:
    """The SARIF log; `texts` (path -> source) words a fix's description with the code it replaces."""
    texts = texts or {}
    index = {rule.code: i for i, rule in enumerate(RULES)}
    rules = [
        {
            "id": rule.code,
            "name": rule.name,
            "shortDescription": {"text": rule.summary},
            "fullDescription": {"text": rule.summary},
            "defaultConfiguration": {"level": "warning"},
            "properties": {"tags": ["correctness", "llm-critic"]},
        }
        for rule in RULES
    ]
    results = [
        {
            "ruleId": f.rule,
            "ruleIndex": index[f.rule],
            "level": "warning",
            "message": {"text": f.comment or f.message},
            "locations": [
                {
                    "physicalLocation": {
                        "artifactLocation": {"uri": _uri(f.path)},
                        "region": {
                            "startLine": f.line,
                            "startColumn": f.column,
                            "endLine": f.end_line,
                            "endColumn": max(f.end_column, 1),
                            "snippet": {"text": f.quote},
                        },
                    }
                }
            ],
            "partialFingerprints": {"critic/v1": f.fingerprint},
            "properties": {"confidence": round(f.score, 4)},
        }
        | ({} if f.fix is None else {"fixes": [_sarif_fix(f, f.fix, texts.get(f.path))]})
        for f in findings
    ]
    return {
        "$schema": SARIF_SCHEMA,
        "version": "2.1.0",
        "runs": [
            {
                "tool": {
                    "driver": {
                        "name": "critic",
                        "informationUri": INFORMATION_URI,
                        "version": version,
                        "semanticVersion": version,
                        "rules": rules,
                    }
                },
                "results": results,
            }
        ],
    }


def _sarif_fix(f: Finding, fix: Fix, text: str | None) -> dict:
    """SARIF 2.1.0's fix object (3.55): one artifact change replacing the fix's region."""
    summary = fix_summary(fix, text)
    description = summary[0].upper() + summary[1:] if summary else f"Fix for {f.rule}: {f.message}"
    return {
        "description": {"text": description},
        "artifactChanges": [
            {
                "artifactLocation": {"uri": _uri(f.path)},
                "replacements": [
                    {
                        "deletedRegion": {
                            "startLine": fix.line,
                            "startColumn": fix.column,
                            "endLine": fix.end_line,
                            "endColumn": fix.end_column,
                        },
                        "insertedContent": {"text": fix.text},
                    }
                ],
            }
        ],
    }


def _uri(path: str) -> str:
    """Repository-relative forward-slash URIs, as code scanning matches them to files."""
    p = Path(path)
    if p.is_absolute():
        try:
            p = p.relative_to(Path.cwd())
        except ValueError:
            return p.as_uri()
    return p.as_posix()


def github_line(f: Finding, text: str | None = None) -> str:
    """A workflow command; with the file's `text`, a fix is worded with the code it replaces."""
    props = {
        "file": f.path,
        "line": f.line,
        "col": f.column,
        "endLine": f.end_line,
        "endColumn": f.end_column,
        "title": f"critic ({f.rule})",
    }
    fields = ",".join(f"{k}={_escape_property(str(v))}" for k, v in props.items())
    note = ""
    if f.fix is not None:
        summary = fix_summary(f.fix, text)
        note = f" Fix: {summary}." if summary else " Fix: see --format full."
    return f"::error {fields}::{_escape_data(f'{f.rule} {f.message}{note} [{f.score:.2f}]')}"


def _escape_data(text: str) -> str:
    return text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def _escape_property(text: str) -> str:
    return _escape_data(text).replace(":", "%3A").replace(",", "%2C")
