"""Transformer building blocks shared by the encoder and the decoder.

Shapes: B batch, T frames, D width. ``padding_mask`` is bool [B, T], True at padded frames.
"""

from __future__ import annotations

import math
from typing import Optional

import torch
import torch.nn.functional as F
from torch import nn


def mix_layers(weights: torch.Tensor, hidden) -> torch.Tensor:
    """z = sum_l softmax(weights)_l * hidden_l: weights [L], hidden L x [B, T, D] -> [B, T, D]."""
    w = torch.softmax(weights.float(), dim=0).to(hidden[0].dtype)
    return torch.einsum("l,lbtd->btd", w, torch.stack(list(hidden)))


def masked_instance_norm(x: torch.Tensor, padding_mask: Optional[torch.Tensor], eps: float = 1e-5) -> torch.Tensor:
    """Normalise each utterance's channels over its valid frames. x [B, T, D] -> [B, T, D] (float32, zero at padding)."""
    x = x.float()
    if padding_mask is None:
        valid = torch.ones(x.shape[:2], dtype=x.dtype, device=x.device)
    else:
        valid = (~padding_mask).to(x.dtype)
    n = valid.sum(1).clamp_min(1.0)[:, None, None]
    w = valid[..., None]
    mean = (x * w).sum(1, keepdim=True) / n
    var = ((x - mean) ** 2 * w).sum(1, keepdim=True) / n
    return (x - mean) / torch.sqrt(var + eps) * w


def lengths_to_padding_mask(lengths: torch.Tensor, max_len: Optional[int] = None) -> torch.Tensor:
    """[B] lengths -> bool [B, T], True at padded frames."""
    max_len = int(lengths.max()) if max_len is None else max_len
    return torch.arange(max_len, device=lengths.device)[None] >= lengths[:, None]


class ConvPositionalEmbedding(nn.Module):
    """wav2vec 2.0's relative position embedding: a grouped convolution over time, added to x; with
    ``depth`` > 1, data2vec's (DinoSR's): ``depth`` convolutions ``max(3, kernel // depth)`` wide, each
    followed by a LayerNorm without weights and GELU. Padded frames are zeroed first, so valid frames
    never see padding."""

    def __init__(self, dim: int, kernel: int, groups: int, depth: int = 1):
        super().__init__()
        self.depth = depth
        if depth == 1:
            conv = nn.Conv1d(dim, dim, kernel, padding=kernel // 2, groups=groups)
            nn.init.normal_(conv.weight, mean=0.0, std=math.sqrt(4.0 / (kernel * dim)))
            nn.init.zeros_(conv.bias)
            self.conv = nn.utils.parametrizations.weight_norm(conv, name="weight", dim=2)
        else:
            width = max(3, kernel // depth) | 1  # odd: centred
            self.convs = nn.ModuleList(nn.Conv1d(dim, dim, width, padding=width // 2, groups=groups) for _ in range(depth))
            self.norms = nn.ModuleList(nn.LayerNorm(dim, elementwise_affine=False) for _ in range(depth))

    def forward(self, x: torch.Tensor, padding_mask: Optional[torch.Tensor]) -> torch.Tensor:
        if padding_mask is not None:
            x = x.masked_fill(padding_mask[..., None], 0.0)
        if self.depth == 1:
            return x + F.gelu(self.conv(x.transpose(1, 2)).transpose(1, 2))
        y = x
        for conv, norm in zip(self.convs, self.norms):
            y = F.gelu(norm(conv(y.transpose(1, 2)).transpose(1, 2)))
            if padding_mask is not None:  # each layer sees only valid frames
                y = y.masked_fill(padding_mask[..., None], 0.0)
        return x + y


# The bf16 CPU path keeps [B, H, T, T] scores for the backward (6 bytes per score); past this many
# per call (a 40 s batch of `tiny` needs 16M) the flash kernel's O(T) memory is worth its time.
MAX_EAGER_SCORES = 2**25


def attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, attn_mask: Optional[torch.Tensor] = None,
              dropout_p: float = 0.0) -> torch.Tensor:
    """softmax(q k^T / sqrt(d)) v: q, k, v [B, H, T, d]; attn_mask bool, broadcast to [B, H, T, T], True = attend.

    ``F.scaled_dot_product_attention`` (its fused kernels) everywhere except bf16 on a CPU, where its
    flash kernel runs at a quarter of the bf16 matmul rate: there the scores and the weighted sum are
    two bf16 matmuls around a float32 softmax (transformers' "eager" attention), up to
    ``MAX_EAGER_SCORES`` scores per call: a whole update 1.13-1.16x faster (docs/results.md; `uniwav
    bench` row ``attention.bf16`` times one attention)."""
    B, H, T, _ = q.shape
    if q.dtype != torch.bfloat16 or q.device.type != "cpu" or B * H * T * k.shape[2] > MAX_EAGER_SCORES:
        return F.scaled_dot_product_attention(q, k, v, attn_mask=attn_mask, dropout_p=dropout_p)
    scores = ((q * q.shape[-1] ** -0.5) @ k.transpose(-1, -2)).float()
    if attn_mask is not None:  # an additive bias: 7% faster per update than masked_fill (a copy)
        scores.add_(torch.zeros(attn_mask.shape, dtype=scores.dtype).masked_fill_(~attn_mask, float("-inf")))
    weights = torch.softmax(scores, dim=-1)
    if dropout_p > 0:
        weights = F.dropout(weights, dropout_p)
    return weights.to(v.dtype) @ v


class SelfAttention(nn.Module):
    def __init__(self, dim: int, heads: int, dropout: float = 0.0):
        super().__init__()
        self.heads, self.dropout = heads, dropout
        self.qkv = nn.Linear(dim, 3 * dim)
        self.out = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor, padding_mask: Optional[torch.Tensor]) -> torch.Tensor:
        B, T, D = x.shape
        q, k, v = self.qkv(x).view(B, T, 3, self.heads, D // self.heads).permute(2, 0, 3, 1, 4)
        attn_mask = None if padding_mask is None else ~padding_mask[:, None, None, :]  # True = attend
        y = attention(q, k, v, attn_mask, self.dropout if self.training else 0.0)
        return self.out(y.transpose(1, 2).reshape(B, T, D))


class FeedForward(nn.Sequential):
    def __init__(self, dim: int, ffn_dim: int, activation_dropout: float = 0.0):
        super().__init__(nn.Linear(dim, ffn_dim), nn.GELU(), nn.Dropout(activation_dropout), nn.Linear(ffn_dim, dim))


class TransformerBlock(nn.Module):
    """Pre-LN (``norm_first``) or post-LN block. Returns (output, feed-forward output before the
    residual add): DinoSR's teacher targets are the latter.

    Post-LN renormalises the residual stream after every block, so no single layer's output can
    dominate it (wav2vec 2.0, HuBERT and DinoSR base are post-LN)."""

    def __init__(self, dim: int, heads: int, ffn_dim: int, dropout: float = 0.0, attention_dropout: float = 0.0,
                 norm_first: bool = True):
        super().__init__()
        self.norm_first = norm_first
        self.attn_norm = nn.LayerNorm(dim)
        self.attn = SelfAttention(dim, heads, attention_dropout)
        self.ffn_norm = nn.LayerNorm(dim)
        self.ffn = FeedForward(dim, ffn_dim)  # no dropout inside the FFN, as wav2vec 2.0 / HuBERT / DinoSR base
        self.dropout = nn.Dropout(dropout)

    def forward(self, x, padding_mask=None):
        if not self.norm_first:
            x = self.attn_norm(x + self.dropout(self.attn(x, padding_mask)))
            ffn_out = self.dropout(self.ffn(x))
            return self.ffn_norm(x + ffn_out), ffn_out
        x = x + self.dropout(self.attn(self.attn_norm(x), padding_mask))
        ffn_out = self.dropout(self.ffn(self.ffn_norm(x)))
        return x + ffn_out, ffn_out


class AdaLNBlock(nn.Module):
    """Pre-LN block whose norms are modulated by a conditioning vector c [B, D] (DiT-style
    shift/scale/gate, zero-initialised so each block starts as the identity)."""

    def __init__(self, dim: int, heads: int, ffn_dim: int, dropout: float = 0.0):
        super().__init__()
        self.attn_norm = nn.LayerNorm(dim, elementwise_affine=False)
        self.attn = SelfAttention(dim, heads, dropout)
        self.ffn_norm = nn.LayerNorm(dim, elementwise_affine=False)
        self.ffn = FeedForward(dim, ffn_dim, dropout)
        self.modulation = nn.Sequential(nn.SiLU(), nn.Linear(dim, 6 * dim))
        nn.init.zeros_(self.modulation[1].weight)
        nn.init.zeros_(self.modulation[1].bias)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x, c, padding_mask=None):
        shift1, scale1, gate1, shift2, scale2, gate2 = self.modulation(c)[:, None].chunk(6, dim=-1)
        h = self.attn_norm(x) * (1 + scale1) + shift1
        x = x + gate1 * self.dropout(self.attn(h, padding_mask))
        h = self.ffn_norm(x) * (1 + scale2) + shift2
        return x + gate2 * self.dropout(self.ffn(h))


class SinusoidalEmbedding(nn.Module):
    """t [B] in [0, 1] -> [B, dim]."""

    def __init__(self, dim: int, scale: float = 1000.0):
        super().__init__()
        self.dim, self.scale = dim, scale

    def forward(self, t: torch.Tensor) -> torch.Tensor:
        half = self.dim // 2
        freqs = torch.exp(-math.log(10000.0) * torch.arange(half, device=t.device, dtype=torch.float32) / half)
        args = self.scale * t.float()[:, None] * freqs[None]
        return torch.cat([args.sin(), args.cos()], dim=-1)
