"""CTC forced alignment: Viterbi over the CTC trellis (no external aligner needed)."""

from __future__ import annotations

import numpy as np


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


def align(model, wav, text: str, utt_id: str = "?") -> list[tuple[str, float, float]]:
    """Forced alignment of ``text`` to one waveform with a ``CTCModel``: [(character, start s, end s), ...]."""
    log_probs, frames = model.log_probs(wav)
    tokens = model.vocab.encode(text, utt_id)
    spans = forced_align(log_probs[0, : int(frames[0])].cpu().numpy(), tokens, utt_id=utt_id)
    rate = model.cfg.features.frame_rate
    return [(model.vocab.symbols[tok], start / rate, end / rate) for tok, (start, end) in zip(tokens, spans)]


def align_corpus(model, data_dir, out_dir, splits=None, batch_seconds: float = 120.0) -> dict:
    """Write ``out_dir/{split}.jsonl.gz``: one JSON line per utterance with its text, frame rate,
    number of frames and per-character frame spans. Returns split -> (aligned, [failed ids])."""
    from tqdm import tqdm

    from uniwav.data.alignments import write_alignments
    from uniwav.data.manifests import available_splits, load_cuts
    from uniwav.data.text import VocabularyError
    from uniwav.inference.transcribe import stitched_log_probs

    result = {}
    for split in splits or available_splits(data_dir):
        cuts = [c for c in load_cuts(data_dir, split) if any(s.text for s in c.supervisions)]
        rows, failed = [], []
        for k in tqdm(range(0, len(cuts), 32), desc=f"aligning {split}", leave=False):
            chunk = cuts[k: k + 32]
            for cut, lp in zip(chunk, stitched_log_probs(model, [c.load_audio()[0] for c in chunk], batch_seconds=batch_seconds)):
                text = " ".join(s.text for s in cut.supervisions if s.text)
                try:
                    spans = forced_align(lp, model.vocab.encode(text, cut.id), utt_id=cut.id)
                except (AlignmentError, VocabularyError):
                    failed.append(cut.id)
                    continue
                rows.append(
                    {
                        "id": cut.id,
                        "text": text,
                        "speaker": cut.supervisions[0].speaker,
                        "frame_rate": model.cfg.features.frame_rate,
                        "num_frames": int(lp.shape[0]),
                        "spans": spans,
                    }
                )
        write_alignments(out_dir, split, rows)
        result[split] = (len(rows), failed)
    return result
