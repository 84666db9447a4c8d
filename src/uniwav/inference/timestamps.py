"""Word timestamps from a CTC model's posteriors, and subtitles.

The decoded hypothesis (greedy, beam or LM) is force-aligned to the log-probabilities it came from
(Viterbi over the CTC trellis, ``inference.align.forced_align``): each character gets the frames of
its most probable alignment; a word starts at its first character's first frame and ends after its
last character's last frame. Its confidence is the geometric mean, over its characters, of the mean
posterior of the character on its frames. Times are in seconds from the start of the file (the log
probabilities of long files are stitched across windows first, so times stay absolute).

Subtitles group words into cues of at most ``max_seconds`` and ``max_chars``, written with the
``srt`` and ``webvtt-py`` libraries.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from uniwav.inference.ctc_decode import AlignmentError, forced_align


@dataclass
class Word:
    word: str
    start: float  # seconds
    end: float
    confidence: float  # 0..1


def word_timestamps(log_probs: np.ndarray, text: str, symbols: list[str], frame_rate: float) -> list[Word]:
    """Words of ``text`` (characters of the model's vocabulary ``symbols``, blank = 0) placed on
    log_probs [T, V] of one utterance."""
    words = text.split()
    if not words:
        return []
    index = {s: i for i, s in enumerate(symbols)}
    chars = " ".join(words)
    tokens = [index[c] for c in chars]
    try:
        spans = forced_align(log_probs, tokens)
    except AlignmentError:  # more characters than frames: cannot happen for a hypothesis of these log-probs
        return []
    out, k = [], 0
    for w in words:
        span = spans[k: k + len(w)]
        probs = [float(np.exp(log_probs[s:e, tokens[k + j]]).mean()) for j, (s, e) in enumerate(span)]
        out.append(Word(w, span[0][0] / frame_rate, span[-1][1] / frame_rate, float(np.exp(np.mean(np.log(np.maximum(probs, 1e-12)))))))
        k += len(w) + 1  # and the space
    return out


def cues(words: list[Word], max_seconds: float = 6.0, max_chars: int = 42) -> list[tuple[float, float, str]]:
    """Subtitle cues (start, end, text): consecutive words while the cue stays short enough."""
    out, current = [], []
    for w in words:
        if current and (w.end - current[0].start > max_seconds or len(" ".join(x.word for x in current + [w])) > max_chars):
            out.append((current[0].start, current[-1].end, " ".join(x.word for x in current)))
            current = []
        current.append(w)
    if current:
        out.append((current[0].start, current[-1].end, " ".join(x.word for x in current)))
    return out


def to_srt(words: list[Word]) -> str:
    import datetime

    import srt

    return srt.compose([srt.Subtitle(i + 1, datetime.timedelta(seconds=s), datetime.timedelta(seconds=e), text)
                        for i, (s, e, text) in enumerate(cues(words))])


def to_vtt(words: list[Word]) -> str:
    import webvtt

    def stamp(seconds: float) -> str:
        ms = int(round(seconds * 1000))
        return f"{ms // 3_600_000:02d}:{ms // 60_000 % 60:02d}:{ms // 1000 % 60:02d}.{ms % 1000:03d}"

    vtt = webvtt.WebVTT()
    for s, e, text in cues(words):
        vtt.captions.append(webvtt.Caption(stamp(s), stamp(e), text))
    return vtt.content


def as_dicts(words: list[Word]) -> list[dict]:
    """Words as JSON-ready dicts: times to the millisecond, confidence to 4 digits."""
    return [{**asdict(w), "start": round(w.start, 3), "end": round(w.end, 3), "confidence": round(w.confidence, 4)} for w in words]
