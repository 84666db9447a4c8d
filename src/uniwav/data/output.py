"""Prepared data folders are written whole or not at all.

``prepared_folder`` stages a new folder beside ``--out`` and puts it in place only when everything
in it was written. What an earlier ``uniwav prepare`` of the same input wrote is replaced (no stale
split or statistics survives); every other file in the folder (notes, a language model, results)
is carried over untouched. A non-empty folder that is not a prepared one is refused before
anything is written: a user's own files are never overwritten or deleted.
"""

from __future__ import annotations

import json
from contextlib import contextmanager
from pathlib import Path

from uniwav.data.manifests import DataError
from uniwav.utils import staged_folder

REPORT = "prepare_report.json"


OWNED = "prepared_files.json"  # the relative paths of every file prepare wrote (so that it removes only those)
_OWNED_FOLDERS = ("audio/", "train/shar/")  # prepare's own folders, for folders prepared before OWNED was written


def _derived(f: str) -> bool:
    """Files uniwav writes into a prepared folder, derived from its data: a rebuild removes them.
    (The statistics of the train split, written by the first training run; the manifests, for folders
    prepared before OWNED existed.)"""
    name = f.rsplit("/", 1)[-1]
    return (("/" not in f and name.startswith("feature_stats") and name.endswith(".json"))
            or (f.count("/") == 1 and name in ("recordings.jsonl.gz", "supervisions.jsonl.gz", "cuts.jsonl.gz")))


def _earlier_source(out: Path):
    """The input an earlier prepare of ``out`` was made from ("" when it did not record one), or None
    when ``out`` is not a prepared folder."""
    report = out / REPORT
    if not report.is_file():
        return None
    try:
        return json.loads(report.read_text(encoding="utf-8")).get("source", "")
    except (OSError, ValueError, AttributeError):
        return None


def _files(folder: Path) -> set[str]:
    return {p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file() or p.is_symlink()}


def _foreign_files(out: Path, staged: set[str]) -> list[str]:
    """Files (and empty folders) in the earlier prepared folder ``out`` that prepare did not write: the user's."""
    try:
        owned = set(json.loads((out / OWNED).read_text(encoding="utf-8")))
    except (OSError, ValueError, TypeError):  # prepared by an older version: its layout stands in for the list
        owned = staged | {f for f in _files(out) if f.startswith(_OWNED_FOLDERS)}
    owned |= {OWNED, REPORT}
    empty = {p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_dir() and not any(p.iterdir())}
    return sorted({f for f in _files(out) if f not in owned and not _derived(f)} | {d for d in empty if not (d + "/").startswith(_OWNED_FOLDERS)})


@contextmanager
def prepared_folder(out_dir, source: str):
    """Yield an empty staging folder; when the block finishes it becomes ``out_dir``. ``source``
    names the input (recorded in prepare_report.json by the caller) so that a later prepare of the
    same input may replace it."""
    out = Path(out_dir).resolve()
    if out.exists() and not out.is_dir():
        raise DataError(f"{out}: --out is a file, not a folder")
    if out.is_dir() and any(out.iterdir()):
        earlier = _earlier_source(out)
        if earlier is None or earlier not in ("", source):
            what = "not a folder `uniwav prepare` wrote" if earlier is None else f"prepared from {earlier}, not {source}"
            raise DataError(f"{out} is not empty and is {what}; nothing was written. Choose a new or empty --out "
                            "(a prepare of the same input into its own folder rebuilds it)")
    with staged_folder(out) as (staging, swap):
        yield staging
        staged = _files(staging)
        (staging / OWNED).write_text(json.dumps(sorted(staged | {OWNED}), indent=0), encoding="utf-8")
        foreign = _foreign_files(out, staged) if out.exists() else []
        clash = [f for f in foreign if f in staged or any(f.startswith(s + "/") for s in staged)]
        if clash:
            raise DataError(f"{out}: your files {clash[:5]} are where prepare writes its own; move them and run again "
                            "(nothing was changed)")
        swap(keep=foreign)  # the user's files (and empty folders) move into the new folder at the same place
