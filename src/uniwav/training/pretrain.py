"""``uniwav pretrain``: L = L_enc + lambda * L_dec, EMA teacher and codebooks updated once per
optimizer update, non-finite updates skipped, health signals logged."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Optional

import torch
from lightning.pytorch.utilities import rank_zero_warn

from uniwav.config import PretrainConfig
from uniwav.data.manifests import check_sample_rate, load_cuts
from uniwav.data.stats import ensure_stats
from uniwav.models.uniwav import UniWav
from uniwav.training.callbacks import SampleLogger, fixed_sample_batch
from uniwav.training.launch import launch
from uniwav.training.schedule import adamw_warmup_cosine
from uniwav.training.task import TrainingTask


class NonFiniteLossError(RuntimeError):
    pass


class PretrainTask(TrainingTask):
    config_class = PretrainConfig
    model_class = UniWav
    default_preset = "tiny"
    seed_tag = "step"

    def __init__(self, config: dict):
        super().__init__(config)
        self._skip_step = False
        self._bad_steps = 0
        self._low_perplexity_logs = 0
        self._last_time = None
        self._perplexity = None
        self._last_batch = {}  # named when its gradients are not finite

    @classmethod
    def complete_config(cls, cfg: PretrainConfig, data_dir, pretrained, init, **options) -> PretrainConfig:
        check_sample_rate(data_dir, cfg.model.features.sample_rate)
        cfg.model.features = ensure_stats(data_dir, cfg.model.features)
        return cfg

    def describe(self, resuming: bool) -> Optional[str]:
        if resuming:
            return None
        return "UniWav parameters: " + ", ".join(f"{k} {v / 1e6:.2f} M" for k, v in self.model.num_parameters().items())

    @property
    def find_unused_parameters(self) -> bool:
        return self.cfg.model.decoder_loss_weight == 0 or self.cfg.model.encoder.layer_drop > 0

    def callbacks(self) -> list:
        return [SampleLogger(fixed_sample_batch(load_cuts(self.data_dir, self.sample_split())), every=self.cfg.trainer.sample_every)]

    prog_bar = ("loss/total", "loss/encoder", "loss/decoder", "codebook/perplexity_min")

    def compute_loss(self, batch, feats, frames):
        self._last_batch = batch
        out = self.model(feats, frames)
        now = time.perf_counter()
        values = {"loss/total": out.loss, "loss/encoder": out.enc_loss, "loss/decoder": out.dec_loss, "encoder/accuracy": out.accuracy,
                  "encoder/masked_fraction": out.mask.float().sum() / frames.sum(), "codebook/perplexity_min": out.perplexity.min()}
        values.update({f"codebook/perplexity_{k}": ppl for k, ppl in enumerate(out.perplexity.unbind())})
        if self._last_time is not None:
            audio_seconds = float(batch["audio_lens"].sum()) / self.cfg.model.features.sample_rate  # a host tensor: no wait
            values["throughput/audio_seconds_per_second"] = audio_seconds / max(1e-6, now - self._last_time)
        self._last_time = now
        self._perplexity = out.perplexity
        return out.loss, values

    def on_train_batch_end(self, outputs, batch, batch_idx) -> None:
        if self.global_step % self.cfg.trainer.log_every == 0:  # reading the device's value waits for it: only when logging
            self._check_collapse(self._perplexity)

    def _check_collapse(self, ppl: torch.Tensor) -> None:
        if self.global_step < 100:
            return
        if float(ppl.min()) < 2.0:
            self._low_perplexity_logs += 1
            if self._low_perplexity_logs in (10, 100, 1000):
                rank_zero_warn(
                    f"COLLAPSE WARNING at step {self.global_step}: codebook perplexity {ppl.tolist()} "
                    f"(of {self.cfg.model.clustering.codebook_size}); the self-distillation targets are nearly constant. "
                    "Try a lower learning rate, a slower teacher (clustering.teacher_decay_*) or more data."
                )
        else:
            self._low_perplexity_logs = 0

    def on_before_optimizer_step(self, optimizer):
        """Skip an update whose gradients are not all finite: one multi-tensor norm (non-finite exactly when a
        gradient is), the one value each update reads back from the device; it is logged as optim/grad_norm."""
        grads = [p.grad for p in self.model.parameters() if p.grad is not None]
        norm = torch.nn.utils.get_total_norm(grads, foreach=True) if grads else torch.zeros(())
        self._skip_step = not bool(torch.isfinite(norm))
        if self._skip_step:
            self._bad_steps += 1
            batch = self._last_batch
            where = f" (batch {batch['index']}, utterances {list(batch['ids'])[:4]}...)" if batch else ""
            rank_zero_warn(f"non-finite gradient at step {self.global_step}{where}: update skipped ({self._bad_steps} in a row)")
            for p in self.model.parameters():
                p.grad = None  # AdamW leaves parameters without a gradient untouched
            if self._bad_steps > self.cfg.trainer.max_bad_steps:
                raise NonFiniteLossError(f"{self._bad_steps} consecutive non-finite updates; stopping (last good checkpoint is kept)")
        else:
            self._bad_steps = 0
            self.log("optim/grad_norm", norm, on_step=True, on_epoch=False, batch_size=1)

    def after_update(self) -> None:
        if self._skip_step:
            self.model.codebooks.discard()
            return
        decay = self.model.after_optimizer_step(self.global_step)
        self.log("teacher/decay", decay, on_step=True, on_epoch=False, batch_size=1)

    def configure_optimizers(self):
        o = self.cfg.optim
        decay, no_decay = [], []
        for name, p in self.model.named_parameters():
            if not p.requires_grad:
                continue
            (no_decay if p.dim() < 2 or name.endswith("bias") else decay).append(p)
        return adamw_warmup_cosine([{"params": decay, "weight_decay": o.weight_decay}, {"params": no_decay, "weight_decay": 0.0}], o)


def pretrain(data_dir, run_dir, preset: Optional[str] = None, overrides: Optional[list[str]] = None, max_steps: Optional[int] = None,
             max_minutes: Optional[float] = None, progress: bool = True, resume_from: Optional[str] = None) -> Path:
    """Pre-train (or resume) a UniWav model on ``data_dir``'s train split into ``run_dir``."""
    return launch(PretrainTask, data_dir, run_dir, preset, overrides, max_steps=max_steps, max_minutes=max_minutes, progress=progress,
                  resume_from=resume_from)
