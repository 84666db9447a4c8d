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

from datetime import timedelta
from pathlib import Path
from typing import Optional, TypeVar
from collections.abc import Callable

import lightning as L
import torch
from lightning.pytorch.callbacks import LearningRateMonitor, ModelCheckpoint, OnExceptionCheckpoint
from lightning.pytorch.loggers import TensorBoardLogger

from uniwav.config import ConfigError, TrainerConfig, load_config, save_yaml, to_dict
from uniwav.training.checkpoint_io import SafeCheckpointIO

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


def cpu_has_fast_bf16(n: int = 512, margin: float = 2.0) -> bool:
    """Whether this CPU multiplies bfloat16 matrices at least ``margin`` times faster than float32
    (native bf16 dot products: AVX512-BF16, AMX, ARM BF16). Elsewhere bf16 is emulated and slower."""
    import time

    def rate(dtype) -> float:
        a, b = torch.randn(n, n, dtype=dtype), torch.randn(n, n, dtype=dtype)
        a @ b
        t = time.perf_counter()
        for _ in range(5):
            a @ b
        return 1.0 / (time.perf_counter() - t)

    return rate(torch.bfloat16) >= margin * rate(torch.float32)


def resolve_precision(precision: str, accelerator: str = "auto") -> str:
    """``auto``: bf16-mixed on GPUs with bf16 and on CPUs with native bf16 matmul (2-4x faster
    training there: ``uniwav bench``), else 32-true. Parameters, optimizer state, the EMA teacher,
    codebooks and losses stay float32 either way; only matmul inputs are cast."""
    if precision != "auto":
        return precision
    if accelerator in ("auto", "gpu", "cuda") and torch.cuda.is_available():
        return "bf16-mixed" if torch.cuda.is_bf16_supported() else "32-true"
    if accelerator in ("auto", "mps") and torch.backends.mps.is_available():
        return "32-true"  # Lightning's "auto" picks the Apple GPU there
    return "bf16-mixed" if cpu_has_fast_bf16() else "32-true"


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
                        save_last=True, save_top_k=2, monitor="step", mode="max"),
        OnExceptionCheckpoint(dirpath=ckpt_dir, filename="last"),
        LearningRateMonitor(logging_interval="step"),
        *(callbacks or []),
    ]
    return L.Trainer(
        default_root_dir=run_dir,
        accelerator=tc.accelerator, devices=tc.devices, num_nodes=tc.num_nodes, strategy=strategy,
        precision=resolve_precision(tc.precision, tc.accelerator),
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


def fit(trainer: L.Trainer, task: L.LightningModule, run_dir, compile: bool = False) -> None:
    """Fit, resuming from RUN/checkpoints/last.ckpt when present; always leaves a final last.ckpt.
    ``compile`` (trainer.compile): compile the model's Transformer stacks in place first."""
    if compile:
        from uniwav.models.compile import compile_stacks

        compile_stacks(task.model)
    last = last_checkpoint(run_dir)
    trainer.fit(task, ckpt_path=str(last) if last.is_file() else None)
    trainer.save_checkpoint(last, weights_only=False)


def launch(task_cls, data_dir, run_dir, preset: Optional[str] = None, overrides: Optional[list[str]] = None, init: Optional[str] = None,
           max_steps: Optional[int] = None, max_minutes: Optional[float] = None, progress: bool = True, **options) -> Path:
    """Start or resume a run of ``task_cls`` (a ``TrainingTask``) on ``data_dir`` in ``run_dir``.

    The config is the run's own (``RUN/config.yaml``) when it exists, else ``preset`` or the task's
    default preset, with dotted ``overrides``; the task completes it from the data, the pre-trained
    model ``init`` and its ``options``. ``max_steps`` and ``max_minutes`` only stop early.
    """
    run_dir = Path(run_dir)
    pretrained = task_cls.load_init(init)

    def build():
        saved = run_dir / "config.yaml"
        cfg = load_config(task_cls.config_class, preset or (str(saved) if saved.is_file() else task_cls.default_preset), overrides)
        cfg = task_cls.complete_config(cfg, data_dir, pretrained, init, **options)
        cfg.validate()
        return cfg

    cfg, resuming = resolve_run_config(run_dir, task_cls.config_class, build)
    L.seed_everything(cfg.seed, workers=True, verbose=False)
    task = task_cls(to_dict(cfg))
    task.data_dir = Path(data_dir)
    if pretrained is not None and not resuming:
        task.init_from(pretrained)
    message = task.describe(resuming)
    if message:
        print(message, flush=True)
    trainer = build_trainer(run_dir, cfg.trainer, grad_clip=task.gradient_clip, val_every=task.val_every,
                            max_steps=max_steps if max_steps is not None else cfg.optim.total_steps, max_minutes=max_minutes,
                            progress=progress, summary=not resuming, find_unused_parameters=task.find_unused_parameters,
                            callbacks=task.callbacks())
    fit(trainer, task, run_dir, compile=cfg.trainer.compile)
    return run_dir
