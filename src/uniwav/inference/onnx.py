"""Deployment through ONNX: a CTC recogniser (normalised log-mel features in, log-probabilities
out) and a vocoder (raw log-mel in, waveform out), with dynamic batch and length, run by
onnxruntime. An export folder holds the graph (``model.onnx``) and the model's ``config.json``;
``load_onnx`` gives an object the rest of uniwav uses like the torch model it came from
(``transcribe``, ``Synthesizer``). The log-mel front end stays in torch (a few per cent of the time,
exact per utterance): only the network runs in onnxruntime.
"""

from __future__ import annotations

import contextlib
import json
import logging
import warnings
from pathlib import Path
from typing import Optional

import numpy as np
import torch

ONNX_NAME = "model.onnx"


class _CTCGraph(torch.nn.Module):
    """The exported computation: features [B, T, F] + frame lengths [B] -> log-probs [B, T, V]."""

    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, feats: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        return self.model(feats, lengths)


class _VocoderGraph(torch.nn.Module):
    """The exported vocoder: raw log-mel [B, T, n_mels] -> waveform [B, S], as ``Vocoder.forward``.

    ONNX has no complex tensors, so the inverse STFT is written with real operations: the inverse real
    DFT as two matrix products and the overlap-add as a transposed convolution with an identity kernel
    (the same sums as ``torch.istft``, to float rounding)."""

    def __init__(self, vocoder):
        super().__init__()
        self.vocoder = vocoder
        head = vocoder.head
        n, bins = head.n_fft, head.n_fft // 2 + 1
        angle = 2 * torch.pi * torch.outer(torch.arange(bins, dtype=torch.float64), torch.arange(n, dtype=torch.float64)) / n
        weight = torch.full((bins, 1), 2.0, dtype=torch.float64)
        weight[0] = weight[-1] = 1.0  # DC and Nyquist appear once; their imaginary parts are ignored, as irfft does
        window = head.window.double()
        self.register_buffer("cos", (weight * torch.cos(angle) / n * window).float(), persistent=False)  # [bins, n]
        self.register_buffer("sin", (weight * torch.sin(angle) / n * window).float(), persistent=False)
        self.register_buffer("eye", torch.eye(n)[:, None, :], persistent=False)  # [n, 1, n]
        self.register_buffer("window_sq", window.square().float()[None, None, :], persistent=False)  # [1, 1, n]

    def forward(self, mel: torch.Tensor) -> torch.Tensor:
        head = self.vocoder.head
        real, imag = head.spectrum(self.vocoder.backbone(mel.transpose(1, 2)))  # [B, bins, T]
        frames = (real.transpose(1, 2) @ self.cos - imag.transpose(1, 2) @ self.sin).transpose(1, 2)  # windowed frames [B, n, T]
        y = torch.nn.functional.conv_transpose1d(frames, self.eye, stride=head.hop)[:, 0]  # [B, (T - 1) * hop + n]
        ones = torch.ones_like(frames[:1, :1])
        envelope = torch.nn.functional.conv_transpose1d(ones, self.window_sq, stride=head.hop)[0, 0]
        trim = head.n_fft // 2 if head.padding == "center" else (head.n_fft - head.hop) // 2
        end = y.shape[-1] - trim
        return y[:, trim:end] / envelope[trim:end].clamp_min(1e-11)


@contextlib.contextmanager
def _quiet_exporter():
    """The exporter's notes on optional packages (torchvision) and internal deprecations are not the user's concern."""
    logger = logging.getLogger("torch.onnx")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", (UserWarning, FutureWarning, DeprecationWarning))
            yield
    finally:
        logger.setLevel(level)


def export_onnx(model, out_dir) -> Path:
    """Write ``out_dir/model.onnx`` + ``config.json`` for a ``CTCModel`` or a ``Vocoder``."""
    from uniwav.config import to_dict
    from uniwav.models.ctc import CTCModel
    from uniwav.models.vocoder import Vocoder
    from uniwav.utils import replaced_folder

    model = model.eval()
    batch, frames = torch.export.Dim("batch"), torch.export.Dim("frames", min=2)
    n_mels = model.cfg.features.n_mels
    if isinstance(model, CTCModel):
        graph, example = _CTCGraph(model), (torch.randn(2, 40, n_mels), torch.tensor([40, 23]))
        names, outputs, shapes = ["feats", "lengths"], ["log_probs"], ({0: batch, 1: frames}, {0: batch})
    elif isinstance(model, Vocoder):
        graph, example = _VocoderGraph(model), (torch.randn(2, 40, n_mels),)
        names, outputs, shapes = ["mel"], ["audio"], ({0: batch, 1: frames},)
    else:
        from uniwav.config import ConfigError

        raise ConfigError(f"ONNX export covers CTC recognisers and vocoders, not {type(model).__name__}")
    graph.eval()
    # one self-contained file while it fits protobuf's 2 GB; a larger model keeps its weights beside it in ONNX_NAME + ".data"
    large = sum(p.numel() * p.element_size() for p in model.parameters()) > 1.8 * 2**30
    with replaced_folder(out_dir, {ONNX_NAME, ONNX_NAME + ".data", "config.json"}, "ONNX export") as staging, torch.no_grad(), \
            _quiet_exporter():
        torch.onnx.export(graph, example, str(staging / ONNX_NAME), input_names=names, output_names=outputs, dynamic_shapes=shapes,
                          dynamo=True, opset_version=18, verbose=False, external_data=large)
        (staging / "config.json").write_text(json.dumps({"model_type": model.model_type, "model": to_dict(model.cfg), "format": "onnx"},
                                                        indent=1))
    return Path(out_dir)


class OnnxCTC:
    """A CTC recogniser running in onnxruntime, usable wherever a ``CTCModel`` is read (``transcribe``,
    ``align``): ``cfg``, ``vocab``, ``frontend``, ``features`` and ``log_probs``."""

    def __init__(self, folder, cfg, session):
        from uniwav.data.frontend import TextFrontEnd
        from uniwav.data.text import CharVocabulary
        from uniwav.features.mel import LogMel

        self.folder, self.cfg, self.session = Path(folder), cfg, session
        self.vocab = CharVocabulary(cfg.vocab)
        self.frontend = TextFrontEnd(cfg.unit, cfg.language)
        self.features = LogMel(cfg.features)

    @torch.no_grad()
    def log_probs(self, wav, lengths=None) -> tuple[torch.Tensor, torch.Tensor]:
        feats, frames = self.features.prepare(wav, lengths)
        out = self.session.run(None, {"feats": feats.numpy().astype(np.float32), "lengths": frames.numpy().astype(np.int64)})[0]
        return torch.from_numpy(out), frames


class OnnxVocoder:
    """A vocoder running in onnxruntime: raw log-mel [B, T, n_mels] -> waveform [B, S] (``cfg`` as the torch one's)."""

    def __init__(self, folder, cfg, session):
        self.folder, self.cfg, self.session = Path(folder), cfg, session

    @torch.no_grad()
    def __call__(self, mel: torch.Tensor) -> torch.Tensor:
        return torch.from_numpy(self.session.run(None, {"mel": mel.float().cpu().numpy()})[0])


def is_onnx_export(path) -> bool:
    return (Path(path) / ONNX_NAME).is_file()


def load_onnx(path, threads: Optional[int] = None):
    """An ``OnnxCTC`` or ``OnnxVocoder`` from an export folder."""
    import onnxruntime as ort

    from uniwav.checkpoint import CheckpointError
    from uniwav.config import CTCModelConfig, VocoderModelConfig, from_dict

    path = Path(path)
    if not is_onnx_export(path):
        raise CheckpointError(f"{path}: not an ONNX export folder ({ONNX_NAME} missing; make one with `uniwav export RUN --onnx DIR`)")
    meta = json.loads((path / "config.json").read_text())
    options = ort.SessionOptions()
    if threads:
        options.intra_op_num_threads = threads
    try:
        session = ort.InferenceSession(str(path / ONNX_NAME), options, providers=["CPUExecutionProvider"])
    except Exception as e:  # onnxruntime raises its own exception types for damaged graphs
        raise CheckpointError(f"{path / ONNX_NAME}: onnxruntime cannot load it ({str(e).splitlines()[0][:200]})") from None
    if meta.get("model_type") == "ctc":
        return OnnxCTC(path, from_dict(CTCModelConfig, meta["model"]), session)
    if meta.get("model_type") == "vocoder":
        return OnnxVocoder(path, from_dict(VocoderModelConfig, meta["model"]), session)
    raise CheckpointError(f"{path}: an ONNX export of a {meta.get('model_type')!r} model, not a recogniser or a vocoder")


def load_recogniser(path):
    """A recogniser from a run, an export or an ONNX export folder (run by onnxruntime)."""
    if is_onnx_export(path):
        return load_onnx(path)
    from uniwav.models.ctc import CTCModel

    return CTCModel.from_pretrained(path)
