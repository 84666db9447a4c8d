"""``uniwav pretrain``: build the Lightning trainer, start or resume a run folder, train.

Run folder layout::

    RUN/config.yaml            the fully resolved config (also inside every checkpoint)
    RUN/checkpoints/last.ckpt  newest checkpoint (written atomically; resumed from automatically)
    RUN/checkpoints/step*.ckpt the two newest periodic checkpoints
    RUN/tb/                    TensorBoard logs (`tensorboard --logdir RUN/tb`)
"""

from __future__ import annotations

import dataclasses
import logging
from datetime import timedelta
from pathlib import Path
from typing import Optional

import lightning as L
import torch
from lightning.pytorch.callbacks import LearningRateMonitor, ModelCheckpoint, OnExceptionCheckpoint
from lightning.pytorch.loggers import TensorBoardLogger

from uniwav.config import ConfigError, PretrainConfig, TrainerConfig, load_config, save_yaml, to_dict
from uniwav.data.batches import pretrain_loader
from uniwav.data.manifests import available_splits, load_cuts
from uniwav.data.stats import ensure_stats
from uniwav.training.callbacks import SampleLogger, fixed_sample_batch
from uniwav.training.checkpoint_io import SafeCheckpointIO
from uniwav.training.pretrain import PretrainTask

log = logging.getLogger("uniwav")

# Keys that may change when a run is resumed (hardware and logging, not the experiment).
RESUMABLE_CHANGES = ("trainer.", "data.num_workers")


class PretrainData(L.LightningDataModule):
    """Endless pre-training batches; the stream position is derived from the restored global step."""

    def __init__(self, data_dir, cfg: PretrainConfig):
        super().__init__()
        self.data_dir, self.cfg = data_dir, cfg

    def train_dataloader(self):
        t, d = self.trainer, self.cfg.data
        start = t.global_step * t.accumulate_grad_batches
        return pretrain_loader(
            load_cuts(self.data_dir, "train"), d.max_duration, d.crop_seconds, d.num_buckets, self.cfg.seed,
            rank=t.global_rank, world_size=t.world_size, start=start, num_workers=d.num_workers, min_seconds=d.min_seconds,
        )


def _flatten(d: dict, prefix: str = "") -> dict:
    out = {}
    for k, v in d.items():
        if isinstance(v, dict):
            out.update(_flatten(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = v
    return out


def resolve_run_config(run_dir: Path, data_dir, preset: Optional[str], overrides: list[str]) -> tuple[PretrainConfig, bool]:
    """(config, resuming). A new run resolves preset + overrides + the data's feature statistics;
    an existing run keeps its saved config, and only trainer/worker settings may be overridden."""
    saved = run_dir / "config.yaml"
    if saved.is_file():
        cfg = load_config(PretrainConfig, str(saved))
        requested = load_config(PretrainConfig, preset or str(saved), overrides)
        a, b = _flatten(to_dict(cfg)), _flatten(to_dict(requested))
        differ = [k for k in a if a[k] != b.get(k) and not k.startswith(RESUMABLE_CHANGES) and not k.startswith("model.features.norm_")]
        if differ:
            raise ConfigError(
                f"{run_dir} was started with a different config ({', '.join(differ[:6])} differ); resume it with its own "
                f"config (only {', '.join(RESUMABLE_CHANGES)}* may change), or use a new --out folder"
            )
        return load_config(PretrainConfig, str(saved), [o for o in overrides if o.startswith(RESUMABLE_CHANGES)]), True
    cfg = load_config(PretrainConfig, preset or "tiny", overrides)
    cfg.model.features = ensure_stats(data_dir, cfg.model.features)
    return cfg, False


def _precision(tc: TrainerConfig) -> str:
    if tc.precision != "auto":
        return tc.precision
    return "bf16-mixed" if torch.cuda.is_available() and torch.cuda.is_bf16_supported() else "32-true"


def _strategy(tc: TrainerConfig, cfg: PretrainConfig):
    if tc.strategy in ("auto", "ddp"):
        from lightning.pytorch.strategies import DDPStrategy

        if tc.strategy == "auto" and tc.num_nodes == 1 and tc.devices in ("auto", 1, "1") and not torch.cuda.device_count() > 1:
            return "auto"
        unused = cfg.model.decoder_loss_weight == 0 or cfg.model.encoder.layer_drop > 0
        return DDPStrategy(find_unused_parameters=unused, checkpoint_io=SafeCheckpointIO())
    return tc.strategy


def pretrain(data_dir, run_dir, preset: Optional[str] = None, overrides: Optional[list[str]] = None, max_steps: Optional[int] = None,
             max_minutes: Optional[float] = None, progress: bool = True) -> Path:
    """Pre-train (or resume) a UniWav model on ``data_dir``'s train split into ``run_dir``."""
    run_dir = Path(run_dir)
    cfg, resuming = resolve_run_config(run_dir, data_dir, preset, overrides or [])
    train_cuts = load_cuts(data_dir, "train")
    rate = next(iter(train_cuts)).sampling_rate
    if rate != cfg.model.features.sample_rate:
        raise ConfigError(f"{data_dir}: audio is {rate} Hz but model.features.sample_rate is {cfg.model.features.sample_rate}; "
                          f"prepare the data with --sample-rate {cfg.model.features.sample_rate} or set model.features.sample_rate={rate}")
    if not resuming:
        save_yaml(cfg, run_dir / "config.yaml")
    ckpt_dir = run_dir / "checkpoints"
    last = ckpt_dir / "last.ckpt"
    tc = cfg.trainer

    L.seed_everything(cfg.seed, workers=True, verbose=False)
    task = PretrainTask.from_config(cfg)
    if not resuming:
        counts = task.model.num_parameters()
        print("UniWav parameters: " + ", ".join(f"{k} {v / 1e6:.2f} M" for k, v in counts.items()), flush=True)

    sample_split = "dev" if "dev" in available_splits(data_dir) else "train"
    callbacks = [
        ModelCheckpoint(dirpath=ckpt_dir, filename="step{step:07d}", auto_insert_metric_name=False, every_n_train_steps=tc.checkpoint_every,
                        save_last=True, save_top_k=2, monitor="step", mode="max"),
        OnExceptionCheckpoint(dirpath=ckpt_dir, filename="last"),
        LearningRateMonitor(logging_interval="step"),
        SampleLogger(fixed_sample_batch(load_cuts(data_dir, sample_split)), every=tc.sample_every),
    ]
    strategy = _strategy(tc, cfg)
    trainer = L.Trainer(
        default_root_dir=run_dir,
        accelerator=tc.accelerator, devices=tc.devices, num_nodes=tc.num_nodes, strategy=strategy,
        precision=_precision(tc),
        max_steps=max_steps if max_steps is not None else cfg.optim.total_steps,
        max_time=timedelta(minutes=max_minutes) if max_minutes is not None else None,
        accumulate_grad_batches=tc.accumulate_grad_batches,
        gradient_clip_val=cfg.optim.grad_clip,
        log_every_n_steps=tc.log_every,
        logger=TensorBoardLogger(save_dir=str(run_dir), name="tb", version="", default_hp_metric=False),
        callbacks=callbacks,
        plugins=[SafeCheckpointIO()] if isinstance(strategy, str) else None,
        enable_progress_bar=progress,
        enable_model_summary=not resuming,
        num_sanity_val_steps=0,
        use_distributed_sampler=False,  # the endless sampler shards by rank itself
        deterministic=False,
    )
    del train_cuts
    trainer.fit(task, datamodule=PretrainData(data_dir, cfg), ckpt_path=str(last) if last.is_file() else None)
    trainer.save_checkpoint(last, weights_only=False)
    return run_dir
