"""Conditional flow matching with the optimal-transport path (Lipman et al., 2023) and fixed-step ODE samplers.

    x_t = (1 - (1 - s) t) x0 + t x1,   u = x1 - (1 - s) x0,   x0 ~ N(0, I),   s = sigma_min
"""

from __future__ import annotations

from typing import Callable, Optional

import torch


def ot_path(x0: torch.Tensor, x1: torch.Tensor, t: torch.Tensor, sigma_min: float) -> tuple[torch.Tensor, torch.Tensor]:
    """x0, x1 [B, T, F], t [B] -> (x_t, target velocity u), both [B, T, F]."""
    tt = t.view(-1, *([1] * (x1.dim() - 1))).to(x1.dtype)
    x_t = (1 - (1 - sigma_min) * tt) * x0 + tt * x1
    return x_t, x1 - (1 - sigma_min) * x0


def masked_mse(pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean squared error over the frames where mask [B, T] is True (averaged over features too)."""
    err = ((pred.float() - target.float()) ** 2).mean(-1)
    return (err * mask).sum() / mask.sum().clamp_min(1)


VelocityFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]  # (x [B, T, F], t [B]) -> v [B, T, F]


@torch.no_grad()
def solve_ode(velocity: VelocityFn, x0: torch.Tensor, nfe: int, method: str = "midpoint") -> torch.Tensor:
    """Integrate dx/dt = velocity(x, t) from t = 0 to 1 with ``nfe`` function evaluations.

    ``euler``: nfe steps; ``midpoint``: nfe // 2 steps of two evaluations each (nfe must be even).
    """
    if method == "euler":
        steps = nfe
    elif method == "midpoint":
        if nfe % 2:
            raise ValueError(f"midpoint needs an even NFE, got {nfe}")
        steps = nfe // 2
    else:
        raise ValueError(f"unknown ODE method {method!r} (euler or midpoint)")
    if steps < 1:
        raise ValueError(f"NFE must be at least {1 if method == 'euler' else 2}, got {nfe}")
    x = x0
    dt = 1.0 / steps
    B = x0.shape[0]
    for i in range(steps):
        t = torch.full((B,), i * dt, device=x.device, dtype=torch.float32)
        v = velocity(x, t)
        if method == "midpoint":
            v = velocity(x + 0.5 * dt * v, t + 0.5 * dt)
        x = x + dt * v
    return x


def sample_noise(shape, device, seed: Optional[int] = None, dtype=torch.float32) -> torch.Tensor:
    """Standard normal noise, reproducible for a seed on any device."""
    gen = torch.Generator(device="cpu").manual_seed(seed) if seed is not None else None
    return torch.randn(shape, generator=gen, dtype=dtype).to(device)
