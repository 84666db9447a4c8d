"""Learning-rate schedule: linear warm-up, then cosine decay to ``final_lr_ratio`` at ``total_steps``."""

from __future__ import annotations

import math


def warmup_cosine(step: int, warmup_steps: int, total_steps: int, final_lr_ratio: float = 0.0) -> float:
    """Multiplier of the peak learning rate after ``step`` optimizer updates."""
    if step < warmup_steps:
        return (step + 1) / warmup_steps
    progress = min(1.0, (step - warmup_steps) / max(1, total_steps - warmup_steps))
    return final_lr_ratio + (1 - final_lr_ratio) * 0.5 * (1 + math.cos(math.pi * progress))
