"""Flow-matching decoder: a U-Net-style Transformer over frames (Voicebox/SpeechFlow shape)
predicting the velocity of the optimal-transport path, conditioned on the encoder's mixed
representation z and, in every block, on the flow time t."""

from __future__ import annotations

from typing import Optional

import torch
from torch import nn

from uniwav.config import DecoderConfig
from uniwav.models.layers import AdaLNBlock, ConvPositionalEmbedding, SinusoidalEmbedding


class FlowDecoder(nn.Module):
    """forward(x_t [B, T, F], t [B], z [B, T, C], padding_mask [B, T]) -> velocity [B, T, F].

    Per frame the input is Linear([x_t ; LayerNorm(z)]). Layers i and L-1-i are joined by a skip
    connection (concatenate, project), as in Voicebox.
    """

    def __init__(self, cfg: DecoderConfig, feat_dim: int, cond_dim: int):
        super().__init__()
        self.cfg = cfg
        self.cond_norm = nn.LayerNorm(cond_dim)
        self.in_proj = nn.Linear(feat_dim + cond_dim, cfg.dim)
        self.time_embed = nn.Sequential(
            SinusoidalEmbedding(cfg.time_embed_dim), nn.Linear(cfg.time_embed_dim, cfg.dim), nn.SiLU(), nn.Linear(cfg.dim, cfg.dim)
        )
        self.pos_conv = ConvPositionalEmbedding(cfg.dim, cfg.pos_conv_kernel, cfg.pos_conv_groups)
        self.blocks = nn.ModuleList(AdaLNBlock(cfg.dim, cfg.heads, cfg.ffn_dim, cfg.dropout) for _ in range(cfg.layers))
        self.skip_proj = nn.ModuleList(nn.Linear(2 * cfg.dim, cfg.dim) for _ in range(cfg.layers // 2))
        self.final_norm = nn.LayerNorm(cfg.dim, elementwise_affine=False)
        self.final_modulation = nn.Sequential(nn.SiLU(), nn.Linear(cfg.dim, 2 * cfg.dim))
        self.out_proj = nn.Linear(cfg.dim, feat_dim)
        nn.init.zeros_(self.final_modulation[1].weight)
        nn.init.zeros_(self.final_modulation[1].bias)
        nn.init.zeros_(self.out_proj.weight)
        nn.init.zeros_(self.out_proj.bias)

    def forward(self, x_t: torch.Tensor, t: torch.Tensor, z: torch.Tensor, padding_mask: Optional[torch.Tensor] = None) -> torch.Tensor:
        c = self.time_embed(t)
        x = self.in_proj(torch.cat([x_t, self.cond_norm(z).to(x_t.dtype)], dim=-1))
        x = self.pos_conv(x, padding_mask)
        half = len(self.blocks) // 2
        skips = []
        for i, block in enumerate(self.blocks):
            if i < half:
                skips.append(x)
            else:
                x = self.skip_proj[i - half](torch.cat([x, skips.pop()], dim=-1))
            x = block(x, c, padding_mask)
        shift, scale = self.final_modulation(c)[:, None].chunk(2, dim=-1)
        return self.out_proj(self.final_norm(x) * (1 + scale) + shift)
