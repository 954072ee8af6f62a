"""*Check against critic* and *Run tests*: the two checks a tamperer runs before submitting.

The check is the CriticGPT adversarial test: the current critic searches the tampered code
CHECK_SEARCHES times (FSBS, seeds 0..2) and the rubric rater, which knows the bug, says whether each
critique included it. A bug that at least one search misses is adversarial. torch is imported only
when a check runs, so the store and the API start without it.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

from critic.annotation_app.auth import AppError
from critic.datagen.rating import rate_critique

if TYPE_CHECKING:
    from collections.abc import Callable

    from critic.inference.fsbs import Critic, FSBSSettings

CHECK_SEARCHES = 3
TEST_TIMEOUT_S = 5.0


@dataclass
class CheckResult:
    """Per FSBS search (seed 0..2): its critique and whether it caught the bug."""

    caught: list[bool]
    critiques: list[str]
    adversarial: bool  # at least one search missed the bug
    settings: dict[str, Any]  # FSBS settings, seeds and model name: stored with each model critique
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


def check_tampering(
    critic: Critic,
    code: str,
    bug_lines: list[int],
    description: str,
    settings: FSBSSettings | None = None,
    model_name: str | None = None,
    *,
    on_search: Callable[[int], None] | None = None,
) -> CheckResult:
    """Run CHECK_SEARCHES FSBS searches of the critic on `code` and rate each against the bug.

    `model_name` (default: the critic's `name` attribute, set by the server) becomes the critiques'
    origin, `model:<name>`. `on_search(n)` is called as search n (1..CHECK_SEARCHES) starts: a search
    takes seconds, so the UI shows which one is running.
    """
    from critic.inference.fsbs import FSBSSettings

    settings = settings or FSBSSettings()
    prompt = critic.prompt_ids(code)
    critiques = []
    for seed in range(CHECK_SEARCHES):
        if on_search is not None:
            on_search(seed + 1)
        critiques.append(critic.search([prompt], [code], settings, seed=seed)[0].best.critique)
    hits = [caught(c, code, bug_lines, description) for c in critiques]
    name = model_name or getattr(critic, "name", None) or "critic"
    recorded = {**asdict(settings), "seeds": list(range(CHECK_SEARCHES)), "model": name}
    return CheckResult(hits, critiques, not all(hits), recorded, code)


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


__all__ = ["CHECK_SEARCHES", "CheckResult", "TestResult", "caught", "check_tampering", "run_sample_tests"]
