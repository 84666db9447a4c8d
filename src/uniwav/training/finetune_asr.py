"""``uniwav finetune-asr``: CTC fine-tuning of the (pre-trained or random) encoder on labelled data.

Float32 log-softmax CTC with zero_infinity; span masking of time and channels as augmentation;
the encoder frozen for the first ``freeze_encoder_steps`` updates; validation reports WER, CER,
the blank ratio and example hypotheses, and warns when the output is (nearly) all blanks.
"""

from __future__ import annotations

from functools import partial
from pathlib import Path
from typing import Optional

import lightning as L
import torch
import torch.nn.functional as F
from lightning.pytorch.utilities import rank_zero_warn

from uniwav.config import ConfigError, FinetuneASRConfig, from_dict, load_config, to_dict
from uniwav.data.batches import eval_loader, label_subset, pretrain_loader
from uniwav.data.manifests import available_splits, load_cuts, require_text
from uniwav.data.stats import ensure_stats
from uniwav.data.text import CharVocabulary
from uniwav.evaluation.asr import error_rates
from uniwav.inference.ctc_decode import greedy_decode
from uniwav.models.ctc import CTCModel
from uniwav.training.oom import explain_oom
from uniwav.training.schedule import adamw_warmup_cosine
from uniwav.training.trainer import build_trainer, fit, resolve_run_config
from uniwav.utils import stable_seed


class ASRTask(L.LightningModule):
    def __init__(self, config: dict):
        super().__init__()
        self.save_hyperparameters({"config": config})
        self.cfg: FinetuneASRConfig = from_dict(FinetuneASRConfig, config)
        self.model = CTCModel(self.cfg.model)
        self._val = []

    def _targets(self, batch):
        ids = [self.model.vocab.encode(t, u) for t, u in zip(batch["texts"], batch["ids"])]
        return torch.tensor([i for seq in ids for i in seq], dtype=torch.long), torch.tensor([len(seq) for seq in ids])

    def training_step(self, batch, batch_idx):
        torch.manual_seed(stable_seed(self.cfg.seed, "asr", batch["index"], self.global_rank))
        frozen = self.global_step < self.cfg.freeze_encoder_steps
        with explain_oom(batch):
            with torch.no_grad():
                feats, frames = self.model.features(batch["audio"], batch["audio_lens"])
            time_mask, channel_mask = self.model.draw_masks(frames, feats.shape[1])
            log_probs = self.model(feats, frames, time_mask, channel_mask, freeze_encoder=frozen)
        targets, target_lens = self._targets(batch)
        loss = F.ctc_loss(log_probs.transpose(0, 1), targets.to(self.device), frames, target_lens.to(self.device),
                          blank=0, reduction="sum", zero_infinity=True) / target_lens.sum().clamp_min(1)
        log = partial(self.log, on_step=True, on_epoch=False, batch_size=feats.shape[0])
        log("loss/ctc", loss.detach(), prog_bar=True)
        log("encoder/frozen", float(frozen))
        return loss

    def validation_step(self, batch, batch_idx):
        feats, frames = self.model.features(batch["audio"], batch["audio_lens"])
        log_probs = self.model(feats, frames)
        for lp, n, ref in zip(log_probs.cpu().numpy(), frames.tolist(), batch["texts"]):
            best = lp[:n].argmax(-1)
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


class ASRData(L.LightningDataModule):
    def __init__(self, data_dir, cfg: FinetuneASRConfig, train_cuts):
        super().__init__()
        self.data_dir, self.cfg, self.train_cuts = data_dir, cfg, train_cuts

    def train_dataloader(self):
        t, d = self.trainer, self.cfg.data
        return pretrain_loader(self.train_cuts, d.max_duration, d.crop_seconds, d.num_buckets, self.cfg.seed, rank=t.global_rank,
                               world_size=t.world_size, start=t.global_step * t.accumulate_grad_batches, num_workers=d.num_workers)

    def val_dataloader(self):
        split = "dev" if "dev" in available_splits(self.data_dir) else "test"
        cuts = load_cuts(self.data_dir, split)
        require_text(cuts, split)
        return eval_loader(cuts, self.cfg.data.max_duration)


def training_cuts(data_dir, cfg: FinetuneASRConfig):
    cuts = load_cuts(data_dir, "train")
    if cfg.label_minutes is not None:
        cuts = label_subset(cuts, cfg.label_minutes, cfg.seed)
    require_text(cuts, "train")
    return cuts


def finetune_asr(data_dir, run_dir, init: str = "none", preset: Optional[str] = None, overrides: Optional[list[str]] = None,
                 label_minutes: Optional[float] = None, max_steps: Optional[int] = None, max_minutes: Optional[float] = None,
                 progress: bool = True) -> Path:
    """Fine-tune a CTC recogniser on ``data_dir`` from ``init`` (a pre-trained run/export, or "none")."""
    from uniwav.models.uniwav import UniWav

    run_dir = Path(run_dir)
    saved = run_dir / "config.yaml"
    pretrained = None if init == "none" else UniWav.from_pretrained(init)

    def build() -> FinetuneASRConfig:
        cfg = load_config(FinetuneASRConfig, preset or (str(saved) if saved.is_file() else "asr_tiny"), overrides)
        cfg.init = str(init)
        if label_minutes is not None:
            cfg.label_minutes = label_minutes
        if pretrained is not None:  # the architecture and features come from the pre-trained model
            cfg.model.features = pretrained.cfg.features
            cfg.model.encoder = pretrained.cfg.encoder
        else:
            cfg.model.features = ensure_stats(data_dir, cfg.model.features)
        if cfg.model.features.sample_rate != next(iter(load_cuts(data_dir, "train", lazy=True))).sampling_rate:
            raise ConfigError(f"{data_dir}: audio sample rate differs from the model's {cfg.model.features.sample_rate} Hz")
        cfg.model.vocab = CharVocabulary.from_texts(s.text for c in training_cuts(data_dir, cfg) for s in c.supervisions if s.text).symbols
        cfg.validate()
        return cfg

    cfg, resuming = resolve_run_config(run_dir, FinetuneASRConfig, build)
    L.seed_everything(cfg.seed, workers=True, verbose=False)
    task = ASRTask(to_dict(cfg))
    if pretrained is not None and not resuming:
        task.model.encoder.load_state_dict(pretrained.encoder.state_dict())
        if cfg.init_from == "teacher":
            task.model.encoder.context.load_state_dict(pretrained.teacher.state_dict())
    cuts = training_cuts(data_dir, cfg)
    source = "random initialisation" if init == "none" else f"{init} ({cfg.init_from})"
    print(f"fine-tuning CTC ({len(cfg.model.vocab)} symbols) from {source} on {len(cuts)} labelled utterances", flush=True)
    trainer = build_trainer(run_dir, cfg.trainer, grad_clip=cfg.optim.grad_clip, val_every=cfg.val_every,
                            max_steps=max_steps if max_steps is not None else cfg.optim.total_steps,
                            max_minutes=max_minutes, progress=progress, summary=not resuming, find_unused_parameters=True)
    fit(trainer, task, ASRData(data_dir, cfg, cuts), run_dir, compile=cfg.trainer.compile)
    return run_dir
