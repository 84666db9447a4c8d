"""Speak text in the voice of a short audio prompt with a ``TTSModel``.

Durations: the duration predictor's frames per character, scaled by the prompt's speaking rate
(prompt frames / predicted frames of the prompt's transcript, when the transcript is known) and
divided by ``speed``. The prompt transcript, when known and an ASR model is given, is also
force-aligned so the prompt frames carry their characters; otherwise they carry no text, which
the model was trained for. Long text is split at sentence boundaries; the pieces are generated
one by one with the same prompt and joined with a short cross-fade.
"""

from __future__ import annotations

import re
from typing import Optional

import numpy as np
import torch

from uniwav.config import SamplerConfig
from uniwav.data.text import normalize_text
from uniwav.inference.vocoders import Synthesizer
from uniwav.models.tts import TTSModel, frame_tokens_from_starts

MIN_PROMPT_SECONDS = 1.0
MAX_PROMPT_SECONDS = 10.0


class PromptError(ValueError):
    pass


def split_sentences(text: str, max_chars: int = 200) -> list[str]:
    """Sentences (split after . ! ? ; :), merged while they stay under ``max_chars``; a longer
    sentence is split at commas, then at spaces."""
    pieces = []
    for sentence in re.split(r"(?<=[.!?;:])\s+", text.strip()):
        for part in (re.split(r"(?<=,)\s+", sentence) if len(sentence) > max_chars else [sentence]):
            part = part.strip()
            while len(part) > max_chars:
                cut = part.rfind(" ", 0, max_chars)
                cut = cut if cut > 0 else max_chars
                pieces.append(part[:cut].strip())
                part = part[cut:].strip()
            if part:
                pieces.append(part)
    merged: list[str] = []
    for p in pieces:
        if merged and len(merged[-1]) + 1 + len(p) <= max_chars:
            merged[-1] += " " + p
        else:
            merged.append(p)
    return merged


def crossfade(chunks: list[np.ndarray], sample_rate: int, ms: float = 40.0) -> np.ndarray:
    """Concatenate with a linear cross-fade of ``ms`` milliseconds (shortened for short chunks)."""
    if not chunks:
        return np.zeros(0, dtype=np.float32)
    out = chunks[0].astype(np.float32)
    for c in chunks[1:]:
        c = c.astype(np.float32)
        n = min(int(sample_rate * ms / 1000), len(out), len(c))
        if n == 0:
            out = np.concatenate([out, c])
            continue
        ramp = np.linspace(0.0, 1.0, n, dtype=np.float32)
        mid = out[-n:] * (1 - ramp) + c[:n] * ramp
        out = np.concatenate([out[:-n], mid, c[n:]])
    return out


def check_prompt(wav: np.ndarray, sample_rate: int, source: str = "prompt") -> np.ndarray:
    seconds = len(wav) / sample_rate
    if seconds < MIN_PROMPT_SECONDS:
        raise PromptError(f"{source}: {seconds:.2f} s is too short for a voice prompt (need at least {MIN_PROMPT_SECONDS:g} s; 3 s is best)")
    if float(np.sqrt(np.mean(wav.astype(np.float64) ** 2))) < 1e-4:
        raise PromptError(f"{source}: the prompt is silent")
    if seconds > MAX_PROMPT_SECONDS:
        wav = wav[: int(MAX_PROMPT_SECONDS * sample_rate)]  # a longer prompt adds cost, not voice
    return wav


@torch.no_grad()
def synthesize(model: TTSModel, prompt_wav: np.ndarray, text: str, synth: Synthesizer, *, prompt_text: Optional[str] = None, asr=None,
               sampler: Optional[SamplerConfig] = None, speed: float = 1.0, seed: int = 0, source: str = "prompt",
               durations: Optional[list[int]] = None, phonemes: Optional[list[str]] = None, **sampling) -> np.ndarray:
    """prompt waveform [S] (model's sample rate) + text -> new speech [S'] (float32), without the prompt.
    ``sampler`` (default: the model's ``cfg.sampler``) with fields replaced by ``sampling`` (nfe=, guidance=, sway=, method=).
    ``durations``: frames of each of ``model.encode_text(text)``'s tokens, instead of predicted ones (the text is then
    spoken in one piece). ``phonemes``: the tokens to speak, exactly (a phone model; ``text`` is then not read)."""
    from uniwav.inference.transcribe import transcribe

    sr = model.cfg.features.sample_rate
    if speed <= 0:
        raise ValueError(f"speed must be positive, got {speed}")
    prompt_wav = check_prompt(np.asarray(prompt_wav, dtype=np.float32), sr, source)
    feats, frames = model.features.prepare(prompt_wav)
    prompt = feats[0, : int(frames[0])]
    if prompt_text is None and asr is not None:
        prompt_text = transcribe(asr, prompt_wav)
    prompt_tokens, rate = None, 1.0
    if prompt_text and normalize_text(prompt_text):
        ptoks = model.encode_text(prompt_text)
        predicted = float(model.predict_durations(ptoks).sum())
        rate = float(np.clip(prompt.shape[0] / max(predicted, 1.0), 0.5, 2.0))
        if asr is not None:
            prompt_tokens = prompt_frame_tokens(model, asr, prompt_wav, normalize_text(prompt_text), prompt.shape[0])
    pieces = []
    for i, sentence in enumerate([text] if durations is not None or phonemes is not None else split_sentences(text)):
        tokens = model.encode_tokens(phonemes) if phonemes is not None else model.encode_text(sentence)
        if durations is not None:
            if len(durations) != len(tokens):
                raise ValueError(f"{len(durations)} durations for {len(tokens)} tokens of {sentence!r}")
            dur = torch.tensor(durations, dtype=torch.long)
        else:
            dur = torch.round(model.predict_durations(tokens) * rate / speed).long()
            dur[1:] = dur[1:].clamp_min(1)
        gen = model.generate(prompt, tokens, dur, prompt_tokens=prompt_tokens, sampler=sampler, seed=seed + i, **sampling)
        pieces.append(synth(model.features.denormalize(gen)).cpu().numpy())
    return crossfade(pieces, sr)


def speak(model: TTSModel, prompt_wav, text: str, vocoder: Optional[str] = None, prompt_text: Optional[str] = None, **kwargs) -> np.ndarray:
    """Speech [S] (float32, model's sample rate) saying ``text`` in the voice of ``prompt_wav``;
    ``vocoder``: a vocoder run/export or public Vocos folder (default Griffin-Lim). Keyword arguments
    as ``synthesize`` (asr, speed, seed, nfe, guidance, sway, method)."""
    return synthesize(model, prompt_wav, text, Synthesizer(model.cfg.features, vocoder), prompt_text=prompt_text, **kwargs)


def prompt_frame_tokens(model: TTSModel, asr, wav: np.ndarray, text: str, num_frames: int) -> Optional[torch.Tensor]:
    """Frame tokens of the prompt from a CTC forced alignment of its transcript (None if it fails)."""
    from uniwav.inference.align import align
    from uniwav.inference.ctc_decode import AlignmentError

    try:
        spans = align(asr, wav, text)
    except (AlignmentError, ValueError):
        return None
    fr = model.cfg.features.frame_rate
    return frame_tokens_from_starts(text, [int(round(s * fr)) for _, s, _ in spans], num_frames, model.index)
