"""Audio -> codes -> audio with a ``SpeechTokenizer`` and a ``Synthesizer`` (vocoder or Griffin-Lim)."""

from __future__ import annotations

from typing import Optional

import numpy as np
import torch

from uniwav.inference.vocoders import Synthesizer
from uniwav.models.tokenizer import SpeechTokenizer


def codes_to_audio(tokenizer: SpeechTokenizer, codes, synth: Synthesizer, seed: int = 0, **sampling) -> np.ndarray:
    """codes [T, n] -> waveform [S] (float32 numpy) at the model's sample rate; ``sampling`` replaces
    fields of the model's sampler (nfe=, method=, sway=)."""
    codes = torch.as_tensor(np.asarray(codes), dtype=torch.long)
    feats = tokenizer.decode(codes[None], seed=seed, **sampling)[0]
    return synth(tokenizer.features.denormalize(feats)).cpu().numpy().astype(np.float32)


def audio_to_codes(tokenizer: SpeechTokenizer, wav, num_quantizers: int) -> np.ndarray:
    """waveform [S] -> codes [T, n] (int64 numpy)."""
    codes, frames = tokenizer.encode(wav, num_quantizers=num_quantizers)
    return codes[0, : int(frames[0])].cpu().numpy()


def resynthesize(tokenizer: SpeechTokenizer, wav, num_quantizers: Optional[int], synth: Synthesizer, *, seed: int = 0,
                 **sampling) -> np.ndarray:
    """waveform [S] -> the same speech through ``num_quantizers`` codebooks (None: through the
    unquantised representation, the decoder's ceiling), trimmed or padded to len(wav)."""
    if num_quantizers is None:
        feats = tokenizer.reconstruct(wav, seed=seed, **sampling)[0]
        out = synth(tokenizer.features.denormalize(feats)).cpu().numpy().astype(np.float32)
    else:
        out = codes_to_audio(tokenizer, audio_to_codes(tokenizer, wav, num_quantizers), synth, seed, **sampling)
    n = len(wav)
    return out[:n] if len(out) >= n else np.pad(out, (0, n - len(out)))
