"""``uniwav prepare librispeech|librilight``: local copies of the public corpora through lhotse's
recipes (nothing is downloaded), written in the same split layout as every other corpus."""

from __future__ import annotations

import json
from pathlib import Path

from lhotse import RecordingSet, SupervisionSet

from uniwav.data.manifests import DataError, write_split
from uniwav.data.output import REPORT, prepared_folder
from uniwav.data.text import normalize_text
from uniwav.utils import atomic_write_text

LIBRISPEECH_SPLITS = {  # our split name -> LibriSpeech parts that go into it
    "train": ("train-clean-100", "train-clean-360", "train-other-500", "mini_librispeech_train_clean_5"),
    "dev": ("dev-clean", "dev-clean-2"),
    "dev-other": ("dev-other",),
    "test": ("test-clean",),
    "test-other": ("test-other",),
}


def _combine(manifests: dict, parts) -> tuple[RecordingSet, SupervisionSet] | None:
    recs, sups = [], []
    for part in parts:
        if part in manifests:
            recs.extend(manifests[part]["recordings"])
            sups.extend(s.transform_text(normalize_text) for s in manifests[part]["supervisions"])
    if not recs:
        return None
    return RecordingSet.from_recordings(recs), SupervisionSet.from_segments(sups)


def prepare_librispeech_dir(corpus_dir, out_dir, num_jobs: int = 2) -> dict:
    """LibriSpeech parts found under ``corpus_dir`` -> train/dev/test(/-other) splits. Returns
    split -> number of utterances."""
    from lhotse.recipes import prepare_librispeech

    corpus_dir = Path(corpus_dir)
    if not corpus_dir.is_dir():
        raise DataError(f"{corpus_dir}: LibriSpeech folder does not exist")
    try:
        manifests = prepare_librispeech(corpus_dir, dataset_parts="auto", num_jobs=num_jobs)
    except ValueError:
        manifests = {}
    if not manifests:
        raise DataError(f"{corpus_dir}: no LibriSpeech parts found (expected e.g. {corpus_dir}/train-clean-100/<spk>/<chapter>/*.flac)")
    written = {}
    with prepared_folder(out_dir, str(corpus_dir.resolve())) as staging:
        for split, parts in LIBRISPEECH_SPLITS.items():
            combined = _combine(manifests, parts)
            if combined:
                cuts = write_split(staging, split, *combined)
                written[split] = len(cuts)
        atomic_write_text(staging / REPORT, json.dumps({"source": str(corpus_dir.resolve()), "splits": written}, indent=1))
    return written


def prepare_librilight_dir(corpus_dir, out_dir, num_jobs: int = 2, window_seconds: float = 30.0) -> dict:
    """LibriLight (small/medium/large, unlabelled) -> a ``train`` split of ``window_seconds`` windows."""
    from lhotse import CutSet
    from lhotse.recipes import prepare_librilight

    from uniwav.utils import atomic_path

    corpus_dir = Path(corpus_dir)
    if not corpus_dir.is_dir():
        raise DataError(f"{corpus_dir}: LibriLight folder does not exist")
    manifests = prepare_librilight(corpus_dir, num_jobs=num_jobs)
    recs, sups = [], []
    for part in manifests.values():
        recs.extend(part["recordings"])
        sups.extend(part["supervisions"])
    if not recs:
        raise DataError(f"{corpus_dir}: no LibriLight audio found (expected small/ medium/ large/ folders)")
    with prepared_folder(out_dir, str(corpus_dir.resolve())) as staging:
        write_split(staging, "train", RecordingSet.from_recordings(recs), SupervisionSet.from_segments(sups))
        windows = CutSet.from_file(staging / "train" / "cuts.jsonl.gz").cut_into_windows(duration=window_seconds)
        with atomic_path(staging / "train" / "cuts.jsonl.gz", suffix=".jsonl.gz") as tmp:
            windows.to_file(tmp)
        atomic_write_text(staging / REPORT, json.dumps({"source": str(corpus_dir.resolve()), "splits": {"train": len(windows)}}, indent=1))
    return {"train": len(windows)}
