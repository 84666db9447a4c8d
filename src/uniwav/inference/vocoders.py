"""Features -> audio: our trained Vocos, a local copy of a public Vocos checkpoint, or Griffin-Lim.

Every command that writes audio resolves its ``--vocoder`` here. The vocoder's mel must be the
model's mel (METHOD.md section 1): a mismatch is refused, naming the fields that differ.
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import torch

from uniwav.checkpoint import CheckpointError
from uniwav.config import FeatureConfig, VocoderModelConfig
from uniwav.features.griffin_lim import GriffinLim
from uniwav.models.vocoder import Vocoder


class VocoderMismatchError(ValueError):
    pass


def check_features_match(model: FeatureConfig, vocoder: FeatureConfig, source: str) -> None:
    a, b = model.mel_fields(), vocoder.mel_fields()
    differ = [f"{k} (model {a[k]!r}, vocoder {b.get(k)!r})" for k in sorted(a) if a[k] != b.get(k)]
    if differ:
        raise VocoderMismatchError(f"{source}: the vocoder's mel differs from the model's: " + "; ".join(differ))


def _vocos_features(fe: dict) -> FeatureConfig:
    """The FeatureConfig of vocos.feature_extractors.MelSpectrogramFeatures (torchaudio defaults)."""
    sr = int(fe.get("sample_rate", 24000))
    n_fft = int(fe.get("n_fft", 1024))
    return FeatureConfig(sample_rate=sr, n_fft=n_fft, win_length=n_fft, hop_length=int(fe.get("hop_length", 256)),
                         n_mels=int(fe.get("n_mels", 100)), fmin=0.0, fmax=sr / 2, mel_scale="htk", mel_norm=None, power=1.0,
                         log_floor=1e-7, center=fe.get("padding", "center") == "center")


def load_public_vocos(path) -> Vocoder:
    """A local directory in the public Vocos layout: config.yaml + pytorch_model.bin (mel variant)."""
    import yaml

    path = Path(path)
    cfg_file, weights = path / "config.yaml", path / "pytorch_model.bin"
    for f in (cfg_file, weights):
        if not f.is_file():
            raise CheckpointError(f"{path}: not a Vocos checkpoint folder ({f.name} missing)")
    try:
        raw = yaml.safe_load(cfg_file.read_text(encoding="utf-8"))
        fe_cls = raw.get("feature_extractor", {}).get("class_path", "")
        if "MelSpectrogramFeatures" not in fe_cls:
            raise CheckpointError(f"{cfg_file}: feature extractor {fe_cls!r} is not supported (only the mel-spectrogram Vocos)")
        bb = raw["backbone"]["init_args"]
        if bb.get("adanorm_num_embeddings"):
            raise CheckpointError(f"{cfg_file}: conditional (adanorm) backbones are not supported")
        head = raw["head"]["init_args"]
        features = _vocos_features(raw["feature_extractor"].get("init_args", {}))
        if int(head.get("hop_length", features.hop_length)) != features.hop_length or int(head.get("n_fft", features.n_fft)) != features.n_fft:
            raise CheckpointError(f"{cfg_file}: head and feature extractor disagree on n_fft / hop_length")
        cfg = VocoderModelConfig(features=features, dim=int(bb["dim"]), intermediate_dim=int(bb["intermediate_dim"]),
                                 layers=int(bb["num_layers"]), padding=head.get("padding", "same"))
    except (KeyError, TypeError, AttributeError, ValueError, yaml.YAMLError) as e:
        missing = f"key {e}" if isinstance(e, KeyError) else f"{type(e).__name__}: {str(e)[:120]}"
        raise CheckpointError(f"{cfg_file}: not a Vocos config.yaml ({missing}; expected feature_extractor, backbone.init_args "
                              "dim/intermediate_dim/num_layers and head.init_args)") from None
    model = Vocoder(cfg)
    from uniwav.checkpoint import load_checkpoint

    state = load_checkpoint(weights)  # weights only: a file holding code is refused
    state = {k: v for k, v in state.items() if k.startswith(("backbone.", "head.out."))}
    missing, unexpected = model.load_state_dict(state, strict=False)
    missing = [k for k in missing if not k.startswith("features.")]
    if missing or unexpected:
        raise CheckpointError(f"{weights}: weights do not match the config (missing {missing[:4]}, unexpected {unexpected[:4]})")
    return model.eval()


def load_vocoder_model(path):
    """Our vocoder run / export, its ONNX export (run by onnxruntime), or a public Vocos folder."""
    from uniwav.inference.onnx import is_onnx_export, load_onnx

    path = Path(path)
    if not path.exists():
        raise CheckpointError(f"{path}: vocoder not found")
    if (path / "pytorch_model.bin").is_file():
        return load_public_vocos(path)
    if is_onnx_export(path):
        return load_onnx(path)
    return Vocoder.from_pretrained(path)


class Synthesizer:
    """Raw log-mel [T, n_mels] -> waveform [S], through a vocoder or Griffin-Lim."""

    def __init__(self, features: FeatureConfig, vocoder: Optional[str] = None, griffin_lim_iters: int = 64,
                 model: Optional[Vocoder] = None):
        self.features = features
        if model is not None:  # an already loaded vocoder
            check_features_match(features, model.cfg.features, "vocoder")
            self.model, self.name = model, "vocoder"
        elif vocoder:
            self.model = load_vocoder_model(vocoder)
            check_features_match(features, self.model.cfg.features, str(vocoder))
            self.name = f"vocoder {vocoder}"
        else:
            self.model = GriffinLim(features, n_iter=griffin_lim_iters)
            self.name = "Griffin-Lim"

    @property
    def min_frames(self) -> int:
        """The fewest frames the inverse STFT can turn into audio (its reflect padding needs n_fft / 2 samples)."""
        return -(-self.features.n_fft // self.features.hop_length) + 1

    @torch.no_grad()
    def __call__(self, mel: torch.Tensor) -> torch.Tensor:
        """Raw log-mel [T, n_mels] -> waveform [S]. Fewer than ``min_frames`` frames (a word of two letters, a
        30 ms input's codes) are padded with the quietest frame given, so a very short input still gives audio."""
        if mel.shape[0] == 0:
            raise ValueError("nothing to vocode: the generated log-mel has no frames")
        if mel.shape[0] < self.min_frames:
            quiet = mel[mel.mean(-1).argmin()][None].expand(self.min_frames - mel.shape[0], -1)
            mel = torch.cat([mel, quiet])
        if isinstance(self.model, GriffinLim):
            return self.model(mel.float())
        return self.model(mel[None].float())[0]
