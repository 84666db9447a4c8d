"""Vocos (Siuzdak, 2023): log-mel frames -> ConvNeXt backbone -> per-frame STFT magnitude and
phase -> inverse STFT. The frame rate never changes inside the network, so it is fast on a CPU.

The parameter names follow the public Vocos checkpoints (``backbone.embed``, ``backbone.convnext.i``,
``head.out``), so a local copy of one (config.yaml + pytorch_model.bin) loads into this class;
see ``uniwav.inference.vocoders``.
"""

from __future__ import annotations

from typing import Optional

import torch
import torch.nn.functional as F
from torch import nn

from uniwav.config import VocoderModelConfig
from uniwav.features.mel import LogMel
from uniwav.models.layers import lengths_to_padding_mask
from uniwav.models.pretrained import PretrainedMixin


class ConvNeXtBlock(nn.Module):
    """x [B, C, T] -> x + gamma * pw2(gelu(pw1(LN(dwconv(x)))))."""

    def __init__(self, dim: int, intermediate_dim: int, layer_scale: float):
        super().__init__()
        self.dwconv = nn.Conv1d(dim, dim, kernel_size=7, padding=3, groups=dim)
        self.norm = nn.LayerNorm(dim, eps=1e-6)
        self.pwconv1 = nn.Linear(dim, intermediate_dim)
        self.pwconv2 = nn.Linear(intermediate_dim, dim)
        self.gamma = nn.Parameter(layer_scale * torch.ones(dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.norm(self.dwconv(x).transpose(1, 2))
        y = self.gamma * self.pwconv2(F.gelu(self.pwconv1(y)))
        return x + y.transpose(1, 2)


class VocosBackbone(nn.Module):
    """log-mel [B, n_mels, T] (+ padding mask [B, T]) -> hidden [B, T, dim]. With a padding mask,
    padded frames are zeroed before every convolution, as the convolution's own zero padding does
    at the end of an utterance alone: valid frames do not depend on the padding."""

    def __init__(self, n_mels: int, dim: int, intermediate_dim: int, layers: int):
        super().__init__()
        self.embed = nn.Conv1d(n_mels, dim, kernel_size=7, padding=3)
        self.norm = nn.LayerNorm(dim, eps=1e-6)
        self.convnext = nn.ModuleList(ConvNeXtBlock(dim, intermediate_dim, 1.0 / layers) for _ in range(layers))
        self.final_layer_norm = nn.LayerNorm(dim, eps=1e-6)
        self.apply(self._init)

    @staticmethod
    def _init(m):
        if isinstance(m, (nn.Conv1d, nn.Linear)):
            nn.init.trunc_normal_(m.weight, std=0.02)
            nn.init.zeros_(m.bias)

    def forward(self, mel: torch.Tensor, padding_mask: Optional[torch.Tensor] = None) -> torch.Tensor:
        if padding_mask is not None:
            mel = mel.masked_fill(padding_mask[:, None], 0.0)
        x = self.norm(self.embed(mel).transpose(1, 2)).transpose(1, 2)
        for block in self.convnext:
            if padding_mask is not None:
                x = x.masked_fill(padding_mask[:, None], 0.0)
            x = block(x)
        return self.final_layer_norm(x.transpose(1, 2))


def istft(spec: torch.Tensor, n_fft: int, hop: int, window: torch.Tensor, padding: str) -> torch.Tensor:
    """Complex spectrogram [B, n_fft // 2 + 1, T] -> waveform [B, S].

    "center": torch.istft with center=True, the inverse of our ``LogMel`` framing (S = (T - 1) * hop).
    "same": Vocos's framing, (win - hop) / 2 trimmed from each side (S = T * hop).
    """
    if padding == "center":
        return torch.istft(spec, n_fft, hop, n_fft, window=window, center=True)
    B, _, T = spec.shape
    pad = (n_fft - hop) // 2
    frames = torch.fft.irfft(spec, n_fft, dim=1, norm="backward") * window[None, :, None]
    size = (T - 1) * hop + n_fft
    y = F.fold(frames, output_size=(1, size), kernel_size=(1, n_fft), stride=(1, hop))[:, 0, 0, pad:-pad]
    envelope = F.fold(window.square()[None, :, None].expand(1, -1, T), output_size=(1, size), kernel_size=(1, n_fft),
                      stride=(1, hop))[0, 0, 0, pad:-pad]
    return y / envelope.clamp_min(1e-11)


class ISTFTHead(nn.Module):
    """hidden [B, T, dim] -> waveform [B, S]: log-magnitude and phase per frame, then inverse STFT."""

    def __init__(self, dim: int, n_fft: int, hop: int, padding: str):
        super().__init__()
        self.n_fft, self.hop, self.padding = n_fft, hop, padding
        self.out = nn.Linear(dim, n_fft + 2)
        self.register_buffer("window", torch.hann_window(n_fft), persistent=False)

    def spectrum(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """hidden [B, T, dim] -> real and imaginary parts [B, n_fft // 2 + 1, T] of the spectrogram."""
        log_mag, phase = self.out(x).transpose(1, 2).float().chunk(2, dim=1)
        mag = torch.exp(log_mag).clamp(max=1e2)
        return mag * torch.cos(phase), mag * torch.sin(phase)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return istft(torch.complex(*self.spectrum(x)), self.n_fft, self.hop, self.window, self.padding)


class Vocoder(PretrainedMixin, nn.Module):
    """forward(raw log-mel [B, T, n_mels]) -> waveform [B, S] at features.sample_rate.

    Input is the UN-normalised log-mel of ``cfg.features`` (``LogMel.raw``, or
    ``LogMel.denormalize`` of a model's output), as in Vocos."""

    model_type = "vocoder"
    config_class = VocoderModelConfig

    def __init__(self, cfg: VocoderModelConfig):
        super().__init__()
        cfg.validate()
        self.cfg = cfg
        f = cfg.features
        if f.win_length != f.n_fft:
            raise ValueError(f"the Vocos head needs features.win_length == n_fft ({f.win_length} != {f.n_fft})")
        self.features = LogMel(f)
        self.backbone = VocosBackbone(f.n_mels, cfg.dim, cfg.intermediate_dim, cfg.layers)
        self.head = ISTFTHead(cfg.dim, f.n_fft, f.hop_length, cfg.padding)

    def forward(self, mel: torch.Tensor) -> torch.Tensor:
        return self.head(self.backbone(mel.transpose(1, 2)))

    @torch.no_grad()
    def vocode(self, mel: torch.Tensor, lengths: Optional[torch.Tensor] = None) -> list[torch.Tensor]:
        """Raw log-mel [B, T, n_mels] (+ frame lengths [B]) -> list of B waveforms, each the same as
        vocoding that utterance alone (the backbone runs batched, the inverse STFT per utterance)."""
        if lengths is None:
            return list(self(mel))
        hidden = self.backbone(mel.transpose(1, 2), lengths_to_padding_mask(lengths.to(mel.device), mel.shape[1]))
        return [self.head(hidden[i: i + 1, : int(n)])[0] for i, n in enumerate(lengths.tolist())]

    @torch.no_grad()
    def analysis_synthesis(self, wav: torch.Tensor) -> torch.Tensor:
        """Waveform [S] -> the same through mel and back (the ceiling of any generated sample)."""
        mel, _ = self.features.raw(wav[None])
        out = self(mel)[0]
        n = min(out.shape[0], wav.shape[-1])
        return F.pad(out[:n], (0, wav.shape[-1] - n))


def expected_samples(frames: int, cfg: VocoderModelConfig) -> int:
    """Samples a vocoder produces for ``frames`` mel frames."""
    hop = cfg.features.hop_length
    return (frames - 1) * hop if cfg.padding == "center" else frames * hop

