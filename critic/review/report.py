"""Findings as text for people and machines: the formats ruff and mypy users already parse.

concise  path:line:col: CRT### message [confidence]    (one line each; editors and grep read it)
full     concise plus the quoted lines and the whole comment
json     a list of finding objects
sarif    SARIF 2.1.0, as GitHub code scanning uploads it
github   workflow commands, so findings show as annotations on the pull request
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

from critic.core.critique import code_lines
from critic.core.rules import RULES, RULES_BY_CODE
from critic.review.reviewer import Finding, SourceFile

SARIF_SCHEMA = "https://json.schemastore.org/sarif-2.1.0.json"
INFORMATION_URI = "https://github.com/critic-dev/critic"


def render(kind: str, findings: Sequence[Finding], sources: Sequence[SourceFile], version: str) -> str:
    if kind == "concise":
        return "".join(concise_line(f) + "\n" for f in findings)
    if kind == "full":
        texts = {s.path: s.text for s in sources}
        return "".join(_full(f, texts.get(f.path, "")) for f in findings)
    if kind == "json":
        return json.dumps([as_dict(f) for f in findings], indent=2) + "\n"
    if kind == "sarif":
        return json.dumps(sarif(findings, version), indent=2) + "\n"
    if kind == "github":
        return "".join(github_line(f) + "\n" for f in findings)
    raise ValueError(f"unknown format {kind!r}")


def concise_line(f: Finding) -> str:
    return f"{f.path}:{f.line}:{f.column}: {f.rule} {f.message} [{f.score:.2f}]"


def _full(f: Finding, text: str) -> str:
    lines = code_lines(text)
    width = len(str(f.end_line))
    out = [concise_line(f), f"{'':>{width}} |"]
    for number in range(f.line, f.end_line + 1):
        out.append(f"{number:>{width}} | {lines[number - 1] if number <= len(lines) else ''}")
    out.append(f"{'':>{width}} |")
    out.extend(f"{'':>{width}} = {line}" if line else f"{'':>{width}} =" for line in f.comment.split("\n"))
    return "\n".join(out) + "\n\n"


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
    }


def sarif(findings: Sequence[Finding], version: str) -> dict:
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


def _uri(path: str) -> str:
    """Repository-relative forward-slash URIs, as code scanning matches them to files."""
    p = Path(path)
    if p.is_absolute():
        try:
            p = p.relative_to(Path.cwd())
        except ValueError:
            return p.as_uri()
    return p.as_posix()


def github_line(f: Finding) -> str:
    props = {
        "file": f.path,
        "line": f.line,
        "col": f.column,
        "endLine": f.end_line,
        "endColumn": f.end_column,
        "title": f"critic ({f.rule})",
    }
    fields = ",".join(f"{k}={_escape_property(str(v))}" for k, v in props.items())
    return f"::error {fields}::{_escape_data(f'{f.rule} {f.message} [{f.score:.2f}]')}"


def _escape_data(text: str) -> str:
    return text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def _escape_property(text: str) -> str:
    return _escape_data(text).replace(":", "%3A").replace(",", "%2C")
