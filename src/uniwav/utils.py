"""Small helpers shared across the package: atomic file writes and seeding."""

from __future__ import annotations

import hashlib
import os
import tempfile
from contextlib import contextmanager
from pathlib import Path


@contextmanager
def atomic_path(path, suffix: str = ""):
    """Yield a temporary path in the destination's folder; on success it replaces ``path``
    in one ``os.replace`` (atomic on POSIX), so readers see the old file or the new one,
    never half a file. ``suffix`` keeps extensions that writers look at (``.jsonl.gz``)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=(suffix or ".tmp"), dir=path.parent)
    os.close(fd)
    try:
        yield Path(tmp)
        with open(tmp, "rb") as f:
            os.fsync(f.fileno())
        os.chmod(tmp, 0o644)  # mkstemp creates 0600; a checkpoint or manifest should be readable like any file
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def _is_our_config(path: Path) -> bool:
    """A config.json that uniwav wrote (it names the model type)."""
    import json

    try:
        return "model_type" in json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError, TypeError):
        return False


class FolderInUseError(ValueError):
    """An output folder holds files that are not ours to replace."""


@contextmanager
def replaced_folder(out, ours: set[str], what: str):
    """Yield an empty staging folder beside ``out``; when the block succeeds it becomes ``out`` in one
    rename. ``out`` may be missing, empty, or an earlier output of the same kind (files named in
    ``ours`` only, with a ``config.json``): it is then replaced whole. Anything else is refused before
    anything is written, and a failure leaves no folder behind. ``what`` names the output in messages."""

    out = Path(out).resolve()
    if out.exists() and not out.is_dir():
        raise FolderInUseError(f"{out} is a file; give a folder for the {what}")
    if out.is_dir():
        present = sorted(p.name for p in out.iterdir())
        foreign = [n for n in present if n not in ours]
        if present and (foreign or not _is_our_config(out / "config.json")):
            raise FolderInUseError(f"{out} is not empty and is not an earlier {what} (it holds {(foreign or present)[:5]}); "
                                   "nothing was written: choose a new or empty folder")
    with staged_folder(out) as (staging, swap):
        yield staging
        swap()


@contextmanager
def staged_folder(out: Path):
    """(staging folder beside ``out``, swap): ``swap(keep=())`` puts the staging folder in the place of
    ``out`` (renames: instant on one disk) and carries the files and empty folders named in ``keep``
    (relative paths) over from the old ``out``, then deletes the rest of it. Leaving the block without a
    swap leaves ``out`` as it was and no staging folder behind."""
    import shutil

    out.parent.mkdir(parents=True, exist_ok=True)
    staging = out.parent / f".{out.name}.partial-{os.getpid()}"
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir()

    def swap(keep=()) -> None:
        if not out.exists():
            os.rename(staging, out)
            return
        old = out.parent / f".{out.name}.old-{os.getpid()}"
        os.rename(out, old)
        os.rename(staging, out)
        for f in keep:
            (out / f).parent.mkdir(parents=True, exist_ok=True)
            os.rename(old / f, out / f)
        shutil.rmtree(old, ignore_errors=True)

    try:
        yield staging, swap
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def atomic_write_text(path, text: str) -> None:
    with atomic_path(path) as tmp:
        Path(tmp).write_text(text)


def stable_seed(*parts) -> int:
    """A 63-bit seed derived from any printable parts (same on every machine and process)."""
    digest = hashlib.sha256("/".join(map(str, parts)).encode()).digest()
    return int.from_bytes(digest[:8], "little") & ((1 << 63) - 1)


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port nobody listens on right now (for a local server or a process group's rendezvous)."""
    import socket

    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]
