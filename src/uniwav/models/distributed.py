"""Collective operations that do nothing outside distributed training, so that model code (the
codebooks' statistics, the quantiser's k-means) runs the same in one process and in many."""

from __future__ import annotations

import torch
import torch.distributed as dist


def is_distributed() -> bool:
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def all_reduce_(*tensors: torch.Tensor) -> None:
    """Sum each tensor over processes, in place (nothing outside distributed training)."""
    if is_distributed():
        for t in tensors:
            dist.all_reduce(t)


def broadcast_(t: torch.Tensor) -> torch.Tensor:
    """Rank 0's value of ``t`` on every process, in place."""
    if is_distributed():
        dist.broadcast(t, src=0)
    return t
