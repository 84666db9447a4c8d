"""UniWav: DinoSR-style encoder with an EMA teacher and online codebooks, plus a flow-matching
decoder conditioned on a learned mix of the student's layers. Plain ``torch.nn``."""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Optional, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from uniwav.config import ModelConfig
from uniwav.features.mel import LogMel
from uniwav.models.codebook import OnlineCodebooks, masked_instance_norm, perplexity
from uniwav.models.decoder import FlowDecoder
from uniwav.models.ema import annealed_decay, ema_update
from uniwav.models.encoder import Encoder, span_mask
from uniwav.models.flow import masked_mse, ot_path, sample_noise, solve_ode
from uniwav.models.layers import lengths_to_padding_mask, mix_layers
from uniwav.models.pretrained import PretrainedMixin



@dataclass
class PretrainOutput:
    loss: torch.Tensor  # L_enc + lambda * L_dec
    enc_loss: torch.Tensor
    dec_loss: torch.Tensor
    accuracy: torch.Tensor  # student's top-1 accuracy on the teacher targets, masked frames
    perplexity: torch.Tensor  # [K] codebook perplexity of this batch's targets
    targets: torch.Tensor  # [K, N] target indices at masked frames
    mask: torch.Tensor  # [B, T] masked frames


class UniWav(PretrainedMixin, nn.Module):
    model_type = "uniwav"
    config_class = ModelConfig

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        cfg.validate()
        self.cfg = cfg
        e, c = cfg.encoder, cfg.clustering
        self.features = LogMel(cfg.features)
        self.encoder = Encoder(e, cfg.features.n_mels)
        self.teacher = copy.deepcopy(self.encoder.context).requires_grad_(False)
        self.codebooks = OnlineCodebooks(c.top_layers, c.codebook_size, e.dim, c.codebook_decay, c.init_from_data)
        self.heads = nn.Linear(e.dim, c.top_layers * c.codebook_size)  # the K student heads, in one matmul
        self.layer_weights = nn.Parameter(torch.zeros(e.layers))
        self.decoder = FlowDecoder(cfg.decoder, cfg.features.n_mels, e.dim)

    # ------------------------------------------------------------------ pieces

    def mix(self, hidden: Sequence[torch.Tensor]) -> torch.Tensor:
        """z = sum_l softmax(w)_l * h_l: [B, T, D]."""
        return mix_layers(self.layer_weights, hidden)

    @torch.no_grad()
    def teacher_targets(self, feats: torch.Tensor, padding_mask: Optional[torch.Tensor]) -> torch.Tensor:
        """Instance-normalised feed-forward outputs of the teacher's top K layers on the unmasked
        input: [K, B, T, D] float32."""
        self.teacher.eval()
        x = self.encoder.embed(feats)
        _, ffn, _ = self.teacher(x, padding_mask)
        top = ffn[-self.cfg.clustering.top_layers:]
        return torch.stack([masked_instance_norm(f, padding_mask) for f in top])

    def draw_mask(self, lengths: torch.Tensor, max_len: int) -> torch.Tensor:
        e = self.cfg.encoder
        return span_mask(lengths, max_len, e.mask_prob, e.mask_span)

    # ------------------------------------------------------------------ pre-training

    def forward(self, feats: torch.Tensor, lengths: torch.Tensor, mask: Optional[torch.Tensor] = None) -> PretrainOutput:
        """One pre-training forward pass. feats [B, T, F] normalised log-mel, lengths [B] frames,
        mask [B, T] (drawn from the global RNG when None). Accumulates codebook statistics;
        call ``after_optimizer_step`` once per optimizer update."""
        B, T, _ = feats.shape
        padding_mask = lengths_to_padding_mask(lengths, T)
        if mask is None:
            mask = self.draw_mask(lengths, T)
        mask = mask & ~padding_mask

        targets_all = self.teacher_targets(feats, padding_mask)  # [K, B, T, D]
        tgt = targets_all[:, mask]  # [K, N, D]
        if self.training and not bool(self.codebooks.initialized):
            self.codebooks.initialize_from(tgt)
        idx = self.codebooks.assign(tgt)  # [K, N]
        if self.training:
            self.codebooks.accumulate(tgt, idx)

        out = self.encoder(feats, padding_mask, mask)
        K, V = self.codebooks.num_codebooks, self.codebooks.codebook_size
        logits = self.heads(out.final[mask]).view(-1, K, V).transpose(0, 1).float()  # [K, N, V]
        enc_loss = F.cross_entropy(logits.reshape(-1, V), idx.reshape(-1))
        accuracy = (logits.argmax(-1) == idx).float().mean()

        if self.cfg.decoder_loss_weight > 0:
            z = self.mix(out.hidden)
            x1 = feats
            x0 = torch.randn_like(x1)
            t = torch.rand(B, device=feats.device)
            x_t, u = ot_path(x0, x1, t, self.cfg.decoder.sigma_min)
            v = self.decoder(x_t, t, z, padding_mask)
            dec_loss = masked_mse(v, u, mask)
        else:
            dec_loss = torch.zeros((), device=feats.device)
        loss = enc_loss + self.cfg.decoder_loss_weight * dec_loss
        return PretrainOutput(loss, enc_loss.detach(), dec_loss.detach(), accuracy.detach(), perplexity(idx, V), idx, mask)

    def teacher_decay(self, step: int) -> float:
        c = self.cfg.clustering
        return annealed_decay(step, c.teacher_decay_start, c.teacher_decay_end, c.teacher_anneal_steps)

    @torch.no_grad()
    def after_optimizer_step(self, step: int) -> float:
        """EMA teacher update (decay for ``step`` updates done) and codebook update. Returns the decay."""
        decay = self.teacher_decay(step)
        ema_update(self.teacher, self.encoder.context, decay)
        self.codebooks.update()
        return decay

    # ------------------------------------------------------------------ inference API

    def _prepare(self, wav, lengths=None):
        device = self.layer_weights.device
        if not torch.is_tensor(wav):
            wav = torch.as_tensor(wav)
        wav = wav.float().to(device)
        if wav.dim() == 1:
            wav = wav[None]
        if lengths is not None:
            lengths = torch.as_tensor(lengths, device=device)
        return self.features(wav, lengths)

    @torch.no_grad()
    def extract(self, wav, lengths=None, layers: Optional[Sequence[int]] = None) -> dict:
        """Encoder representations of waveform(s) at ``features.sample_rate``.

        wav [S] or [B, S] (+ sample lengths [B]). Returns {"layer_<i>": [B, T, D] for i in layers
        (1-based; default: all), "z": the learned mix [B, T, D], "lengths": [B] frames}."""
        feats, frames = self._prepare(wav, lengths)
        padding_mask = lengths_to_padding_mask(frames, feats.shape[1])
        out = self.encoder(feats, padding_mask)
        layers = range(1, len(out.hidden) + 1) if layers is None else layers
        result = {}
        for i in layers:
            if not 1 <= i <= len(out.hidden):
                raise ValueError(f"layer {i} out of range 1..{len(out.hidden)}")
            result[f"layer_{i}"] = out.hidden[i - 1]
        result["z"] = self.mix(out.hidden)
        result["lengths"] = frames
        return result

    @torch.no_grad()
    def infill(self, feats: torch.Tensor, mask: torch.Tensor, lengths: Optional[torch.Tensor] = None, nfe: int = 16,
               method: str = "midpoint", seed: Optional[int] = 0) -> torch.Tensor:
        """Regenerate the masked frames of normalised features feats [B, T, F] (mask [B, T], True =
        generate) from the encoder's view of the unmasked ones. Unmasked frames are returned as given."""
        B, T, F_ = feats.shape
        lengths = torch.full((B,), T, device=feats.device) if lengths is None else lengths
        padding_mask = lengths_to_padding_mask(lengths, T)
        mask = mask & ~padding_mask
        z = self.mix(self.encoder(feats, padding_mask, mask).hidden)
        x0 = sample_noise(feats.shape, feats.device, seed)
        x1 = solve_ode(lambda x, t: self.decoder(x, t, z, padding_mask), x0, nfe, method)
        return torch.where(mask[..., None], x1, feats)

    def num_parameters(self) -> dict:
        count = lambda m: sum(p.numel() for p in m.parameters())  # noqa: E731
        return {"encoder": count(self.encoder) + count(self.heads) + self.layer_weights.numel(),
                "decoder": count(self.decoder), "teacher (EMA, not trained)": count(self.teacher)}
