"""``uniwav finetune-asr``: CTC fine-tuning of the (pre-trained or random) encoder on labelled data.

Float32 log-softmax CTC with zero_infinity; span masking of time and channels as augmentation;
the encoder frozen for the first ``freeze_encoder_steps`` updates; validation reports WER, CER,
the blank ratio and example hypotheses, and warns when the output is (nearly) all blanks.
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import torch
import torch.nn.functional as F
from lightning.pytorch.utilities import rank_zero_warn

from uniwav.config import FinetuneASRConfig
from uniwav.data.batches import eval_loader, label_subset
from uniwav.data.manifests import available_splits, check_sample_rate, load_cuts, require_text
from uniwav.data.stats import ensure_stats
from uniwav.data.frontend import TextFrontEnd
from uniwav.data.text import CharVocabulary
from uniwav.evaluation.asr import error_rates
from uniwav.inference.ctc_decode import greedy_decode
from uniwav.models.ctc import CTCModel
from uniwav.training.launch import launch
from uniwav.training.schedule import adamw_warmup_cosine
from uniwav.training.task import TrainingTask


def training_cuts(data_dir, cfg: FinetuneASRConfig):
    """The labelled training cuts (a deterministic ``label_minutes`` subset when set)."""
    cuts = load_cuts(data_dir, "train")
    if cfg.label_minutes is not None:
        cuts = label_subset(cuts, cfg.label_minutes, cfg.seed)
    require_text(cuts, "train")
    return cuts


class ASRTask(TrainingTask):
    config_class = FinetuneASRConfig
    model_class = CTCModel
    default_preset = "asr_tiny"
    seed_tag = "asr"

    def __init__(self, config: dict):
        super().__init__(config)
        self._val = []
        self._train_cuts = None
        if self.cfg.freeze_front_end:
            self.model.encoder.input_proj.requires_grad_(False)

    @classmethod
    def complete_config(
        cls, cfg: FinetuneASRConfig, data_dir, pretrained, init, label_minutes: Optional[float] = None
    ) -> FinetuneASRConfig:
        cfg.init = str(init or "none")
        if label_minutes is not None:
            cfg.label_minutes = label_minutes
        if pretrained is not None:  # the architecture and features come from the pre-trained model
            cfg.model.features = pretrained.cfg.features
            cfg.model.encoder = pretrained.cfg.encoder
        if cfg.layer_drop is not None:
            cfg.model.encoder.layer_drop = cfg.layer_drop
        else:
            cfg.model.features = ensure_stats(data_dir, cfg.model.features)
        check_sample_rate(data_dir, cfg.model.features.sample_rate)
        frontend = TextFrontEnd(cfg.model.unit, cfg.model.language)
        cfg.model.vocab = CharVocabulary.from_texts(frontend.transcript(s.text, c.id) for c in training_cuts(data_dir, cfg)
                                                    for s in c.supervisions if s.text).symbols
        return cfg

    def init_from(self, pretrained) -> None:
        self.model.encoder.load_state_dict(pretrained.backbone.encoder.state_dict())
        if self.cfg.init_from == "teacher":
            self.model.encoder.context.load_state_dict(pretrained.teacher.state_dict())

    def train_cuts(self):
        if self._train_cuts is None:
            self._train_cuts = training_cuts(self.data_dir, self.cfg)
        return self._train_cuts

    def describe(self, resuming: bool) -> Optional[str]:
        source = "random initialisation" if self.cfg.init == "none" else f"{self.cfg.init} ({self.cfg.init_from})"
        return f"fine-tuning CTC ({len(self.cfg.model.vocab)} symbols) from {source} on {len(self.train_cuts())} labelled utterances"

    @property
    def find_unused_parameters(self) -> bool:
        return True

    @property
    def val_every(self) -> Optional[int]:
        return self.cfg.val_every

    def _targets(self, batch):
        ids = [self.model.vocab.encode(self.model.frontend.transcript(t, u), u) for t, u in zip(batch["texts"], batch["ids"])]
        return torch.tensor([i for seq in ids for i in seq], dtype=torch.long), torch.tensor([len(seq) for seq in ids])

    prog_bar = ("loss/ctc",)

    def compute_loss(self, batch, feats, frames):
        frozen = self.global_step < self.cfg.freeze_encoder_steps
        time_mask, channel_mask = self.model.draw_masks(frames, feats.shape[1])
        log_probs = self.model(feats, frames, time_mask, channel_mask, freeze_encoder=frozen)
        targets, target_lens = self._targets(batch)
        loss = F.ctc_loss(
            log_probs.transpose(0, 1),
            targets.to(self.device),
            frames,
            target_lens.to(self.device),
            blank=0,
            reduction="sum",
            zero_infinity=True,
        ) / target_lens.sum().clamp_min(1)
        return loss, {"loss/ctc": loss, "encoder/frozen": float(frozen)}

    def val_dataloader(self):
        split = "dev" if "dev" in available_splits(self.data_dir) else "test"
        cuts = load_cuts(self.data_dir, split)
        require_text(cuts, split)
        return eval_loader(cuts, self.cfg.data.max_duration)

    def validation_step(self, batch, batch_idx):
        feats, frames = self.model.features(batch["audio"], batch["audio_lens"])
        log_probs = self.model(feats, frames)
        frontend = self.model.frontend
        for lp, n, ref, utt in zip(log_probs.cpu().numpy(), frames.tolist(), batch["texts"], batch["ids"]):
            best = lp[:n].argmax(-1)
            ref = frontend.render(frontend.transcript(ref, utt))  # a phone recogniser is scored on phones
            self._val.append((ref, self.model.vocab.decode(greedy_decode(lp[:n])), float((best == 0).mean())))

    def on_validation_epoch_end(self):
        if not self._val:
            return
        refs, hyps, blanks = zip(*self._val)
        self._val = []
        rates = error_rates(list(refs), [" ".join(h.split()) for h in hyps])
        blank_ratio = sum(blanks) / len(blanks)
        empty = sum(1 for h in hyps if not h.strip()) / len(hyps)
        self.log_dict({"val/wer": rates["wer"], "val/cer": rates["cer"], "val/blank_ratio": blank_ratio, "val/empty_hypotheses": empty},
                      on_epoch=True, prog_bar=True, batch_size=len(refs))
        tb = getattr(self.logger, "experiment", None)
        if tb is not None and self.global_rank == 0:
            text = "\n\n".join(f"REF: {r}  \nHYP: {h}" for r, h in list(zip(refs, hyps))[:5])
            tb.add_text("val/examples", text, self.global_step)
        if empty > 0.95 and self.global_step > self.cfg.freeze_encoder_steps + 100:
            rank_zero_warn(
                f"step {self.global_step}: {empty:.0%} of validation outputs are empty (blank ratio {blank_ratio:.3f}). "
                "CTC is stuck on blanks: train longer, raise optim.lr, lower the masking (model.mask_prob), or check the transcripts."
            )

    def configure_optimizers(self):
        o = self.cfg.optim
        encoder = [p for p in self.model.encoder.parameters() if p.requires_grad]
        ids = {id(p) for p in encoder}
        rest = [p for p in self.model.parameters() if p.requires_grad and id(p) not in ids]
        return adamw_warmup_cosine([{"params": rest, "lr": o.lr}, {"params": encoder, "lr": o.lr * self.cfg.encoder_lr_scale}], o)


def finetune_asr(data_dir, run_dir, init: str = "none", preset: Optional[str] = None, overrides: Optional[list[str]] = None,
                 label_minutes: Optional[float] = None, max_steps: Optional[int] = None, max_minutes: Optional[float] = None,
                 progress: bool = True, resume_from: Optional[str] = None) -> Path:
    """Fine-tune a CTC recogniser on ``data_dir`` from ``init`` (a pre-trained run/export, or "none")."""
    return launch(ASRTask, data_dir, run_dir, preset, overrides, init=init, max_steps=max_steps, max_minutes=max_minutes,
                  progress=progress, resume_from=resume_from, label_minutes=label_minutes)
