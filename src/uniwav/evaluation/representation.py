"""Health of an encoder's representation: scale and effective rank per layer.

A self-supervised encoder can fail without its losses showing it: the frames' representations
collapse onto a few directions (low effective rank) or the pre-LN residual stream grows large,
and fine-tuning then starts from little. Both are cheap to measure on a fixed batch.
"""

from __future__ import annotations

import torch


def effective_rank(x: torch.Tensor) -> float:
    """exp(entropy of the normalised squared singular values) of x [N, D] after centring:
    1 for points on a line, D for isotropic points (Roy & Vetterli, 2007)."""
    x = x.float() - x.float().mean(0, keepdim=True)
    s2 = torch.linalg.svdvals(x) ** 2
    p = s2 / s2.sum().clamp_min(1e-12)
    return float(torch.exp(-(p * p.clamp_min(1e-12).log()).sum()))


@torch.no_grad()
def layer_stats(hidden: list, frames: torch.Tensor) -> list[dict]:
    """Per layer: RMS of the (valid) frames' vectors and their effective rank. hidden: L x [B, T, D]."""
    valid = torch.arange(hidden[0].shape[1], device=frames.device)[None] < frames[:, None]
    out = []
    for h in hidden:
        x = h[valid]
        out.append({"rms": float(x.float().pow(2).mean().sqrt()), "effective_rank": effective_rank(x)})
    return out
