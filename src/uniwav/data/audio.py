"""Audio reading with errors that name the file and the problem."""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

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
    """What was done to make a file usable (empty lists: it was usable as it was), and what is worth knowing."""

    original_rate: int
    original_channels: int
    conversions: list
    warnings: list = field(default_factory=list)


def wav_truncation(path) -> Optional[str]:
    """A warning when a WAV file's data chunk is shorter than its header declares (a copy cut short),
    else None. Other formats: None (their decoders report damage themselves)."""
    try:
        with open(path, "rb") as f:
            head = f.read(12)
            if len(head) < 12 or head[:4] != b"RIFF" or head[8:12] != b"WAVE":
                return None
            while True:
                chunk = f.read(8)
                if len(chunk) < 8:
                    return None
                size = struct.unpack("<I", chunk[4:])[0]
                if chunk[:4] == b"data":
                    available = Path(path).stat().st_size - f.tell()
                    if size not in (0, 0xFFFFFFFF) and available < size:  # 0 / 0xFFFFFFFF: streamed WAVs of unknown length
                        return f"truncated: the header declares {size} bytes of audio, the file holds {available} (the end is missing)"
                    return None
                f.seek(size + (size & 1), 1)
    except OSError:
        return None


def read_audio(path, sample_rate: int, min_seconds: float = 0.0) -> tuple[np.ndarray, AudioInfo]:
    """Read ``path`` as mono float32 at ``sample_rate``; stereo is averaged, other rates resampled.

    Raises AudioError for unreadable, empty, silent-length or non-finite audio.
    """
    path = Path(path)
    if not path.exists():
        raise AudioError(path, "file not found")
    if path.is_dir():
        raise AudioError(path, "is a folder, not an audio file")
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
    truncated = wav_truncation(path)
    return wav, AudioInfo(rate, channels, conversions, [truncated] if truncated else [])


def check_output_audio(path) -> Path:
    """Refuse an output that cannot be written as audio, before any work is done: a folder, or a
    name whose suffix is not .wav or .flac."""
    path = Path(path)
    if path.is_dir():
        raise AudioError(path, "is a folder; give an output file name ending in .wav or .flac")
    if path.suffix.lower() not in AUDIO_SUFFIXES:
        raise AudioError(path, f"cannot write {path.suffix or 'a file without a suffix'}: the output must end in .wav or .flac")
    return path


def write_audio(path, wav: np.ndarray, sample_rate: int) -> None:
    """Write 16-bit PCM WAV (FLAC when the suffix says so), atomically."""
    from uniwav.utils import atomic_path

    path = Path(path)
    with atomic_path(path, suffix=path.suffix) as tmp:
        sf.write(str(tmp), np.clip(np.asarray(wav, dtype=np.float32), -1.0, 1.0), sample_rate, subtype="PCM_16")
