"""Learning-rate schedule: linear warm-up, then cosine decay to ``final_lr_ratio`` at ``total_steps``."""

from __future__ import annotations

import math


def adamw_warmup_cosine(params, o) -> dict:
    """Lightning's ``configure_optimizers`` answer: AdamW over ``params`` (tensors or param groups)
    with ``o`` (an OptimConfig), its learning rate following ``warmup_cosine`` per update."""
    import torch

    optimizer = torch.optim.AdamW(params, lr=o.lr, betas=tuple(o.betas), weight_decay=o.weight_decay)

    def lr_lambda(step):
        return warmup_cosine(step, o.warmup_steps, o.total_steps, o.final_lr_ratio)

    return {"optimizer": optimizer, "lr_scheduler": {"scheduler": torch.optim.lr_scheduler.LambdaLR(optimizer, lr_lambda), "interval": "step"}}


def warmup_cosine(step: int, warmup_steps: int, total_steps: int, final_lr_ratio: float = 0.0) -> float:
    """Multiplier of the peak learning rate after ``step`` optimizer updates."""
    if step < warmup_steps:
        return (step + 1) / warmup_steps
    progress = min(1.0, (step - warmup_steps) / max(1, total_steps - warmup_steps))
    return final_lr_ratio + (1 - final_lr_ratio) * 0.5 * (1 + math.cos(math.pi * progress))
