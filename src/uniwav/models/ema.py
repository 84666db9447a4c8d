"""Exponential moving average teacher."""

from __future__ import annotations

import torch
from torch import nn


def annealed_decay(step: int, start: float, end: float, anneal_steps: int) -> float:
    """Linear anneal from ``start`` to ``end`` over ``anneal_steps`` updates, then held at ``end``."""
    if anneal_steps <= 0 or step >= anneal_steps:
        return end
    return start + (end - start) * step / anneal_steps


@torch.no_grad()
def ema_update(teacher: nn.Module, student: nn.Module, decay: float, copy_prefixes: tuple[str, ...] = ()) -> None:
    """teacher <- teacher + (1 - decay) * (student - teacher), i.e. decay * teacher + (1 - decay) * student
    (in the teacher's dtype, float32), as one multi-tensor operation over all parameters; parameters
    named with one of ``copy_prefixes`` and buffers are copied (the teacher uses the student's). Both
    modules must have the same structure."""
    t_params = dict(teacher.named_parameters())
    averaged, targets = [], []
    for name, p in student.named_parameters():
        t = t_params[name]
        if name.startswith(copy_prefixes):
            t.copy_(p.detach())
        else:
            averaged.append(t)
            targets.append(p.detach().to(t.dtype))
    if averaged:
        torch._foreach_lerp_(averaged, targets, 1.0 - decay)
    t_bufs = dict(teacher.named_buffers())
    for name, b in student.named_buffers():
        t_bufs[name].copy_(b)
