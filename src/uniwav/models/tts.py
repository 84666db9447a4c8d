"""In-context text-to-speech from the pre-trained UniWav (METHOD.md 4.2, Voicebox-style).

The pre-training task was: the encoder sees features with masked spans, the decoder infills the
masked frames from the encoder's mix z. Text-to-speech is the same task with text added: the
audio prompt is the unmasked context, the frames to speak are masked, and every frame also
carries the character it belongs to (frame-aligned, from CTC forced alignments):

    cond = z(masked features) + W · embed(frame tokens)        (W zero-initialised)

so fine-tuning starts exactly at the pre-trained infiller. Classifier-free guidance drops the
text and the audio context together; a duration predictor gives each character its frames.

Token ids: 0 = no text (dropped, or prompt frames without a transcript), 1 = silence, 2.. = characters.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import torch
import torch.nn.functional as F
from torch import nn

from uniwav.config import SamplerConfig, TTSModelConfig
from uniwav.data.alignments import SILENCE as SILENCE_SYMBOL
from uniwav.data.alignments import row_segments, row_symbols, segments
from uniwav.data.frontend import TextFrontEnd
from uniwav.data.text import VocabularyError, normalize_text, unspoken_characters
from uniwav.models.backbone import Backbone, BackboneModel
from uniwav.models.layers import lengths_to_padding_mask

NO_TEXT, SILENCE = 0, 1  # token ids; characters are 2..


def expand_tokens(tokens: torch.Tensor, durations: torch.Tensor, length: Optional[int] = None) -> torch.Tensor:
    """Repeat each token by its duration: tokens [N], durations [N] (frames) -> frame tokens [sum(d)]
    (cut or padded with NO_TEXT to ``length``)."""
    frames = torch.repeat_interleave(tokens, durations.clamp_min(0))
    if length is not None:
        frames = F.pad(frames[:length], (0, max(0, length - frames.shape[0])), value=NO_TEXT)
    return frames


def segment_tokens(parts: list[tuple[str, int]], index: dict, unknown: Optional[int] = None) -> tuple[list[int], list[int]]:
    """``data.alignments.segments`` -> (token ids, frames per token). A character outside ``index``
    becomes ``unknown``, or is an error when ``unknown`` is None."""
    tokens, durations = [], []
    for symbol, n in parts:
        if symbol == SILENCE_SYMBOL:
            tokens.append(SILENCE)
        elif symbol in index:
            tokens.append(index[symbol])
        elif unknown is not None:
            tokens.append(unknown)
        else:
            raise VocabularyError(f"character {symbol!r} is not in the TTS vocabulary")
        durations.append(n)
    return tokens, durations


def alignment_tokens(row: dict, index: dict) -> tuple[list[int], list[int]]:
    """An alignment row (``uniwav align``) -> (token ids [silence] + characters or phones, frames per token)."""
    unknown = sorted({t for t in row_symbols(row) if t not in index})
    if unknown:
        raise VocabularyError(f"utterance {row['id']}: {row.get('unit', 'char')}s {unknown} are not in the TTS vocabulary")
    try:
        return segment_tokens(row_segments(row), index)
    except ValueError as e:
        raise VocabularyError(str(e)) from None


def frame_tokens_from_starts(text: str, starts: list[int], num_frames: int, index: dict) -> torch.Tensor:
    """Frame tokens [num_frames] of a transcript whose characters start at ``starts`` (frames);
    characters outside the vocabulary carry no text."""
    tokens, durations = segment_tokens(segments(text, starts, num_frames), index, unknown=NO_TEXT)
    return expand_tokens(torch.tensor(tokens), torch.tensor(durations), num_frames)


class DurationPredictor(nn.Module):
    """tokens [B, N] (+ padding mask) -> log(1 + frames) per token [B, N]: embedding, convolutions, linear."""

    def __init__(self, vocab_size: int, dim: int, layers: int, kernel: int = 5, dropout: float = 0.1):
        super().__init__()
        self.embed = nn.Embedding(vocab_size, dim)
        self.convs = nn.ModuleList(nn.Conv1d(dim, dim, kernel, padding=kernel // 2) for _ in range(layers))
        self.norms = nn.ModuleList(nn.LayerNorm(dim) for _ in range(layers))
        self.dropout = nn.Dropout(dropout)
        self.out = nn.Linear(dim, 1)

    def forward(self, tokens: torch.Tensor, padding_mask: Optional[torch.Tensor] = None) -> torch.Tensor:
        x = self.embed(tokens)
        for conv, norm in zip(self.convs, self.norms):
            if padding_mask is not None:
                x = x.masked_fill(padding_mask[..., None], 0.0)
            x = self.dropout(norm(F.gelu(conv(x.transpose(1, 2)).transpose(1, 2))))
        return self.out(x)[..., 0]


class TextContext(nn.Module):
    """Frame-level text embeddings [B, T, C] -> the same, each frame seeing its neighbours: residual
    depthwise-separable convolutions over frames (kernel 5, dilations 1, 2, 4, ...), so a frame knows
    the characters around it and where in its character it is. Padded frames are zeroed first."""

    def __init__(self, dim: int, layers: int, kernel: int = 5):
        super().__init__()
        self.convs = nn.ModuleList(nn.Conv1d(dim, dim, kernel, padding=(kernel // 2) * 2**i, dilation=2**i, groups=dim) for i in range(layers))
        self.mixes = nn.ModuleList(nn.Linear(dim, dim) for _ in range(layers))
        self.norms = nn.ModuleList(nn.LayerNorm(dim) for _ in range(layers))

    def forward(self, x: torch.Tensor, padding_mask: Optional[torch.Tensor] = None) -> torch.Tensor:
        for conv, mix, norm in zip(self.convs, self.mixes, self.norms):
            if padding_mask is not None:
                x = x.masked_fill(padding_mask[..., None], 0.0)
            x = x + mix(F.gelu(conv(norm(x).transpose(1, 2)).transpose(1, 2)))
        return x


@dataclass
class TTSOutput:
    loss: torch.Tensor  # flow loss + duration loss
    flow_loss: torch.Tensor
    duration_loss: torch.Tensor
    mask: torch.Tensor  # [B, T] frames generated


class TTSModel(BackboneModel):
    """backbone (front end, encoder, layer mix, flow decoder) + text_embed / text_proj (frame-aligned
    character conditioning, added to z) + duration (frames per character)."""

    model_type = "tts"
    config_class = TTSModelConfig

    def __init__(self, cfg: TTSModelConfig):
        super().__init__()
        cfg.validate()
        self.cfg = cfg
        self.backbone = Backbone(cfg)
        self.index = {ch: i + 2 for i, ch in enumerate(cfg.vocab)}
        self.frontend = TextFrontEnd(cfg.unit, cfg.language)
        self.text_embed = nn.Embedding(len(cfg.vocab) + 2, cfg.text_dim)
        self.text_context = TextContext(cfg.text_dim, cfg.text_layers) if cfg.text_layers else None
        self.text_proj = nn.Linear(cfg.text_dim, cfg.encoder.dim)
        nn.init.zeros_(self.text_proj.weight)
        nn.init.zeros_(self.text_proj.bias)
        self.duration = DurationPredictor(len(cfg.vocab) + 2, cfg.duration_dim, cfg.duration_layers)

    # ------------------------------------------------------------------ text

    def encode_text(self, text: str) -> list[int]:
        """Text -> [SILENCE] + token ids, through the model's front end (characters or phones).
        VocabularyError for characters that cannot be spoken (they would be dropped without a word)
        or tokens that are not in the vocabulary."""
        if self.cfg.unit == "phone":
            return self.encode_tokens(self.frontend.tokens(text), strict=False)
        dropped = unspoken_characters(text)
        if dropped:
            raise VocabularyError(f"cannot speak {''.join(dropped)!r} in {text[:80]!r}: write it as words (the text is read as English letters; "
                                  "numbers and symbols like % & $ are spelled out)")
        text = normalize_text(text)
        if not text:
            raise VocabularyError("empty text after normalisation (only letters, apostrophes and spaces are spoken)")
        unknown = sorted({ch for ch in text if ch not in self.index})
        if unknown:
            raise VocabularyError(f"characters {unknown} are not in the TTS vocabulary ({''.join(self.cfg.vocab)!r})")
        return [SILENCE] + [self.index[ch] for ch in text]

    def encode_tokens(self, tokens: list[str], strict: bool = True) -> list[int]:
        """Tokens of the model's unit -> [SILENCE] + ids. A phone the training data never had is spelled with
        the phones it is made of where it can be ("ɑːɹ" -> "ɑː" "ɹ"); what is left is an error when ``strict``
        (``--phonemes``: exact control), else a warning, and those frames are generated without text."""
        if not tokens:
            raise VocabularyError("nothing to speak")
        out, unknown = [], []
        for t in tokens:
            pieces = t if t in self.index else self._known_pieces(t)
            if pieces is None:
                unknown.append(t)
                out.append(NO_TEXT)
            else:
                out.extend(self.index[p] for p in ([t] if t in self.index else pieces))
        if unknown:
            message = (f"{self.cfg.unit}s {sorted(set(unknown))} are not in the TTS vocabulary ({' '.join(self.cfg.vocab)!r}): "
                       "the training data never had them")
            if strict:
                raise VocabularyError(message)
            import warnings

            warnings.warn(message + "; they are spoken without text", stacklevel=2)
        return [SILENCE] + out

    def _known_pieces(self, token: str) -> Optional[list[str]]:
        """``token`` as a sequence of vocabulary entries (longest first), or None."""
        pieces, i = [], 0
        while i < len(token):
            for j in range(len(token), i, -1):
                if token[i:j] in self.index and token[i:j] != " ":
                    pieces.append(token[i:j])
                    i = j
                    break
            else:
                return None
        return pieces

    # ------------------------------------------------------------------ the conditional velocity field

    def condition(self, feats: torch.Tensor, mask: torch.Tensor, frame_tokens: torch.Tensor,
                  padding_mask: Optional[torch.Tensor]) -> torch.Tensor:
        """cond [B, T, D] = z(features with ``mask`` frames masked) + text projection."""
        text = self.text_embed(frame_tokens)
        if self.text_context is not None:
            text = self.text_context(text, padding_mask)
        return self.backbone.represent(feats, padding_mask, mask) + self.text_proj(text)

    def unconditional(self, feats: torch.Tensor, padding_mask: Optional[torch.Tensor]) -> torch.Tensor:
        """The condition with text and audio context dropped (what classifier-free guidance contrasts with)."""
        everything = torch.ones(feats.shape[:2], dtype=torch.bool, device=feats.device)
        return self.condition(feats, everything, torch.full(feats.shape[:2], NO_TEXT, device=feats.device), padding_mask)

    def forward(self, feats, lengths, frame_tokens, tokens, durations, token_lengths, mask, drop_condition) -> TTSOutput:
        """Training. feats [B, T, F]; frame_tokens [B, T]; tokens / durations [B, N] (+ token_lengths [B]);
        mask [B, T] frames to generate; drop_condition [B] bool: no text and no audio context (guidance)."""
        B, T, _ = feats.shape
        padding_mask = lengths_to_padding_mask(lengths, T)
        valid = ~padding_mask
        mask = mask & valid
        dropped = drop_condition[:, None]
        enc_mask = torch.where(dropped, valid, mask)  # dropped: the encoder sees no audio at all
        frame_tokens = frame_tokens.masked_fill(dropped | padding_mask, NO_TEXT)
        cond = self.condition(feats, enc_mask, frame_tokens, padding_mask)
        flow = self.backbone.flow_loss(feats, cond, mask, padding_mask)
        tok_pad = lengths_to_padding_mask(token_lengths, tokens.shape[1])
        pred = self.duration(tokens, tok_pad)
        dur = F.l1_loss(pred[~tok_pad], torch.log1p(durations[~tok_pad].float()))
        return TTSOutput(flow + self.cfg.duration_loss_weight * dur, flow.detach(), dur.detach(), mask)

    # ------------------------------------------------------------------ synthesis

    @torch.no_grad()
    def predict_durations(self, tokens: list[int]) -> torch.Tensor:
        """Frames per token [N] (float, before rounding)."""
        t = torch.tensor([tokens], device=self.device)
        return torch.expm1(self.duration(t)[0]).clamp_min(0.0)

    @torch.no_grad()
    def generate(self, prompt_feats: torch.Tensor, tokens: list[int], durations: torch.Tensor, *,
                 prompt_tokens: Optional[torch.Tensor] = None, sampler: Optional[SamplerConfig] = None, seed: Optional[int] = 0,
                 **sampling) -> torch.Tensor:
        """prompt_feats [Tp, F] normalised; tokens [N] with integer durations [N] -> generated features [Tg, F].
        prompt_tokens [Tp]: the prompt's frame tokens (NO_TEXT when its transcript is unknown).
        ``sampler`` (default ``cfg.sampler``) with fields replaced by ``sampling`` (nfe=, guidance=, ...)."""
        device = self.device
        Tp = prompt_feats.shape[0]
        gen = expand_tokens(torch.tensor(tokens, device=device), durations.to(device).long())
        Tg = gen.shape[0]
        if Tg == 0:
            raise ValueError("the durations give zero frames to generate")
        T = Tp + Tg
        feats = torch.cat([prompt_feats.to(device), torch.zeros(Tg, prompt_feats.shape[1], device=device)])[None]
        mask = torch.zeros(1, T, dtype=torch.bool, device=device)
        mask[0, Tp:] = True
        ptok = torch.full((Tp,), NO_TEXT, device=device) if prompt_tokens is None else prompt_tokens.to(device)[:Tp]
        cond = self.condition(feats, mask, torch.cat([ptok, gen])[None], None)
        x1 = self.backbone.generate(cond, sampler=sampler, uncond=self.unconditional(feats, None), seed=seed, context=feats, known=~mask,
                                    **sampling)
        return x1[0, Tp:]
