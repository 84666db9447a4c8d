"""Conditional flow matching with the optimal-transport path (Lipman et al., 2023): the training
loss and the sampler, in one place for every model that generates features (pre-training infill,
speech tokens, text-to-speech)::

    x_t = (1 - (1 - s) t) x0 + t x1,   u = x1 - (1 - s) x0,   x0 ~ N(0, I),   s = sigma_min

The network is any ``velocity(x_t [B, T, F], t [B], cond [B, T, C], padding_mask [B, T]) -> [B, T, F]``
(``FlowDecoder``). Sampling integrates dx/dt = v from t = 0 to 1 with a fixed number of network
evaluations, on a uniform or F5-TTS "sway" time grid, optionally with classifier-free guidance
(the conditional and unconditional velocities are evaluated in one doubled batch).
"""

from __future__ import annotations

import math
from typing import Optional
from collections.abc import Callable

import torch

from uniwav.config import SamplerConfig

VelocityFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]  # (x [B, T, F], t [B]) -> v [B, T, F]


def ot_path(x0: torch.Tensor, x1: torch.Tensor, t: torch.Tensor, sigma_min: float) -> tuple[torch.Tensor, torch.Tensor]:
    """x0, x1 [B, T, F], t [B] -> (x_t, target velocity u), both [B, T, F]."""
    tt = t.view(-1, *([1] * (x1.dim() - 1))).to(x1.dtype)
    x_t = (1 - (1 - sigma_min) * tt) * x0 + tt * x1
    return x_t, x1 - (1 - sigma_min) * x0


def masked_mse(pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean squared error over the frames where mask [B, T] is True (averaged over features too)."""
    err = ((pred.float() - target.float()) ** 2).mean(-1)
    return (err * mask).sum() / mask.sum().clamp_min(1)


def guided_velocity(v_cond: torch.Tensor, v_uncond: torch.Tensor, weight: float) -> torch.Tensor:
    """Classifier-free guidance: v = v_cond + w (v_cond - v_uncond) (w = 0: no guidance)."""
    return v_cond + weight * (v_cond - v_uncond)


def time_grid(steps: int, sway: float = 0.0) -> torch.Tensor:
    """steps + 1 increasing times from 0 to 1 (float64): uniform, warped by F5-TTS's sway sampling
    t -> t + s (cos(pi t / 2) - 1 + t) (s < 0 puts more steps near t = 0, where the coarse
    structure of the sample is decided)."""
    t = torch.linspace(0.0, 1.0, steps + 1, dtype=torch.float64)
    if sway:
        t = t + sway * (torch.cos(math.pi / 2 * t) - 1 + t)
    return t


def steps_for(nfe: int, method: str) -> int:
    """ODE steps that ``nfe`` network evaluations buy (midpoint evaluates twice per step)."""
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
    return steps


@torch.no_grad()
def solve_ode(velocity: VelocityFn, x0: torch.Tensor, nfe: int, method: str = "midpoint", sway: float = 0.0) -> torch.Tensor:
    """Integrate dx/dt = velocity(x, t) from t = 0 to 1 with ``nfe`` function evaluations."""
    grid = time_grid(steps_for(nfe, method), sway).tolist()
    x = x0
    B = x0.shape[0]
    for t0, t1 in zip(grid[:-1], grid[1:]):
        dt = t1 - t0
        t = torch.full((B,), t0, device=x.device, dtype=torch.float32)
        v = velocity(x, t)
        if method == "midpoint":
            v = velocity(x + 0.5 * dt * v, t + 0.5 * dt)
        x = x + dt * v
    return x


def sample_noise(shape, device, seed: Optional[int] = None, dtype=torch.float32) -> torch.Tensor:
    """Standard normal noise, reproducible for a seed on any device."""
    gen = torch.Generator(device="cpu").manual_seed(seed) if seed is not None else None
    return torch.randn(shape, generator=gen, dtype=dtype).to(device)


class FlowMatcher:
    """The conditional flow-matching procedure around a velocity network (no parameters of its own).

    ``loss`` draws x0 ~ N(0, I) and t ~ U[0, 1] per utterance from the global RNG (seeded per step
    by the training tasks) and returns the masked MSE of the predicted velocity. ``sample`` solves
    the ODE from seeded noise, with guidance when ``uncond`` (the condition with the information
    to guide by removed) is given and the weight is non-zero.
    """

    def __init__(self, sigma_min: float = 1e-5):
        self.sigma_min = sigma_min

    def loss(self, network, x1: torch.Tensor, cond: torch.Tensor, mask: torch.Tensor,
             padding_mask: Optional[torch.Tensor] = None) -> torch.Tensor:
        """x1 [B, T, F] target features, cond [B, T, C], mask [B, T] frames that count."""
        x0 = torch.randn_like(x1)
        t = torch.rand(x1.shape[0], device=x1.device)
        x_t, u = ot_path(x0, x1, t, self.sigma_min)
        return masked_mse(network(x_t, t, cond, padding_mask), u, mask)

    @torch.no_grad()
    def sample(self, network, cond: torch.Tensor, feat_dim: int, sampler: SamplerConfig, *, padding_mask: Optional[torch.Tensor] = None,
               uncond: Optional[torch.Tensor] = None, seed: Optional[int] = 0, context: Optional[torch.Tensor] = None,
               known: Optional[torch.Tensor] = None) -> torch.Tensor:
        """cond [B, T, C] (+ uncond [B, T, C] for guidance) -> generated features [B, T, feat_dim].
        ``context`` [B, T, feat_dim] with ``known`` [B, T] (True where the features are given): with
        ``sampler.context_path`` the known frames enter the network on their true path, as in training."""
        B, T = cond.shape[:2]
        w = sampler.guidance
        if w and uncond is None:
            raise ValueError("guidance needs the unconditional condition (uncond)")
        x0 = sample_noise((B, T, feat_dim), cond.device, seed)
        on_path = sampler.context_path and context is not None and known is not None and bool(known.any())

        def velocity(x, t):
            if on_path:
                tt = t.view(-1, 1, 1)
                x = torch.where(known[..., None], (1 - (1 - self.sigma_min) * tt) * x0 + tt * context, x)
            if not w:
                return network(x, t, cond, padding_mask)
            pad2 = None if padding_mask is None else torch.cat([padding_mask, padding_mask])
            v = network(torch.cat([x, x]), torch.cat([t, t]), torch.cat([cond, uncond]), pad2)
            v_cond, v_uncond = v.chunk(2)
            return guided_velocity(v_cond, v_uncond, w)

        return solve_ode(velocity, x0, sampler.nfe, sampler.method, sampler.sway)
