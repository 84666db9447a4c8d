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
from uniwav.data.output import REPORT, prepared_folder
from uniwav.data.text import is_english, normalize_text, unspoken_characters
from uniwav.utils import atomic_write_text, stable_seed

IGNORED_SUFFIXES = {".txt", ".tsv", ".lab", ".json", ".md"}


@dataclass
class Utterance:
    utt_id: str
    speaker: str
    path: Path
    text: Optional[str] = None
    broken: str = ""  # why its transcript could not be read (the utterance is skipped)


@dataclass
class PrepareReport:
    source: str = ""  # the input (a later prepare of the same input may rebuild the folder)
    language: str = "en"  # how the transcripts were normalised (data/text.py)
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


def _read_utf8(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except UnicodeDecodeError as e:
        raise DataError(f"{path}: not UTF-8 text (byte {e.start}: {e.object[e.start:e.start + 4]!r}); save it as UTF-8") from None


def _read_transcripts(audio_dir: Path, utts: list[Utterance], report: PrepareReport, language: str = "en") -> None:
    tsv = audio_dir / "transcripts.tsv"
    table = {}
    if tsv.is_file():
        for n, line in enumerate(_read_utf8(tsv).splitlines(), 1):
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
            try:
                raw, where = _read_utf8(sidecar), str(sidecar)
            except DataError as e:
                u.broken = str(e)
                continue
        text = normalize_text(raw, language)
        dropped = unspoken_characters(raw, language)
        if dropped:
            alphabet = "a-z" if is_english(language) else f"the letters of {language}"
            report.warnings.append([where, f"characters {''.join(dropped)!r} cannot be written with {alphabet} and were left out of the "
                                           "transcript; write them as words if they are spoken"])
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
    table, duplicates = {}, []
    for n, line in enumerate(_read_utf8(Path(path)).splitlines(), 1):
        if not line.strip():
            continue
        parts = line.split("\t")
        if len(parts) != 2 or parts[1].strip() not in SPLITS:
            raise DataError(f"{path}:{n}: expected 'utt_id<TAB>train|dev|test', got {line[:60]!r}")
        utt_id = parts[0].strip()
        if utt_id in table:
            duplicates.append(f"{utt_id} (line {n})")
        table[utt_id] = parts[1].strip()
    if duplicates:
        raise DataError(f"{path}: utterances listed twice: {', '.join(duplicates[:20])}")
    unknown = sorted(set(table) - {u.utt_id for u in utts})
    if unknown:
        raise DataError(f"{path}: {len(unknown)} ids are not utterances of the audio folder: {', '.join(unknown[:20])}")
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
    return (wav if info.conversions else None), None, (len(wav), info.conversions, info.warnings)


def prepare_folder(audio_dir, out_dir, sample_rate: int = 16000, test_speakers: Optional[list] = None, dev_speakers: Optional[list] = None,
                   splits_file=None, seed: int = 0, min_seconds: float = 0.1, num_workers: int = 2, progress: bool = True,
                   language: str = "en") -> PrepareReport:
    """Scan, check, convert and split a speaker-folder corpus; write manifests to ``out_dir``, which
    appears only when everything is written (``data.output.prepared_folder``). ``language``: how the
    transcripts are normalised (English letters, or the language's own)."""
    audio_dir = Path(audio_dir).resolve()
    with prepared_folder(out_dir, str(audio_dir)) as staging:
        return prepare_into(audio_dir, staging, Path(out_dir).resolve(), sample_rate, test_speakers, dev_speakers, splits_file, seed,
                            min_seconds, num_workers, progress, language)


def prepare_into(audio_dir: Path, staging: Path, final: Path, sample_rate: int = 16000, test_speakers: Optional[list] = None,
                 dev_speakers: Optional[list] = None, splits_file=None, seed: int = 0, min_seconds: float = 0.1, num_workers: int = 2,
                 progress: bool = True, language: str = "en") -> PrepareReport:
    """``prepare_folder``'s work, written into ``staging``; paths in the manifests point where
    ``staging`` will be (``final``). Corpora without a train split (evaluation only) are fine."""
    if sample_rate <= 0:
        raise DataError(f"--sample-rate must be positive, got {sample_rate}")
    report = PrepareReport(source=str(audio_dir), language=language)
    utts = _scan(audio_dir, report)
    _read_transcripts(audio_dir, utts, report, language)
    if splits_file is not None:
        split_of_utt = _read_splits_file(Path(splits_file), utts)
    else:
        by_speaker = assign_splits([u.speaker for u in utts], seed, test_speakers, dev_speakers)
        split_of_utt = {u.utt_id: by_speaker[u.speaker] for u in utts}
    for u in utts:
        if u.broken:
            report.problems.append([str(u.path), u.broken])

    jobs = [(u.path, sample_rate, min_seconds) for u in utts if not u.broken]
    usable = [u for u in utts if not u.broken]
    checked = []  # (utterance, audio path, samples) of every readable file
    with ProcessPoolExecutor(max_workers=max(1, num_workers)) as pool:
        results = pool.map(_check_one, jobs, chunksize=16)
        for u, (converted, problem, meta) in tqdm(zip(usable, results), total=len(usable), desc="checking audio", disable=not progress):
            if problem is not None:
                report.problems.append([str(u.path), problem])
                continue
            num_samples, conversions, warnings = meta
            report.warnings.extend([str(u.path), w] for w in warnings)
            path = final / u.path.relative_to(staging) if u.path.is_relative_to(staging) else u.path  # where it will be
            if converted is not None:
                written = staging / "audio" / u.speaker / f"{u.utt_id}.wav"
                write_audio(written, converted, sample_rate)
                path = final / written.relative_to(staging)
                report.converted.append([str(u.path), ", ".join(conversions) + f" (written to {path})"])
            checked.append((u, path, num_samples))

    labelled = any(u.text for u, _, _ in checked)
    if labelled:  # checked after the audio: a broken file is reported as broken, not as untranscribed
        for u, _, _ in checked:
            if split_of_utt[u.utt_id] in ("dev", "test") and not u.text:
                raise DataError(
                    f"utterance {u.utt_id} ({u.path}) in split '{split_of_utt[u.utt_id]}' has no transcript; "
                    "in a transcribed corpus every dev/test utterance needs one"
                )
    recordings = {s: [] for s in SPLITS}
    supervisions = {s: [] for s in SPLITS}
    for u, path, num_samples in checked:
        split = split_of_utt[u.utt_id]
        duration = num_samples / sample_rate
        recordings[split].append(Recording(id=u.utt_id, sources=[AudioSource(type="file", channels=[0], source=str(path))],
                                           sampling_rate=sample_rate, num_samples=num_samples, duration=duration))
        supervisions[split].append(SupervisionSegment(id=u.utt_id, recording_id=u.utt_id, start=0.0, duration=duration, channel=0,
                                                      text=u.text, speaker=u.speaker))
    for split in SPLITS:
        if not recordings[split]:
            continue
        write_split(staging, split, RecordingSet.from_recordings(recordings[split]), SupervisionSet.from_segments(supervisions[split]))
        report.splits[split] = {
            "utterances": len(recordings[split]),
            "hours": sum(r.duration for r in recordings[split]) / 3600,
            "speakers": len({s.speaker for s in supervisions[split]}),
        }
    if not report.splits:
        raise DataError(f"{audio_dir}: no usable audio (every file was skipped); nothing was written")
    held_out = [s for s in ("dev", "test") if s not in report.splits]
    if "train" in report.splits and held_out and splits_file is None:
        speakers = report.splits["train"]["speakers"]
        report.warnings.append([str(audio_dir), f"no {' or '.join(held_out)} split: splits are made of whole speakers and the corpus has "
                                f"{speakers} speaker(s) (3 or more get a held-out split). Hold out utterances instead with --splits FILE "
                                "(utt_id<TAB>train|dev|test), or name speakers with --test-speakers / --dev-speakers"])
    atomic_write_text(staging / REPORT, json.dumps(report.__dict__, indent=1))
    return report
