"""How much likelier the critic's language model finds each repaired code than the code as written.

A repair's margin is log p(repaired) - log p(code) under the policy read as a plain code model (the
pre-training stage's framing: `<bos>` code `<eos>`), over the tokens from the first one the edit
changes to `window` tokens past the last: context after the edit counts, so `range(3, n - 1)` is
judged by what the loop body does with it, and the far tail, identical in both and nearly
independent of a one-token edit, is left out.

All repairs of one code share its tokens up to their edit. The code is packed once per row as the
prefix (segment 0) and every repair as a branch holding only its tokens from the edit on, at the
positions they have in the repaired code; a branch attends to the prefix before its own first position
and to itself (critic.model.gemma2.branch_masks), so each branch's log-probabilities are exactly those of
the whole repaired code, while the shared part is computed once per row.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch

from critic.core.tokens import BOS, EOS
from critic.model.gemma2 import Gemma2CausalLM, softcap

WINDOW = 32  # tokens scored past an edit's last changed token
ROW_TOKENS = 1536  # a packed row's length: the prefix plus as many branches as fit


@dataclass(frozen=True)
class _Branch:
    index: int  # which repair
    start: int  # first changed position (tokens before it are the code's own)
    ids: list[int]  # the repaired code's tokens from `start` to the end of its window
    code_end: int  # the code's own window for the same span: positions start..code_end-1


def _common(a: Sequence[int], b: Sequence[int]) -> tuple[int, int]:
    """Lengths of the common prefix and of the common suffix that does not overlap it."""
    n = min(len(a), len(b))
    p = 0
    while p < n and a[p] == b[p]:
        p += 1
    s = 0
    while s < n - p and a[len(a) - 1 - s] == b[len(b) - 1 - s]:
        s += 1
    return p, s


def _branches(code_ids: list[int], repaired_ids: Sequence[list[int]], window: int) -> list[_Branch]:
    out = []
    for index, ids in enumerate(repaired_ids):
        p, s = _common(code_ids, ids)
        p = max(p, 1)  # <bos> is always shared; the first scored token needs a state before it
        end = min(len(ids), len(ids) - s + window)
        code_end = min(len(code_ids), len(code_ids) - s + window)
        out.append(_Branch(index, p, ids[p:end], code_end))
    return out


def _rows(prefix_len: int, branches: list[_Branch], row_tokens: int) -> list[list[_Branch]]:
    rows: list[list[_Branch]] = []
    used = row_tokens
    for branch in branches:
        if used + len(branch.ids) > row_tokens and used > prefix_len:
            rows.append([])
            used = prefix_len
        rows[-1].append(branch)
        used += len(branch.ids)
    return rows


@torch.inference_mode()
def repair_margins(
    model: Gemma2CausalLM,
    tokenizer,
    code: str,
    repaired: Sequence[str],
    window: int = WINDOW,
    row_tokens: int = ROW_TOKENS,
) -> list[float]:
    """log p(repaired) - log p(code), over each repair's changed tokens and `window` tokens after them
    (whole-sequence tokens `<bos>` code `<eos>`), one per repaired code."""
    if not repaired:
        return []
    bos, eos = tokenizer.token_to_id(BOS), tokenizer.token_to_id(EOS)
    # One by one: encode_batch pads to the longest text when the tokenizer has padding set.
    code_ids, *repaired_ids = (
        [bos, *tokenizer.encode(t, add_special_tokens=False).ids, eos] for t in [code, *repaired]
    )
    branches = _branches(code_ids, repaired_ids, window)
    margins = [0.0] * len(repaired)
    rows = _rows(len(code_ids), branches, max(row_tokens, len(code_ids) + 1))
    device = next(model.parameters()).device
    for row in rows:
        ids, segments, positions = list(code_ids), [0] * len(code_ids), list(range(len(code_ids)))
        offsets = []
        for k, branch in enumerate(row, start=1):
            offsets.append(len(ids))
            ids += branch.ids
            segments += [k] * len(branch.ids)
            positions += range(branch.start, branch.start + len(branch.ids))
        as_tensor = lambda xs: torch.tensor([xs], dtype=torch.long, device=device)  # noqa: E731
        hidden = model.model(
            as_tensor(ids), position_ids=as_tensor(positions), segment_ids=as_tensor(segments)
        ).last_hidden_state[0]
        logprobs = torch.log_softmax(
            softcap(model.lm_head(hidden), model.config.final_logit_softcapping).float(), -1
        )
        # The code's own token log-probabilities: position t predicts token t + 1.
        target = torch.tensor(code_ids[1:], device=device)
        code_lp = logprobs[: len(code_ids) - 1].gather(1, target[:, None])[:, 0]
        code_cum = torch.cat([code_lp.new_zeros(1), code_lp.cumsum(0)])  # code_cum[t] = sum of tokens 1..t
        for branch, offset in zip(row, offsets, strict=True):
            n = len(branch.ids)
            # Token `start` is predicted by the prefix's state at start - 1, the rest by the branch.
            states = torch.cat([logprobs[branch.start - 1 : branch.start], logprobs[offset : offset + n - 1]])
            repaired_lp = states.gather(1, torch.tensor(branch.ids, device=device)[:, None]).sum()
            own = code_cum[branch.code_end - 1] - code_cum[branch.start - 1]
            margins[branch.index] = float(repaired_lp - own)
    return margins
