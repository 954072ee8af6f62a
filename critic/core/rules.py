"""Rule codes for findings: stable ids (CRT###) that CI tools, SARIF and suppressions key on.

A critic writes free text, so a finding's rule is read from its comment: the first rule whose pattern
matches names the kind of bug; anything else is CRT001. The codes follow the bug kinds the critic is
trained on (BUG_KINDS in critic.datagen.finders), grouped the way a reviewer would name them; a
finding has only its text, so nothing here maps from bug kinds. Codes are never reused.
"""

from __future__ import annotations

import re
from dataclasses import dataclass


@dataclass(frozen=True)
class Rule:
    code: str
    name: str  # kebab-case, as in SARIF rule names
    summary: str
    pattern: re.Pattern[str] | None


def _rule(code: str, name: str, summary: str, pattern: str | None) -> Rule:
    return Rule(code, name, summary, re.compile(pattern, re.IGNORECASE) if pattern else None)


RULES: tuple[Rule, ...] = (
    _rule(
        "CRT101", "off-by-one", "Off-by-one index, slice, range or boundary.", r"off[- ]by[- ]one|boundary"
    ),
    _rule(
        "CRT102",
        "inverted-condition",
        "A condition tests the opposite of what is meant (comparison, negation, boolean operator).",
        r"invert|negat|\bopposite\b|\bnot\b`?\s+(?:be|needed)|boolean operator|comparison",
    ),
    _rule("CRT103", "wrong-operator", "An arithmetic operator is wrong.", r"\boperator\b"),
    _rule(
        "CRT104",
        "wrong-name",
        "A variable, method or builtin is used where another was meant.",
        r"wrong (?:variable|method|builtin|function)|should be `\.?\w+(?:\(\))?`|instead of `\w+`",
    ),
    _rule(
        "CRT105", "argument-order", "Arguments are passed in the wrong order.", r"argument|wrong order|swapp"
    ),
    _rule(
        "CRT106", "wrong-constant", "A literal or initial value is wrong.", r"constant|literal|initiali[sz]"
    ),
    _rule("CRT107", "sort-order", "A sort runs in the wrong direction.", r"\bsort|descending|ascending"),
    _rule(
        "CRT108",
        "wrong-return",
        "A function returns the wrong value or misses a statement it needs.",
        r"\breturn|missing|never|dropped|removed",
    ),
    _rule("CRT001", "possible-bug", "The critic suspects a bug here.", None),
)
RULES_BY_CODE = {rule.code: rule for rule in RULES}


def classify(comment: str) -> Rule:
    for rule in RULES:
        if rule.pattern is None or rule.pattern.search(comment):
            return rule
    raise AssertionError("unreachable: the last rule matches everything")
