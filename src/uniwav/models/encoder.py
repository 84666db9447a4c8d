"""The UniWav encoder (DinoSR student): features -> projection -> span masking -> conv
position embedding -> Transformer (pre-LN, or post-LN as in DinoSR base). Its ``context`` part is what the EMA teacher copies."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import torch
import torch.nn.functional as F
from torch import nn

from uniwav.config import EncoderConfig
from uniwav.models.layers import ConvPositionalEmbedding, TransformerBlock


def span_mask(lengths: torch.Tensor, max_len: int, mask_prob: float, span: int, generator: Optional[torch.Generator] = None) -> torch.Tensor:
    """wav2vec 2.0 / DinoSR masking. bool [B, T], True at masked frames.

    Each utterance of n frames draws round(mask_prob * n / span) distinct span starts (with a
    random fractional round) uniformly among the n - span + 1 positions; spans may overlap,
    so about half of the frames end up masked for mask_prob 0.8, span 10. Padding is never masked.
    """
    device = lengths.device
    B = lengths.shape[0]
    u = torch.rand(B, generator=generator, device="cpu").to(device)
    n_starts = (mask_prob * lengths.float() / span + u).floor().long()
    n_positions = (lengths - span + 1).clamp(min=1)
    n_starts = torch.minimum(n_starts, n_positions)
    scores = torch.rand(B, max_len, generator=generator, device="cpu").to(device)
    positions = torch.arange(max_len, device=device)[None]
    scores = scores.masked_fill(positions >= n_positions[:, None], 2.0)  # invalid starts sort last
    rank = scores.argsort(dim=1).argsort(dim=1)
    starts = (rank < n_starts[:, None]).float()
    covered = F.conv1d(F.pad(starts[:, None], (span - 1, 0)), torch.ones(1, 1, span, device=device))[:, 0] > 0
    return covered & (positions < lengths[:, None])


class ContextNetwork(nn.Module):
    """Conv position embedding + Transformer blocks + final LayerNorm.

    forward: x [B, T, D] -> (hidden: list of L tensors [B, T, D] (block outputs),
                             ffn: list of L tensors [B, T, D] (feed-forward outputs before the residual),
                             final: [B, T, D] = LayerNorm(hidden[-1]))
    """

    def __init__(self, cfg: EncoderConfig):
        super().__init__()
        self.pos_conv = ConvPositionalEmbedding(cfg.dim, cfg.pos_conv_kernel, cfg.pos_conv_groups, cfg.pos_conv_depth)
        self.pos_norm = nn.LayerNorm(cfg.dim)
        self.blocks = nn.ModuleList(
            TransformerBlock(cfg.dim, cfg.heads, cfg.ffn_dim, cfg.dropout, cfg.attention_dropout, cfg.norm_first)
            for _ in range(cfg.layers)
        )
        # post-LN blocks already end in a LayerNorm
        self.final_norm = nn.LayerNorm(cfg.dim) if cfg.norm_first else nn.Identity()
        self.layer_drop = cfg.layer_drop

    def forward(self, x: torch.Tensor, padding_mask: Optional[torch.Tensor] = None, num_layers: Optional[int] = None):
        x = self.pos_norm(self.pos_conv(x, padding_mask))
        hidden, ffn = [], []
        for block in self.blocks[:num_layers]:
            if self.training and self.layer_drop > 0 and torch.rand(()) < self.layer_drop:
                ffn.append(torch.zeros_like(x))
            else:
                x, f = block(x, padding_mask)
                ffn.append(f)
            hidden.append(x)
        return hidden, ffn, self.final_norm(x)


@dataclass
class EncoderOutput:
    hidden: list  # L x [B, T, D]
    ffn: list  # L x [B, T, D]
    final: torch.Tensor  # [B, T, D]
    mask: Optional[torch.Tensor]  # [B, T] bool, True where the input was masked


class Encoder(nn.Module):
    def __init__(self, cfg: EncoderConfig, in_dim: int):
        super().__init__()
        self.cfg = cfg
        self.input_proj = nn.Sequential(nn.LayerNorm(in_dim), nn.Linear(in_dim, cfg.dim))
        self.mask_embedding = nn.Parameter(torch.empty(cfg.dim).uniform_())
        self.dropout = nn.Dropout(cfg.dropout)
        self.context = ContextNetwork(cfg)

    def embed(self, feats: torch.Tensor) -> torch.Tensor:
        """feats [B, T, F] -> [B, T, D] (shared by student and teacher)."""
        return self.input_proj(feats)

    def forward(self, feats: torch.Tensor, padding_mask: Optional[torch.Tensor] = None, mask: Optional[torch.Tensor] = None,
                num_layers: Optional[int] = None, channel_mask: Optional[torch.Tensor] = None) -> EncoderOutput:
        """feats [B, T, F]; mask [B, T] bool (frames replaced by the mask embedding) or None;
        channel_mask [B, D] bool (projected input channels zeroed, fine-tuning augmentation) or None."""
        x = self.embed(feats)
        if channel_mask is not None:
            x = x.masked_fill(channel_mask[:, None, :], 0.0)
        if mask is not None:
            x = torch.where(mask[..., None], self.mask_embedding.to(x.dtype), x)
        hidden, ffn, final = self.context(self.dropout(x), padding_mask, num_layers)
        return EncoderOutput(hidden, ffn, final, mask)
