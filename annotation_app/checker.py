"""*Check against critic* and *Run tests*: the two checks a tamperer runs before submitting.

The check is the CriticGPT adversarial test: the current critic reviews the tampered code as `critic
review` does by default, with the repair search at the review's min-score and max-findings, and the
rubric rater, which knows the bug, says whether that critique included it. A bug it misses is
adversarial. The repair search has no randomness, so it runs once (CHECK_SEARCHES): a second search
would only repeat the first. Its cost is that search: every candidate repair scored by the policy in
packed rows, one forward pass per row, no sampling and no reward model (bench/annotation_check.py: about
1 s warm for a 30-line function on 2 quiet cores, where the old check's three FSBS searches took about
20 s; issue 26 asks at most 10 s). Annotators read the critique (the assisted writers' start, the model
critique on compare cards), so it is written from quotes of the code and the bug taxonomy's comments,
never from the model's free text. torch is imported only when a check runs, so the store and the API
start without it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from sqlalchemy import case, func
from sqlmodel import col

from critic.annotation_app.auth import AppError
from critic.annotation_app.db import Critique
from critic.core.critique import NO_BUGS, format_critique, parse_critique
from critic.datagen.rating import gold_critique, rate_critique

if TYPE_CHECKING:
    from collections.abc import Callable

    from critic.inference.fsbs import Critic
    from critic.inference.localizer import LocatedBug
    from critic.review.settings import ReviewSettings

CHECK_SEARCHES = 1
SEARCH = "repairs"  # the `search` of a check's stored settings (critic.review.settings.SEARCHES)
TEST_TIMEOUT_S = 5.0


@dataclass
class CheckResult:
    """Per search (CHECK_SEARCHES of them): its critique and whether it caught the bug."""

    caught: list[bool]
    critiques: list[str]
    adversarial: bool  # a search missed the bug
    # the search, its min-score and max-findings, and the model name: stored with each model critique
    settings: dict[str, Any]
    code: str = ""  # the code that was checked: a submission of other code needs a new check


@dataclass
class TestResult:
    original_passed: bool
    tampered_failed: bool
    detail: str  # one line per run, for the tamperer

    @property
    def verified(self) -> bool:
        """The tests tell the tampered code from the original: a real behaviour change."""
        return self.original_passed and self.tampered_failed


def caught(critique: str, code: str, bug_lines: list[int], description: str) -> bool:
    """Whether the rubric rater (who knows the bug) finds the bug included in `critique`
    (critic.datagen.rating.Rating.caught: CBI at least CAUGHT_CBI)."""
    try:
        return rate_critique(critique, code, bug_lines, description).caught
    except ValueError as err:
        raise AppError(str(err)) from err


def search_of(settings: dict[str, Any] | None) -> str | None:
    """Which search wrote a stored model critique (its `fsbs_settings`): "repairs", or "fsbs" for a check
    made before the repair search (FSBS's settings and seeds); None for a critique no search wrote."""
    if not settings:
        return None
    if "search" in settings:
        return str(settings["search"])
    return "fsbs" if "seeds" in settings else None


def shown_to_people():
    """The SQL filter on `Critique` rows that every reader building what a person sees applies (compare
    cards, their ratings, the assisted writers' start): `search_of(fsbs_settings) != "fsbs"`. FSBS's
    critiques, from a 2M-parameter critic's free text, are word salad; their rows and ratings stay, for
    exports and the per-origin report, but nobody is shown them again. One SQL twin of `search_of`,
    so the compare gate can count in the claim query what the card will show."""
    settings = col(Critique.fsbs_settings)
    search = func.coalesce(
        settings["search"].as_string(), case((settings["seeds"].as_string().is_not(None), "fsbs"), else_="")
    )
    return search != "fsbs"


def repair_critique(code: str, found: Sequence[LocatedBug], min_score: float, max_findings: int) -> str:
    """The critique of what `critic review` would report from the repair search's suspect lines: the
    most confident that reach `min_score`, at most `max_findings`, none on lines a more confident one
    holds; in code order, each quoting its lines as the gold critique quotes bug lines, with its
    template comment and the fix in words. NO_BUGS when none is left."""
    from critic.review.fixes import fix_at
    from critic.review.report import fix_summary

    kept: list[LocatedBug] = []
    for bug in sorted(found, key=lambda b: -b.score):
        if len(kept) == max_findings:
            break
        if bug.score >= min_score and not any(
            bug.line <= k.end_line and k.line <= bug.end_line for k in kept
        ):
            kept.append(bug)
    highlights = []
    for bug in sorted(kept, key=lambda b: b.line):
        fix = fix_summary(fix_at(code, bug.start, bug.end, bug.text), code)
        comment = f"{bug.comment} Suggested fix: {fix}." if fix else bug.comment
        try:
            quoted = gold_critique(code, list(range(bug.line, bug.end_line + 1)), comment)
        except ValueError:
            continue  # lines or a comment the critique format cannot hold: no finding is better
        highlights += parse_critique(quoted, code).highlights
    return format_critique(highlights) if highlights else NO_BUGS


def check_tampering(
    critic: Critic,
    code: str,
    bug_lines: list[int],
    description: str,
    settings: ReviewSettings | None = None,
    model_name: str | None = None,
    *,
    on_search: Callable[[int], None] | None = None,
) -> CheckResult:
    """Run the critic's repair search on `code` at the review's operating point (`settings`, default
    `critic review`'s defaults) and rate its critique against the bug.

    `model_name` (default: the critic's `name` attribute, set by the server) becomes the critique's
    origin, `model:<name>`. `on_search(n)` is called as search n (1..CHECK_SEARCHES) starts: a search
    takes seconds, so the UI shows that it is running.
    """
    from critic.review.reviewer import LOCATED_PER_CHUNK
    from critic.review.settings import ReviewSettings

    settings = settings or ReviewSettings()
    if on_search is not None:
        on_search(1)
    found = critic.locate(code, max(LOCATED_PER_CHUNK, settings.max_findings))
    critique = repair_critique(code, found, settings.min_score, settings.max_findings)
    hit = caught(critique, code, bug_lines, description)
    name = model_name or getattr(critic, "name", None) or "critic"
    recorded = {
        "search": SEARCH,
        "min_score": settings.min_score,
        "max_findings": settings.max_findings,
        "model": name,
    }
    return CheckResult([hit], [critique], not hit, recorded, code)


def run_sample_tests(original: str, code: str, test: str) -> TestResult:
    """Run the sample's tests on the original and on the tampered code, isolated (critic.datagen.sandbox)."""
    from critic.datagen.sandbox import run_many

    before, after = run_many([(original, test), (code, test)], timeout=TEST_TIMEOUT_S)
    original_passed = before.passed
    tampered_failed = after.status in ("failed", "timeout", "memory")  # "error": the sandbox itself failed
    lines = [
        f"original: {before.status}{_why(before)}",
        f"tampered: {after.status}{_why(after)}",
    ]
    return TestResult(original_passed, tampered_failed, "\n".join(lines))


def _why(result) -> str:
    """The last line of stderr (the exception), if the run did not pass."""
    if result.passed:
        return ""
    tail = [line for line in result.stderr.strip().splitlines() if line.strip()]
    return f" ({tail[-1].strip()[:200]})" if tail else ""


__all__ = [
    "CHECK_SEARCHES",
    "SEARCH",
    "CheckResult",
    "TestResult",
    "caught",
    "check_tampering",
    "repair_critique",
    "run_sample_tests",
    "search_of",
    "shown_to_people",
]
