"""Every report format with and without a fix: a finding without one renders as it always did, and one
with a fix shows it the way each format's readers expect (a diff, a JSON object, SARIF's `fixes`, a
short phrase in a GitHub annotation)."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import pytest

from critic.review.fixes import Fix
from critic.review.report import render
from critic.review.reviewer import Finding, SourceFile

SCHEMA = Path(__file__).parent / "data" / "sarif-2.1.0-github.schema.json"
CODE = "def f(a, b):\n    if a < b:\n        return 1\n    return 2\n"
SOURCES = [SourceFile("pkg/m.py", CODE)]

# SARIF 2.1.0's fix, artifactChange, replacement, region and artifactContent objects as the OASIS
# schema (sarif-schema-2.1.0.json) defines them; the repository's schema covers only what GitHub
# requires, which says nothing about fixes.
SARIF_FIX = {
    "$schema": "http://json-schema.org/draft-07/schema#",
    "type": "object",
    "required": ["artifactChanges"],
    "additionalProperties": False,
    "properties": {
        "description": {"$ref": "#/definitions/message"},
        "artifactChanges": {
            "type": "array",
            "minItems": 1,
            "uniqueItems": True,
            "items": {"$ref": "#/definitions/artifactChange"},
        },
        "properties": {"type": "object"},
    },
    "definitions": {
        "message": {
            "type": "object",
            "properties": {
                "text": {"type": "string"},
                "markdown": {"type": "string"},
                "id": {"type": "string"},
            },
            "anyOf": [{"required": ["text"]}, {"required": ["id"]}],
        },
        "artifactChange": {
            "type": "object",
            "required": ["artifactLocation", "replacements"],
            "additionalProperties": False,
            "properties": {
                "artifactLocation": {
                    "type": "object",
                    "properties": {"uri": {"type": "string", "format": "uri-reference"}},
                },
                "replacements": {
                    "type": "array",
                    "minItems": 1,
                    "items": {"$ref": "#/definitions/replacement"},
                },
                "properties": {"type": "object"},
            },
        },
        "replacement": {
            "type": "object",
            "required": ["deletedRegion"],
            "additionalProperties": False,
            "properties": {
                "deletedRegion": {"$ref": "#/definitions/region"},
                "insertedContent": {
                    "type": "object",
                    "properties": {"text": {"type": "string"}, "binary": {"type": "string"}},
                },
                "properties": {"type": "object"},
            },
        },
        "region": {
            "type": "object",
            "properties": {
                "startLine": {"type": "integer", "minimum": 1},
                "startColumn": {"type": "integer", "minimum": 1},
                "endLine": {"type": "integer", "minimum": 1},
                "endColumn": {"type": "integer", "minimum": 1},
                "charOffset": {"type": "integer", "minimum": -1},
                "charLength": {"type": "integer", "minimum": 0},
            },
        },
    },
}


def finding(fix: Fix | None = None, **changes) -> Finding:
    values = dict(
        path="pkg/m.py",
        line=2,
        column=8,
        end_line=2,
        end_column=13,
        rule="CRT102",
        message="The comparison is inverted.",
        comment="The comparison is inverted.\n\nIt returns 1 when `a` is the larger.",
        quote="a < b",
        score=0.5237,
        fix=fix,
    )
    return Finding(**(values | changes))


FLIP = Fix(2, 10, 2, 11, ">")  # `<` in `a < b`


def test_without_a_fix_every_format_is_as_before():
    f = finding()
    assert (
        render("concise", [f], SOURCES, "1.0") == "pkg/m.py:2:8: CRT102 The comparison is inverted. [0.52]\n"
    )
    assert render("full", [f], SOURCES, "1.0") == (
        "pkg/m.py:2:8: CRT102 The comparison is inverted. [0.52]\n"
        "  |\n"
        "2 |     if a < b:\n"
        "  |\n"
        "  = The comparison is inverted.\n"
        "  =\n"
        "  = It returns 1 when `a` is the larger.\n\n"
    )
    assert render("github", [f], SOURCES, "1.0") == (
        "::error file=pkg/m.py,line=2,col=8,endLine=2,endColumn=13,title=critic (CRT102)"
        "::CRT102 The comparison is inverted. [0.52]\n"
    )
    (entry,) = json.loads(render("json", [f], SOURCES, "1.0"))
    assert entry["fix"] is None and list(entry)[-2:] == ["fingerprint", "fix"]
    (result,) = json.loads(render("sarif", [f], SOURCES, "1.0"))["runs"][0]["results"]
    assert "fixes" not in result


def test_concise_never_shows_the_fix():
    assert render("concise", [finding(FLIP)], SOURCES, "1") == render("concise", [finding()], SOURCES, "1")


def test_full_shows_the_fix_as_a_diff_of_the_lines_it_changes():
    out = render("full", [finding(FLIP)], SOURCES, "1.0")
    assert out == render("full", [finding()], SOURCES, "1.0")[:-1] + (
        "  = fix:\n2 -     if a < b:\n2 +     if a > b:\n\n"
    )


@pytest.mark.parametrize(
    ("fix", "diff"),
    [
        # A whole line removed: no new line.
        (Fix(3, 1, 4, 1, ""), ["3 -         return 1"]),
        # A line inserted before line 3: only the new line, numbered where it lands.
        (Fix(3, 1, 3, 1, "        print(a)\n"), ["3 +         print(a)"]),
        # One line becomes two.
        (
            Fix(3, 16, 3, 17, "a\n        # a is larger"),
            ["3 -         return 1", "3 +         return a", "4 +         # a is larger"],
        ),
        # Two lines become one (a region over a line ending).
        (
            Fix(2, 5, 3, 17, "return int(a < b)"),
            ["2 -     if a < b:", "3 -         return 1", "2 +     return int(a < b)"],
        ),
        # A line emptied stays, empty: no trailing blank after the mark.
        (Fix(3, 1, 3, 17, ""), ["3 -         return 1", "3 +"]),
    ],
)
def test_full_diffs_of_multi_line_fixes(fix, diff):
    out = render("full", [finding(fix)], SOURCES, "1.0")
    lines = out.split("\n")
    at = lines.index("  = fix:")
    assert lines[at + 1 : -2] == diff and lines[-2:] == ["", ""]


def test_full_keeps_the_gutter_one_width_when_the_fix_reaches_line_10():
    code = "".join(f"x{i} = {i}\n" for i in range(1, 10))
    fix = Fix(9, 7, 9, 7, "\ny = 0")  # a line 10 after line 9
    f = finding(fix, line=9, end_line=9, column=1, end_column=7, quote="x9 = 9", comment="Missing y.")
    out = render("full", [f], [SourceFile("pkg/m.py", code)], "1.0")
    assert out.split("\n")[1:] == [
        "   |",
        " 9 | x9 = 9",
        "   |",
        "   = Missing y.",
        "   = fix:",
        "10 + y = 0",
        "",
        "",
    ]


def test_full_on_crlf_code_and_a_fix_not_in_the_code():
    crlf = [SourceFile("pkg/m.py", CODE.replace("\n", "\r\n"))]
    assert render("full", [finding(FLIP)], crlf, "1") == render("full", [finding(FLIP)], SOURCES, "1")
    # The file changed or is unknown: the new code, and where it goes.
    out = render("full", [finding(Fix(2, 8, 2, 13, "b < a"), line=1, end_line=1)], [], "1")
    assert out.endswith("= fix: replace 2:8-2:13 with:\n  + b < a\n\n")


def test_json_has_the_fix():
    (entry,) = json.loads(render("json", [finding(FLIP)], SOURCES, "1.0"))
    assert entry["fix"] == {"line": 2, "column": 10, "end_line": 2, "end_column": 11, "text": ">"}
    assert {k: v for k, v in entry.items() if k != "fix"} == {
        k: v for k, v in json.loads(render("json", [finding()], SOURCES, "1.0"))[0].items() if k != "fix"
    }


def test_sarif_fixes_are_valid_sarif():
    fixes = [FLIP, Fix(3, 1, 4, 1, ""), Fix(1, 1, 1, 1, "import os\n")]
    found = [finding(FLIP), finding(), finding(Fix(3, 1, 4, 1, ""), line=3, end_line=3, quote="return 1")]
    found.append(finding(fixes[2], line=1, end_line=1, quote="def f(a, b):"))
    log = json.loads(render("sarif", found, SOURCES, "1.0"))
    jsonschema.validate(log, json.loads(SCHEMA.read_text()))
    results = log["runs"][0]["results"]
    assert "fixes" not in results[1]
    for result in (results[0], results[2], results[3]):
        (fix,) = result["fixes"]
        jsonschema.validate(fix, SARIF_FIX)
    (change,) = results[0]["fixes"][0]["artifactChanges"]
    assert change["artifactLocation"]["uri"] == "pkg/m.py"
    assert change["replacements"] == [
        {
            "deletedRegion": {"startLine": 2, "startColumn": 10, "endLine": 2, "endColumn": 11},
            "insertedContent": {"text": ">"},
        }
    ]
    assert results[0]["fixes"][0]["description"]["text"] == "Replace `<` with `>`"
    assert results[2]["fixes"][0]["description"]["text"].startswith("Fix for CRT102: ")  # spans a line
    assert results[3]["fixes"][0]["description"]["text"].startswith("Fix for CRT102: ")
    assert results[2]["fixes"][0]["artifactChanges"][0]["replacements"][0]["insertedContent"] == {"text": ""}


def test_github_says_the_fix_in_one_escaped_line():
    (line,) = render("github", [finding(FLIP)], SOURCES, "1.0").splitlines()
    assert line.endswith("::CRT102 The comparison is inverted. Fix: replace `<` with `>`. [0.52]")
    # Insertions and deletions are worded as such.
    code = "x = a % 2\n"
    src = [SourceFile("pkg/m.py", code)]
    insert = finding(Fix(1, 10, 1, 10, "  # 100%"), line=1, end_line=1)
    delete = finding(Fix(1, 6, 1, 10, ""), line=1, end_line=1)
    out = render("github", [insert, delete], src, "1.0").splitlines()
    assert out[0].endswith("inverted. Fix: insert `  # 100%25`. [0.52]")
    assert out[1].endswith("inverted. Fix: delete ` %25 2`. [0.52]")


@pytest.mark.parametrize(
    "fix",
    [
        Fix(3, 1, 4, 1, ""),  # the replaced code spans lines
        Fix(2, 5, 2, 5, "while True:\n        pass\n    "),  # the new code does
        Fix(2, 8, 2, 13, "x" * 61),  # too long to read in an annotation
        Fix(9, 1, 9, 1, "x"),  # not in the code we have
    ],
)
def test_github_points_long_fixes_to_the_full_format(fix):
    (line,) = render("github", [finding(fix)], SOURCES, "1.0").splitlines()
    assert line.endswith("::CRT102 The comparison is inverted. Fix: see --format full. [0.52]")
    assert "%0A" not in line and "\n" not in line
    (unknown,) = render("github", [finding(FLIP)], [], "1.0").splitlines()  # no source: no quote
    assert unknown.endswith("Fix: see --format full. [0.52]")
