"""``uniwav prepare demo``: the built-in demo corpus, synthesised offline by espeak-ng.

Speakers are distinct (accent x voice variant x pitch x speed) combinations; sentences come
from the Debian fortunes files (offline text: English, or with ``language`` another language whose
fortunes package is installed, e.g. ``de`` from fortunes-de). Test speakers read sentences that no
training speaker reads, so test scores are not inflated by memorised text. Deterministic for
a seed; synthesis runs in parallel. The result is laid out as ``DIR/<speaker>/<utt>.wav + .txt``
and prepared by the same code path as a user's own folder.
"""

from __future__ import annotations

import json
import random
import re
import shutil
import subprocess
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
import soxr
from tqdm import tqdm

from uniwav.data.audio import write_audio
from uniwav.data.output import REPORT, prepared_folder
from uniwav.data.prepare_folder import PrepareReport, prepare_into
from uniwav.data.text import is_english, normalize_text
from uniwav.utils import atomic_write_text

FORTUNE_DIRS = ("/usr/share/games/fortunes", "/usr/share/fortune", "/usr/share/fortunes")
FORTUNE_FILES = ("fortunes", "literature", "riddles", "wisdom", "people", "science", "work")
ACCENTS = ("en-us", "en-gb", "en-gb-scotland", "en-gb-x-rp", "en-029", "en-us-nyc", "en-gb-x-gbclan", "en-gb-x-gbcwmd")
VARIANTS = (
    "m1", "m2", "m3", "m4", "m5", "m6", "m7", "f1", "f2", "f3", "f4", "f5", "klatt", "klatt2", "klatt3",
    "Annie", "andrea", "Andy", "belinda", "benjamin", "david", "edward", "grandma", "linda", "max",
    "michael", "norbert", "paul", "quincy", "robert", "steph", "travis", "victor", "zac",
)
INSTALL_HINT = ("install it with `apt-get update && apt-get install -y espeak-ng fortunes-min` (Debian/Ubuntu) "
                "or `brew install espeak-ng fortune` (macOS)")
# other languages: the fortunes package with its text, and espeak-ng's voice (the accents of English are its own)
LANGUAGES = {"de": ("fortunes-de", "de"), "es": ("fortunes-es", "es"), "it": ("fortunes-it", "it")}


class DemoError(RuntimeError):
    pass


def espeak_binary() -> str:
    exe = shutil.which("espeak-ng")
    if exe is None:
        raise DemoError(f"the demo corpus is synthesised with espeak-ng, which is not installed: {INSTALL_HINT}")
    return exe


def _fortune_texts(language: str) -> list[str]:
    if is_english(language):
        paths = [Path(d) / name for d in FORTUNE_DIRS for name in FORTUNE_FILES]
        hint = INSTALL_HINT
    else:
        if language not in LANGUAGES:
            raise DemoError(f"no demo corpus for language {language!r}: choose en or one of {', '.join(LANGUAGES)}")
        package = LANGUAGES[language][0]
        # the UTF-8 copies (.u8) where a package ships them beside its Latin-1 files
        paths = sorted(p for d in FORTUNE_DIRS for p in (Path(d) / language).glob("*") if p.suffix not in (".dat",)
                       and (p.suffix == ".u8" or not p.with_name(p.name + ".u8").exists()))
        hint = f"install it with `apt-get install -y espeak-ng {package}`"
    texts = [p.read_text(encoding="utf-8", errors="ignore") for p in paths if p.is_file()]
    if not texts:
        raise DemoError(f"no fortune text files for {language} found in {', '.join(FORTUNE_DIRS)}: {hint}")
    return texts


def load_sentences(language: str = "en") -> list[str]:
    """Distinct clean sentences (4-16 words, letters and punctuation only) from fortune files."""
    english = is_english(language)
    seen, out = set(), []
    for text in _fortune_texts(language):
        for para in text.split("\n%\n"):
            para = re.split(r"\n\s*--", para)[0]  # drop attributions
            para = re.sub(r"^\s*[QA]:\s*", "", " ".join(para.split()))
            for s in re.split(r"(?<=[.!?])\s+", para):
                s = re.sub(r"^[QA]:\s*", "", s.strip())
                letters_only = re.fullmatch(r"[A-Za-z ,.;:!?'\-]+", s) if english else all(ch.isalpha() or ch in " ,.;:!?'-" for ch in s)
                # a sentence starts with a letter (espeak-ng reads a leading "-" as an option)
                if not (4 <= len(s.split()) <= 16) or not letters_only or not s[0].isalpha() or re.search(r"[A-ZÄÖÜ]{2,}", s):
                    continue
                key = normalize_text(s, language)
                if key and key not in seen:
                    seen.add(key)
                    out.append(s)
    return out


def make_speakers(n: int, seed: int, language: str = "en") -> list[dict]:
    rng = random.Random(seed)
    accents = ACCENTS if is_english(language) else (LANGUAGES[language][1],)
    pairs = [(a, v) for a in accents for v in VARIANTS]
    rng.shuffle(pairs)
    speakers = []
    for i, (accent, variant) in enumerate(pairs[:n]):
        speakers.append({
            "id": f"spk{i:03d}", "voice": f"{accent}+{variant}",
            "pitch": rng.randint(25, 75), "speed": rng.randint(135, 185),
        })
    return speakers


def synthesise(job) -> tuple[np.ndarray, str]:
    """One utterance: (float32 waveform at ``sample_rate``, the text spoken). Raises DemoError."""
    exe, voice, pitch, speed, text, sample_rate = job
    proc = subprocess.run([exe, "-v", voice, "-p", str(pitch), "-s", str(speed), "--stdout", text], capture_output=True, timeout=60)
    if proc.returncode != 0 or len(proc.stdout) < 100:
        raise DemoError(f"espeak-ng failed for voice {voice}: {proc.stderr.decode(errors='ignore')[:200]}")
    head = proc.stdout[:44]  # --stdout writes a canonical 44-byte 16-bit PCM WAV header with a streaming length
    if head[:4] != b"RIFF" or head[8:12] != b"WAVE" or head[36:40] != b"data":
        raise DemoError(f"espeak-ng wrote an unexpected WAV header for voice {voice}")
    rate = int.from_bytes(head[24:28], "little")
    raw = np.frombuffer(proc.stdout[44:44 + (len(proc.stdout) - 44) // 2 * 2], dtype="<i2").astype(np.float32) / 32768.0
    wav = soxr.resample(raw, rate, sample_rate).astype(np.float32)
    # trim espeak's leading/trailing silence to 100 ms
    loud = np.flatnonzero(np.abs(wav) > 1e-3)
    if loud.size:
        pad = sample_rate // 10
        wav = wav[max(0, loud[0] - pad): loud[-1] + pad]
    return wav, text


def prepare_demo(
    out_dir, minutes: float = 45.0, seed: int = 0, num_speakers: int = 48, test_speakers: int = 6, dev_speakers: int = 2,
    sample_rate: int = 16000, num_workers: int = 2, progress: bool = True, language: str = "en",
) -> PrepareReport:
    """Synthesise ~``minutes`` of speech in ``language`` (en, or one of ``LANGUAGES``) into ``out_dir/audio``
    and prepare it into ``out_dir`` (which appears only when all of it is written; an earlier demo corpus
    there is replaced)."""
    exe = espeak_binary()
    source = f"uniwav demo corpus (minutes={minutes:g}, seed={seed}, speakers={num_speakers}, test={test_speakers}, dev={dev_speakers})"
    if not is_english(language):
        source = source[:-1] + f", language={language})"
        load_sentences(language)  # a missing fortunes package is said before anything is written
    with prepared_folder(out_dir, source) as staging:
        test_ids, dev_ids = _synthesise_into(staging, exe, minutes, seed, num_speakers, test_speakers, dev_speakers, sample_rate,
                                             num_workers, progress, language)
        result = prepare_into(staging / "audio", staging, Path(out_dir).resolve(), sample_rate=sample_rate, test_speakers=test_ids,
                              dev_speakers=dev_ids, num_workers=num_workers, progress=progress, language=language)
        result.source = source
        atomic_write_text(staging / REPORT, json.dumps(result.__dict__, indent=1))
    return result


def _synthesise_into(out_dir: Path, exe: str, minutes: float, seed: int, num_speakers: int, test_speakers: int, dev_speakers: int,
                     sample_rate: int, num_workers: int, progress: bool, language: str = "en") -> tuple[list, list]:
    """The demo's audio and transcripts in ``out_dir/audio/<speaker>/``; returns (test speakers, dev speakers)."""
    audio_dir = out_dir / "audio"
    rng = random.Random(seed)
    sentences = load_sentences(language)
    rng.shuffle(sentences)
    n_test_sentences = max(1, len(sentences) // 8)
    pools = {"test": sentences[:n_test_sentences], "train": sentences[n_test_sentences:]}
    speakers = make_speakers(num_speakers, seed, language)
    test_ids = [s["id"] for s in speakers[:test_speakers]]
    dev_ids = [s["id"] for s in speakers[test_speakers:test_speakers + dev_speakers]]
    # about 3 s per sentence; synthesise a bit more than needed, keep utterances in order until the budget is met
    n_utts = int(minutes * 60 / 3.0 * 1.15) + len(speakers)
    jobs, meta = [], []
    for i in range(n_utts):
        spk = speakers[i % len(speakers)]
        pool = pools["test" if spk["id"] in test_ids else "train"]
        text = pool[rng.randrange(len(pool))]
        jobs.append((exe, spk["voice"], spk["pitch"], spk["speed"], text, sample_rate))
        meta.append((spk["id"], f"{spk['id']}_{i:05d}"))
    total, budget = 0.0, minutes * 60
    with ProcessPoolExecutor(max_workers=max(1, num_workers)) as pool:
        bar = tqdm(total=round(budget), unit="s audio", desc="synthesising demo corpus", disable=not progress)
        for (spk_id, utt_id), (wav, text) in zip(meta, pool.map(synthesise, jobs, chunksize=8)):
            if total >= budget:
                break
            write_audio(audio_dir / spk_id / f"{utt_id}.wav", wav, sample_rate)
            atomic_write_text(audio_dir / spk_id / f"{utt_id}.txt", text + "\n")
            total += len(wav) / sample_rate
            bar.update(round(min(len(wav) / sample_rate, max(0.0, budget - bar.n))))
        bar.close()
    atomic_write_text(out_dir / "speakers.tsv", "".join(f"{s['id']}\t{s['voice']}\t{s['pitch']}\t{s['speed']}\n" for s in speakers))
    return test_ids, dev_ids
