"""``uniwav finetune-tokenizer``: put a residual vector quantiser on a pre-trained UniWav's z and
teach the decoder to regenerate whole utterances from the codes alone.

Loss = flow matching on every valid frame + commitment_weight * commitment. Quantizer dropout
draws the number of codebooks per batch from (seed, batch index) only, so every process uses
the same number. The encoder and layer mix are trained too unless ``freeze_encoder``.
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import Optional


from uniwav.config import FinetuneTokenizerConfig, with_backbone_of
from uniwav.data.manifests import check_sample_rate, load_cuts
from uniwav.models.tokenizer import SpeechTokenizer
from uniwav.training.launch import launch
from uniwav.training.monitor import TokenizerMonitor
from uniwav.training.task import TrainingTask
from uniwav.utils import stable_seed


class TokenizerTask(TrainingTask):
    config_class = FinetuneTokenizerConfig
    model_class = SpeechTokenizer
    default_preset = "tokenizer_tiny"
    seed_tag = "tokenizer"
    requires_init = True

    def __init__(self, config: dict):
        super().__init__(config)
        if self.cfg.freeze_encoder:
            self.model.backbone.encoder.requires_grad_(False)
            self.model.backbone.layer_weights.requires_grad_(False)

    @classmethod
    def complete_config(cls, cfg: FinetuneTokenizerConfig, data_dir, pretrained, init, **options) -> FinetuneTokenizerConfig:
        cfg.init = str(init)
        cfg.model = with_backbone_of(cfg.model, pretrained.cfg)
        check_sample_rate(data_dir, cfg.model.features.sample_rate)
        return cfg

    def init_from(self, pretrained) -> None:
        self.model.backbone.load_from(pretrained.backbone)

    @property
    def find_unused_parameters(self) -> bool:
        return not self.cfg.freeze_encoder

    def callbacks(self) -> list:
        t = self.cfg.trainer
        cuts = load_cuts(self.data_dir, self.sample_split())
        return [TokenizerMonitor(cuts, t.monitor_utterances, t.sample_every, self.cfg.model.features.sample_rate, asr=t.monitor_asr,
                                 whisper="auto" if t.monitor_whisper else None)]

    prog_bar = ("loss/total", "loss/flow", "quantizer/perplexity_0")

    def compute_loss(self, batch, feats, frames):
        n = random.Random(stable_seed(self.cfg.seed, "quantizers", batch["index"])).randint(1, self.model.quantizer.num_quantizers)
        if self.cfg.freeze_encoder:
            self.model.backbone.encoder.eval()  # no dropout in a frozen encoder
        out = self.model(feats, frames, n)
        loss = out.loss + self.cfg.commitment_weight * out.commitment
        values = {"loss/total": loss, "loss/flow": out.loss, "loss/commitment": out.commitment, "quantizer/codebooks_used": float(n),
                  "quantizer/restarted_codewords": float(out.restarted)}
        values.update({f"quantizer/perplexity_{k}": p for k, p in enumerate(out.perplexity.unbind())})
        return loss, values


def finetune_tokenizer(data_dir, run_dir, init: str, preset: Optional[str] = None, overrides: Optional[list[str]] = None,
                       max_steps: Optional[int] = None, max_minutes: Optional[float] = None, progress: bool = True,
                       resume_from: Optional[str] = None) -> Path:
    """Fine-tune a speech tokenizer from the pre-trained UniWav ``init`` on ``data_dir``'s train split."""
    return launch(TokenizerTask, data_dir, run_dir, preset, overrides, init=init, max_steps=max_steps, max_minutes=max_minutes,
                  progress=progress, resume_from=resume_from)
