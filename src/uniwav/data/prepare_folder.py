"""``uniwav prepare folder``: a user's own corpus, ``DIR/<speaker>/<utt>.{wav,flac}`` with optional
``<utt>.txt`` transcripts (or ``DIR/transcripts.tsv``), into speaker-disjoint lhotse splits.

Bad files are named with the reason and skipped; stereo and other sample rates are converted
into ``DATA/audio/`` (originals are never touched); manifests are written atomically.
"""

from __future__ import annotations

import json
import math
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

from lhotse import AudioSource, Recording, RecordingSet, SupervisionSegment, SupervisionSet
from tqdm import tqdm

from uniwav.data.audio import AUDIO_SUFFIXES, AudioError, read_audio, write_audio
from uniwav.data.manifests import SPLITS, DataError, write_split
from uniwav.data.text import normalize_text
from uniwav.utils import atomic_write_text, stable_seed

IGNORED_SUFFIXES = {".txt", ".tsv", ".lab", ".json", ".md"}


@dataclass
class Utterance:
    utt_id: str
    speaker: str
    path: Path
    text: Optional[str] = None


@dataclass
class PrepareReport:
    splits: dict = field(default_factory=dict)  # split -> {"utterances", "hours", "speakers"}
    problems: list = field(default_factory=list)  # [path, reason]: skipped files
    converted: list = field(default_factory=list)  # [path, what was done]
    warnings: list = field(default_factory=list)  # [path, reason]: kept, but worth knowing

    def summary(self) -> str:
        lines = []
        for split, s in self.splits.items():
            lines.append(f"  {split:5s}: {s['utterances']:6d} utterances, {s['hours']:.3f} h, {s['speakers']} speakers")
        lines.append(f"  converted: {len(self.converted)} files; skipped: {len(self.problems)} files")
        for path, reason in self.problems[:50]:
            lines.append(f"  SKIPPED {path}: {reason}")
        if len(self.problems) > 50:
            lines.append(f"  ... and {len(self.problems) - 50} more (see prepare_report.json)")
        for path, reason in self.warnings[:20]:
            lines.append(f"  WARNING {path}: {reason}")
        return "\n".join(lines)


def _read_transcripts(audio_dir: Path, utts: list[Utterance], report: PrepareReport) -> None:
    tsv = audio_dir / "transcripts.tsv"
    table = {}
    if tsv.is_file():
        for n, line in enumerate(tsv.read_text(encoding="utf-8").splitlines(), 1):
            if not line.strip():
                continue
            if "\t" not in line:
                raise DataError(f"{tsv}:{n}: expected 'utt_id<TAB>text', got {line[:60]!r}")
            utt_id, text = line.split("\t", 1)
            table[utt_id.strip()] = (text, f"{tsv}:{n}")
    for u in utts:
        if u.utt_id in table:
            raw, where = table[u.utt_id]
        else:
            sidecar = u.path.with_suffix(".txt")
            if not sidecar.is_file():
                continue
            raw, where = sidecar.read_text(encoding="utf-8"), str(sidecar)
        text = normalize_text(raw)
        if not text:
            report.warnings.append([where, "empty transcript (utterance kept without text)"])
            continue
        u.text = text


def _scan(audio_dir: Path, report: PrepareReport) -> list[Utterance]:
    if not audio_dir.is_dir():
        raise DataError(f"{audio_dir}: audio folder does not exist")
    utts, seen = [], {}
    for spk_dir in sorted(p for p in audio_dir.iterdir() if p.is_dir()):
        for path in sorted(p for p in spk_dir.rglob("*") if p.is_file()):
            suffix = path.suffix.lower()
            if suffix in IGNORED_SUFFIXES:
                continue
            if suffix not in AUDIO_SUFFIXES:
                report.problems.append([str(path), f"not an audio file (expected {'/'.join(AUDIO_SUFFIXES)})"])
                continue
            utt_id = path.stem
            if utt_id in seen:
                raise DataError(f"{path}: utterance id {utt_id!r} is also used by {seen[utt_id]} (file names must be unique)")
            seen[utt_id] = path
            utts.append(Utterance(utt_id, spk_dir.name, path))
    if not utts:
        raise DataError(f"{audio_dir}: no audio files found in DIR/<speaker>/<utt>.wav|.flac layout")
    return utts


def assign_splits(speakers: list[str], seed: int = 0, test: Optional[list] = None, dev: Optional[list] = None) -> dict:
    """speaker -> split. Explicit lists win; otherwise a deterministic ~10% test / ~5% dev of speakers."""
    speakers = sorted(set(speakers))
    for name, chosen in (("test", test), ("dev", dev)):
        missing = sorted(set(chosen or []) - set(speakers))
        if missing:
            raise DataError(f"--{name}-speakers names unknown speakers: {', '.join(missing)}")
    if set(test or []) & set(dev or []):
        raise DataError(f"speakers in both test and dev: {', '.join(sorted(set(test) & set(dev)))}")
    order = sorted(speakers, key=lambda s: stable_seed(seed, s))
    if test is None:
        n_test = math.ceil(0.10 * len(speakers)) if len(speakers) >= 3 else 0
        test = [s for s in order if s not in (dev or [])][:n_test]
    if dev is None:
        n_dev = math.ceil(0.05 * len(speakers)) if len(speakers) >= 3 else 0
        dev = [s for s in order if s not in test][:n_dev]
    return {s: "test" if s in test else "dev" if s in dev else "train" for s in speakers}


def _read_splits_file(path: Path, utts: list[Utterance]) -> dict:
    table = {}
    for n, line in enumerate(Path(path).read_text().splitlines(), 1):
        if not line.strip():
            continue
        parts = line.split("\t")
        if len(parts) != 2 or parts[1].strip() not in SPLITS:
            raise DataError(f"{path}:{n}: expected 'utt_id<TAB>train|dev|test', got {line[:60]!r}")
        table[parts[0].strip()] = parts[1].strip()
    for u in utts:
        if u.utt_id not in table:
            raise DataError(f"{path}: utterance {u.utt_id} ({u.path}) is not listed; every utterance needs a split")
    return table


def _check_one(args):
    path, sample_rate, min_seconds = args
    try:
        wav, info = read_audio(path, sample_rate, min_seconds=min_seconds)
    except AudioError as e:
        return None, e.reason, None
    return (wav if info.conversions else None), None, (len(wav), info.conversions)


def prepare_folder(
    audio_dir,
    out_dir,
    sample_rate: int = 16000,
    test_speakers: Optional[list] = None,
    dev_speakers: Optional[list] = None,
    splits_file=None,
    seed: int = 0,
    min_seconds: float = 0.1,
    num_workers: int = 2,
    progress: bool = True,
) -> PrepareReport:
    """Scan, check, convert and split a speaker-folder corpus; write manifests to ``out_dir``."""
    audio_dir, out_dir = Path(audio_dir).resolve(), Path(out_dir).resolve()
    report = PrepareReport()
    utts = _scan(audio_dir, report)
    _read_transcripts(audio_dir, utts, report)
    if splits_file is not None:
        split_of_utt = _read_splits_file(Path(splits_file), utts)
    else:
        by_speaker = assign_splits([u.speaker for u in utts], seed, test_speakers, dev_speakers)
        split_of_utt = {u.utt_id: by_speaker[u.speaker] for u in utts}

    labelled = any(u.text for u in utts)
    if labelled:
        for u in utts:
            if split_of_utt[u.utt_id] in ("dev", "test") and not u.text:
                raise DataError(
                    f"utterance {u.utt_id} ({u.path}) in split '{split_of_utt[u.utt_id]}' has no transcript; "
                    "in a transcribed corpus every dev/test utterance needs one"
                )

    jobs = [(u.path, sample_rate, min_seconds) for u in utts]
    recordings = {s: [] for s in SPLITS}
    supervisions = {s: [] for s in SPLITS}
    with ProcessPoolExecutor(max_workers=max(1, num_workers)) as pool:
        results = pool.map(_check_one, jobs, chunksize=16)
        for u, (converted, problem, meta) in tqdm(zip(utts, results), total=len(utts), desc="checking audio", disable=not progress):
            if problem is not None:
                report.problems.append([str(u.path), problem])
                continue
            num_samples, conversions = meta
            path = u.path
            if converted is not None:
                path = out_dir / "audio" / u.speaker / f"{u.utt_id}.wav"
                write_audio(path, converted, sample_rate)
                report.converted.append([str(u.path), ", ".join(conversions) + f" (written to {path})"])
            split = split_of_utt[u.utt_id]
            duration = num_samples / sample_rate
            recordings[split].append(
                Recording(
                    id=u.utt_id, sources=[AudioSource(type="file", channels=[0], source=str(path))],
                    sampling_rate=sample_rate, num_samples=num_samples, duration=duration,
                )
            )
            supervisions[split].append(
                SupervisionSegment(id=u.utt_id, recording_id=u.utt_id, start=0.0, duration=duration, channel=0, text=u.text, speaker=u.speaker)
            )

    for split in SPLITS:
        if not recordings[split]:
            continue
        write_split(out_dir, split, RecordingSet.from_recordings(recordings[split]), SupervisionSet.from_segments(supervisions[split]))
        report.splits[split] = {
            "utterances": len(recordings[split]),
            "hours": sum(r.duration for r in recordings[split]) / 3600,
            "speakers": len({s.speaker for s in supervisions[split]}),
        }
    if "train" not in report.splits:
        raise DataError(f"{audio_dir}: no usable training audio (every file was skipped or held out)")
    atomic_write_text(out_dir / "prepare_report.json", json.dumps(report.__dict__, indent=1))
    return report
