"""Log-mel spectrogram on ``torch.stft``, batched with padding and exact per utterance.

Each utterance is reflect-padded by ``n_fft // 2`` on its own valid samples before the
batch is zero-padded, so frame ``i`` of a padded batch equals frame ``i`` of the same
utterance computed alone (``center=True`` semantics, without padding leaking in).
"""

from __future__ import annotations

from typing import Optional

import librosa
import numpy as np
import torch
from torch import nn

from uniwav.config import FeatureConfig


def mel_filterbank(cfg: FeatureConfig) -> torch.Tensor:
    """Mel filters [n_mels, n_fft // 2 + 1], from librosa (the reference implementation)."""
    fb = librosa.filters.mel(
        sr=cfg.sample_rate, n_fft=cfg.n_fft, n_mels=cfg.n_mels, fmin=cfg.fmin, fmax=cfg.fmax,
        htk=cfg.mel_scale == "htk", norm=cfg.mel_norm, dtype=np.float64,
    )
    return torch.from_numpy(fb).float()


def num_frames(num_samples: torch.Tensor | int, cfg: FeatureConfig):
    """Frames produced for ``num_samples`` samples (``center=True``: 1 + n // hop)."""
    if cfg.center:
        return 1 + num_samples // cfg.hop_length
    return 1 + (num_samples - cfg.n_fft) // cfg.hop_length


class LogMel(nn.Module):
    """waveform [B, S] (+ lengths [B]) -> normalised log-mel [B, T, n_mels] (+ frame lengths [B]).

    Frames past an utterance's length are zero. Normalisation uses the dataset statistics
    in the config (identity when absent); ``denormalize`` inverts it for vocoding.
    """

    def __init__(self, cfg: FeatureConfig):
        super().__init__()
        cfg.validate()
        self.cfg = cfg
        self.register_buffer("filters", mel_filterbank(cfg), persistent=False)
        win = getattr(torch, f"{cfg.window}_window")(cfg.win_length, periodic=True)
        self.register_buffer("window", win, persistent=False)
        mean = torch.tensor(cfg.norm_mean) if cfg.norm_mean is not None else torch.zeros(cfg.n_mels)
        std = torch.tensor(cfg.norm_std) if cfg.norm_std is not None else torch.ones(cfg.n_mels)
        self.register_buffer("mean", mean.float(), persistent=False)
        self.register_buffer("std", std.float().clamp_min(1e-5), persistent=False)

    def _pad(self, wav: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """Each row's first ``lengths`` samples padded by n_fft // 2 on both sides, by reflection (as
        ``F.pad(mode="reflect")``; zeros for a row not longer than the padding), then zeros to a common
        width [B, S + n_fft]: one gather for the batch, no per-row work or wait for the device."""
        if not self.cfg.center:
            return wav
        p = self.cfg.n_fft // 2
        B, S = wav.shape
        zero = torch.zeros((), dtype=wav.dtype, device=wav.device)
        n = lengths.to(wav.device)[:, None]  # [B, 1]
        k = torch.arange(1, p + 1, device=wav.device)[None]  # [1, p]
        reflect = n > p  # else zeros, as F.pad cannot reflect more samples than a row has
        body = torch.where(torch.arange(S, device=wav.device)[None] < n, wav, zero)
        left = torch.where(reflect, torch.gather(wav, 1, k.flip(1).clamp_max(S - 1).expand(B, p)), zero)  # x[p], ..., x[1]
        right = torch.where(reflect, torch.gather(wav, 1, (n - 1 - k).clamp_min(0)), zero)  # x[n-2], ..., x[n-1-p]
        out = torch.cat([left, body, wav.new_zeros(B, p)], dim=1)
        return out.scatter_(1, p + n - 1 + k, right)  # right after each row's last sample

    @torch.autocast("cuda", enabled=False)
    @torch.autocast("cpu", enabled=False)
    def raw(self, wav: torch.Tensor, lengths: Optional[torch.Tensor] = None):
        """Un-normalised log-mel [B, T, n_mels] and frame lengths [B], in float32 even under autocast
        (the decoder's regression target must not be rounded to bf16)."""
        with torch.autocast(wav.device.type, enabled=False):
            return self._raw(wav, lengths)

    def _raw(self, wav: torch.Tensor, lengths: Optional[torch.Tensor]):
        if wav.dim() == 1:
            wav = wav[None]
        wav = wav.float()
        if lengths is None:
            lengths = torch.full((wav.shape[0],), wav.shape[1], dtype=torch.long, device=wav.device)
        x = self._pad(wav, lengths)
        spec = torch.stft(
            x, n_fft=self.cfg.n_fft, hop_length=self.cfg.hop_length, win_length=self.cfg.win_length,
            window=self.window, center=False, return_complex=True,
        ).abs()
        if self.cfg.power != 1.0:
            spec = spec.pow(self.cfg.power)
        mel = torch.matmul(self.filters, spec).clamp_min(self.cfg.log_floor).log().transpose(1, 2)
        frames = num_frames(lengths, self.cfg).clamp(min=0, max=mel.shape[1])
        valid = torch.arange(mel.shape[1], device=mel.device)[None] < frames[:, None]
        return mel * valid[..., None], frames

    def prepare(self, wav, lengths=None) -> tuple[torch.Tensor, torch.Tensor]:
        """Waveform(s) at ``sample_rate`` as anything array-like, [S] or [B, S] (+ sample lengths [B]),
        -> (normalised log-mel [B, T, n_mels], frame lengths [B]) on this module's device."""
        device = self.window.device
        wav = torch.as_tensor(wav, dtype=torch.float32, device=device)
        wav = wav[None] if wav.dim() == 1 else wav
        lengths = None if lengths is None else torch.as_tensor(lengths, device=device)
        return self(wav, lengths)

    def forward(self, wav: torch.Tensor, lengths: Optional[torch.Tensor] = None):
        mel, frames = self.raw(wav, lengths)
        valid = torch.arange(mel.shape[1], device=mel.device)[None] < frames[:, None]
        return self.normalize(mel) * valid[..., None], frames

    def normalize(self, mel: torch.Tensor) -> torch.Tensor:
        return (mel - self.mean) / self.std

    def denormalize(self, feats: torch.Tensor) -> torch.Tensor:
        return feats * self.std + self.mean
