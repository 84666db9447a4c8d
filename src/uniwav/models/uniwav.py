"""UniWav: DinoSR-style encoder with an EMA teacher and online codebooks, plus a flow-matching
decoder conditioned on a learned mix of the student's layers. Plain ``torch.nn``."""

from __future__ import annotations

import copy
import dataclasses
from dataclasses import dataclass
from typing import Optional
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from uniwav.config import ConfigError, ModelConfig, SamplerConfig
from uniwav.models.backbone import Backbone, BackboneModel
from uniwav.models.ema import annealed_decay, ema_update
from uniwav.models.encoder import span_mask
from uniwav.models.layers import lengths_to_padding_mask, masked_instance_norm
from uniwav.models.quantization import OnlineCodebooks, perplexity


@dataclass
class PretrainOutput:
    loss: torch.Tensor  # L_enc + lambda * L_dec
    enc_loss: torch.Tensor
    dec_loss: torch.Tensor
    accuracy: torch.Tensor  # student's top-1 accuracy on the teacher targets, masked frames
    perplexity: torch.Tensor  # [K] codebook perplexity of this batch's targets
    targets: torch.Tensor  # [K, N] target indices at masked frames
    mask: torch.Tensor  # [B, T] masked frames


class UniWav(BackboneModel):
    """backbone (front end, student encoder, layer mix, flow decoder) + teacher (EMA of the student's
    Transformer) + codebooks (online clustering of the teacher's top layers) + heads (student's
    predictions of the teacher's codewords)."""

    model_type = "uniwav"
    config_class = ModelConfig

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        cfg.validate()
        self.cfg = cfg
        e, c = cfg.encoder, cfg.clustering
        self.backbone = Backbone(cfg)
        self.teacher = copy.deepcopy(self.backbone.encoder.context).requires_grad_(False)
        self.codebooks = OnlineCodebooks(c.top_layers, c.codebook_size, e.dim, c.codebook_decay, c.init_from_data)
        self.heads = nn.Linear(e.dim, c.top_layers * c.codebook_size)  # the K student heads, in one matmul
        self._frozen_front: Optional[dict] = None  # the shared front end's weights once the teacher is frozen

    # ------------------------------------------------------------------ pieces

    @torch.no_grad()
    def teacher_targets(self, feats: torch.Tensor, padding_mask: Optional[torch.Tensor]) -> torch.Tensor:
        """Instance-normalised feed-forward outputs of the teacher's top K layers on the unmasked
        input: [K, B, T, D] float32."""
        self.teacher.eval()
        x = self.backbone.encoder.embed(feats)
        _, ffn, _ = self.teacher(x, padding_mask)
        top = ffn[-self.cfg.clustering.top_layers:]
        return torch.stack([masked_instance_norm(f, padding_mask) for f in top])

    def draw_mask(self, lengths: torch.Tensor, max_len: int) -> torch.Tensor:
        e = self.cfg.encoder
        return span_mask(lengths, max_len, e.mask_prob, e.mask_span)

    def draw_condition_drop(self, batch_size: int, device: torch.device) -> Optional[torch.Tensor]:
        """[B] bool: the utterances whose decoder condition is dropped this update (``cond_drop_prob``,
        from the global RNG on the host; at least one utterance keeps its condition), or None."""
        if not self.training or self.cfg.cond_drop_prob == 0:
            return None
        drop = torch.rand(batch_size) < self.cfg.cond_drop_prob
        drop[0] &= ~drop.all()
        return drop.to(device)

    # ------------------------------------------------------------------ pre-training

    def forward(self, feats: torch.Tensor, lengths: torch.Tensor, mask: Optional[torch.Tensor] = None,
                drop: Optional[torch.Tensor] = None) -> PretrainOutput:
        """One pre-training forward pass. feats [B, T, F] normalised log-mel, lengths [B] frames,
        mask [B, T] (drawn from the global RNG when None), drop [B] bool: utterances whose decoder
        condition is dropped (drawn per ``cond_drop_prob`` when None): the encoder sees them fully
        masked and they are left out of L_enc. Accumulates codebook statistics; call
        ``after_optimizer_step`` once per optimizer update."""
        B, T, _ = feats.shape
        padding_mask = lengths_to_padding_mask(lengths, T)
        if mask is None:
            mask = self.draw_mask(lengths, T)
        mask = mask & ~padding_mask
        if drop is None:
            drop = self.draw_condition_drop(B, feats.device)
        enc_mask, predicted = mask, mask
        if drop is not None:
            enc_mask = torch.where(drop[:, None], ~padding_mask, mask)
            predicted = mask & ~drop[:, None]

        targets_all = self.teacher_targets(feats, padding_mask)  # [K, B, T, D]
        tgt = targets_all[:, mask]  # [K, N, D]
        if self.training and self.codebooks.needs_init():
            self.codebooks.initialize_from(tgt)
        idx = self.codebooks.assign(tgt)  # [K, N]
        if self.training:
            self.codebooks.accumulate(tgt, idx)

        out = self.backbone.encoder(feats, padding_mask, enc_mask)
        K, V = self.codebooks.num_codebooks, self.codebooks.codebook_size
        logits = self.heads(out.final[predicted]).view(-1, K, V).transpose(0, 1).float()  # [K, N', V]
        wanted = idx if drop is None else idx[:, predicted[mask]]
        enc_loss = F.cross_entropy(logits.reshape(-1, V), wanted.reshape(-1))
        accuracy = (logits.argmax(-1) == wanted).float().mean()

        if self.cfg.decoder_loss_weight > 0:
            dec_loss = self.backbone.flow_loss(feats, self.backbone.mix(out.hidden), mask, padding_mask)
        else:
            dec_loss = torch.zeros((), device=feats.device)
        loss = enc_loss + self.cfg.decoder_loss_weight * dec_loss
        return PretrainOutput(loss, enc_loss.detach(), dec_loss.detach(), accuracy.detach(), perplexity(idx, V), idx, mask)

    def teacher_decay(self, step: int) -> float:
        """The teacher's EMA decay after ``step`` updates: annealed, and 1 (a frozen teacher) from ``freeze_teacher_step`` on."""
        c = self.cfg.clustering
        if 0 <= c.freeze_teacher_step <= step:
            return 1.0
        return annealed_decay(step, c.teacher_decay_start, c.teacher_decay_end, c.teacher_anneal_steps)

    @torch.no_grad()
    def after_optimizer_step(self, step: int) -> float:
        """EMA teacher update (decay for ``step`` updates done) and codebook update. Returns the decay.
        Once the teacher is frozen, so is the front end it shares with the student (DinoSR): its weights
        are put back after every update, so the teacher's input stays what it was trained on."""
        decay = self.teacher_decay(step)
        if decay < 1.0:
            ema_update(self.teacher, self.backbone.encoder.context, decay,
                       ("pos_conv.",) if self.cfg.clustering.teacher_shares_pos_conv else ())
        else:
            front = self.backbone.encoder.input_proj
            if self._frozen_front is None:
                self._frozen_front = {k: v.detach().clone() for k, v in front.state_dict().items()}
            front.load_state_dict(self._frozen_front)
        self.codebooks.update()
        return decay

    # ------------------------------------------------------------------ inference API

    @torch.no_grad()
    def extract(self, wav, lengths=None, layers: Optional[Sequence[int]] = None) -> dict:
        """Encoder representations of waveform(s) at ``features.sample_rate``.

        wav [S] or [B, S] (+ sample lengths [B]). Returns {"layer_<i>": [B, T, D] for i in layers
        (1-based; default: all), "z": the learned mix [B, T, D], "lengths": [B] frames}."""
        feats, frames = self.features.prepare(wav, lengths)
        padding_mask = lengths_to_padding_mask(frames, feats.shape[1])
        out = self.backbone.encoder(feats, padding_mask)
        layers = range(1, len(out.hidden) + 1) if layers is None else layers
        result = {}
        for i in layers:
            if not 1 <= i <= len(out.hidden):
                raise ValueError(f"layer {i} out of range 1..{len(out.hidden)}")
            result[f"layer_{i}"] = out.hidden[i - 1]
        result["z"] = self.backbone.mix(out.hidden)
        result["lengths"] = frames
        return result

    @torch.no_grad()
    def infill(self, feats: torch.Tensor, mask: torch.Tensor, lengths: Optional[torch.Tensor] = None,
               sampler: Optional[SamplerConfig] = None, seed: Optional[int] = 0, **sampling) -> torch.Tensor:
        """Regenerate the masked frames of normalised features feats [B, T, F] (mask [B, T], True =
        generate) from the encoder's view of the unmasked ones. Unmasked frames are returned as given.
        ``sampler`` (default: the model's ``cfg.sampler``), with any field replaced by ``sampling``
        (nfe=, method=, sway=, guidance=). Guidance (against the condition of a fully masked input)
        needs a model pre-trained with ``cond_drop_prob`` > 0."""
        B, T, _ = feats.shape
        lengths = torch.full((B,), T, device=feats.device) if lengths is None else lengths
        padding_mask = lengths_to_padding_mask(lengths, T)
        mask = mask & ~padding_mask
        sampler = dataclasses.replace(sampler or self.cfg.sampler, **sampling)
        uncond = None
        if sampler.guidance:
            if not self.cfg.supports_guidance:
                raise ConfigError(f"guidance {sampler.guidance:g}: this model was pre-trained without condition dropout "
                                  "(model.cond_drop_prob=0), so it cannot be guided")
            uncond = self.backbone.represent(feats, padding_mask, ~padding_mask)
        z = self.backbone.represent(feats, padding_mask, mask)
        x1 = self.backbone.generate(z, padding_mask=padding_mask, sampler=sampler, uncond=uncond, seed=seed, context=feats,
                                    known=~mask & ~padding_mask)
        return torch.where(mask[..., None], x1, feats)

    def num_parameters(self) -> dict:
        count = lambda m: sum(p.numel() for p in m.parameters())  # noqa: E731
        b = self.backbone
        return {"encoder": count(b.encoder) + count(self.heads) + b.layer_weights.numel(),
                "decoder": count(b.decoder), "teacher (EMA, not trained)": count(self.teacher)}
