"""``uniwav export RUN --out DIR`` (weights as safetensors + config, no optimizer, no training code) or
``uniwav export RUN --onnx DIR`` (a CTC recogniser or a vocoder as an ONNX graph for onnxruntime)."""

from __future__ import annotations


def add_arguments(p):
    p.add_argument("run", help="a training run folder, checkpoint file or export folder")
    p.add_argument("--out", default=None, help="export folder (config.json + model.safetensors; load with from_pretrained)")
    p.add_argument("--onnx", default=None, help="ONNX export folder (model.onnx + config.json) of a recogniser or vocoder; use it with "
                   "`uniwav transcribe --model DIR` or `--vocoder DIR`")


def load_any(path):
    """The model in ``path``, whatever its kind (pre-trained, recogniser, tokenizer, TTS, vocoder)."""
    from uniwav.checkpoint import CheckpointError
    from uniwav.models.ctc import CTCModel
    from uniwav.models.tokenizer import SpeechTokenizer
    from uniwav.models.tts import TTSModel
    from uniwav.models.uniwav import UniWav
    from uniwav.models.vocoder import Vocoder

    first = None
    for cls in (UniWav, CTCModel, SpeechTokenizer, TTSModel, Vocoder):
        try:
            return cls.from_pretrained(path)
        except CheckpointError as e:
            first = first or e
    raise first


def run(args):
    from uniwav.config import ConfigError

    if bool(args.out) == bool(args.onnx):
        raise ConfigError("give --out DIR (safetensors) or --onnx DIR (ONNX)")
    model = load_any(args.run)
    if args.onnx:
        from uniwav.inference.onnx import export_onnx

        out = export_onnx(model, args.onnx)
        print(f"exported {type(model).__name__} to {out}/model.onnx (run it with onnxruntime: "
              f"{'uniwav transcribe --model' if model.model_type == 'ctc' else 'uniwav vocode --vocoder'} {out})")
        return
    out = model.save_pretrained(args.out)
    print(f"exported to {out} (load with {type(model).__name__}.from_pretrained('{out}'))")
