"""Out-of-memory errors that say which batch did it and what to change."""

from __future__ import annotations

from contextlib import contextmanager

import torch


class BatchTooLargeError(RuntimeError):
    pass


@contextmanager
def explain_oom(batch: dict):
    """Re-raise an accelerator out-of-memory error with the batch's shape and the knob to turn."""
    try:
        yield
    except torch.OutOfMemoryError as e:
        audio, lens = batch["audio"], batch["audio_lens"]
        raise BatchTooLargeError(
            f"out of memory on batch {batch.get('index')}: {audio.shape[0]} utterances, longest {audio.shape[1]} samples, "
            f"{float(lens.sum()):.0f} samples in all (first ids: {batch.get('ids', [])[:3]}). Lower data.max_duration "
            "(seconds of audio per batch and device) or data.crop_seconds, or raise trainer.accumulate_grad_batches to keep "
            f"the global batch. ({str(e).splitlines()[0][:160]})"
        ) from e
