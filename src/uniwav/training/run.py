"""``uniwav pretrain``: start or resume a pre-training run folder (layout in ``training/trainer.py``)."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import lightning as L

from uniwav.config import ConfigError, PretrainConfig, load_config
from uniwav.data.batches import pretrain_loader
from uniwav.data.manifests import available_splits, load_cuts
from uniwav.data.stats import ensure_stats
from uniwav.training.callbacks import SampleLogger, fixed_sample_batch
from uniwav.training.pretrain import PretrainTask
from uniwav.training.trainer import build_trainer, fit, resolve_run_config


class PretrainData(L.LightningDataModule):
    """Endless pre-training batches; the stream position is derived from the restored global step."""

    def __init__(self, data_dir, cfg: PretrainConfig):
        super().__init__()
        self.data_dir, self.cfg = data_dir, cfg

    def train_dataloader(self):
        t, d = self.trainer, self.cfg.data
        return pretrain_loader(
            load_cuts(self.data_dir, "train", lazy=True), d.max_duration, d.crop_seconds, d.num_buckets, self.cfg.seed,
            rank=t.global_rank, world_size=t.world_size, start=t.global_step * t.accumulate_grad_batches,
            num_workers=d.num_workers, min_seconds=d.min_seconds,
        )


def check_sample_rate(data_dir, sample_rate: int) -> None:
    rate = next(iter(load_cuts(data_dir, "train", lazy=True))).sampling_rate
    if rate != sample_rate:
        raise ConfigError(f"{data_dir}: audio is {rate} Hz but model.features.sample_rate is {sample_rate}; "
                          f"prepare the data with --sample-rate {sample_rate} or set model.features.sample_rate={rate}")


def pretrain(data_dir, run_dir, preset: Optional[str] = None, overrides: Optional[list[str]] = None, max_steps: Optional[int] = None,
             max_minutes: Optional[float] = None, progress: bool = True) -> Path:
    """Pre-train (or resume) a UniWav model on ``data_dir``'s train split into ``run_dir``."""
    run_dir = Path(run_dir)

    def build() -> PretrainConfig:
        cfg = load_config(PretrainConfig, preset or (str(run_dir / "config.yaml") if (run_dir / "config.yaml").is_file() else "tiny"), overrides)
        check_sample_rate(data_dir, cfg.model.features.sample_rate)
        cfg.model.features = ensure_stats(data_dir, cfg.model.features)
        return cfg

    cfg, resuming = resolve_run_config(run_dir, PretrainConfig, build)
    L.seed_everything(cfg.seed, workers=True, verbose=False)
    task = PretrainTask.from_config(cfg)
    if not resuming:
        counts = task.model.num_parameters()
        print("UniWav parameters: " + ", ".join(f"{k} {v / 1e6:.2f} M" for k, v in counts.items()), flush=True)
    sample_split = "dev" if "dev" in available_splits(data_dir) else "train"
    trainer = build_trainer(
        run_dir, cfg.trainer, grad_clip=cfg.optim.grad_clip, max_steps=max_steps if max_steps is not None else cfg.optim.total_steps,
        max_minutes=max_minutes, progress=progress, summary=not resuming,
        find_unused_parameters=cfg.model.decoder_loss_weight == 0 or cfg.model.encoder.layer_drop > 0,
        callbacks=[SampleLogger(fixed_sample_batch(load_cuts(data_dir, sample_split)), every=cfg.trainer.sample_every)],
    )
    fit(trainer, task, PretrainData(data_dir, cfg), run_dir, compile=cfg.trainer.compile)
    return run_dir
