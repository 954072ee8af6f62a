"""The CriticGPT rubric as one record, an automatic rater for tampered code, and within-task preferences.

Human raters in the annotation app and the automatic rater (which knows the inserted bug) both produce a
`Rating`, so the reward-model trainer reads one schema whoever rated. The reward model learns only
*within-task* preferences: critiques of the same tampered sample, compared by overall score.

Stdlib only: the app, the data pipeline and the RL trainer import it without torch.
"""

from __future__ import annotations

import io
import math
import re
import tokenize
from collections.abc import Mapping, Sequence
from dataclasses import MISSING, dataclass, fields
from typing import Any

from critic.core.critique import (
    LINE_CLAIM,
    Highlight,
    code_lines,
    format_critique,
    line_span_of,
    parse_critique,
)

__all__ = [
    "AUTO_RATER",
    "CAUGHT_CBI",
    "FLAG_FIELDS",
    "PAIR_SCHEMA",
    "SCORE_FIELDS",
    "RATING_FIELDS",
    "SCORE_MAX",
    "SCORE_MIN",
    "Preference",
    "Rating",
    "gold_critique",
    "mean_overall",
    "pair_features",
    "preferences",
    "rate_critique",
    "win_rates",
]

SCORE_MIN, SCORE_MAX = 1, 7
AUTO_RATER = "auto"

# --- the record ------------------------------------------------------------------------------------

# The rubric, defined here once: every reader and writer of ratings (the rater, the reward data, the
# annotation app's forms, database and export) takes its field names from these.
SCORE_FIELDS = ("cbi", "comprehensiveness", "conciseness", "overall")  # 1-7
FLAG_FIELDS = ("nitpick", "fake_problem", "hallucinated_quote")
# A critique "caught" the bug when its CBI is at least this: 5-7 mean a highlight overlaps the bug lines.
CAUGHT_CBI = 5
# A preference pair as the reward model reads it, defined once (the rate stage and the annotation
# app's export): `prompt` is the critique request, `chosen` and `rejected` finished model turns.
PAIR_SCHEMA = {
    "task_id": "string",
    "prompt": "string",
    "chosen": "string",
    "rejected": "string",
    "margin": "float64",
}


def pair_features():
    """PAIR_SCHEMA as `datasets` Features."""
    from datasets import Features, Value

    return Features({name: Value(kind) for name, kind in PAIR_SCHEMA.items()})


@dataclass
class Rating:
    """One rater's judgement of one critique on the CriticGPT rubric.

    `cbi` (critique-bug inclusion) rates how well the critique included the one inserted bug.
    `fake_problem` covers hallucinated quotes too: a quote of code that does not exist claims a problem
    that is not real.
    """

    cbi: int
    comprehensiveness: int
    nitpick: bool
    fake_problem: bool
    hallucinated_quote: bool
    conciseness: int
    overall: int
    rationale: str
    rater: str = AUTO_RATER

    def validate(self) -> None:
        """Raise ValueError naming the first bad field; the app rejects malformed submissions with it."""
        for name in SCORE_FIELDS:
            _check_score(name, getattr(self, name))
        for name in FLAG_FIELDS:
            value = getattr(self, name)
            if not isinstance(value, bool):
                raise ValueError(f"{name} must be a bool, got {_show(value)}")
        for name in ("rationale", "rater"):
            value = getattr(self, name)
            if not isinstance(value, str) or not value.strip():
                raise ValueError(f"{name} must be a non-empty string, got {_show(value)}")

    @property
    def caught(self) -> bool:
        """Whether the critique included the bug (CAUGHT_CBI)."""
        return self.cbi >= CAUGHT_CBI

    def to_dict(self) -> dict[str, Any]:
        """The record as plain JSON types, in RATING_FIELDS order. Validates first, so an invalid
        rating never reaches a dataset."""
        self.validate()
        return {name: getattr(self, name) for name in RATING_FIELDS}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Rating:
        """Read a record, rejecting unknown fields, missing required fields and invalid values.

        `rater` may be left out (it defaults to "auto").
        """
        if not isinstance(data, Mapping):
            raise ValueError(f"a rating must be a mapping of field names to values, got {_show(data)}")
        unknown = [key for key in data if key not in RATING_FIELDS]
        if unknown:
            raise ValueError(f"unknown rating field(s): {', '.join(map(str, unknown))}")
        missing = [name for name in _REQUIRED if name not in data]
        if missing:
            raise ValueError(f"missing rating field(s): {', '.join(missing)}")
        rating = cls(**data)
        rating.validate()
        return rating


RATING_FIELDS: tuple[str, ...] = tuple(f.name for f in fields(Rating))
_REQUIRED = tuple(f.name for f in fields(Rating) if f.default is MISSING and f.default_factory is MISSING)


def _check_score(name: str, value: object) -> None:
    # bool is an int subclass; a checkbox value in a score field is a malformed submission.
    if isinstance(value, bool) or not isinstance(value, int) or not SCORE_MIN <= value <= SCORE_MAX:
        raise ValueError(f"{name} must be an int from {SCORE_MIN} to {SCORE_MAX}, got {_show(value)}")


def _show(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


# --- the automatic rater ---------------------------------------------------------------------------

# What a bug description and a comment must share to count as talking about the same bug. Stems of
# these words say nothing about *which* bug: every defect claim uses them.
_STOPWORDS = frozenset(
    """a an the is are was were be been being this that these those it its of to in on at for from by
    with as and or but if then else so not no do does did has have had will would should could can may
    might must which what when where who how than there here into also only just all any each every some
    more most very too such same other we you they it's i me my your our their them never always now
    bug bugs code line lines function method problem issue issues error wrong incorrect value values
    result results return returns instead use used using because since cause causes make makes get gets
    call calls variable""".split()
)
# Kinds of bug, recognised by phrasing rather than shared words ("drops the last item" and "off by
# one" describe the same bug). Matched in both the description and the comment.
_FAMILIES = tuple(
    re.compile(pattern)
    for pattern in (
        r"off[- ]by[- ]one|fencepost|one too (?:many|few)|[-+] ?1\b|\blast\b|\bfirst\b|\bboundar|\bbounds?\b"
        r"|\bearly\b|\binclusive|\bexclusive|\bindex",
        r"negat|\bsign\b|\bminus\b|\bnegative|\bpositive|\babs\b|absolute",
        r"swap|revers|\border\b|transpos|backwards",
        r"<=|>=|\bstrict|less than|greater than|compar|\bthreshold",
        r"invert|\bcondition|\bboolean|short[- ]circuit",
        r"\bnone\b|\bnull\b|returns nothing|missing return",
        r"divi|\bzero\b|\bfloor\b|\bround|\btruncat",
        r"mutat|\balias|\bcopy\b|in[- ]place|\bshared\b",
        r"\bexcept|\bcatch|swallow",
    )
)
# A comment that claims the code is broken, whatever else it says.
_DEFECT = re.compile(
    r"\bbugs?\b|\bbuggy\b|\bwrong\b|\bincorrect|\bcrash|\braise[sd]?\b|\bexception|\bfail|\bbroken\b"
    r"|off[- ]by[- ]one|\binfinite\b|\b\w+error\b|\bskip|\bdrop|\bundefined\b|\bmiscalculat"
)
# A comment about style, naming, docs, typing or trivia rather than behaviour.
_NITPICK = re.compile(
    r"\bnit\b|nitpick|\bconsider|\bstyl|pep ?8|\bnam(?:e|es|ing)\b|\brenam|descriptive|docstring|type hint"
    r"|annotation|simplif|readab|idiomatic|pythonic|cosmetic|\bminor\b|\bclearer\b|\bcleaner\b|f-string"
    r"|\bcomments?\b|\bunused\b|redundant|unnecessar|verbose|performance|efficien|\bslow|\bfaster\b"
    r"|\bprefer|\bformatting\b|\bwhitespace\b|magic number"
)
# A comment that clears the quoted code ("this is fine", "no bug here").
_FINE = re.compile(
    r"\b(?:is|are|looks?|seems?) (?:correct|fine|ok(?:ay)?|good|right)\b"
    r"|\bno (?:bugs?|issues?|problems?|errors?)\b|\bnot an? (?:bug|problem|issue)\b|\bnothing wrong\b"
    r"|\bworks (?:as intended|correctly|fine)\b"
)
_WORD = re.compile(r"[a-z][a-z0-9_]*")
_INLINE_CODE = re.compile(r"`([^`\n]+)`")
_WORDS_PER_HIGHLIGHT = 80  # prose budget per highlight before conciseness drops
_MINIMAL_WORDS = 3  # a comment shorter than this ("Bug.", "Wrong here") explains nothing

_HIT_NOTES = {
    7: "covers the inserted bug and explains it",
    6: "covers the inserted bug but its comment does not clearly describe it",
    5: "covers the inserted bug with little or no explanation",
    4: "covers the inserted bug but only nitpicks it",
    2: "covers the inserted bug but calls it correct",
}
_OTHER_NOTES = {
    "fake": "claims a problem in correct code (fake)",
    "nitpick": "is a nitpick on correct code",
    "neutral": "comments on correct code without claiming a problem",
    "hallucinated": "quotes code that is not in the file (hallucinated, fake)",
    "mislocated": "describes the inserted bug but quotes other code",
}


@dataclass(frozen=True)
class _Bug:
    """The inserted bug, with what the rater looks for in a comment about it."""

    lines: frozenset[int]
    phrase: str  # the description as a run of words, to recognise a comment that restates it
    terms: frozenset[str]  # stems of the description's words that point at this bug
    families: tuple[re.Pattern[str], ...]  # the kinds of bug the description is phrased as
    code: str  # the bug lines without whitespace, one per line
    other_code: str  # every other line, likewise


def rate_critique(
    critique: str,
    code: str,
    bug_lines: Sequence[int],
    description: str,
) -> Rating:
    """Rate `critique` of tampered `code` as a rubric rater who knows the inserted bug.

    `bug_lines` (1-based lines of `code`) and `description` give the inserted bug. The code is assumed
    correct apart from it (the automatic data comes from code that passes its tests), so a problem
    claimed anywhere else is fake.

    Each highlight is judged on its own. A valid highlight *hits* a bug when its quote overlaps the bug
    lines exactly: the tamperer marks every line a bug touches (for a deletion, the lines around the
    gap), so a ±1 allowance would only turn near misses on correct neighbouring code into catches.
    A comment is *relevant* to a bug when it restates the description, or shares at least two signals
    with it: word stems that point at this bug (identifiers used elsewhere in the code do not) and
    kinds of bug ("off by one", "last element", "negate", "swap", ...).

    ======================  =====================================================================
    CBI                     highest that applies
    ======================  =====================================================================
    7                       a hit whose comment is relevant to the description
    6                       a hit whose comment claims a defect in 3+ words, but not clearly this
    5                       a hit with an empty or minimal comment
    4                       a hit whose comment only nitpicks
    3                       no relevant hit, but some comment or the preamble is relevant, or names
                            code (in backticks) found only on the bug lines
    2                       highlights elsewhere only (or a hit whose comment calls the code correct)
    1                       no highlights and no mention
    ======================  =====================================================================

    Highlights that miss the bug: hallucinated quote → hallucinated_quote and fake_problem; a comment
    relevant to the bug → mislocated (counts as a mention, not fake); a style/naming/docs comment →
    nitpick; "this is fine" → neutral; anything else, an empty comment included, → fake_problem (the
    format defines a highlight as a claimed problem).

    - comprehensiveness = {CBI 6-7: 7, 5: 5, 3-4: 3, else 1}, since on correct-but-tampered code the
      only severe problem to miss is the inserted bug.
    - conciseness = 7 - highlights missing the bug - nitpicks - one per started 80 prose words beyond
      80 per highlight; floor 1.
    - overall = CBI - fake penalty (2, +1 per further fake, at most 4) - 1 if hallucinated
      - 1 if a nitpick - max(0, 4 - conciseness), clamped to 1-7.
    """
    bug = _make_bug(code, bug_lines, description)
    parsed = parse_critique(critique, code)
    normalized = "\n".join(code_lines(code))
    judged = [_judge(i, h, bug, normalized) for i, h in enumerate(parsed.highlights, start=1)]
    notes = [j.note for j in judged]

    best = max((j.score for j in judged), default=0)
    units = [parsed.preamble, *(j.comment for j in judged if not j.score)]
    mentioned = any(_relevant(unit, bug) or _names_bug_code(unit, bug) for unit in units)
    cbi = max(best, 3 if mentioned else 0, 2 if judged else 1)
    if not best and not any(j.describes for j in judged):
        notes.append(
            "the inserted bug is mentioned but not quoted" if mentioned else "the inserted bug is missed"
        )

    extra = sum(not j.score for j in judged)
    nitpicks = sum(j.kind == "nitpick" for j in judged)
    fakes = sum(j.kind in ("fake", "hallucinated") for j in judged)
    hallucinated = any(j.kind == "hallucinated" for j in judged)
    words = sum(len(text.split()) for text in [parsed.preamble, *(j.comment for j in judged)])
    over = words - _WORDS_PER_HIGHLIGHT * max(1, len(judged))
    length_penalty = math.ceil(over / _WORDS_PER_HIGHLIGHT) if over > 0 else 0
    if length_penalty:
        notes.append(f"the prose is long ({words} words)")
    conciseness = max(SCORE_MIN, SCORE_MAX - extra - nitpicks - length_penalty)

    penalty = (min(4, 1 + fakes) if fakes else 0) + hallucinated + (nitpicks > 0) + max(0, 4 - conciseness)
    overall = _clamp(cbi - penalty)
    comprehensiveness = _comprehensiveness(cbi)

    if not judged:
        notes.insert(0, "no highlights")
    rationale = "; ".join(notes)
    rating = Rating(
        cbi=cbi,
        comprehensiveness=comprehensiveness,
        nitpick=nitpicks > 0,
        fake_problem=fakes > 0,
        hallucinated_quote=hallucinated,
        conciseness=conciseness,
        overall=overall,
        rationale=rationale[0].upper() + rationale[1:] + ".",
    )
    rating.validate()
    return rating


def gold_critique(code: str, bug_lines: Sequence[int], description: str) -> str:
    """The reference critique: the bug lines quoted verbatim, commented with the bug's description.

    It is the SFT target and the "gold" critique in comparisons, so it must rate as a clean catch. Each
    run of consecutive bug lines is one highlight; a run whose text also occurs earlier in the file (a
    repeated line) is widened with its neighbours until the quote is found at the bug, since a quote is
    located at its first occurrence. Later runs point back to the first.
    """
    lines = code_lines(code)
    _check_bug(bug_lines, description, len(lines))
    if not description.strip():
        raise ValueError("a gold critique needs a non-empty bug description")
    if not any(lines[n - 1].strip() for n in bug_lines):
        raise ValueError(f"bug lines {sorted(set(bug_lines))} are blank: there is no code to quote")
    return format_critique(
        (_quote_covering(lines, run), description if k == 0 else "Same bug as above.")
        for k, run in enumerate(_runs(bug_lines))
    )


def line_claim(code: str, lines: Sequence[int]) -> str:
    """The critique that quotes `lines` of `code` as the gold critique would and claims they are a bug,
    saying nothing else (critic.core.critique.LINE_CLAIM)."""
    return gold_critique(code, lines, LINE_CLAIM)


def _quote_covering(lines: list[str], run: tuple[int, int]) -> str:
    """The shortest window of lines around `run` whose quote the parser locates over the run."""
    code = "\n".join(lines)
    start, end = run
    grow_up = True
    while True:
        quote = "\n".join(lines[start - 1 : end])
        span = line_span_of(quote, code)
        if (span and span[0] <= run[0] and run[1] <= span[1]) or (start == 1 and end == len(lines)):
            return quote
        if (grow_up and start > 1) or end == len(lines):
            start -= 1
        else:
            end += 1
        grow_up = not grow_up


def _runs(numbers: Sequence[int]) -> list[tuple[int, int]]:
    runs: list[tuple[int, int]] = []
    for n in sorted(set(numbers)):
        if runs and n == runs[-1][1] + 1:
            runs[-1] = (runs[-1][0], n)
        else:
            runs.append((n, n))
    return runs


def _check_bug(bug_lines: Sequence[int], description: str, n_lines: int) -> None:
    if not isinstance(description, str):
        raise ValueError(f"a bug description must be a string, got {_show(description)}")
    if isinstance(bug_lines, str) or not bug_lines:
        raise ValueError(f"bug_lines must be a non-empty sequence of line numbers, got {_show(bug_lines)}")
    for n in bug_lines:
        if isinstance(n, bool) or not isinstance(n, int) or not 1 <= n <= n_lines:
            raise ValueError(f"bug line {_show(n)} is not a line of the code (1 to {n_lines})")


def _make_bug(code: str, bug_lines: Sequence[int], description: str) -> _Bug:
    lines = code_lines(code)
    _check_bug(bug_lines, description, len(lines))
    names = _names_by_line("\n".join(lines))
    on_bug = frozenset(bug_lines)
    # Identifiers used elsewhere too (`xs`, `total`) do not point at the bug line.
    common = {_stem(name) for n, line_names in names.items() if n not in on_bug for name in line_names}
    return _Bug(
        lines=on_bug,
        phrase=_phrase(description),
        terms=frozenset(_terms(description) - common),
        families=tuple(f for f in _FAMILIES if f.search(description.lower())),
        code="\n".join(_flat(lines[n - 1]) for n in sorted(on_bug)),
        other_code="\n".join(_flat(line) for n, line in enumerate(lines, 1) if n not in on_bug),
    )


def _names_by_line(code: str) -> dict[int, set[str]]:
    """Lowercased identifiers per line, from the tokenizer so that strings and comments do not count."""
    names: dict[int, set[str]] = {}
    try:
        for token in tokenize.generate_tokens(io.StringIO(code).readline):
            if token.type == tokenize.NAME:
                names.setdefault(token.start[0], set()).add(token.string.lower())
    except (tokenize.TokenError, SyntaxError):
        # Code that does not tokenize still has names; read them off each line, comments cut.
        names = {
            n: set(_WORD.findall(line.split("#")[0].lower())) for n, line in enumerate(code_lines(code), 1)
        }
    return names


def _hit_score(comment: str, bug: _Bug) -> int:
    """CBI of a highlight that quotes the bug lines, from what its comment says."""
    if _restates(comment, bug):
        return 7
    kind = _comment_kind(comment)
    if kind == "neutral":
        return 2
    if _relevant(comment, bug):
        return 7
    if kind == "nitpick":
        return 4
    if kind == "empty" or len(_WORD.findall(comment.lower())) < _MINIMAL_WORDS:
        return 5
    return 6


def _comment_kind(comment: str) -> str:
    """ "empty", "defect", "nitpick" or "neutral". A defect claim wins over nitpick wording."""
    text = comment.lower()
    if not _WORD.search(text):
        return "empty"
    cleared = _FINE.sub(" ", text)
    if _DEFECT.search(cleared):
        return "defect"
    if _NITPICK.search(cleared):
        return "nitpick"
    return "neutral" if cleared != text else "defect"


def _relevant(text: str, bug: _Bug) -> bool:
    if not text.strip():
        return False
    if _restates(text, bug):
        return True
    lower = text.lower()
    shared = len(_terms(text) & bug.terms)
    kinds = sum(1 for family in bug.families if family.search(lower))
    return shared + kinds >= 2


def _restates(text: str, bug: _Bug) -> bool:
    """Whether `text` contains the whole description, as the gold critique does."""
    return bool(bug.phrase) and f" {bug.phrase} " in f" {_phrase(text)} "


def _names_bug_code(text: str, bug: _Bug) -> bool:
    """Whether `text` quotes, in backticks, code that occurs on the bug lines and nowhere else."""
    for span in _INLINE_CODE.findall(text):
        flat = _flat(span)
        if len(flat) >= 3 and flat in bug.code and flat not in bug.other_code:
            return True
    return False


def _terms(text: str) -> set[str]:
    return {_stem(word) for word in _WORD.findall(text.lower()) if len(word) > 1} - _STOP_STEMS


def _stem(word: str) -> str:
    """A crude stem, equal for the usual inflections: skip/skips/skipped -> skip, negative -> negat."""
    for suffix in ("ing", "ed", "s"):
        if word.endswith(suffix) and len(word) - len(suffix) >= 3 and not word.endswith("ss"):
            word = word[: -len(suffix)]
            break
    if len(word) >= 4 and word[-1] == word[-2]:
        word = word[:-1]
    return word[:5]


_STOP_STEMS = frozenset(_stem(word) for word in _STOPWORDS)


def _phrase(text: str) -> str:
    return " ".join(re.findall(r"\w+", text.lower()))


def _flat(text: str) -> str:
    return "".join(text.split())


@dataclass(frozen=True)
class _Judged:
    """What the rater made of one highlight."""

    kind: str  # "hit", "nitpick", "neutral", "fake", "hallucinated" or "mislocated"
    note: str  # its part of the rationale
    comment: str
    score: int  # CBI if it quotes the bug lines, else 0
    describes: bool = False  # a mislocated highlight: its comment describes the bug


def _judge(number: int, h: Highlight, bug: _Bug, code: str) -> _Judged:
    hit, where = _quotes_bug(h, bug, code)
    prefix = f"highlight {number} ({where}) "
    if h.hallucinated:
        return _Judged("hallucinated", prefix + _OTHER_NOTES["hallucinated"], h.comment, 0)
    if hit:
        score = _hit_score(h.comment, bug)
        return _Judged("nitpick" if score == 4 else "hit", prefix + _HIT_NOTES[score], h.comment, score)
    if _relevant(h.comment, bug):
        return _Judged("mislocated", prefix + _OTHER_NOTES["mislocated"], h.comment, 0, True)
    kind = {"nitpick": "nitpick", "neutral": "neutral"}.get(_comment_kind(h.comment), "fake")
    return _Judged(kind, prefix + _OTHER_NOTES[kind], h.comment, 0)


def _quotes_bug(h: Highlight, bug: _Bug, code: str) -> tuple[bool, str]:
    """Whether the highlight quotes the bug lines, and where it quotes them, for the rationale.

    The parser places a quote at its first occurrence; a verbatim quote of a line that repeats (`i += 1`)
    is as much a quote of the bug's copy, so every exact occurrence counts.
    """
    if h.hallucinated:
        return False, "not in the code"
    spans = [h.lines]
    if h.match == "exact":
        at = code.find(h.quote)
        while at >= 0:
            start = code.count("\n", 0, at) + 1
            spans.append(range(start, start + h.quote.count("\n") + 1))
            at = code.find(h.quote, at + 1)
    for span in spans:
        if any(n in span for n in bug.lines):
            return True, _where(span)
    return False, _where(spans[0])


def _where(span: range) -> str:
    return f"line {span[0]}" if len(span) == 1 else f"lines {span[0]}-{span[-1]}"


def _comprehensiveness(cbi: int) -> int:
    return 7 if cbi >= 6 else 5 if cbi == 5 else 3 if cbi >= 3 else 1


def _clamp(score: int) -> int:
    return max(SCORE_MIN, min(SCORE_MAX, score))


# --- preferences -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Preference:
    """`chosen` beat `rejected` on the same task. A tie is two records, one each way, weight 0.5."""

    task_id: str
    chosen: str
    rejected: str
    margin: float  # overall(chosen) - overall(rejected); 0 for a tie
    weight: float  # 1 for a strict preference, 0.5 for each half of a tie


def preferences(task_id: str, critiques: Sequence[str], overall: Sequence[float]) -> list[Preference]:
    """Every pairwise preference among the critiques of ONE task, from their overall scores.

    Scores are only comparable within a task (a hard bug drags every critique of it down), so pairs never
    cross tasks: call this once per task. Pairs of identical critique text carry no signal and are left
    out.
    """
    if len(critiques) != len(overall):
        raise ValueError(f"{len(critiques)} critiques but {len(overall)} overall scores")
    for i, score in enumerate(overall):
        if isinstance(score, bool) or not isinstance(score, int | float) or not math.isfinite(score):
            raise ValueError(f"overall[{i}] must be a finite number, got {_show(score)}")
    prefs = []
    for i in range(len(critiques)):
        for j in range(i + 1, len(critiques)):
            a, b, diff = critiques[i], critiques[j], float(overall[i]) - float(overall[j])
            if a == b:
                continue
            if diff > 0:
                prefs.append(Preference(task_id, a, b, diff, 1.0))
            elif diff < 0:
                prefs.append(Preference(task_id, b, a, -diff, 1.0))
            else:
                prefs += [Preference(task_id, a, b, 0.0, 0.5), Preference(task_id, b, a, 0.0, 0.5)]
    return prefs


def mean_overall(ratings_per_critique: Sequence[Sequence[Rating]]) -> list[float]:
    """One overall score per critique: the mean over its raters (tasks are rated with overlap)."""
    means = []
    for i, ratings in enumerate(ratings_per_critique):
        if not ratings:
            raise ValueError(f"critique {i} has no ratings")
        means.append(sum(r.overall for r in ratings) / len(ratings))
    return means


def win_rates(prefs: Sequence[Preference]) -> dict[str, float]:
    """Per critique text, the share of its comparisons it won, a tie counting as half a win.

    Keys are texts, so pass one task's preferences unless pooling a text across tasks is what you want.
    A critique that was never compared has no entry.
    """
    wins: dict[str, float] = {}
    games: dict[str, float] = {}
    for p in prefs:
        wins[p.chosen] = wins.get(p.chosen, 0.0) + p.weight
        wins.setdefault(p.rejected, 0.0)
        for text in (p.chosen, p.rejected):
            games[text] = games.get(text, 0.0) + p.weight
    return {text: wins[text] / games[text] for text in games}
