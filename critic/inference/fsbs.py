"""Force Sampling Beam Search (CriticGPT): the precision/recall dial of a critic at inference time.

Each round forces a highlight (an opening fence appended to the critique so far), samples `samples`
continuations per beam, scores them with the reward model and keeps the best `keep`; the next round
continues each kept critique, trimmed of its end marker and any trailing paragraph without a
highlight. Of all samples of all rounds, n * (k * (d - 1) + 1) of them, the pick maximises

    rm_score + length_modifier * highlights

where highlights counts the quotes found in the code: hallucinated quotes are never reported, so they
earn nothing. Many prompts (a file's chunks, several files) search together in one batch.

The prompt of each chunk is prefilled once per model and shared by every row that continues it, and
each beam's prefix once per round and shared by its samples. Beams of different lengths are padded in
the middle of their rows, which costs a long row some local-window context (see critic.inference.sampling).
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property

import torch
from tokenizers import Tokenizer

from critic.core.critique import (
    END_OF_TURN,
    NO_BUGS,
    Highlight,
    open_highlight,
    parse_critique,
    request,
    terminate_critique,
    trim_for_continuation,
)
from critic.core.tokens import EOS, PAD
from critic.datagen.rating import line_claim
from critic.inference.calibration import Calibration
from critic.inference.fsbs_settings import FSBSSettings
from critic.inference.localizer import Localizer, LocatedBug, locate
from critic.inference.quoting import QuoteConstraint, TokenTrie
from critic.inference.sampling import Rows, extend, sample, select, start
from critic.model import Gemma2CausalLM, Gemma2RewardModel


@dataclass(frozen=True)
class Candidate:
    critique: str  # without the end marker
    rm_score: float
    highlights: int  # highlights whose quote is in the code

    def objective(self, length_modifier: float) -> float:
        return self.rm_score + length_modifier * self.highlights


@dataclass
class SearchResult:
    best: Candidate
    candidates: list[Candidate]
    # The best critique's highlights that quote the code, each with its confidence in [0, 1].
    findings: list[tuple[Highlight, float]]


class Critic:
    """A policy, its reward model and their tokenizer: everything FSBS needs to critique code, and, with
    a localizer, everything the repair search needs (`locate`)."""

    def __init__(
        self,
        policy: Gemma2CausalLM,
        reward: Gemma2RewardModel,
        tokenizer: Tokenizer,
        calibration: Calibration | None = None,
        localizer: Localizer | None = None,
    ) -> None:
        self.policy, self.reward, self.tokenizer = policy.eval(), reward.eval(), tokenizer
        self.calibration = calibration or Calibration()
        self.localizer = localizer or Localizer()
        config = policy.config
        if reward.config.vocab_size != config.vocab_size:
            raise ValueError("policy and reward model have different vocabularies")
        if tokenizer.get_vocab_size() > config.vocab_size:
            raise ValueError("tokenizer has more tokens than the model's vocabulary (wrong tokenizer.json?)")
        self.bos, self.eos = config.bos_token_id, config.eos_token_id
        eot = tokenizer.token_to_id(END_OF_TURN)
        self.eot = eot if eot is not None else self.eos
        self.stop_ids = sorted({self.eos, self.eot})
        self.device = policy.lm_head.weight.device

    @cached_property
    def trie(self) -> TokenTrie:
        return TokenTrie.of(self.tokenizer)

    def encode(self, text: str) -> list[int]:
        return self.tokenizer.encode(text, add_special_tokens=False).ids

    def prompt_ids(self, code: str) -> list[int]:
        return self.encode(request(code))

    def locate(self, code: str, max_lines: int = 10) -> list[LocatedBug]:
        """The repair search: the most suspect lines, each with its fix (critic.inference.localizer)."""
        return locate(self.policy, self.tokenizer, self.localizer, code, max_lines)

    def _scored_ids(self, critique: str) -> list[int]:
        # What the reward model was trained on: the critique as a finished model turn, then <eos>.
        return [*self.encode(terminate_critique(critique)), self.eos]

    @torch.inference_mode()
    def score(self, rm_rows: Rows, prompt_of: Sequence[int], critiques: Sequence[str]) -> list[float]:
        """Reward-model scores of critiques; prompt_of[i] is the row of `rm_rows` critique i answers.

        Exactly what each critique would get alone: nothing but its prompt precedes it."""
        return self._score_suffixes(rm_rows, prompt_of, [self._scored_ids(c) for c in critiques])

    def _score_suffixes(
        self, rm_rows: Rows, row_of: Sequence[int], suffixes: Sequence[list[int]]
    ) -> list[float]:
        """Scores of rows `row_of[i]` of `rm_rows` continued by suffixes[i], right-padded: no padding
        sits between a row and its suffix."""
        if not suffixes:
            return []
        rows = select(rm_rows, row_of)
        width = max(len(s) for s in suffixes)
        pad = self.reward.config.pad_token_id
        ids = torch.tensor([s + [pad] * (width - len(s)) for s in suffixes], device=self.device)
        lengths = torch.tensor([[len(s)] for s in suffixes], device=self.device)
        steps = torch.arange(width, device=self.device)[None]
        hidden = self.reward.model(
            ids, (steps < lengths).long(), rows.position + steps, rows.cache
        ).last_hidden_state
        last = hidden[torch.arange(len(suffixes), device=self.device), lengths[:, 0] - 1]
        return self.reward.score(last).squeeze(-1).float().tolist()

    @torch.inference_mode()
    def search(
        self, prompts: Sequence[Sequence[int]], codes: Sequence[str], settings: FSBSSettings, seed: int = 0
    ) -> list[SearchResult]:
        """FSBS for each prompt (codes[i] is what prompt i quotes from); one batch for all of them."""
        n, k = settings.samples, settings.keep
        budget = max(len(p) for p in prompts) + settings.rounds * (settings.max_new_tokens + 16) + 512
        policy_rows = start(self.policy, prompts, max_length=budget)
        rm_rows = start(self.reward, prompts, max_length=budget)
        streams = [_stream_seed(seed, p) for p in prompts]
        beams: list[list[str]] = [[""] for _ in prompts]  # critiques so far, per prompt
        found: list[list[Candidate]] = [[] for _ in prompts]
        for round_ in range(settings.rounds):
            owners = [i for i, chunk in enumerate(beams) for _ in chunk]
            prefixes = [open_highlight(trim_for_continuation(b)) for chunk in beams for b in chunk]
            prefix_ids = [self.encode(p) for p in prefixes]
            rows = extend(self.policy, select(policy_rows, owners), prefix_ids)
            # The reward model reads each beam's prefix once, like the policy; its n samples follow.
            rm_beams = extend(self.reward, select(rm_rows, owners), prefix_ids)
            fan = [r for r in range(len(owners)) for _ in range(n)]
            # Each sample draws from its own stream, keyed by its chunk, the round and its number among
            # the chunk's samples of the round, never by its place in the batch.
            first_row = {o: owners.index(o) for o in set(owners)}
            generators = [
                torch.Generator(self.device).manual_seed(
                    streams[owners[r]] + 1_000_003 * (round_ * 10_007 + (r - first_row[owners[r]]) * n + j)
                )
                for r in range(len(owners))
                for j in range(n)
            ]
            constraints = (
                [
                    QuoteConstraint(
                        codes[owners[r]],
                        self.trie,
                        quotes=settings.constrain_quotes,
                        code_spans=settings.constrain_code_spans,
                    )
                    for r in fan
                ]
                if settings.constrain_quotes or settings.constrain_code_spans
                else None
            )
            new = sample(
                self.policy,
                select(rows, fan),
                settings.max_new_tokens,
                self.stop_ids,
                settings.temperature,
                generators,
                constraints,
            )
            continuations = [self.decode(tokens) for tokens in new]
            texts = [prefixes[r] + c for r, c in zip(fan, continuations, strict=True)]
            finished = [[*self.encode(c.rstrip() + END_OF_TURN), self.eos] for c in continuations]
            scores = self._score_suffixes(rm_beams, fan, finished)
            round_candidates: list[list[Candidate]] = [[] for _ in prompts]
            for r, text, rm in zip(fan, texts, scores, strict=True):
                owner = owners[r]
                found_here = len(parse_critique(text, codes[owner]).valid_highlights)
                round_candidates[owner].append(Candidate(text, rm, found_here))
            for i, cands in enumerate(round_candidates):
                found[i].extend(cands)
                beams[i] = [c.critique for c in sorted(cands, key=lambda c: -c.rm_score)[:k]]
        bests = [max(cands, key=lambda c: c.objective(settings.length_modifier)) for cands in found]
        highlights = [
            parse_critique(b.critique, code).valid_highlights for b, code in zip(bests, codes, strict=True)
        ]
        confidence = self._confidence(rm_rows, codes, highlights)
        return [
            SearchResult(best, cands, list(zip(hs, conf, strict=True)))
            for best, cands, hs, conf in zip(bests, found, highlights, confidence, strict=True)
        ]

    def decode(self, tokens: Sequence[int]) -> str:
        text = self.tokenizer.decode([t for t in tokens if t not in self.stop_ids], skip_special_tokens=False)
        return text.replace(EOS, "").replace(PAD, "")

    def _confidence(
        self, rm_rows: Rows, codes: Sequence[str], highlights: Sequence[Sequence[Highlight]]
    ) -> list[list[float]]:
        """How strongly the reward model prefers claiming each highlight's quote is a bug (`line_claim`)
        over declaring the code clean, as a probability (Bradley-Terry, then the critic's calibration):
        comparable across files, unlike raw scores, and a judgement of the code, not of the prose."""
        owners = [i for i, hs in enumerate(highlights) for _ in hs]
        texts = [
            line_claim(code, range(h.start_line, h.end_line + 1))
            for code, hs in zip(codes, highlights, strict=True)
            for h in hs
        ]
        single = iter(self.score(rm_rows, owners, texts))
        with_any = [i for i, hs in enumerate(highlights) if hs]
        clean = dict(zip(with_any, self.score(rm_rows, with_any, [NO_BUGS] * len(with_any)), strict=True))
        return [
            [self.calibration.probability(next(single) - clean[i]) for _ in hs]
            for i, hs in enumerate(highlights)
        ]


def _stream_seed(seed: int, prompt: Sequence[int]) -> int:
    """A chunk's random stream: the user's seed and the chunk itself, so its random draws are the same
    whatever is reviewed beside it."""
    digest = hashlib.blake2b(repr((seed, list(prompt))).encode(), digest_size=6).digest()
    return int.from_bytes(digest, "big")
