"""Word timestamps from CTC posteriors: planted alignments are recovered, times stay absolute across
the 30 s windows of long files, and subtitles parse back."""

import datetime
import json

import numpy as np
import pytest
import torch

from uniwav.inference.timestamps import Word, cues, to_srt, to_vtt, word_timestamps
from uniwav.inference.transcribe import transcribe

from test_asr import small_ctc

SYMBOLS = ["<blank>", " ", "a", "b", "c"]


def planted(T: int, spans: list[tuple[str, int, int]], peak: float = 0.9) -> np.ndarray:
    """log-probs [T, V]: blank everywhere except each (symbol, start, end) span."""
    probs = np.full((T, len(SYMBOLS)), (1 - peak) / (len(SYMBOLS) - 1))
    probs[:, 0] = peak
    for symbol, s, e in spans:
        probs[s:e] = (1 - peak) / (len(SYMBOLS) - 1)
        probs[s:e, SYMBOLS.index(symbol)] = peak
    return np.log(probs)


def test_planted_word_boundaries_are_recovered():
    spans = [("a", 10, 12), ("b", 15, 16), (" ", 20, 22), ("c", 30, 33), ("a", 35, 36), ("b", 40, 42)]
    words = word_timestamps(planted(60, spans), "ab cab", SYMBOLS, frame_rate=50.0)
    assert [w.word for w in words] == ["ab", "cab"]
    assert (words[0].start, words[0].end) == (10 / 50, 16 / 50) and (words[1].start, words[1].end) == (30 / 50, 42 / 50)
    assert all(0.85 < w.confidence <= 1.0 for w in words)
    unsure = word_timestamps(planted(60, spans, peak=0.5), "ab cab", SYMBOLS, frame_rate=50.0)
    assert all(u.confidence < w.confidence for u, w in zip(unsure, words))
    assert word_timestamps(planted(10, []), "", SYMBOLS, 50.0) == []


def test_real_model_times_are_ordered_and_inside_the_audio():
    model = small_ctc()
    wav = np.random.default_rng(0).standard_normal(16000 * 3).astype(np.float32)
    result = transcribe(model, wav, timestamps=True)
    assert result["text"] == " ".join(w["word"] for w in result["words"])
    starts = [w["start"] for w in result["words"]]
    assert starts == sorted(starts) and all(0 <= w["start"] <= w["end"] <= 3.0 for w in result["words"])


class ClickModel:
    """A stand-in CTC model that hears a click: frame t says "a" when the sample at its centre is 1,
    " " when it is -1, else blank. Long files are cut into windows; the times must not move."""

    def __init__(self, model):
        self.cfg, self.vocab = model.cfg, model.vocab

    def log_probs(self, audio, lengths):
        hop = self.cfg.features.hop_length
        frames = 1 + lengths // hop
        out = torch.full((audio.shape[0], int(frames.max()), len(self.vocab)), -20.0)
        out[..., 0] = 0.0
        for b in range(audio.shape[0]):
            n = int(frames[b])
            x = audio[b, (torch.arange(n) * hop).clamp(max=int(lengths[b]) - 1)]
            for value, symbol in ((1.0, "a"), (-1.0, " ")):
                hit = torch.nonzero(x == value)[:, 0]
                out[b, hit, 0] = -20.0
                out[b, hit, self.vocab.index[symbol]] = 0.0
        return out, frames


@pytest.mark.parametrize("chunk", [30.0, 7.0])
def test_times_stay_absolute_across_the_windows_of_a_long_file(chunk):
    model = ClickModel(small_ctc())
    sr, hop = 16000, model.cfg.features.hop_length
    wav = np.zeros(sr * 70, dtype=np.float32)
    clicks = [5.0, 34.9, 65.02]
    for k, t in enumerate(clicks):
        at = int(t * 50) * hop  # a frame centre
        wav[at: at + 3 * hop] = 1.0  # "a" for three frames
        if k < len(clicks) - 1:
            wav[at + 5 * hop: at + 6 * hop] = -1.0  # then a space
    result = transcribe(model, wav, timestamps=True, chunk_seconds=chunk)
    assert [w["word"] for w in result["words"]] == ["a", "a", "a"]
    for w, t in zip(result["words"], clicks):
        assert abs(w["start"] - int(t * 50) / 50) < 1e-6 and abs(w["end"] - (int(t * 50) + 3) / 50) < 1e-6


def test_subtitles_parse_back():
    import io

    import srt
    import webvtt

    words = [Word(f"w{i}", 0.5 * i, 0.5 * i + 0.4, 0.9) for i in range(30)]
    groups = cues(words, max_seconds=6.0, max_chars=42)
    assert all(e - s <= 6.0 and len(t) <= 42 for s, e, t in groups) and " ".join(t for *_, t in groups) == " ".join(w.word for w in words)
    parsed = list(srt.parse(to_srt(words)))
    assert [p.content for p in parsed] == [t for *_, t in groups]
    assert parsed[0].start == datetime.timedelta(seconds=0) and parsed[-1].end == datetime.timedelta(seconds=words[-1].end)
    vtt = webvtt.from_buffer(io.StringIO(to_vtt(words)))
    assert [c.text for c in vtt.captions] == [t for *_, t in groups]
    start = groups[1][0]
    assert vtt.captions[1].start == f"00:00:{int(start):02d}.{int(round(start % 1 * 1000)):03d}"


def test_transcribe_cli_writes_timestamps_and_subtitles(tmp_path, capsys):
    from conftest import tone, write_wav
    from uniwav.cli.main import main

    model = small_ctc()
    model.save_pretrained(tmp_path / "asr")
    write_wav(tmp_path / "a.wav", tone(2.0))
    assert main(["transcribe", "--model", str(tmp_path / "asr"), str(tmp_path / "a.wav"), "--timestamps"]) == 0
    row = json.loads(capsys.readouterr().out.strip())
    assert row["file"].endswith("a.wav") and "words" in row
    for fmt in ("srt", "vtt"):
        assert main(["transcribe", "--model", str(tmp_path / "asr"), str(tmp_path / "a.wav"), "--format", fmt,
                     "--output-dir", str(tmp_path / "subs")]) == 0
        assert (tmp_path / "subs" / f"a.{fmt}").is_file()
