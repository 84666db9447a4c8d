"""Speech recognition model: the UniWav encoder with a linear CTC head over characters."""

from __future__ import annotations

from typing import Optional

import torch
from torch import nn

from uniwav.config import CTCModelConfig
from uniwav.data.frontend import TextFrontEnd
from uniwav.data.text import CharVocabulary
from uniwav.features.mel import LogMel
from uniwav.models.encoder import Encoder, span_mask
from uniwav.models.layers import lengths_to_padding_mask
from uniwav.models.pretrained import PretrainedMixin


class CTCModel(PretrainedMixin, nn.Module):
    """forward(feats [B, T, F], lengths [B]) -> float32 log-probabilities [B, T, V] (blank = 0)."""

    model_type = "ctc"
    config_class = CTCModelConfig

    def __init__(self, cfg: CTCModelConfig):
        super().__init__()
        cfg.validate()
        self.cfg = cfg
        self.vocab = CharVocabulary(cfg.vocab) if cfg.vocab else None
        self.frontend = TextFrontEnd(cfg.unit, cfg.language)  # how a transcript becomes the tokens of vocab
        self.features = LogMel(cfg.features)
        self.encoder = Encoder(cfg.encoder, cfg.features.n_mels)
        self.dropout = nn.Dropout(cfg.final_dropout)
        self.head_norm = nn.LayerNorm(cfg.encoder.dim) if cfg.layer is not None else nn.Identity()
        self.head = nn.Linear(cfg.encoder.dim, max(1, len(cfg.vocab)))

    def draw_masks(self, lengths: torch.Tensor, max_len: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Fine-tuning augmentation from the global RNG: time mask [B, T], channel mask [B, D]."""
        c = self.cfg
        B, D = lengths.shape[0], c.encoder.dim
        time = span_mask(lengths, max_len, c.mask_prob, c.mask_span) if c.mask_prob > 0 else None
        chan = None
        if c.channel_mask_prob > 0:
            chan = span_mask(torch.full((B,), D, device=lengths.device), D, c.channel_mask_prob, c.channel_mask_span)
        return time, chan

    def forward(self, feats: torch.Tensor, lengths: torch.Tensor, time_mask: Optional[torch.Tensor] = None,
                channel_mask: Optional[torch.Tensor] = None, freeze_encoder: bool = False) -> torch.Tensor:
        padding_mask = lengths_to_padding_mask(lengths, feats.shape[1])
        with torch.set_grad_enabled(torch.is_grad_enabled() and not freeze_encoder):
            out = self.encoder(feats, padding_mask, time_mask, num_layers=self.cfg.layer, channel_mask=channel_mask)
            hidden = out.final if self.cfg.layer is None else out.hidden[-1]
        return torch.log_softmax(self.head(self.dropout(self.head_norm(hidden))).float(), dim=-1)

    @torch.no_grad()
    def log_probs(self, wav, lengths=None) -> tuple[torch.Tensor, torch.Tensor]:
        """Waveform(s) [S] or [B, S] (+ sample lengths) -> (log-probs [B, T, V], frame lengths [B])."""
        feats, frames = self.features.prepare(wav, lengths)
        return self(feats, frames), frames
