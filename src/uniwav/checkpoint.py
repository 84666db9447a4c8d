"""Safe, atomic checkpoint files. Loading never unpickles code: ``torch.load(weights_only=True)``
for training checkpoints, safetensors for exported weights."""

from __future__ import annotations

import errno
import os
import pickle
import shutil
from pathlib import Path

import torch

from uniwav.utils import atomic_path


class CheckpointError(RuntimeError):
    """A checkpoint that is missing, corrupt or unsafe; the message names the file."""


def save_checkpoint(obj: dict, path) -> None:
    """``torch.save`` to a temporary file beside ``path``, fsync, then an atomic rename: a
    crash (even kill -9) at any moment leaves either the old file or the new one."""
    try:
        with atomic_path(path, suffix=".ckpt") as tmp:
            torch.save(obj, tmp)
    except RuntimeError as e:  # torch reports a failed write (a full disk, a quota) as its own RuntimeError
        free = shutil.disk_usage(Path(path).parent).free
        code = errno.ENOSPC if free < _tensor_bytes(obj) + (1 << 20) else errno.EIO
        raise OSError(code, f"{os.strerror(code)}: the checkpoint could not be written ({free >> 20} MB free; "
                      f"{str(e).splitlines()[0][:120]})", str(path)) from None


def _tensor_bytes(obj) -> int:
    """Bytes of the tensors inside nested dicts / lists: about the size of the checkpoint file."""
    if isinstance(obj, torch.Tensor):
        return obj.numel() * obj.element_size()
    if isinstance(obj, dict):
        return sum(_tensor_bytes(v) for v in obj.values())
    if isinstance(obj, (list, tuple)):
        return sum(_tensor_bytes(v) for v in obj)
    return 0


def load_checkpoint(path, map_location="cpu") -> dict:
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: checkpoint not found")
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as e:
        raise CheckpointError(
            f"{path}: refused to load: the file contains pickled objects other than tensors and plain data, "
            f"which could execute code ({str(e).splitlines()[0][:200]}). Only load checkpoints you trust, "
            "and prefer exported safetensors weights."
        ) from None
    except (RuntimeError, EOFError, OSError, ValueError) as e:
        raise CheckpointError(f"{path}: not a readable checkpoint (truncated or corrupt?): {str(e).splitlines()[0][:200]}") from None
