"""Speech tokens from one pre-trained UniWav model: encoder -> mixed representation z ->
residual vector quantiser -> codes; codes -> flow-matching decoder -> log-mel (METHOD.md 4.3).

bitrate = frame rate x codebooks x log2(codebook size): 50 x 1 x 10 = 500 bit/s,
50 x 2 x 10 = 1000 bit/s with the default config.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Optional

import torch
import torch.nn.functional as F

from uniwav.config import ConfigError, SamplerConfig, TokenizerModelConfig
from uniwav.models.backbone import Backbone, BackboneModel
from uniwav.models.layers import lengths_to_padding_mask
from uniwav.models.quantization import ResidualVQ


@dataclass
class TokenizerOutput:
    loss: torch.Tensor  # flow-matching loss on every valid frame (the task adds the weighted commitment)
    commitment: torch.Tensor
    perplexity: torch.Tensor  # [K]
    restarted: int
    num_quantizers: int


class SpeechTokenizer(BackboneModel):
    """backbone (front end, encoder, layer mix, flow decoder) + quantizer (residual VQ on LayerNorm(z); with
    ``quantizer.semantic_layer``, the paper's Eq. 11: the first codebook on that layer, the rest on z's residual)."""

    model_type = "tokenizer"
    config_class = TokenizerModelConfig

    def __init__(self, cfg: TokenizerModelConfig):
        super().__init__()
        cfg.validate()
        self.cfg = cfg
        q = cfg.quantizer
        self.backbone = Backbone(cfg)
        self.quantizer = ResidualVQ(q.num_quantizers, q.codebook_size, cfg.encoder.dim, q.decay, q.kmeans_iters, q.dead_threshold)

    # ------------------------------------------------------------------ bitrate

    @property
    def frame_rate(self) -> float:
        return self.cfg.features.frame_rate

    def bitrate(self, num_quantizers: int) -> float:
        """Bits per second with the first ``num_quantizers`` codebooks."""
        return self.frame_rate * self.quantizer.bits_per_frame(num_quantizers)

    def quantizers_for(self, bitrate: float) -> int:
        """The number of codebooks that gives exactly ``bitrate`` bit/s (ValueError otherwise)."""
        options = {self.bitrate(n): n for n in range(1, self.quantizer.num_quantizers + 1)}
        for rate, n in options.items():
            if abs(rate - bitrate) < 1e-6:
                return n
        raise ConfigError(f"bitrate {bitrate:g} bit/s is not available; this model offers {', '.join(f'{r:g}' for r in options)}")

    def fingerprint(self) -> str:
        """A short hash of the quantiser's codebooks and the decoder's weights: a codes file
        records it so that codes are never decoded by a model that did not make them."""
        h = hashlib.sha256()
        for name, t in sorted(self.quantizer.state_dict().items()):
            if name.endswith("codewords"):
                h.update(t.detach().cpu().float().numpy().tobytes())
        h.update(self.backbone.decoder.out_proj.weight.detach().cpu().float().numpy().tobytes())
        return h.hexdigest()[:16]

    # ------------------------------------------------------------------ pieces

    def represent(self, feats: torch.Tensor, padding_mask: Optional[torch.Tensor]) -> tuple[torch.Tensor, Optional[torch.Tensor]]:
        """The quantiser's inputs: LayerNorm(z) [B, T, D], z = softmax(w)-weighted sum of the encoder's layers,
        and LayerNorm of the semantic layer [B, T, D] that the first codebook quantises (None without one)."""
        hidden = self.backbone.encoder(feats, padding_mask).hidden
        z = self.backbone.mix(hidden)
        layer = self.cfg.quantizer.semantic_layer
        semantic = None if layer is None else F.layer_norm(hidden[layer - 1], z.shape[-1:])
        return F.layer_norm(z, z.shape[-1:]), semantic

    def forward(self, feats: torch.Tensor, lengths: torch.Tensor, num_quantizers: Optional[int] = None) -> TokenizerOutput:
        """Training: feats [B, T, F] normalised log-mel, lengths [B]. The decoder regenerates every
        valid frame from the quantised z alone."""
        padding_mask = lengths_to_padding_mask(lengths, feats.shape[1])
        valid = ~padding_mask
        z, semantic = self.represent(feats, padding_mask)
        q = self.quantizer(z[valid], num_quantizers, first=None if semantic is None else semantic[valid])
        zq = torch.zeros_like(z).masked_scatter(valid[..., None], q.quantized.to(z.dtype))
        flow = self.backbone.flow_loss(feats, zq, valid, padding_mask)
        return TokenizerOutput(flow, q.commitment, q.perplexity, q.restarted, q.codes.shape[-1])

    # ------------------------------------------------------------------ inference API

    @torch.no_grad()
    def encode(self, wav, lengths=None, num_quantizers: Optional[int] = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Waveform(s) [S] or [B, S] at features.sample_rate -> (codes [B, T, n] long, frame lengths [B]).
        Codes past an utterance's length are -1."""
        feats, frames = self.features.prepare(wav, lengths)
        padding_mask = lengths_to_padding_mask(frames, feats.shape[1])
        z, semantic = self.represent(feats, padding_mask)
        codes = self.quantizer.encode(z, num_quantizers, first=semantic)
        return codes.masked_fill(padding_mask[..., None], -1), frames

    @torch.no_grad()
    def reconstruct(self, wav, lengths=None, sampler: Optional[SamplerConfig] = None, seed: Optional[int] = 0, **sampling) -> torch.Tensor:
        """Waveform(s) -> normalised log-mel regenerated from the UNquantised representation [B, T, F]:
        what the decoder makes of z before any bits are thrown away (the ceiling of every bitrate)."""
        feats, frames = self.features.prepare(wav, lengths)
        padding_mask = lengths_to_padding_mask(frames, feats.shape[1])
        z = self.represent(feats, padding_mask)[0].masked_fill(padding_mask[..., None], 0.0)
        x1 = self.backbone.generate(z, padding_mask=padding_mask, sampler=sampler, seed=seed, **sampling)
        return x1.masked_fill(padding_mask[..., None], 0.0)

    @torch.no_grad()
    def decode(self, codes: torch.Tensor, lengths: Optional[torch.Tensor] = None, sampler: Optional[SamplerConfig] = None,
               seed: Optional[int] = 0, **sampling) -> torch.Tensor:
        """codes [B, T, n] (or [T, n]) -> normalised log-mel [B, T, F] (zero past each length).
        ``sampler`` (default: ``cfg.sampler``) with fields replaced by ``sampling`` (nfe=, method=, sway=)."""
        codes = codes[None] if codes.dim() == 2 else codes
        B, T, _ = codes.shape
        device = self.device
        codes = codes.to(device)
        lengths = torch.full((B,), T, device=device) if lengths is None else torch.as_tensor(lengths, device=device)
        padding_mask = lengths_to_padding_mask(lengths, T)
        zq = self.quantizer.decode(codes.clamp_min(0)).masked_fill(padding_mask[..., None], 0.0)
        x1 = self.backbone.generate(zq, padding_mask=padding_mask, sampler=sampler, seed=seed, **sampling)
        return x1.masked_fill(padding_mask[..., None], 0.0)
