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

from uniwav.config import TTSModelConfig
from uniwav.data.text import VocabularyError, normalize_text
from uniwav.features.mel import LogMel
from uniwav.models.decoder import FlowDecoder
from uniwav.models.encoder import Encoder
from uniwav.models.flow import masked_mse, ot_path, sample_noise, solve_ode
from uniwav.models.layers import lengths_to_padding_mask, mix_layers
from uniwav.models.pretrained import PretrainedMixin

NO_TEXT, SILENCE = 0, 1


def expand_tokens(tokens: torch.Tensor, durations: torch.Tensor, length: Optional[int] = None) -> torch.Tensor:
    """Repeat each token by its duration: tokens [N], durations [N] (frames) -> frame tokens [sum(d)]
    (cut or padded with NO_TEXT to ``length``)."""
    frames = torch.repeat_interleave(tokens, durations.clamp_min(0))
    if length is not None:
        frames = F.pad(frames[:length], (0, max(0, length - frames.shape[0])), value=NO_TEXT)
    return frames


def alignment_tokens(row: dict, index: dict) -> tuple[list[int], list[int]]:
    """An alignment row (``uniwav align``) -> (token ids [silence] + characters, frames per token).
    A character lasts from its span's start to the next span's start; leading frames are silence."""
    spans, n = row["spans"], row["num_frames"]
    if len(spans) != len(row["text"]):
        raise VocabularyError(f"utterance {row['id']}: {len(spans)} spans for {len(row['text'])} characters")
    unknown = sorted({ch for ch in row["text"] if ch not in index})
    if unknown:
        raise VocabularyError(f"utterance {row['id']}: characters {unknown} are not in the TTS vocabulary")
    starts = [s for s, _ in spans] + [n]
    tokens = [SILENCE] + [index[ch] for ch in row["text"]]
    durations = [starts[0]] + [max(0, starts[i + 1] - starts[i]) for i in range(len(spans))]
    return tokens, durations


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


@dataclass
class TTSOutput:
    loss: torch.Tensor  # flow loss + duration loss
    flow_loss: torch.Tensor
    duration_loss: torch.Tensor
    mask: torch.Tensor  # [B, T] frames generated


class TTSModel(PretrainedMixin, nn.Module):
    model_type = "tts"
    config_class = TTSModelConfig

    def __init__(self, cfg: TTSModelConfig):
        super().__init__()
        cfg.validate()
        self.cfg = cfg
        e = cfg.encoder
        self.features = LogMel(cfg.features)
        self.encoder = Encoder(e, cfg.features.n_mels)
        self.layer_weights = nn.Parameter(torch.zeros(e.layers))
        self.decoder = FlowDecoder(cfg.decoder, cfg.features.n_mels, e.dim)
        self.index = {ch: i + 2 for i, ch in enumerate(cfg.vocab)}
        self.text_embed = nn.Embedding(len(cfg.vocab) + 2, cfg.text_dim)
        self.text_proj = nn.Linear(cfg.text_dim, e.dim)
        nn.init.zeros_(self.text_proj.weight)
        nn.init.zeros_(self.text_proj.bias)
        self.duration = DurationPredictor(len(cfg.vocab) + 2, cfg.duration_dim, cfg.duration_layers)

    @classmethod
    def from_uniwav(cls, model, cfg: TTSModelConfig) -> "TTSModel":
        """Encoder, layer mix and decoder from a pre-trained UniWav; new text parts."""
        cfg.features, cfg.encoder, cfg.decoder = model.cfg.features, model.cfg.encoder, model.cfg.decoder
        tts = cls(cfg)
        tts.encoder.load_state_dict(model.encoder.state_dict())
        tts.decoder.load_state_dict(model.decoder.state_dict())
        with torch.no_grad():
            tts.layer_weights.copy_(model.layer_weights)
        return tts

    # ------------------------------------------------------------------ text

    def encode_text(self, text: str) -> list[int]:
        """Normalised text -> [SILENCE] + character ids (unknown characters: VocabularyError)."""
        text = normalize_text(text)
        if not text:
            raise VocabularyError("empty text after normalisation (only letters, apostrophes and spaces are spoken)")
        unknown = sorted({ch for ch in text if ch not in self.index})
        if unknown:
            raise VocabularyError(f"characters {unknown} are not in the TTS vocabulary ({''.join(self.cfg.vocab)!r})")
        return [SILENCE] + [self.index[ch] for ch in text]

    # ------------------------------------------------------------------ the conditional velocity field

    def condition(self, feats: torch.Tensor, mask: torch.Tensor, frame_tokens: torch.Tensor,
                  padding_mask: Optional[torch.Tensor]) -> torch.Tensor:
        """cond [B, T, D] = z(features with ``mask`` frames masked) + text projection."""
        z = mix_layers(self.layer_weights, self.encoder(feats, padding_mask, mask).hidden)
        return z + self.text_proj(self.text_embed(frame_tokens))

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
        x0 = torch.randn_like(feats)
        t = torch.rand(B, device=feats.device)
        x_t, u = ot_path(x0, feats, t, self.cfg.decoder.sigma_min)
        flow = masked_mse(self.decoder(x_t, t, cond, padding_mask), u, mask)
        tok_pad = lengths_to_padding_mask(token_lengths, tokens.shape[1])
        pred = self.duration(tokens, tok_pad)
        dur = F.l1_loss(pred[~tok_pad], torch.log1p(durations[~tok_pad].float()))
        return TTSOutput(flow + self.cfg.duration_loss_weight * dur, flow.detach(), dur.detach(), mask)

    # ------------------------------------------------------------------ synthesis

    @torch.no_grad()
    def predict_durations(self, tokens: list[int]) -> torch.Tensor:
        """Frames per token [N] (float, before rounding)."""
        t = torch.tensor([tokens], device=self.layer_weights.device)
        return torch.expm1(self.duration(t)[0]).clamp_min(0.0)

    @torch.no_grad()
    def generate(self, prompt_feats: torch.Tensor, tokens: list[int], durations: torch.Tensor,
                 prompt_tokens: Optional[torch.Tensor] = None, nfe: int = 16, guidance: float = 1.0, method: str = "midpoint",
                 seed: Optional[int] = 0) -> torch.Tensor:
        """prompt_feats [Tp, F] normalised; tokens [N] with integer durations [N] -> generated features [Tg, F].
        prompt_tokens [Tp]: the prompt's frame tokens (NO_TEXT when its transcript is unknown)."""
        device = self.layer_weights.device
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
        frame_tokens = torch.cat([ptok, gen])[None]
        cond = self.condition(feats, mask, frame_tokens, None)
        if guidance != 0:
            uncond = self.condition(feats, torch.ones_like(mask), torch.zeros_like(frame_tokens), None)

        def velocity(x, t):
            v = self.decoder(x, t, cond, None)
            if guidance != 0:
                v = guided_velocity(v, self.decoder(x, t, uncond, None), guidance)
            return v

        x0 = sample_noise((1, T, prompt_feats.shape[1]), device, seed)
        x1 = solve_ode(velocity, x0, nfe, method)
        return x1[0, Tp:]

    def tts(self, prompt_wav, text: str, vocoder: Optional[str] = None, prompt_text: Optional[str] = None, **kwargs):
        """Speech [S] (numpy float32) saying ``text`` in the voice of ``prompt_wav`` (at features.sample_rate).
        Keyword arguments as ``uniwav.inference.tts.synthesize``: nfe, guidance, speed, seed, asr."""
        from uniwav.inference.tts import synthesize
        from uniwav.inference.vocoders import Synthesizer

        return synthesize(self, prompt_wav, text, Synthesizer(self.cfg.features, vocoder), prompt_text=prompt_text, **kwargs)


def guided_velocity(v_cond: torch.Tensor, v_uncond: torch.Tensor, weight: float) -> torch.Tensor:
    """Classifier-free guidance: v = v_cond + w (v_cond - v_uncond) (w = 0: no guidance)."""
    return v_cond + weight * (v_cond - v_uncond)
