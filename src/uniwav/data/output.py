"""Prepared data folders are written whole or not at all.

``prepared_folder`` stages a new folder beside ``--out`` and puts it in place only when everything
in it was written; an earlier ``uniwav prepare`` of the same input is replaced as a whole (no
stale split or statistics survives), and a non-empty folder that is not one is refused before
anything is written (a user's own files are never overwritten).
"""

from __future__ import annotations

import json
import os
import shutil
from contextlib import contextmanager
from pathlib import Path

from uniwav.data.manifests import DataError

REPORT = "prepare_report.json"


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
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = out.parent / f".{out.name}.partial-{os.getpid()}"
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir()
    try:
        yield staging
        if out.exists():
            old = out.parent / f".{out.name}.old-{os.getpid()}"
            os.rename(out, old)
            os.rename(staging, out)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.rename(staging, out)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
