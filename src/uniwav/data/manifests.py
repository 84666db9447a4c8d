"""Where a prepared corpus keeps its lhotse manifests, and safe reading and writing of them.

Layout of a prepared ``DATA`` folder::

    DATA/{split}/recordings.jsonl.gz    lhotse RecordingSet
    DATA/{split}/supervisions.jsonl.gz  lhotse SupervisionSet (text, speaker)
    DATA/{split}/cuts.jsonl.gz          lhotse CutSet (one cut per utterance)
    DATA/feature_stats*.json            log-mel normalisation statistics (train split)
    DATA/prepare_report.json            what was skipped or converted, and why
"""

from __future__ import annotations

from pathlib import Path

from lhotse import CutSet, RecordingSet, SupervisionSet

from uniwav.utils import atomic_path

SPLITS = ("train", "dev", "test")


class DataError(ValueError):
    """A prepared corpus that cannot be used; the message names the file or utterance."""


def write_split(data_dir, split: str, recordings: RecordingSet, supervisions: SupervisionSet) -> CutSet:
    """Write one split (one cut per recording, named after it)'s recordings, supervisions and cuts, each file atomically."""
    out = Path(data_dir) / split
    cuts = CutSet.from_manifests(recordings=recordings, supervisions=supervisions)
    cuts = CutSet.from_cuts(c.with_id(c.recording_id) for c in cuts).sort_by_recording_id()  # cut id = utterance id
    for name, manifest in (("recordings", recordings), ("supervisions", supervisions), ("cuts", cuts)):
        with atomic_path(out / f"{name}.jsonl.gz", suffix=".jsonl.gz") as tmp:
            manifest.to_file(tmp)
    return cuts


def cuts_path(data_dir, split: str) -> Path:
    return Path(data_dir) / split / "cuts.jsonl.gz"


def available_splits(data_dir) -> list[str]:
    d = Path(data_dir)
    return sorted(p.parent.name for p in d.glob("*/cuts.jsonl.gz"))


def load_cuts(data_dir, split: str, lazy: bool = False) -> CutSet:
    """A split's cuts; ``lazy`` streams them from disk (LibriLight-scale pre-training)."""
    path = cuts_path(data_dir, split)
    if not Path(data_dir).is_dir():
        raise DataError(f"{data_dir}: data folder does not exist (run `uniwav prepare ...` first)")
    if not path.is_file():
        have = ", ".join(available_splits(data_dir)) or "none"
        raise DataError(f"{path}: no '{split}' split in {data_dir} (splits found: {have})")
    cuts = CutSet.from_file(path)
    return cuts if lazy else cuts.to_eager()


def require_text(cuts: CutSet, split: str) -> None:
    """Raise DataError naming the first utterance of ``split`` without a non-empty transcript."""
    for cut in cuts:
        texts = [s.text for s in cut.supervisions if s.text and s.text.strip()]
        if not texts:
            raise DataError(f"utterance {cut.id} in split '{split}' has no transcript, but this split needs one")


def check_sample_rate(data_dir, sample_rate: int) -> None:
    """Refuse a model whose sample rate differs from the data's (naming both and the fix)."""
    from uniwav.config import ConfigError

    rate = next(iter(load_cuts(data_dir, "train", lazy=True))).sampling_rate
    if rate != sample_rate:
        raise ConfigError(f"{data_dir}: audio is {rate} Hz but model.features.sample_rate is {sample_rate}; "
                          f"prepare the data with --sample-rate {sample_rate} or set model.features.sample_rate={rate}")


def write_shar(data_dir, split: str = "train", shard_size: int = 1000, num_jobs: int = 1) -> Path:
    """The split's audio and cuts as lhotse Shar shards in DATA/{split}/shar/ (FLAC in tar files,
    ``shard_size`` cuts each): sequential reads from shared or object storage, one shard at a time.
    Training reads them instead of the manifest when they exist. Written whole or not at all."""
    import shutil

    final = Path(data_dir) / split / "shar"
    staging = final.with_name(".shar.partial")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    load_cuts(data_dir, split, lazy=True).to_shar(staging, fields={"recording": "flac"}, shard_size=shard_size, num_jobs=num_jobs)
    shutil.rmtree(final, ignore_errors=True)
    staging.rename(final)
    return final
