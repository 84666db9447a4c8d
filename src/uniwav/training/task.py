"""``TrainingTask``: the Lightning module every uniwav training task derives from.

It holds the resolved config as its only hyper-parameter (a plain dict, so checkpoints load with
``weights_only=True``), builds the model as ``self.model``, seeds every micro-batch from
(seed, batch index, rank) so that a resumed run continues the same random stream, feeds the
endless training batches, and renames the keys of checkpoints written by older versions. A task
declares what differs: its config class and default preset, how the config is completed from the
data and the pre-trained model, the model's initialisation, callbacks, and the step itself.
"""

from __future__ import annotations

import os
from functools import partial
from pathlib import Path
from typing import Optional

import lightning as L
import torch

from uniwav.config import ConfigError, from_dict, to_dict
from uniwav.models import legacy
from uniwav.data.batches import Blocks, training_loader
from uniwav.data.manifests import available_splits, cuts_path, load_cuts
from uniwav.training.oom import explain_oom
from uniwav.training.schedule import adamw_warmup_cosine
from uniwav.utils import stable_seed


class TrainingTask(L.LightningModule):
    config_class: type = None  # the TaskConfig subclass
    model_class: type = None  # the model built from cfg.model
    default_preset: str = ""  # preset of a new run when --config is not given
    seed_tag: str = ""  # names this task's random stream (part of every step's seed)
    requires_init: bool = False  # a pre-trained model is mandatory (--init)
    prog_bar: tuple = ()  # logged values the progress bar shows

    def __init__(self, config: dict):
        super().__init__()
        self.save_hyperparameters({"config": config})
        self.cfg = from_dict(self.config_class, config, validate=False)  # validated where it was made (launch, or a checkpoint's)
        self.model = self.build_model()
        self.data_dir = None  # set by ``launch``
        self._positions = {}  # batch index -> stream position after that batch (the last few)
        self._resume_positions = None  # per rank, from the checkpoint resumed

    @classmethod
    def from_config(cls, cfg) -> TrainingTask:
        return cls(to_dict(cfg))

    def build_model(self):
        return self.model_class(self.cfg.model)

    # ------------------------------------------------------------------ what the launcher asks

    @classmethod
    def load_init(cls, init: Optional[str]):
        """The pre-trained UniWav named by --init, or None ("none" or not given)."""
        if not init or init == "none":
            if cls.requires_init:
                raise ConfigError(f"{cls.__name__} needs --init: a pre-trained UniWav run or export")
            return None
        from uniwav.models.uniwav import UniWav

        return UniWav.from_pretrained(init)

    @classmethod
    def complete_config(cls, cfg, data_dir, pretrained, init: Optional[str], **options):
        """The config of a new run, completed from the data, the pre-trained model and task options."""
        return cfg

    def init_from(self, pretrained) -> None:
        """Start a new run from the pre-trained model (not called when resuming)."""

    def callbacks(self) -> list:
        return []

    def describe(self, resuming: bool) -> Optional[str]:
        """A line printed when the run starts."""
        return None

    @property
    def find_unused_parameters(self) -> bool:
        return False

    @property
    def gradient_clip(self) -> Optional[float]:
        return self.cfg.optim.grad_clip if self.automatic_optimization else None

    @property
    def val_every(self) -> Optional[int]:
        return None

    # ------------------------------------------------------------------ shared machinery

    def train_cuts(self):
        """What this task trains on: the train split's blocks (a Shar folder DATA/train/shar when there
        is one, else the manifest, split into cached blocks when large), or a CutSet."""
        shar = Path(self.data_dir) / "train" / "shar"
        if shar.is_dir():
            return Blocks.from_shar(shar)
        if not cuts_path(self.data_dir, "train").is_file():
            load_cuts(self.data_dir, "train")  # the error that names the folder and the splits it has
        return Blocks.from_manifest(cuts_path(self.data_dir, "train"))

    def train_dataloader(self):
        t, d = self.trainer, self.cfg.data
        positions = self._resume_positions
        position = tuple(positions[t.global_rank]) if positions and len(positions) == t.world_size and positions[t.global_rank] else None
        return training_loader(self.train_cuts(), d.max_duration, d.crop_seconds, d.num_buckets, self.cfg.seed, rank=t.global_rank,
                               world_size=t.world_size, start=t.global_step * t.accumulate_grad_batches,
                               num_workers=resolve_workers(d.num_workers, t), min_seconds=d.min_seconds, position=position)

    def on_train_batch_start(self, batch, batch_idx) -> None:
        self._positions[batch["index"]] = batch.get("position")
        for old in [i for i in self._positions if i < batch["index"] - 64]:
            del self._positions[old]

    def stream_position(self):
        """Where this process's data stream continues: the position after the last batch of the last
        completed update (None when unknown: the stream is then replayed from its start on resume)."""
        last = self.trainer.global_step * self.trainer.accumulate_grad_batches - 1
        position = self._positions.get(last)
        return list(position) if position else None

    def sample_split(self) -> str:
        """The split periodic samples come from: dev when the data has one."""
        return "dev" if "dev" in available_splits(self.data_dir) else "train"

    def seed_step(self, batch: dict) -> None:
        """Every random draw of this micro-batch (masks, noise, dropout) from (seed, batch index, rank)."""
        torch.manual_seed(stable_seed(self.cfg.seed, self.seed_tag, batch["index"], self.global_rank))

    def training_step(self, batch, batch_idx):
        """One micro-batch: seeded, features computed without gradient, the task's loss, its values logged."""
        self.seed_step(batch)
        with explain_oom(batch):
            with torch.no_grad():
                feats, frames = self.model.features(batch["audio"], batch["audio_lens"])
            loss, values = self.compute_loss(batch, feats, frames)
        self.log_step(feats.shape[0], values, prog_bar=self.prog_bar)
        return loss

    def compute_loss(self, batch: dict, feats: torch.Tensor, frames: torch.Tensor) -> tuple[torch.Tensor, dict]:
        """The task's loss on one micro-batch (normalised features feats [B, T, F], frames [B] valid
        per utterance) and the values to log (device tensors or numbers: nothing here waits for the device)."""
        raise NotImplementedError

    def after_update(self) -> None:
        """Once after every optimizer update that was applied (the EMA teacher and codebooks of pre-training)."""

    def optimizer_step(self, epoch, batch_idx, optimizer, optimizer_closure=None):
        super().optimizer_step(epoch, batch_idx, optimizer, optimizer_closure)
        self.after_update()

    def configure_gradient_clipping(self, optimizer, gradient_clip_val=None, gradient_clip_algorithm=None) -> None:
        """Clip the global gradient norm to ``gradient_clip_val`` in one multi-tensor pass. Ours, not
        Lightning's: Lightning refuses fused optimizers here (a guard for fp16 loss scaling, which a
        fused step undoes itself); with a loss scaler the gradients are unscaled first."""
        if not gradient_clip_val:
            return
        scaler = getattr(self.trainer.precision_plugin, "scaler", None)
        if scaler is not None:
            scaler.unscale_(optimizer)
        grads = [p for group in optimizer.param_groups for p in group["params"] if p.grad is not None]
        torch.nn.utils.clip_grad_norm_(grads, gradient_clip_val, foreach=True)

    def log_step(self, batch_size: int, values: dict, prog_bar: tuple = ()) -> None:
        log = partial(self.log, on_step=True, on_epoch=False, batch_size=batch_size)
        for name, value in values.items():
            log(name, value.detach() if torch.is_tensor(value) else value, prog_bar=name in prog_bar)

    def configure_optimizers(self):
        return adamw_warmup_cosine([p for p in self.model.parameters() if p.requires_grad], self.cfg.optim)

    def on_save_checkpoint(self, checkpoint: dict) -> None:
        """Record the process count (the data order and the batch depend on it) and check, when there
        are several processes, that every replica holds the same weights, teacher and codebooks."""
        checkpoint["world_size"] = self.trainer.world_size
        position = self.stream_position()
        if self.trainer.world_size > 1:
            self.check_replicas_agree()
            import torch.distributed as dist

            positions = [None] * self.trainer.world_size
            dist.all_gather_object(positions, position)
        else:
            positions = [position]
        checkpoint["data_positions"] = positions  # where each process's data stream continues

    def check_replicas_agree(self) -> None:
        """Raise naming the tensors whose values differ between processes (a sum per tensor, all-gathered)."""
        names, sums = [], []
        for name, t in self.model.state_dict().items():
            if torch.is_floating_point(t):
                names.append(name)
                sums.append(t.detach().double().sum())
        gathered = self.all_gather(torch.stack(sums))  # [world, n]
        differ = [n for n, column in zip(names, gathered.T) if not bool((column == column[0]).all())]
        if differ:
            raise RuntimeError(f"the {self.trainer.world_size} processes hold different values of {', '.join(differ[:6])}"
                               f"{' ...' if len(differ) > 6 else ''} at update {self.global_step}: a distributed update is missing")

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        """Restore the data stream's position (without one, an older run's stream is replayed from its
        start); resume a run written by an older version: rename its state-dict keys and put its
        optimizer state in today's parameter order (the state is a list in parameter order)."""
        self._resume_positions = checkpoint.get("data_positions")
        legacy.upgrade_training_checkpoint(self.model_class.model_type, checkpoint, lambda: self.configure_optimizers()["optimizer"],
                                           self.model.named_parameters)


def resolve_workers(num_workers: int, trainer) -> int:
    """``data.num_workers``; -1 (auto): on GPUs, the CPU cores per process less one for the training
    loop, at most 8 (a GPU must not wait for audio decoding); on CPUs, 1 (the cores are busy training)."""
    if num_workers >= 0:
        return num_workers
    from lightning.pytorch.accelerators import CPUAccelerator

    if isinstance(trainer.accelerator, CPUAccelerator):
        return 1
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 2)
    per_process = cores // max(1, trainer.num_devices)
    return max(1, min(8, per_process - 1))
