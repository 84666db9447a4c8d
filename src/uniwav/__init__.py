"""UniWav: one self-supervised speech model whose encoder serves recognition and
whose flow-matching decoder serves generation (Liu et al., ICLR 2025)."""

__version__ = "0.1.0"

from uniwav.config import FeatureConfig, ModelConfig, PretrainConfig  # noqa: E402,F401


def __getattr__(name):  # lazy: importing the package must not import the training stack
    if name == "UniWav":
        from uniwav.models.uniwav import UniWav

        return UniWav
    if name == "CTCModel":
        from uniwav.models.ctc import CTCModel

        return CTCModel
    raise AttributeError(name)
