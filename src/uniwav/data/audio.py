"""Audio reading with errors that name the file and the problem."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf
import soxr

AUDIO_SUFFIXES = (".wav", ".flac")


class AudioError(ValueError):
    """An audio file that cannot be used; the message names the file and why."""

    def __init__(self, path, reason: str):
        self.path, self.reason = str(path), reason
        super().__init__(f"{path}: {reason}")


@dataclass
class AudioInfo:
    """What was done to make a file usable (empty lists: it was usable as it was)."""

    original_rate: int
    original_channels: int
    conversions: list


def read_audio(path, sample_rate: int, min_seconds: float = 0.0) -> tuple[np.ndarray, AudioInfo]:
    """Read ``path`` as mono float32 at ``sample_rate``; stereo is averaged, other rates resampled.

    Raises AudioError for unreadable, empty, silent-length or non-finite audio.
    """
    path = Path(path)
    try:
        data, rate = sf.read(str(path), dtype="float32", always_2d=True)
    except Exception as e:  # soundfile raises several types for corrupt/non-audio files
        raise AudioError(path, f"not readable as audio ({type(e).__name__}: {str(e).splitlines()[0] if str(e) else 'no detail'})") from None
    conversions = []
    channels = data.shape[1]
    if data.shape[0] == 0:
        raise AudioError(path, "contains no samples")
    if not np.isfinite(data).all():
        raise AudioError(path, "contains NaN or infinite samples")
    if channels > 1:
        data = data.mean(axis=1, keepdims=True)
        conversions.append(f"{channels} channels -> mono")
    wav = data[:, 0]
    if rate != sample_rate:
        wav = soxr.resample(wav, rate, sample_rate).astype(np.float32)
        conversions.append(f"{rate} Hz -> {sample_rate} Hz")
    if wav.shape[0] < min_seconds * sample_rate:
        raise AudioError(path, f"too short ({wav.shape[0] / sample_rate:.3f} s < {min_seconds} s)")
    return wav, AudioInfo(rate, channels, conversions)


def write_audio(path, wav: np.ndarray, sample_rate: int) -> None:
    """Write 16-bit PCM WAV (FLAC when the suffix says so), atomically."""
    from uniwav.utils import atomic_path

    path = Path(path)
    with atomic_path(path, suffix=path.suffix) as tmp:
        sf.write(str(tmp), np.clip(np.asarray(wav, dtype=np.float32), -1.0, 1.0), sample_rate, subtype="PCM_16")
