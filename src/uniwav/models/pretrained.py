"""``save_pretrained`` / ``from_pretrained`` for every uniwav model: config.json + model.safetensors,
or a training run / checkpoint whose resolved config is stored inside. Never unpickles code."""

from __future__ import annotations

import json
from pathlib import Path

from uniwav.config import ConfigError, from_dict, to_dict

WEIGHTS_NAME = "model.safetensors"
CONFIG_NAME = "config.json"


def _read(path, map_location="cpu", expected_type: str = "", weights: bool = True) -> tuple[dict, dict, str]:
    """(model config dict, state dict or {}, model_type) of an export folder, run folder or checkpoint."""
    from uniwav.checkpoint import CheckpointError, load_checkpoint

    path = Path(path)
    if (path / WEIGHTS_NAME).is_file():
        cfg_file = path / CONFIG_NAME
        if not cfg_file.is_file():
            raise CheckpointError(f"{cfg_file}: missing (an export folder needs config.json beside {WEIGHTS_NAME})")
        meta = json.loads(cfg_file.read_text())
        model_type = meta.get("model_type", expected_type)
        if expected_type and model_type != expected_type:
            raise CheckpointError(f"{path}: holds a {model_type!r} model, not a {expected_type!r} model")
        state = {}
        if weights:
            from safetensors.torch import load_file

            state = load_file(str(path / WEIGHTS_NAME), device=str(map_location))
        return meta["model"], state, model_type
    if not path.exists():
        raise CheckpointError(f"{path}: model not found")
    ckpt_file = path / "checkpoints" / "last.ckpt" if path.is_dir() else path
    if path.is_dir() and not ckpt_file.is_file():
        raise CheckpointError(f"{path}: neither an export folder ({WEIGHTS_NAME}) nor a run folder (checkpoints/last.ckpt)")
    ckpt = load_checkpoint(ckpt_file, map_location)
    try:
        cfg_dict = ckpt["hyper_parameters"]["config"]["model"]
    except (KeyError, TypeError):
        raise CheckpointError(f"{ckpt_file}: no model config inside (not a uniwav training checkpoint?)") from None
    state = {k[len("model."):]: v for k, v in ckpt["state_dict"].items() if k.startswith("model.")}
    return cfg_dict, state, expected_type


def load_model_config(path) -> dict:
    """The model config (a plain dict) of any uniwav export folder, run folder or checkpoint."""
    return _read(path, weights=False)[0]


class PretrainedMixin:
    """Subclasses set ``model_type`` (a name stored in config.json) and ``config_class``, and keep
    their config in ``self.cfg``. Training tasks keep the model as ``self.model`` and the full
    training config (with the model's under "model") as the checkpoint's hyper-parameters."""

    model_type: str = ""
    config_class: type = None

    def save_pretrained(self, out_dir) -> Path:
        from safetensors.torch import save_file

        from uniwav.utils import replaced_folder

        state = {k: v.detach().contiguous().cpu() for k, v in self.state_dict().items()}
        with replaced_folder(out_dir, {WEIGHTS_NAME, CONFIG_NAME}, "export") as staging:
            save_file(state, str(staging / WEIGHTS_NAME), metadata={"format": "pt", "model_type": self.model_type})
            (staging / CONFIG_NAME).write_text(json.dumps({"model_type": self.model_type, "model": to_dict(self.cfg)}, indent=1))
        return Path(out_dir)

    @classmethod
    def from_pretrained(cls, path, map_location="cpu"):
        """An export folder (config.json + model.safetensors), a run folder (its checkpoints/last.ckpt)
        or a checkpoint file."""
        from uniwav.checkpoint import CheckpointError

        path = Path(path)
        cfg_dict, state, _ = _read(path, map_location, cls.model_type)
        try:
            cfg = from_dict(cls.config_class, cfg_dict)
        except ConfigError as e:
            raise CheckpointError(f"{path}: not a {cls.model_type!r} model ({e})") from None
        model = cls(cfg)
        from uniwav.models import legacy

        missing, unexpected = model.load_state_dict(legacy.upgrade_state_dict(cls.model_type, state), strict=False)
        if missing or unexpected:
            raise CheckpointError(f"{path}: weights do not match the config (missing: {missing[:5]}, unexpected: {unexpected[:5]})")
        return model.eval()
