"""``save_pretrained`` / ``from_pretrained`` for every uniwav model: config.json + model.safetensors,
or a training run / checkpoint whose resolved config is stored inside. Never unpickles code."""

from __future__ import annotations

import json
from pathlib import Path

from uniwav.config import ConfigError, from_dict, to_dict

WEIGHTS_NAME = "model.safetensors"
CONFIG_NAME = "config.json"


class PretrainedMixin:
    """Subclasses set ``model_type`` (a name stored in config.json) and ``config_class``, and keep
    their config in ``self.cfg``. Training tasks keep the model as ``self.model`` and the full
    training config (with the model's under "model") as the checkpoint's hyper-parameters."""

    model_type: str = ""
    config_class: type = None

    def save_pretrained(self, out_dir) -> Path:
        from safetensors.torch import save_file

        from uniwav.utils import atomic_path, atomic_write_text

        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        state = {k: v.detach().contiguous().cpu() for k, v in self.state_dict().items()}
        with atomic_path(out / WEIGHTS_NAME, suffix=".safetensors") as tmp:
            save_file(state, str(tmp), metadata={"format": "pt", "model_type": self.model_type})
        atomic_write_text(out / CONFIG_NAME, json.dumps({"model_type": self.model_type, "model": to_dict(self.cfg)}, indent=1))
        return out

    @classmethod
    def from_pretrained(cls, path, map_location="cpu"):
        """An export folder (config.json + model.safetensors), a run folder (its checkpoints/last.ckpt)
        or a checkpoint file."""
        from uniwav.checkpoint import CheckpointError, load_checkpoint

        path = Path(path)
        if (path / WEIGHTS_NAME).is_file():
            from safetensors.torch import load_file

            cfg_file = path / CONFIG_NAME
            if not cfg_file.is_file():
                raise CheckpointError(f"{cfg_file}: missing (an export folder needs config.json beside {WEIGHTS_NAME})")
            meta = json.loads(cfg_file.read_text())
            if meta.get("model_type", cls.model_type) != cls.model_type:
                raise CheckpointError(f"{path}: holds a {meta['model_type']!r} model, not a {cls.model_type!r} model")
            cfg_dict, state = meta["model"], load_file(str(path / WEIGHTS_NAME), device=str(map_location))
        else:
            ckpt_file = path / "checkpoints" / "last.ckpt" if path.is_dir() else path
            if path.is_dir() and not ckpt_file.is_file():
                raise CheckpointError(f"{path}: neither an export folder ({WEIGHTS_NAME}) nor a run folder (checkpoints/last.ckpt)")
            ckpt = load_checkpoint(ckpt_file, map_location)
            try:
                cfg_dict = ckpt["hyper_parameters"]["config"]["model"]
            except (KeyError, TypeError):
                raise CheckpointError(f"{ckpt_file}: no model config inside (not a uniwav training checkpoint?)") from None
            state = {k[len("model."):]: v for k, v in ckpt["state_dict"].items() if k.startswith("model.")}
        try:
            cfg = from_dict(cls.config_class, cfg_dict)
        except ConfigError as e:
            raise CheckpointError(f"{path}: not a {cls.model_type!r} model ({e})") from None
        model = cls(cfg)
        missing, unexpected = model.load_state_dict(state, strict=False)
        if missing or unexpected:
            raise CheckpointError(f"{path}: weights do not match the config (missing: {missing[:5]}, unexpected: {unexpected[:5]})")
        return model.eval()
