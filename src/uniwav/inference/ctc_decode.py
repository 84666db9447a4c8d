"""CTC decoding: greedy and prefix beam search (blank = 0), on one utterance's log-probs [T, V]."""

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
