"""GAN discriminators for vocoder training (the Vocos / HiFi-GAN / UniVNet set):

- multi-period: the waveform folded into [T / p, p] and scanned with 2-D convolutions, per period p;
- multi-resolution: 2-D convolutions over log-magnitude STFTs of several sizes.

Each sub-discriminator returns (logits, feature maps); the losses are least-squares (LSGAN) plus
L1 feature matching, as in HiFi-GAN.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.parametrizations import weight_norm


def _scan(convs, post, x: torch.Tensor):
    """Leaky-ReLU conv stack + output conv -> (logits [B, N], every layer's feature map)."""
    feats = []
    for conv in convs:
        x = F.leaky_relu(conv(x), 0.1)
        feats.append(x)
    x = post(x)
    feats.append(x)
    return x.flatten(1), feats


class PeriodDiscriminator(nn.Module):
    def __init__(self, period: int, channels: int = 32):
        super().__init__()
        self.period = period
        chans = [1, channels, channels * 4, channels * 16, channels * 16]
        self.convs = nn.ModuleList(
            weight_norm(nn.Conv2d(chans[i], chans[i + 1], (5, 1), (3 if i < 3 else 1, 1), padding=(2, 0))) for i in range(4)
        )
        self.post = weight_norm(nn.Conv2d(chans[-1], 1, (3, 1), padding=(1, 0)))

    def forward(self, wav: torch.Tensor):
        """wav [B, S] -> (logits [B, N], feature maps)."""
        B, S = wav.shape
        if S % self.period:
            wav = F.pad(wav, (0, self.period - S % self.period), mode="reflect")
        x = wav.view(B, 1, -1, self.period)
        return _scan(self.convs, self.post, x)


class ResolutionDiscriminator(nn.Module):
    def __init__(self, n_fft: int, channels: int = 32):
        super().__init__()
        self.n_fft = n_fft
        self.register_buffer("window", torch.hann_window(n_fft), persistent=False)
        self.convs = nn.ModuleList([
            weight_norm(nn.Conv2d(1, channels, (7, 5), (2, 2), padding=(3, 2))),
            weight_norm(nn.Conv2d(channels, channels, (5, 3), (2, 1), padding=(2, 1))),
            weight_norm(nn.Conv2d(channels, channels, (5, 3), (2, 1), padding=(2, 1))),
            weight_norm(nn.Conv2d(channels, channels, 3, padding=1)),
        ])
        self.post = weight_norm(nn.Conv2d(channels, 1, 3, padding=1))

    def forward(self, wav: torch.Tensor):
        spec = torch.stft(wav.float(), self.n_fft, self.n_fft // 4, window=self.window, center=True, return_complex=True)
        x = torch.log1p(spec.abs())[:, None]  # [B, 1, F, T]
        return _scan(self.convs, self.post, x)


class Discriminators(nn.Module):
    """All sub-discriminators: forward(wav [B, S]) -> list of (logits, feature maps)."""

    def __init__(self, periods=(2, 3, 5, 7, 11), ffts=(512, 1024, 2048)):
        super().__init__()
        self.subs = nn.ModuleList([*(PeriodDiscriminator(p) for p in periods), *(ResolutionDiscriminator(n) for n in ffts)])

    def forward(self, wav: torch.Tensor):
        return [d(wav) for d in self.subs]


def discriminator_loss(real, fake) -> torch.Tensor:
    """LSGAN: real logits -> 1, fake logits -> 0, averaged over sub-discriminators."""
    return sum(((1 - r) ** 2).mean() + (f**2).mean() for (r, _), (f, _) in zip(real, fake)) / len(real)


def generator_loss(fake) -> torch.Tensor:
    return sum(((1 - f) ** 2).mean() for f, _ in fake) / len(fake)


def feature_matching_loss(real, fake) -> torch.Tensor:
    """L1 between the discriminators' feature maps of real (detached) and generated audio."""
    total, n = 0.0, 0
    for (_, fr), (_, ff) in zip(real, fake):
        for a, b in zip(fr, ff):
            total = total + (a.detach() - b).abs().mean()
            n += 1
    return total / max(n, 1)
