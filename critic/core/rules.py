"""Rule codes for findings: stable ids (CRT###) that CI tools, SARIF and suppressions key on.

The codes follow the bug kinds the critic is trained on (BUG_KINDS in critic.datagen.finders), grouped
the way a reviewer would name them. A finding that proposes a repair knows the kind of bug the repair
undoes, and its rule is that kind's (`for_kind`): it depends on what the repair changes, never on where
or on the wording, so a baseline keeps matching the finding after unrelated edits. A free-text
critique (a fluent checkpoint's, with `--comments free`) has only its text, so its rule is read from
it (`classify`): the first rule whose pattern matches; anything else is CRT001. Codes are never reused.
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
    kinds: tuple[str, ...] = ()  # the bug kinds (critic.datagen.finders.BUG_KINDS) this rule names


def _rule(code: str, name: str, summary: str, pattern: str | None, kinds: tuple[str, ...] = ()) -> Rule:
    return Rule(code, name, summary, re.compile(pattern, re.IGNORECASE) if pattern else None, kinds)


RULES: tuple[Rule, ...] = (
    _rule(
        "CRT101",
        "off-by-one",
        "Off-by-one index, slice, range or boundary.",
        r"off[- ]by[- ]one|boundary",
        ("off_by_one_range", "off_by_one_index_or_slice", "loosen_comparison"),
    ),
    _rule(
        "CRT102",
        "inverted-condition",
        "A condition tests the opposite of what is meant (comparison, negation, boolean operator).",
        r"invert|negat|\bopposite\b|\bnot\b`?\s+(?:be|needed)|boolean operator|comparison",
        ("flip_comparison", "swap_boolean_operator", "negation"),
    ),
    _rule(
        "CRT103",
        "wrong-operator",
        "An arithmetic operator is wrong.",
        r"\boperator\b",
        ("swap_arithmetic_operator",),
    ),
    _rule(
        "CRT104",
        "wrong-name",
        "A variable, method or builtin is used where another was meant.",
        r"wrong (?:variable|method|builtin|function)|should be `\.?\w+(?:\(\))?`|instead of `\w+`",
        ("wrong_variable", "wrong_builtin", "wrong_method"),
    ),
    _rule(
        "CRT105",
        "argument-order",
        "Arguments are passed in the wrong order.",
        r"argument|wrong order|swapp",
        ("swap_call_arguments",),
    ),
    _rule(
        "CRT106",
        "wrong-constant",
        "A literal or initial value is wrong.",
        r"constant|literal|initiali[sz]",
        ("wrong_constant",),
    ),
    _rule(
        "CRT107",
        "sort-order",
        "A sort runs in the wrong direction.",
        r"\bsort|descending|ascending",
        ("reverse_sort_order",),
    ),
    _rule(
        "CRT108",
        "wrong-return",
        "A function returns the wrong value or misses a statement it needs.",
        r"\breturn|missing|never|dropped|removed",
        ("wrong_return_value", "remove_statement"),
    ),
    _rule("CRT001", "possible-bug", "The critic suspects a bug here.", None),
)
RULES_BY_CODE = {rule.code: rule for rule in RULES}
_RULES_BY_KIND = {kind: rule for rule in RULES for kind in rule.kinds}


def for_kind(kind: str) -> Rule:
    """The rule of a bug kind; CRT001 for a kind no rule names."""
    return _RULES_BY_KIND.get(kind, RULES_BY_CODE["CRT001"])


def classify(comment: str) -> Rule:
    for rule in RULES:
        if rule.pattern is None or rule.pattern.search(comment):
            return rule
    raise AssertionError("unreachable: the last rule matches everything")
