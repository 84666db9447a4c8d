"""Lightning checkpoint I/O that writes atomically and never unpickles code on load."""

from __future__ import annotations

from lightning.pytorch.plugins.io import TorchCheckpointIO

from uniwav.checkpoint import load_checkpoint, save_checkpoint


class SafeCheckpointIO(TorchCheckpointIO):
    def save_checkpoint(self, checkpoint, path, storage_options=None):
        save_checkpoint(checkpoint, path)

    def load_checkpoint(self, path, map_location=None, weights_only=None):
        return load_checkpoint(path, map_location="cpu")
