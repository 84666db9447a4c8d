"""Codes files (.npz) written by ``uniwav tokenize`` and read by ``uniwav detokenize``.

Inside: ``codes_<i>`` [T_i, n] int16 per input file, ``names`` (the input paths), ``bitrate``,
``frame_rate``, ``num_quantizers``, ``codebook_size``, ``features`` (the feature config, JSON) and
``model`` (the tokenizer's fingerprint). A file from another model is refused, and the bitrate
written is recomputed from the codes themselves.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from uniwav.config import to_dict
from uniwav.utils import atomic_path


class CodesError(ValueError):
    pass


@dataclass
class Codes:
    names: list
    codes: list  # of int arrays [T, n]
    bitrate: float
    frame_rate: float
    codebook_size: int
    model: str

    @property
    def num_quantizers(self) -> int:
        return self.codes[0].shape[1]

    def measured_bitrate(self) -> float:
        """Bits actually stored per second of audio: frames x codebooks x log2(V) / duration."""
        frames = sum(c.shape[0] for c in self.codes)
        bits = sum(c.size for c in self.codes) * math.log2(self.codebook_size)
        return bits / (frames / self.frame_rate) if frames else 0.0


def save_codes(path, names, codes, tokenizer) -> Codes:
    """codes: list of [T, n] arrays (valid frames only) from ``tokenizer``."""
    n = codes[0].shape[1]
    rate = tokenizer.bitrate(n)
    out = Codes(list(map(str, names)), [np.asarray(c, dtype=np.int16) for c in codes], rate, tokenizer.frame_rate,
                tokenizer.quantizer.codebook_size, tokenizer.fingerprint())
    if abs(out.measured_bitrate() - rate) > 1e-6:
        raise CodesError(f"internal error: codes hold {out.measured_bitrate()} bit/s, config says {rate}")
    arrays = {f"codes_{i}": c for i, c in enumerate(out.codes)}
    path = Path(path)
    with atomic_path(path, suffix=".npz") as tmp:
        with open(tmp, "wb") as fh:
            np.savez_compressed(fh, names=np.array(out.names), bitrate=rate, frame_rate=out.frame_rate, num_quantizers=n,
                                codebook_size=out.codebook_size, model=out.model,
                                features=json.dumps(to_dict(tokenizer.cfg.features)), **arrays)
    return out


def load_codes(path, tokenizer=None) -> Codes:
    """Read a codes file; refuse one that is damaged, whose codes are not whole numbers in
    0..codebook_size-1, whose header disagrees with its codes, or (with ``tokenizer``) that another
    model made. Every refusal is a CodesError naming the file."""
    import zipfile

    path = Path(path)
    if not path.is_file():
        raise CodesError(f"{path}: codes file not found")
    try:
        with np.load(path, allow_pickle=False) as z:
            names = [str(s) for s in z["names"]]
            raw = [z[f"codes_{i}"] for i in range(len(names))]
            header = {k: z[k].item() for k in ("bitrate", "frame_rate", "codebook_size", "num_quantizers")}
            model = str(z["model"])
    except (KeyError, ValueError, OSError, EOFError, zipfile.BadZipFile) as e:
        raise CodesError(f"{path}: not a readable uniwav codes file (damaged or truncated?): {type(e).__name__}: {str(e)[:120]}") from None
    size, n = int(header["codebook_size"]), int(header["num_quantizers"])
    for name, c in zip(names, raw):
        if not np.issubdtype(c.dtype, np.integer):
            raise CodesError(f"{path}: codes of {name} are {c.dtype}, not whole numbers")
        if c.ndim != 2 or c.shape[1] != n:
            raise CodesError(f"{path}: codes of {name} have shape {c.shape}, the header says {n} codebook(s) per frame")
        if c.ndim == 2 and c.shape[0] == 0:
            raise CodesError(f"{path}: the codes of {name} have no frames (its audio was shorter than one frame); nothing to decode")
        if c.size and (int(c.min()) < 0 or int(c.max()) >= size):
            raise CodesError(f"{path}: codes of {name} lie in {int(c.min())}..{int(c.max())}, outside 0..{size - 1}")
    out = Codes(names, [c.astype(np.int64) for c in raw], float(header["bitrate"]), float(header["frame_rate"]), size, model)
    if abs(out.measured_bitrate() - out.bitrate) > 1e-6:
        raise CodesError(f"{path}: header says {out.bitrate:g} bit/s but the codes hold {out.measured_bitrate():g} bit/s")
    if tokenizer is not None:
        if out.model != tokenizer.fingerprint():
            raise CodesError(f"{path}: these codes were made by another tokenizer (fingerprint {out.model}, this model "
                             f"{tokenizer.fingerprint()}); decode them with the model that wrote them")
        if abs(out.frame_rate - tokenizer.frame_rate) > 1e-6:
            raise CodesError(f"{path}: codes at {out.frame_rate:g} frames/s, the model runs at {tokenizer.frame_rate:g}")
    return out
