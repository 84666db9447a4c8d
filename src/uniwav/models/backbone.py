"""The backbone every UniWav-derived model shares: log-mel front end, encoder, softmax layer mix and
flow-matching decoder (METHOD.md 1-3).

``UniWav`` (pre-training), ``SpeechTokenizer`` and ``TTSModel`` each hold one ``Backbone`` as
``self.backbone`` (as transformers' ``HubertForCTC`` holds a ``HubertModel``) and add their own
parts; ``BackboneModel.from_pretrained_backbone`` starts any of them from a pre-trained model.
"""

from __future__ import annotations

import dataclasses
from typing import Optional
from collections.abc import Sequence

import torch
from torch import nn

from uniwav.config import BackboneConfig, SamplerConfig, with_backbone_of
from uniwav.features.mel import LogMel
from uniwav.models.decoder import FlowDecoder
from uniwav.models.encoder import Encoder
from uniwav.models.flow import FlowMatcher
from uniwav.models.layers import mix_layers
from uniwav.models.pretrained import PretrainedMixin


class Backbone(nn.Module):
    """features: waveform -> normalised log-mel; encoder: log-mel (+ span mask) -> layer outputs;
    layer_weights [L]: z = sum_l softmax(w)_l h_l; decoder: velocity network conditioned on z;
    flow: the flow-matching loss and sampler around it."""

    def __init__(self, cfg: BackboneConfig):
        super().__init__()
        self.cfg = cfg
        self.features = LogMel(cfg.features)
        self.encoder = Encoder(cfg.encoder, cfg.features.n_mels)
        self.layer_weights = nn.Parameter(torch.zeros(cfg.encoder.layers))
        self.decoder = FlowDecoder(cfg.decoder, cfg.features.n_mels, cfg.encoder.dim)
        self.flow = FlowMatcher(cfg.decoder.sigma_min)

    def mix(self, hidden: Sequence[torch.Tensor]) -> torch.Tensor:
        """z = sum_l softmax(w)_l * h_l: L x [B, T, D] -> [B, T, D]."""
        return mix_layers(self.layer_weights, hidden)

    def represent(self, feats: torch.Tensor, padding_mask: Optional[torch.Tensor] = None,
                  mask: Optional[torch.Tensor] = None) -> torch.Tensor:
        """z [B, T, D] of features [B, T, F] whose ``mask`` [B, T] frames the encoder does not see."""
        return self.mix(self.encoder(feats, padding_mask, mask).hidden)

    def flow_loss(
        self, x1: torch.Tensor, cond: torch.Tensor, mask: torch.Tensor, padding_mask: Optional[torch.Tensor] = None
    ) -> torch.Tensor:
        """Flow-matching loss of the decoder regenerating x1 [B, T, F] from cond [B, T, D] at ``mask`` frames."""
        return self.flow.loss(self.decoder, x1, cond, mask, padding_mask)

    @torch.no_grad()
    def generate(self, cond: torch.Tensor, *, padding_mask: Optional[torch.Tensor] = None, sampler: Optional[SamplerConfig] = None,
                 uncond: Optional[torch.Tensor] = None, seed: Optional[int] = 0, context: Optional[torch.Tensor] = None,
                 known: Optional[torch.Tensor] = None, **sampling) -> torch.Tensor:
        """Features [B, T, F] generated from cond [B, T, D] (guided against ``uncond`` when the sampler
        says so; ``context`` features given at ``known`` frames). ``sampler`` defaults to the model's
        ``cfg.sampler``; ``sampling`` replaces fields of it (nfe=, method=, sway=, guidance=, context_path=)."""
        sampler = dataclasses.replace(sampler or self.cfg.sampler, **sampling)
        sampler.validate()
        return self.flow.sample(self.decoder, cond, self.cfg.features.n_mels, sampler, padding_mask=padding_mask, uncond=uncond, seed=seed,
                                context=context, known=known)

    @torch.no_grad()
    def load_from(self, other: Backbone) -> None:
        """Copy encoder, layer mix and decoder weights from another backbone of the same shape."""
        self.encoder.load_state_dict(other.encoder.state_dict())
        self.decoder.load_state_dict(other.decoder.state_dict())
        self.layer_weights.copy_(other.layer_weights)


class BackboneModel(PretrainedMixin, nn.Module):
    """Base of the models that hold a ``Backbone`` as ``self.backbone``."""

    backbone: Backbone

    @property
    def features(self) -> LogMel:
        """The model's front end (waveform -> normalised log-mel; ``raw`` and ``denormalize`` for vocoders)."""
        return self.backbone.features

    @property
    def device(self) -> torch.device:
        return self.backbone.layer_weights.device

    @classmethod
    def from_pretrained_backbone(cls, pretrained: BackboneModel, cfg: BackboneConfig):
        """A new model of this class whose backbone (shape and weights) is ``pretrained``'s; its own
        parts come from ``cfg`` (not modified)."""
        model = cls(with_backbone_of(cfg, pretrained.backbone.cfg))
        model.backbone.load_from(pretrained.backbone)
        return model
