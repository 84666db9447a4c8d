"""Batched transcription with chunking of long inputs.

A waveform longer than ``chunk_seconds`` is cut into windows that overlap by ``overlap_seconds``;
each window's log-probs are kept only for its central part (half the overlap is dropped on each
inner edge), stitched, then decoded once, so words at window edges are not cut.
"""

from __future__ import annotations

import numpy as np
import torch

from uniwav.inference.ctc_decode import greedy_decode, prefix_beam_search


LM_BEAM = 32  # beam width with a language model when none is asked for
OVERLAP_SECONDS = 2.0  # long inputs: windows overlap by this much


def _windows(n: int, chunk: int, step: int) -> list[int]:
    if n <= chunk:
        return [0]
    starts = list(range(0, n - chunk, step))
    return starts + [starts[-1] + step] if starts[-1] + chunk < n else starts


@torch.no_grad()
def stitched_log_probs(model, wavs, chunk_seconds: float = 30.0, overlap_seconds: float = OVERLAP_SECONDS,
                       batch_seconds: float = 240.0) -> list[np.ndarray]:
    """Log-probs [T_i, V] for each waveform, computed in length-sorted batches of windows."""
    c = model.cfg.features
    hop = c.hop_length
    chunk = int(chunk_seconds * c.sample_rate) // hop * hop
    overlap = int(overlap_seconds * c.sample_rate) // hop * hop
    if not 0 <= overlap < chunk:
        raise ValueError("need 0 <= overlap_seconds < chunk_seconds")
    wavs = [np.asarray(w.cpu() if torch.is_tensor(w) else w, dtype=np.float32).reshape(-1) for w in wavs]
    jobs = []  # (file, window start sample, window samples)
    for i, w in enumerate(wavs):
        for s in _windows(len(w), chunk, chunk - overlap):
            jobs.append((i, s, min(chunk, len(w) - s)))
    jobs.sort(key=lambda j: -j[2])
    results = {}
    k = 0
    while k < len(jobs):
        longest = jobs[k][2]
        n = max(1, int(batch_seconds * c.sample_rate // max(1, longest)))
        batch = jobs[k: k + n]
        k += n
        audio = torch.zeros(len(batch), longest)
        for b, (i, s, m) in enumerate(batch):
            audio[b, :m] = torch.from_numpy(wavs[i][s: s + m])
        lp, frames = model.log_probs(audio, torch.tensor([m for _, _, m in batch]))
        for b, job in enumerate(batch):
            results[job] = lp[b, : int(frames[b])].cpu().numpy()
    out = []
    half = overlap // 2 // hop
    for i, w in enumerate(wavs):
        starts = _windows(len(w), chunk, chunk - overlap)
        if len(starts) == 1:
            out.append(results[(i, 0, len(w))])
            continue
        parts = []
        for j, s in enumerate(starts):
            lp = results[(i, s, min(chunk, len(w) - s))]
            lo = 0 if j == 0 else half
            hi = lp.shape[0] if j == len(starts) - 1 else (starts[j + 1] - s) // hop + half
            parts.append(lp[lo:hi])
        out.append(np.concatenate(parts))
    return out


def transcribe(model, wavs, beam: int = 1, chunk_seconds: float = 30.0, overlap_seconds: float = OVERLAP_SECONDS, lm=None,
               timestamps: bool = False):
    """Text of one 1-D waveform at the model's sample rate, or texts of a list of them: greedy when
    beam == 1, CTC prefix beam search otherwise, or beam search with a word LM (``lm``: an
    ``LMDecoder``; its beam is ``LM_BEAM`` unless ``beam`` > 1). ``model``: a ``CTCModel``.
    ``timestamps``: each result is {"text", "words": [{"word", "start", "end", "confidence"}]}
    instead (seconds from the start of the file; ``inference.timestamps``)."""
    from uniwav.inference.timestamps import as_dicts, word_timestamps

    single = getattr(wavs, "ndim", None) == 1  # one tensor or array, not a list of them
    wavs = [wavs] if single else list(wavs)
    texts = []
    for wav, lp in zip(wavs, stitched_log_probs(model, wavs, chunk_seconds, overlap_seconds)):
        if lm is not None:
            text = lm.decode(lp, beam=beam if beam > 1 else LM_BEAM)
        else:
            text = model.vocab.decode(greedy_decode(lp) if beam <= 1 else prefix_beam_search(lp, beam=beam))
        text = " ".join(text.split())
        if timestamps:
            duration = len(wav) / model.cfg.features.sample_rate
            words = word_timestamps(lp, text, model.vocab.symbols, model.cfg.features.frame_rate)
            for w in words:
                w.start, w.end = min(w.start, duration), min(w.end, duration)
            text = {"text": text, "words": as_dicts(words)}
        texts.append(text)
    return texts[0] if single else texts
