"""Griffin-Lim inversion (fast variant with momentum, Perraudin et al. 2013): needs no weights,
so generated features can be listened to before a neural vocoder exists."""

from __future__ import annotations

import torch
from torch import nn

from uniwav.config import FeatureConfig
from uniwav.features.mel import mel_filterbank


def spectral_convergence(target_mag: torch.Tensor, mag: torch.Tensor) -> float:
    """|| |S| - |S_hat| ||_F / || |S| ||_F (0 is perfect)."""
    return float(torch.linalg.norm(target_mag - mag) / torch.linalg.norm(target_mag).clamp_min(1e-12))


class GriffinLim(nn.Module):
    """log-mel (un-normalised) [T, n_mels] or [B, T, n_mels] -> waveform [S] or [B, S]."""

    def __init__(self, cfg: FeatureConfig, n_iter: int = 64, momentum: float = 0.99, seed: int = 0):
        super().__init__()
        self.cfg, self.n_iter, self.momentum, self.seed = cfg, n_iter, momentum, seed
        fb = mel_filterbank(cfg)
        self.register_buffer("pinv", torch.linalg.pinv(fb), persistent=False)
        self.register_buffer("window", getattr(torch, f"{cfg.window}_window")(cfg.win_length, periodic=True), persistent=False)

    def mel_to_magnitude(self, log_mel: torch.Tensor) -> torch.Tensor:
        """[B, T, n_mels] -> linear magnitude [B, n_fft//2+1, T] (least squares, clamped >= 0)."""
        mel = log_mel.float().exp().transpose(1, 2)
        mag = torch.matmul(self.pinv, mel).clamp_min(0.0)
        if self.cfg.power != 1.0:
            mag = mag.pow(1.0 / self.cfg.power)
        return mag

    def _stft(self, wav):
        c = self.cfg
        return torch.stft(wav, c.n_fft, c.hop_length, c.win_length, self.window, center=c.center, return_complex=True)

    def _istft(self, spec, length):
        c = self.cfg
        return torch.istft(spec, c.n_fft, c.hop_length, c.win_length, self.window, center=c.center, length=length)

    def from_magnitude(self, mag: torch.Tensor) -> torch.Tensor:
        """Linear magnitude [B, F, T] -> waveform [B, S]."""
        length = (mag.shape[-1] - 1) * self.cfg.hop_length
        gen = torch.Generator(device="cpu").manual_seed(self.seed)
        phase = torch.rand(mag.shape, generator=gen).to(mag.device) * 2 * torch.pi
        angles = torch.polar(torch.ones_like(mag), phase)
        prev = torch.zeros_like(angles)
        for _ in range(self.n_iter):
            wav = self._istft(mag * angles, length)
            rebuilt = self._stft(wav)
            accel = rebuilt - (self.momentum / (1 + self.momentum)) * prev
            angles = accel / accel.abs().clamp_min(1e-8)
            prev = rebuilt
        return self._istft(mag * angles, length)

    @torch.no_grad()
    def forward(self, log_mel: torch.Tensor) -> torch.Tensor:
        single = log_mel.dim() == 2
        if single:
            log_mel = log_mel[None]
        wav = self.from_magnitude(self.mel_to_magnitude(log_mel))
        peak = wav.abs().amax(dim=-1, keepdim=True).clamp_min(1e-8)
        wav = wav * torch.where(peak > 0.99, 0.99 / peak, torch.ones_like(peak))
        return wav[0] if single else wav
