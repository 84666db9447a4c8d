"""Where a training update's time goes, per task: the real loop against the bare update, same batches.

``loop_overhead.<task>.ratio`` = seconds of a real update (the task run as ``uniwav <task>`` runs it:
Lightning, the data loader and its workers, features, gradient checks and clipping, logging) over
seconds of the bare update (the same model in the same process, on the same batches already in
memory as features: forward + loss + backward + optimizer + the task's after-update work, e.g. the EMA
teacher and codebooks, in a plain loop). Both are summed over the same ``updates`` batches after
``warmup`` updates, so batch sizes cannot differ between them. 1.0 = the loop costs nothing.

Periodic work (checkpoints, samples, validation) is switched off here: it is amortised over hundreds
of updates and timed by the runs themselves.
"""

from __future__ import annotations

import tempfile
import time
import warnings
from pathlib import Path
from typing import Optional

import torch
from lightning.pytorch.callbacks import Callback

QUIET = ["trainer.checkpoint_every=1000000", "trainer.sample_every=1000000"]  # no periodic work inside the timed updates


class _UpdateRecorder(Callback):
    """The end time of every update, and the batches of the timed ones (kept on the CPU)."""

    def __init__(self, warmup: int, updates: int):
        self.warmup, self.updates = warmup, updates
        self.ends: list[float] = []
        self.batches: list[dict] = []
        self.task = None

    def on_train_batch_end(self, trainer, task, outputs, batch, batch_idx):
        if task.device.type == "cuda":
            torch.cuda.synchronize()
        self.ends.append(time.perf_counter())
        self.task = task
        if self.warmup < len(self.ends) <= self.warmup + self.updates:  # the update that ended now is a timed one
            self.batches.append({k: v.detach().cpu() if torch.is_tensor(v) else v for k, v in batch.items()})

    def real_seconds(self) -> float:
        return self.ends[self.warmup + self.updates - 1] - self.ends[self.warmup - 1]


def _recording(task_cls, recorder: _UpdateRecorder):
    """``task_cls`` with the recorder among its callbacks."""
    return type(task_cls.__name__, (task_cls,), {"callbacks": lambda self: task_cls.callbacks(self) + [recorder]})


def bare_seconds(task, batches: list[dict], device: str, bf16: bool) -> float:
    """Seconds of the bare updates of ``task`` over ``batches`` (features computed before the clock starts)."""
    task._trainer = None  # a plain loop: logging calls become no-ops
    task.to(device).train()
    found = task.configure_optimizers()
    optimizer = found["optimizer"] if isinstance(found, dict) else found
    prepared = []
    with torch.no_grad():
        for b in batches:
            b = {k: v.to(device) if torch.is_tensor(v) else v for k, v in b.items()}
            prepared.append((b, *task.model.features(b["audio"], b["audio_lens"])))

    def update(b, feats, frames):
        task.seed_step(b)
        optimizer.zero_grad(set_to_none=True)
        with torch.autocast(device, dtype=torch.bfloat16, enabled=bf16):
            loss, _ = task.compute_loss(b, feats, frames)
        loss.backward()
        optimizer.step()
        task.after_update()

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "self.log() without a trainer"
        update(*prepared[0])  # warm-up: allocations, kernel choice
        if device == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        for item in prepared:
            update(*item)
        if device == "cuda":
            torch.cuda.synchronize()
    return time.perf_counter() - start


def measure_task(name: str, task_cls, data_dir, run_dir, preset: Optional[str], overrides: list[str], device: str,
                 warmup: int, updates: int, **launch_options) -> dict:
    """Run ``task_cls`` for warmup + updates updates, then the bare updates of the same batches."""
    from uniwav.training.launch import launch

    recorder = _UpdateRecorder(warmup, updates)
    accelerator = "gpu" if device == "cuda" else "cpu"
    launch(_recording(task_cls, recorder), data_dir, run_dir, preset, [*QUIET, f"trainer.accelerator={accelerator}", "trainer.devices=1",
                                                                       *overrides],
           max_steps=warmup + updates, progress=False, **launch_options)
    if len(recorder.ends) < warmup + updates:
        raise RuntimeError(f"{name}: only {len(recorder.ends)} updates ran")
    precision = recorder.task.trainer.precision
    real = recorder.real_seconds()
    bare = bare_seconds(recorder.task, recorder.batches, device, bf16=precision.startswith("bf16"))
    return {"precision": precision, "updates": updates, "real_update_seconds": real / updates, "bare_update_seconds": bare / updates,
            "ratio": real / bare, "share_outside_the_update": 1 - bare / real}


def loop_overhead(data_dir, device: str = "cpu", updates: int = 20, warmup: int = 5, tasks=("pretrain", "asr", "tokenizer", "tts"),
                  preset: str = "tiny", overrides: tuple = (), work_dir=None, on_row=None) -> dict:
    """``loop_overhead.<task>`` rows. The fine-tuning tasks start from the pre-training run made here (and
    TTS from alignments by the ASR run made here: their quality does not matter to the timing).
    ``preset`` and ``overrides``: the pre-training config; the fine-tuning tasks take its model's shape and
    ``overrides``' data.* fields."""
    from uniwav.inference.align import align_corpus
    from uniwav.models.ctc import CTCModel
    from uniwav.training.finetune_asr import ASRTask
    from uniwav.training.finetune_tokenizer import TokenizerTask
    from uniwav.training.finetune_tts import TTSTask
    from uniwav.training.pretrain import PretrainTask

    rows = {}
    with tempfile.TemporaryDirectory(dir=work_dir) as tmp:
        tmp = Path(tmp)
        pre = tmp / "pretrain"
        data = [o for o in overrides if o.startswith("data.")]
        row = measure_task("pretrain", PretrainTask, data_dir, pre, preset, list(overrides), device, warmup, updates)
        rows["loop_overhead.pretrain"] = row
        if on_row:
            on_row(rows)
        if "asr" in tasks or "tts" in tasks:
            steady = ["val_every=1000000", "freeze_encoder_steps=0"]  # the update of most of a run: the encoder trains
            rows["loop_overhead.asr"] = measure_task("asr", ASRTask, data_dir, tmp / "asr", None, [*steady, *data], device, warmup, updates,
                                                     init=str(pre))
            if on_row:
                on_row(rows)
        if "tokenizer" in tasks:
            rows["loop_overhead.tokenizer"] = measure_task("tokenizer", TokenizerTask, data_dir, tmp / "tokenizer", None, data, device,
                                                           warmup, updates, init=str(pre))
            if on_row:
                on_row(rows)
        if "tts" in tasks:
            align_corpus(CTCModel.from_pretrained(tmp / "asr").to(device), data_dir, tmp / "align", ["train"])
            rows["loop_overhead.tts"] = measure_task("tts", TTSTask, data_dir, tmp / "tts", None, data, device, warmup, updates,
                                                     init=str(pre), alignments_dir=tmp / "align")
            if on_row:
                on_row(rows)
    return {k: v for k, v in rows.items() if k.split(".")[1] in tasks}
