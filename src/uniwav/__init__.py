"""UniWav: one self-supervised speech model whose encoder serves recognition and
whose flow-matching decoder serves generation (Liu et al., ICLR 2025).

The Python API, imported lazily (importing the package does not import torch's training stack)::

    from uniwav import UniWav, CTCModel, SpeechTokenizer, TTSModel, Vocoder   # .from_pretrained(dir)
    from uniwav import transcribe, align, speak                              # inference on waveforms
"""

__version__ = "0.2.0"

from uniwav.config import FeatureConfig, ModelConfig, PretrainConfig  # noqa: E402,F401

_LAZY = {
    "UniWav": "uniwav.models.uniwav",
    "CTCModel": "uniwav.models.ctc",
    "SpeechTokenizer": "uniwav.models.tokenizer",
    "TTSModel": "uniwav.models.tts",
    "Vocoder": "uniwav.models.vocoder",
    "transcribe": "uniwav.inference.transcribe",
    "align": "uniwav.inference.align",
    "speak": "uniwav.inference.tts",
}


def __getattr__(name):
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(name)
