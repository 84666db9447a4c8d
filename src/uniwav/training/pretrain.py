"""The pre-training task: L = L_enc + lambda * L_dec, EMA teacher and codebooks updated once per
optimizer update, non-finite updates skipped, health signals logged."""

from __future__ import annotations

import time
from functools import partial

import lightning as L
import torch
from lightning.pytorch.utilities import rank_zero_warn

from uniwav.config import PretrainConfig, from_dict, to_dict
from uniwav.models.uniwav import UniWav
from uniwav.training.oom import explain_oom
from uniwav.training.schedule import adamw_warmup_cosine
from uniwav.utils import stable_seed


class NonFiniteLossError(RuntimeError):
    pass


class PretrainTask(L.LightningModule):
    def __init__(self, config: dict):
        super().__init__()
        self.save_hyperparameters({"config": config})  # plain dict: loadable with weights_only=True
        self.cfg: PretrainConfig = from_dict(PretrainConfig, config)
        self.model = UniWav(self.cfg.model)
        self._skip_step = False
        self._bad_steps = 0
        self._low_perplexity_logs = 0
        self._last_time = None

    @classmethod
    def from_config(cls, cfg: PretrainConfig) -> "PretrainTask":
        return cls(to_dict(cfg))

    def training_step(self, batch, batch_idx):
        # Every random draw of this micro-batch (masks, flow noise and time, dropout) is a function
        # of (seed, batch index, rank): resuming from a checkpoint continues the same stream exactly.
        torch.manual_seed(stable_seed(self.cfg.seed, "step", batch["index"], self.global_rank))
        with explain_oom(batch):
            with torch.no_grad():
                feats, frames = self.model.features(batch["audio"], batch["audio_lens"])
            out = self.model(feats, frames)
        if not torch.isfinite(out.loss):
            rank_zero_warn(f"non-finite loss at batch {batch['index']} (utterances {batch['ids'][:4]}...); the update will be skipped")
        now = time.perf_counter()
        audio_seconds = float(batch["audio_lens"].sum()) / self.cfg.model.features.sample_rate
        B = feats.shape[0]
        log = partial(self.log, on_step=True, on_epoch=False, batch_size=B, sync_dist=False)
        log("loss/total", out.loss.detach(), prog_bar=True)
        log("loss/encoder", out.enc_loss, prog_bar=True)
        log("loss/decoder", out.dec_loss, prog_bar=True)
        log("encoder/accuracy", out.accuracy)
        log("encoder/masked_fraction", out.mask.float().sum() / frames.sum())
        for k, ppl in enumerate(out.perplexity.tolist()):
            log(f"codebook/perplexity_{k}", ppl)
        log("codebook/perplexity_min", out.perplexity.min(), prog_bar=True)
        if self._last_time is not None:
            log("throughput/audio_seconds_per_second", audio_seconds / max(1e-6, now - self._last_time))
        self._last_time = now
        self._check_collapse(out.perplexity)
        return out.loss

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
        grads = [p.grad for p in self.model.parameters() if p.grad is not None]
        finite = torch.stack([torch.isfinite(g).all() for g in grads]).all() if grads else torch.tensor(True)
        self._skip_step = not bool(finite)
        if self._skip_step:
            self._bad_steps += 1
            rank_zero_warn(f"non-finite gradient at step {self.global_step}: update skipped ({self._bad_steps} in a row)")
            for p in self.model.parameters():
                p.grad = None  # AdamW leaves parameters without a gradient untouched
            if self._bad_steps > self.cfg.trainer.max_bad_steps:
                raise NonFiniteLossError(f"{self._bad_steps} consecutive non-finite updates; stopping (last good checkpoint is kept)")
        else:
            self._bad_steps = 0

    def optimizer_step(self, epoch, batch_idx, optimizer, optimizer_closure=None):
        super().optimizer_step(epoch, batch_idx, optimizer, optimizer_closure)
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
