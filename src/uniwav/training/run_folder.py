"""What a run folder promises: one process writes it at a time, a run whose checkpoint cannot be
read is never written to, an interrupted run says so (and how to resume), and no half-written
temporary file outlives the process that wrote it.

    RUN/.lock                   PID and host of the process that trains in RUN (removed on exit;
                                a lock whose process is gone is taken over, and said so)
    RUN/checkpoints/last.ckpt   resumed from automatically, after checking that it can be read
"""

from __future__ import annotations

import os
import socket
import sys
from contextlib import contextmanager
from pathlib import Path
from typing import Optional

from uniwav.checkpoint import CheckpointError, load_checkpoint


class RunLockedError(RuntimeError):
    """Another live process trains in this run folder."""


class TrainingInterrupted(Exception):
    """Training stopped on SIGTERM or Ctrl-C after writing its checkpoint; ``exit_code`` is 143 or 130."""

    def __init__(self, message: str, exit_code: int):
        super().__init__(message)
        self.exit_code = exit_code


def is_launched_worker() -> bool:
    """True in the processes a multi-process launcher started besides rank 0 (they share rank 0's lock)."""
    return any(int(os.environ.get(k, "0") or 0) > 0 for k in ("LOCAL_RANK", "NODE_RANK", "RANK"))


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


@contextmanager
def run_lock(run_dir):
    """Hold RUN/.lock while training. Refuses when a live process on this host holds it; takes
    over a lock left by a process that died (kill -9, a crash), and says so."""
    if is_launched_worker():
        yield
        return
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    lock = run_dir / ".lock"
    me = f"{os.getpid()} {socket.gethostname()}"
    while True:
        try:
            fd = os.open(lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            try:
                pid_text, _, host = lock.read_text().partition(" ")
                pid = int(pid_text)
            except (OSError, ValueError):
                pid, host = -1, ""
            if host.strip() and host.strip() != socket.gethostname():
                raise RunLockedError(f"{run_dir} is in use by process {pid} on {host.strip()} ({lock}); if that process is gone, "
                                     f"delete {lock} and run again") from None
            if pid > 0 and _alive(pid):
                raise RunLockedError(f"{run_dir} is in use by process {pid} (another training writes there); wait for it, "
                                     f"stop it, or use another --out") from None
            print(f"{run_dir}: taking over the lock of process {pid}, which is gone (killed or crashed)", file=sys.stderr)
            lock.unlink(missing_ok=True)
            continue
        with os.fdopen(fd, "w") as f:
            f.write(me)
        break
    try:
        yield
    finally:
        try:
            if lock.read_text() == me:
                lock.unlink()
        except OSError:
            pass


def remove_stale_temporaries(run_dir) -> list[Path]:
    """Delete the temporary files of checkpoint writes that a killed process left (``.NAME.*``
    beside the checkpoints). Only safe while holding the run's lock."""
    removed = []
    folder = Path(run_dir) / "checkpoints"
    if folder.is_dir():
        for tmp in folder.glob(".*.ckpt"):
            tmp.unlink(missing_ok=True)
            removed.append(tmp)
    return removed


def readable_checkpoints(run_dir) -> list[tuple[Path, int]]:
    """(path, global step) of every checkpoint in RUN/checkpoints that loads, newest step first."""
    found = []
    for path in sorted((Path(run_dir) / "checkpoints").glob("*.ckpt")):
        try:
            found.append((path, int(load_checkpoint(path).get("global_step", -1))))
        except CheckpointError:
            continue
    return sorted(found, key=lambda item: -item[1])


def check_world_size(checkpoint: Path, world_size: int) -> None:
    """Refuse to resume a run on another number of processes: each process reads its own share of
    the data stream, so the order of batches (and the global batch) would change."""
    saved = load_checkpoint(checkpoint).get("world_size")
    if saved is not None and int(saved) != world_size:
        raise CheckpointError(f"{checkpoint}: this run was trained by {saved} process(es) and would be resumed by {world_size}; "
                              f"the data stream and the global batch depend on it, so resume with the same --devices x --num-nodes "
                              f"({saved}), or start a new run from its weights (e.g. --init for fine-tuning)")


def checkpoint_to_resume(run_dir, resume_from: Optional[str] = None) -> Optional[Path]:
    """The checkpoint to resume from: ``resume_from`` if given, else RUN/checkpoints/last.ckpt if it
    exists, else None (a new run). Either is loaded first: an unreadable one raises CheckpointError
    naming the checkpoints that can be read and the command that resumes from one, before anything
    in the run folder is written."""
    path = Path(resume_from) if resume_from else Path(run_dir) / "checkpoints" / "last.ckpt"
    if not path.exists():
        if resume_from:
            raise CheckpointError(f"{path}: --resume-from checkpoint not found")
        return None
    try:
        load_checkpoint(path)
    except CheckpointError as e:
        intact = [(p, step) for p, step in readable_checkpoints(run_dir) if p != path]
        if intact:
            best, step = intact[0]
            hint = (f" Readable: {', '.join(f'{p.name} (update {s})' for p, s in intact)}. To continue from update {step}, "
                    f"run the same command with --resume-from {best}")
        else:
            hint = " No other checkpoint of this run can be read; start again in a new --out folder"
        raise CheckpointError(f"{e}. The run folder was left as it is.{hint}") from None
    return path
