"""``launch``: how every uniwav training task runs. The run folder, the resume rules, the
Lightning trainer, and the order of things (config, seed, task, trainer, fit) live here once;
a task (``training/task.py``) declares only what differs.

Run folder layout::

    RUN/config.yaml            the fully resolved config (also inside every checkpoint)
    RUN/checkpoints/last.ckpt  newest checkpoint (written atomically; resumed from automatically)
    RUN/checkpoints/step*.ckpt the two newest periodic checkpoints
    RUN/tb/                    TensorBoard logs (`tensorboard --logdir RUN/tb`)
"""

from __future__ import annotations

import os
import shutil
import time
from datetime import timedelta
from pathlib import Path
from typing import Optional, TypeVar
from collections.abc import Callable

import lightning as L
import torch
from lightning.pytorch.callbacks import LearningRateMonitor, ModelCheckpoint, OnExceptionCheckpoint, Timer, TQDMProgressBar
from lightning.pytorch.loggers import TensorBoardLogger

from uniwav.config import ConfigError, TrainerConfig, load_config, save_yaml, to_dict
from uniwav.training.checkpoint_io import SafeCheckpointIO
from uniwav.training.run_folder import (TrainingInterrupted, check_world_size, checkpoint_to_resume, is_launched_worker,
                                        remove_stale_temporaries, run_lock)

T = TypeVar("T")

# Keys that may change when a run is resumed (hardware and logging, not the experiment).
RESUMABLE_CHANGES = ("trainer.", "data.num_workers")


def _flatten(d: dict, prefix: str = "") -> dict:
    out = {}
    for k, v in d.items():
        if isinstance(v, dict):
            out.update(_flatten(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = v
    return out


def last_checkpoint(run_dir) -> Path:
    return Path(run_dir) / "checkpoints" / "last.ckpt"


def resolve_run_config(run_dir, cls: type, build: Callable[[], T]) -> tuple[T, bool]:
    """(config, resuming). ``build()`` resolves what this invocation asks for. A new run saves it;
    an existing run keeps its saved config and refuses any difference except hardware/logging keys."""
    run_dir = Path(run_dir)
    saved = run_dir / "config.yaml"
    requested = build()
    if not saved.is_file():
        save_yaml(requested, saved)
        return requested, False
    cfg = load_config(cls, str(saved))
    a, b = _flatten(to_dict(cfg)), _flatten(to_dict(requested))
    differ = [k for k in sorted(set(a) | set(b)) if a.get(k) != b.get(k) and not k.startswith(RESUMABLE_CHANGES)]
    if differ:
        raise ConfigError(
            f"{run_dir} was started with a different config ({', '.join(differ[:6])} differ); resume it with its own "
            f"config (only {', '.join(RESUMABLE_CHANGES)}* may change), or use a new --out folder"
        )
    cfg.trainer = requested.trainer
    cfg.data.num_workers = requested.data.num_workers
    return cfg, True


def cpu_bf16_feature(cpuinfo: Optional[str] = None) -> Optional[str]:
    """The CPU feature that multiplies bfloat16 natively (AVX512-BF16 or AMX on x86, BF16 on ARM), or
    None: elsewhere bf16 is emulated and slower than float32. Read from /proc/cpuinfo (Linux) or
    sysctl (macOS); ``cpuinfo`` replaces the file's text (tests)."""
    import platform
    import subprocess

    if cpuinfo is None:
        try:
            cpuinfo = Path("/proc/cpuinfo").read_text()
        except OSError:
            cpuinfo = ""
            if platform.system() == "Darwin":
                out = subprocess.run(["sysctl", "-n", "hw.optional.arm.FEAT_BF16"], capture_output=True, text=True)
                return "FEAT_BF16" if out.stdout.strip() == "1" else None
    flags = set()
    for line in cpuinfo.splitlines():
        if line.lower().startswith(("flags", "features")):
            flags.update(line.partition(":")[2].split())
    for flag, name in (("amx_bf16", "AMX"), ("avx512_bf16", "AVX512-BF16"), ("bf16", "BF16")):
        if flag in flags:
            return name
    return None


def resolve_precision(precision: str, accelerator: str = "auto") -> tuple[str, str]:
    """(Lightning precision, why). ``auto``: bf16-mixed on GPUs with bf16 and on CPUs with native bf16
    matmul (about 2x faster training there: ``uniwav bench``), else 32-true. Parameters, optimizer
    state, the EMA teacher, codebooks and losses stay float32 either way; only matmul inputs are cast."""
    if precision != "auto":
        return precision, "trainer.precision"
    if accelerator in ("auto", "gpu", "cuda") and torch.cuda.is_available():
        if torch.cuda.is_bf16_supported():
            return "bf16-mixed", f"{torch.cuda.get_device_name()} supports bf16"
        return "32-true", f"{torch.cuda.get_device_name()} has no bf16"
    if accelerator in ("auto", "mps") and torch.backends.mps.is_available():
        return "32-true", "Apple GPU"  # Lightning's "auto" picks the Apple GPU there
    feature = cpu_bf16_feature()
    if feature:
        return "bf16-mixed", f"CPU with native bf16 ({feature})"
    return "32-true", "CPU without native bf16 (emulated bf16 would be slower)"


def _strategy(tc: TrainerConfig, find_unused_parameters: bool):
    if tc.strategy in ("auto", "ddp"):
        from lightning.pytorch.strategies import DDPStrategy

        single = tc.num_nodes == 1 and str(tc.devices) in ("auto", "1") and torch.cuda.device_count() <= 1
        if tc.strategy == "auto" and single:
            return "auto"
        return DDPStrategy(find_unused_parameters=find_unused_parameters, checkpoint_io=SafeCheckpointIO())
    return tc.strategy


def build_trainer(run_dir, tc: TrainerConfig, *, grad_clip: float, max_steps: int, max_minutes: Optional[float] = None,
                  callbacks: Optional[list] = None, progress: bool = True, find_unused_parameters: bool = False,
                  summary: bool = True, val_every: Optional[int] = None) -> L.Trainer:
    run_dir = Path(run_dir)
    ckpt_dir = run_dir / "checkpoints"
    # Zero-initialised gates and heads give tiny gradients whose squares (AdamW's second moment)
    # underflow into denormal floats, which x86 CPUs process ~100x slower: flush them to zero.
    torch.set_flush_denormal(True)
    strategy = _strategy(tc, find_unused_parameters)
    all_callbacks = [
        ModelCheckpoint(dirpath=ckpt_dir, filename="step{step:07d}", auto_insert_metric_name=False, every_n_train_steps=tc.checkpoint_every,
                        save_last=True, save_top_k=2, monitor="step", mode="max", enable_version_counter=False),
        OnExceptionCheckpoint(dirpath=ckpt_dir, filename="last"),
        LearningRateMonitor(logging_interval="step"),
        *(callbacks or []),
    ]
    if progress:
        # the bar reads its values back from the device when it refreshes: on a GPU, every 10 updates rather
        # than every one, so that the host is never made to wait for the device to show a number
        gpu = tc.accelerator in ("gpu", "cuda") or (tc.accelerator == "auto" and torch.cuda.is_available())
        all_callbacks.append(BudgetProgressBar(refresh_rate=10 if gpu else 1))
    precision, why = resolve_precision(tc.precision, tc.accelerator)
    if not is_launched_worker():
        print(f"precision: {precision} ({why})", flush=True)
    return L.Trainer(
        default_root_dir=run_dir,
        accelerator=tc.accelerator, devices=tc.devices, num_nodes=tc.num_nodes, strategy=strategy,
        precision=precision,
        max_steps=max_steps,
        max_time=timedelta(minutes=max_minutes) if max_minutes is not None else None,
        accumulate_grad_batches=tc.accumulate_grad_batches,
        gradient_clip_val=grad_clip,
        log_every_n_steps=tc.log_every,
        logger=TensorBoardLogger(save_dir=str(run_dir), name="tb", version="", default_hp_metric=False),
        callbacks=all_callbacks,
        plugins=[SafeCheckpointIO()] if isinstance(strategy, str) else None,
        enable_progress_bar=progress,
        profiler=tc.profiler or None,
        enable_model_summary=summary,
        num_sanity_val_steps=0,
        use_distributed_sampler=False,  # our samplers shard by rank themselves
        val_check_interval=val_every,
        check_val_every_n_epoch=None if val_every else 1,
        limit_val_batches=None if val_every else 0,
    )


class BudgetProgressBar(TQDMProgressBar):
    """The progress bar's total is the update the run will stop at: ``max_steps``, or sooner when
    ``max_time`` (--max-minutes) runs out first at the speed measured so far; its ETA follows."""

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        bar = self.train_progress_bar
        start = getattr(self, "_start", None)
        if start is None:
            self._start = (time.monotonic(), trainer.global_step)
        elif trainer.global_step > start[1]:
            total = trainer.max_steps if trainer.max_steps and trainer.max_steps > 0 else None
            timer = next((c for c in trainer.callbacks if isinstance(c, Timer)), None)  # Lightning adds one for max_time
            if timer is not None and timer.time_remaining() is not None:
                rate = (trainer.global_step - start[1]) / max(1e-6, time.monotonic() - start[0])
                by_time = trainer.global_step + int(rate * timer.time_remaining())
                total = min(total, by_time) if total else by_time
            if total and bar.total != total:
                bar.total = total
        super().on_train_batch_end(trainer, pl_module, outputs, batch, batch_idx)

    def get_metrics(self, trainer, pl_module):
        metrics = super().get_metrics(trainer, pl_module)
        metrics.pop("v_num", None)
        return metrics


def fit(trainer: L.Trainer, task: L.LightningModule, run_dir, ckpt_path: Optional[Path], compile: bool = False) -> None:
    """Fit, resuming from ``ckpt_path`` when given; always leaves a final RUN/checkpoints/last.ckpt.
    ``compile`` (trainer.compile): compile the model's Transformer stacks in place first. Raises
    ``TrainingInterrupted`` after SIGTERM or Ctrl-C (the checkpoint is written first)."""
    from lightning.pytorch.utilities.exceptions import SIGTERMException

    if compile:
        from uniwav.models.compile import compile_stacks

        compile_stacks(task.model)
    last = last_checkpoint(run_dir)
    try:
        try:
            trainer.fit(task, ckpt_path=str(ckpt_path) if ckpt_path else None)
        except (SIGTERMException, SystemExit) as e:  # Lightning checkpointed (OnExceptionCheckpoint), then exits
            if trainer.state.status.value != "interrupted":
                raise
            sigterm = isinstance(e, SIGTERMException) or trainer.received_sigterm
            raise TrainingInterrupted(f"interrupted by {'SIGTERM' if sigterm else 'Ctrl-C'} at update {trainer.global_step}; "
                                      f"the checkpoint is {last}. Run the same command again to resume.", 143 if sigterm else 130) from None
        trainer.save_checkpoint(last, weights_only=False)  # every rank takes part; rank 0 writes
    finally:
        reap_worker_processes(trainer)


def reap_worker_processes(trainer: L.Trainer, grace_seconds: float = 60.0) -> None:
    """The command ends with the training processes it started (Lightning's launcher starts ranks 1.. as child
    processes): wait for each, and end one that is still running after ``grace_seconds`` (a failed rank 0
    leaves the others waiting in a collective forever)."""
    import subprocess

    for proc in getattr(getattr(trainer.strategy, "launcher", None), "procs", None) or []:
        try:
            proc.wait(timeout=grace_seconds)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def check_checkpoint_fits(ckpt_path: Path, task) -> None:
    """Refuse, before anything in the run folder changes, a checkpoint whose weights are not this task's
    model (another model type, another size): Lightning would fail half-way through loading it."""
    from uniwav.checkpoint import CheckpointError, load_checkpoint

    saved = load_checkpoint(ckpt_path).get("state_dict")
    if not isinstance(saved, dict):
        raise CheckpointError(f"{ckpt_path}: not a training checkpoint (no state_dict); the run folder was left as it is")
    expected = {k: tuple(v.shape) for k, v in task.state_dict().items()}
    missing = [k for k in expected if k not in saved]
    unexpected = [k for k in saved if k not in expected]
    shapes = [k for k in expected if k in saved and tuple(saved[k].shape) != expected[k]]
    if missing or unexpected or shapes:
        what = "; ".join(f"{n} {name} (e.g. {keys[0]})" for n, name, keys in
                         ((len(missing), "weights missing", missing), (len(unexpected), "unknown weights", unexpected),
                          (len(shapes), "of another shape", shapes)) if keys)
        model = getattr(task.model, "model_type", type(task.model).__name__)
        raise CheckpointError(f"{ckpt_path}: not a checkpoint of this run's model ({model}): {what}. "
                              "Is it from another command or preset? The run folder was left as it is")


def warn_about_cpu_processes(tc: TrainerConfig) -> None:
    """More training processes than cores on a CPU machine: each step waits for all of them, so it is slower than one."""
    if is_launched_worker() or torch.cuda.is_available() or tc.accelerator not in ("auto", "cpu"):
        return
    devices = int(tc.devices) if str(tc.devices).isdigit() else 1
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    if devices > cores:
        import sys

        print(f"warning: --devices {devices} starts {devices} training processes on a CPU machine with {cores} cores: they share the "
              "cores, so each update is slower than with one process; use --devices 1 (or a GPU machine)", file=sys.stderr, flush=True)


def quiet_lightning() -> None:
    """Hide Lightning's notes that say nothing about this run (tips, hardware lines, benign warnings)."""
    import logging
    import warnings

    for name in ("lightning.pytorch.utilities.rank_zero", "lightning.pytorch.accelerators.cuda", "lightning.fabric.utilities.seed",
                 "lightning.pytorch.trainer.connectors.checkpoint_connector"):
        logging.getLogger(name).setLevel(logging.WARNING)
    for message in (".*exists and is not empty.*", ".*isinstance\\(treespec, LeafSpec\\).*", ".*is not supported by the model summary.*",
                    ".*does not have many workers.*", ".*was called without a model.*", ".*there is no last checkpoint available.*",
                    ".*`weights_only` was not set.*", ".*The number of training batches.*", ".*infer the `batch_size`.*"):
        warnings.filterwarnings("ignore", message=message)


def launch(task_cls, data_dir, run_dir, preset: Optional[str] = None, overrides: Optional[list[str]] = None, init: Optional[str] = None,
           max_steps: Optional[int] = None, max_minutes: Optional[float] = None, progress: bool = True, resume_from: Optional[str] = None,
           **options) -> Path:
    """Start or resume a run of ``task_cls`` (a ``TrainingTask``) on ``data_dir`` in ``run_dir``.

    The config is the run's own (``RUN/config.yaml``) when it exists, else ``preset`` or the task's
    default preset, with dotted ``overrides``; the task completes it from the data, the pre-trained
    model ``init`` and its ``options``. ``max_steps`` and ``max_minutes`` only stop early.
    ``resume_from``: a checkpoint to continue from instead of RUN/checkpoints/last.ckpt.
    The run folder's promises (one writer, no write to a run whose checkpoint cannot be read) are
    ``training/run_folder.py``'s.
    """
    if max_steps is not None and max_steps < 1:
        raise ConfigError(f"--max-steps must be at least 1, got {max_steps}")
    if max_minutes is not None and max_minutes <= 0:
        raise ConfigError(f"--max-minutes must be positive, got {max_minutes}")
    run_dir = Path(run_dir)
    if run_dir.exists() and not run_dir.is_dir():
        raise ConfigError(f"{run_dir}: --out is a file, not a run folder")
    quiet_lightning()
    new_folder = not run_dir.exists()
    started = False
    try:
        with run_lock(run_dir):
            ckpt_path = checkpoint_to_resume(run_dir, resume_from)
            pretrained = task_cls.load_init(init)

            def build():
                saved = run_dir / "config.yaml"
                cfg = load_config(task_cls.config_class, preset or (str(saved) if saved.is_file() else task_cls.default_preset), overrides,
                                  validate=False)
                cfg = task_cls.complete_config(cfg, data_dir, pretrained, init, **options)
                cfg.validate()  # once, on the completed config
                return cfg

            cfg, resuming = resolve_run_config(run_dir, task_cls.config_class, build)
            warn_about_cpu_processes(cfg.trainer)
            L.seed_everything(cfg.seed, workers=True, verbose=False)
            task = task_cls(to_dict(cfg))
            task.data_dir = Path(data_dir)
            if ckpt_path is not None:
                check_checkpoint_fits(ckpt_path, task)
            if pretrained is not None and not resuming:
                task.init_from(pretrained)
            message = task.describe(resuming)
            if message and not is_launched_worker():
                print(message, flush=True)
            trainer = build_trainer(run_dir, cfg.trainer, grad_clip=task.gradient_clip, val_every=task.val_every,
                                    max_steps=max_steps if max_steps is not None else cfg.optim.total_steps, max_minutes=max_minutes,
                                    progress=progress, summary=not resuming, find_unused_parameters=task.find_unused_parameters,
                                    callbacks=task.callbacks())
            if ckpt_path is not None:
                check_world_size(ckpt_path, trainer.world_size)
            # only now, with the checkpoint known to fit, is anything in the run folder changed
            if resume_from and not is_launched_worker() and last_checkpoint(run_dir).is_file() \
                    and Path(resume_from).resolve() != last_checkpoint(run_dir).resolve():
                kept = last_checkpoint(run_dir).with_name("last.ckpt.replaced")
                os.replace(last_checkpoint(run_dir), kept)  # the checkpoint given up on stays for inspection
                print(f"{last_checkpoint(run_dir)} moved to {kept}; resuming from {resume_from}", flush=True)
            if not is_launched_worker():
                remove_stale_temporaries(run_dir)
            started = True
            fit(trainer, task, run_dir, ckpt_path, compile=cfg.trainer.compile)
    except BaseException:
        if new_folder and not started and not is_launched_worker():
            shutil.rmtree(run_dir, ignore_errors=True)  # a run that never started leaves no folder behind
        raise
    return run_dir
