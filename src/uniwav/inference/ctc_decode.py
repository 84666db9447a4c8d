"""CTC decoding on one utterance's log-probs [T, V] (blank = 0): greedy, prefix beam search, and forced
alignment of a known token sequence (Viterbi over the CTC trellis)."""

from __future__ import annotations

from collections import defaultdict

import numpy as np


def greedy_decode(log_probs: np.ndarray, blank: int = 0) -> list[int]:
    """Best path: argmax per frame, merge repeats, drop blanks."""
    best = np.asarray(log_probs).argmax(-1)
    out, prev = [], None
    for t in best.tolist():
        if t != prev and t != blank:
            out.append(t)
        prev = t
    return out


def _logadd(*xs: float) -> float:
    m = max(xs)
    if m == -np.inf:
        return -np.inf
    return m + np.log(sum(np.exp(x - m) for x in xs))


def prefix_beam_search(log_probs: np.ndarray, beam: int = 8, blank: int = 0, token_prune: int = 16) -> list[int]:
    """CTC prefix beam search: keeps the ``beam`` most probable label prefixes, each scored by the
    sum over all its alignments (blank-ending and non-blank-ending parts kept apart)."""
    log_probs = np.asarray(log_probs, dtype=np.float64)
    beams = {(): (0.0, -np.inf)}  # prefix -> (log p ending in blank, log p ending in non-blank)
    for frame in log_probs:
        candidates = np.argsort(frame)[::-1][:token_prune]
        nxt = defaultdict(lambda: (-np.inf, -np.inf))
        for prefix, (pb, pnb) in beams.items():
            total = _logadd(pb, pnb)
            for tok in candidates.tolist():
                p = frame[tok]
                if tok == blank:
                    b, nb = nxt[prefix]
                    nxt[prefix] = (_logadd(b, total + p), nb)
                    continue
                new = prefix + (tok,)
                b, nb = nxt[new]
                if prefix and prefix[-1] == tok:  # a repeat needs a blank in between to count twice
                    nxt[new] = (b, _logadd(nb, pb + p))
                    sb, snb = nxt[prefix]
                    nxt[prefix] = (sb, _logadd(snb, pnb + p))
                else:
                    nxt[new] = (b, _logadd(nb, total + p))
        beams = dict(sorted(nxt.items(), key=lambda kv: _logadd(*kv[1]), reverse=True)[:beam])
    return list(max(beams.items(), key=lambda kv: _logadd(*kv[1]))[0])


def sequence_log_prob(log_probs: np.ndarray, labels: list[int], blank: int = 0) -> float:
    """log P(labels | log_probs) summed over all CTC alignments (the forward algorithm)."""
    import torch
    import torch.nn.functional as F

    lp = torch.as_tensor(np.asarray(log_probs), dtype=torch.float64)[:, None]
    if not labels:
        return float(lp[:, 0, blank].sum())
    loss = F.ctc_loss(lp, torch.tensor([labels]), torch.tensor([lp.shape[0]]), torch.tensor([len(labels)]), blank=blank, reduction="sum")
    return -float(loss)


class AlignmentError(ValueError):
    pass


def forced_align(log_probs: np.ndarray, tokens: list[int], blank: int = 0, utt_id: str = "?") -> list[tuple[int, int]]:
    """Most probable CTC alignment of ``tokens`` to log_probs [T, V].

    Returns one (start, end) frame span per token (end exclusive); frames between spans are blank.
    Raises AlignmentError when the utterance is too short for its tokens.
    """
    log_probs = np.asarray(log_probs, dtype=np.float64)
    T = log_probs.shape[0]
    L = len(tokens)
    repeats = sum(1 for a, b in zip(tokens, tokens[1:]) if a == b)
    if L == 0 or T < L + repeats:
        raise AlignmentError(f"utterance {utt_id}: {T} frames cannot hold {L} tokens ({repeats} repeats need blanks between)")
    states = np.full(2 * L + 1, blank, dtype=np.int64)
    states[1::2] = tokens
    S = states.shape[0]
    # skipping a blank (s-2 -> s) is allowed into a token that differs from the previous token
    can_skip = np.zeros(S, dtype=bool)
    can_skip[3::2] = np.asarray(tokens[1:]) != np.asarray(tokens[:-1])
    score = np.full(S, -np.inf)
    score[0] = log_probs[0, states[0]]
    score[1] = log_probs[0, states[1]]
    back = np.zeros((T, S), dtype=np.int8)  # 0: stay, 1: from s-1, 2: from s-2
    for t in range(1, T):
        stay = score
        step = np.concatenate([[-np.inf], score[:-1]])
        skip = np.where(can_skip, np.concatenate([[-np.inf, -np.inf], score[:-2]]), -np.inf)
        choices = np.stack([stay, step, skip])
        back[t] = choices.argmax(0)
        score = choices.max(0) + log_probs[t, states]
    s = S - 1 if score[S - 1] >= score[S - 2] else S - 2
    path = np.empty(T, dtype=np.int64)
    for t in range(T - 1, -1, -1):
        path[t] = s
        s -= int(back[t, s])
    spans = []
    for k in range(L):
        frames = np.flatnonzero(path == 2 * k + 1)
        spans.append((int(frames[0]), int(frames[-1]) + 1))
    return spans
