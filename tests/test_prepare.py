import json
import shutil

import numpy as np
import pytest

from uniwav.data.audio import AudioError, read_audio
from uniwav.data.manifests import DataError, load_cuts, require_text
from uniwav.data.prepare_folder import assign_splits, prepare_folder
from uniwav.data.stats import ensure_stats, stats_path
from uniwav.data.text import normalize_text
from uniwav.config import FeatureConfig

from conftest import SR, tone, write_wav


def make_tree(root, n_speakers=6, per_speaker=3):
    for s in range(n_speakers):
        for u in range(per_speaker):
            write_wav(root / f"s{s}" / f"s{s}_u{u}.wav", tone(0.5 + 0.1 * u, 200 + 30 * s, seed=s * 10 + u))
            (root / f"s{s}" / f"s{s}_u{u}.txt").write_text(f"Hello, speaker {s}! Utterance {u}.")
    return root


def test_prepare_folder_handles_bad_files_and_converts(tmp_path):
    root = make_tree(tmp_path / "corpus")
    (root / "s0" / "corrupt.wav").write_bytes(b"RIFF....WAVEfmt garbage")
    write_wav(root / "s0" / "empty.wav", np.zeros(0, dtype=np.float32))
    (root / "s0" / "notes.mp4").write_bytes(b"\x00\x01")
    write_wav(root / "s1" / "stereo.wav", tone(0.6, channels=2))
    (root / "s1" / "stereo.txt").write_text("two channels")
    write_wav(root / "s2" / "rate8k.wav", tone(0.6, sr=8000), sr=8000)
    (root / "s2" / "rate8k.txt").write_text("eight kilohertz")
    (root / "s3" / "s3_u0.txt").write_text("   \n")  # empty transcript
    original = (root / "s1" / "stereo.wav").read_bytes()

    out = tmp_path / "data"
    report = prepare_folder(root, out, test_speakers=["s4"], dev_speakers=["s5"], progress=False, num_workers=1)
    skipped = {p.split("/")[-1]: why for p, why in report.problems}
    assert set(skipped) == {"corrupt.wav", "empty.wav", "notes.mp4"}
    assert "not readable" in skipped["corrupt.wav"] and "no samples" in skipped["empty.wav"] and "not an audio file" in skipped["notes.mp4"]
    converted = {p.split("/")[-1]: what for p, what in report.converted}
    assert "mono" in converted["stereo.wav"] and "8000 Hz -> 16000 Hz" in converted["rate8k.wav"]
    assert any("empty transcript" in why for _, why in report.warnings)
    assert (root / "s1" / "stereo.wav").read_bytes() == original  # originals untouched

    train = load_cuts(out, "train")
    ids = {c.id for c in train}
    assert {"stereo", "rate8k"} <= ids and "corrupt" not in ids
    for cut in train:
        audio = cut.load_audio()
        assert audio.shape[0] == 1 and cut.sampling_rate == SR
    cut = train["rate8k"]
    assert abs(cut.duration - 0.6) < 0.01 and cut.supervisions[0].text == "eight kilohertz"
    assert train["s3_u0"].supervisions[0].text is None
    assert train["s0_u1"].supervisions[0].text == "hello speaker zero utterance one"  # numbers spelled out, not dropped
    assert json.loads((out / "prepare_report.json").read_text())["problems"]
    assert report.splits["test"]["speakers"] == 1 and report.splits["dev"]["speakers"] == 1


def test_default_split_is_speaker_disjoint_and_deterministic(tmp_path):
    speakers = [f"spk{i}" for i in range(40)]
    a = assign_splits(speakers, seed=3)
    assert a == assign_splits(list(reversed(speakers)), seed=3)
    counts = {s: list(a.values()).count(s) for s in ("train", "dev", "test")}
    assert counts == {"train": 34, "dev": 2, "test": 4}
    root = make_tree(tmp_path / "corpus", n_speakers=12)
    prepare_folder(root, tmp_path / "data", progress=False, num_workers=1)
    spk = {split: {c.supervisions[0].speaker for c in load_cuts(tmp_path / "data", split)} for split in ("train", "dev", "test")}
    assert spk["test"] and spk["dev"] and not (spk["train"] & spk["test"]) and not (spk["train"] & spk["dev"]) and not (spk["dev"] & spk["test"])


def test_splits_file_and_its_errors(tmp_path):
    root = make_tree(tmp_path / "corpus", n_speakers=2, per_speaker=2)
    splits = tmp_path / "splits.tsv"
    splits.write_text("s0_u0\ttrain\ns0_u1\ttest\ns1_u0\ttrain\ns1_u1\tdev\n")
    prepare_folder(root, tmp_path / "data", splits_file=splits, progress=False, num_workers=1)
    assert [c.id for c in load_cuts(tmp_path / "data", "test")] == ["s0_u1"]
    splits.write_text("s0_u0\ttrain\ns0_u1\ttest\ns1_u0\ttrain\n")
    with pytest.raises(DataError, match="s1_u1"):
        prepare_folder(root, tmp_path / "data2", splits_file=splits, progress=False)
    splits.write_text("s0_u0\tvalidation\n")
    with pytest.raises(DataError, match="train\\|dev\\|test"):
        prepare_folder(root, tmp_path / "data3", splits_file=splits, progress=False)


def test_missing_transcript_in_test_split_is_an_error_naming_it(tmp_path):
    root = make_tree(tmp_path / "corpus", n_speakers=3, per_speaker=2)
    (root / "s2" / "s2_u1.txt").unlink()
    with pytest.raises(DataError, match="s2_u1"):
        prepare_folder(root, tmp_path / "data", test_speakers=["s2"], dev_speakers=[], progress=False)
    assert not (tmp_path / "data" / "train").exists()  # nothing half-written


def test_transcripts_tsv_and_unknown_speaker_lists(tmp_path):
    root = tmp_path / "corpus"
    for s in range(3):
        write_wav(root / f"s{s}" / f"a{s}.flac", tone(0.4), subtype="PCM_16")
    (root / "transcripts.tsv").write_text("a0\tFirst one.\na1\tSecond\na2\tThird\n")
    prepare_folder(root, tmp_path / "data", test_speakers=["s2"], dev_speakers=[], progress=False, num_workers=1)
    train = load_cuts(tmp_path / "data", "train")
    assert sorted(c.supervisions[0].text for c in train) == ["first one", "second"]
    require_text(train, "train")
    with pytest.raises(DataError, match="unknown speakers: nobody"):
        prepare_folder(root, tmp_path / "x", test_speakers=["nobody"], progress=False)
    with pytest.raises(DataError, match="does not exist"):
        prepare_folder(tmp_path / "missing", tmp_path / "x", progress=False)


def test_read_audio_errors_name_the_file(tmp_path):
    bad = tmp_path / "bad.wav"
    bad.write_text("not audio")
    with pytest.raises(AudioError, match="bad.wav: not readable"):
        read_audio(bad, SR)
    nan = write_wav(tmp_path / "nan.wav", np.array([0.0, np.nan, 0.1], dtype=np.float32), subtype="FLOAT")
    with pytest.raises(AudioError, match="NaN"):
        read_audio(nan, SR)


def test_require_text_names_utterance(tmp_path):
    root = make_tree(tmp_path / "corpus", n_speakers=1, per_speaker=2)
    (root / "s0" / "s0_u1.txt").unlink()
    prepare_folder(root, tmp_path / "data", test_speakers=[], dev_speakers=[], progress=False, num_workers=1)
    with pytest.raises(DataError, match="s0_u1.*no transcript"):
        require_text(load_cuts(tmp_path / "data", "train"), "train")
    with pytest.raises(DataError, match="no 'test' split"):
        load_cuts(tmp_path / "data", "test")


def test_feature_stats_are_cached_per_config(tmp_path):
    root = make_tree(tmp_path / "corpus", n_speakers=2, per_speaker=2)
    prepare_folder(root, tmp_path / "data", test_speakers=[], dev_speakers=[], progress=False, num_workers=1)
    cfg = ensure_stats(tmp_path / "data", FeatureConfig(), progress=False)
    assert len(cfg.norm_mean) == 80 and all(s > 0 for s in cfg.norm_std)
    assert stats_path(tmp_path / "data", FeatureConfig()).is_file()
    other = FeatureConfig(n_mels=40)
    assert stats_path(tmp_path / "data", other) != stats_path(tmp_path / "data", FeatureConfig())
    assert len(ensure_stats(tmp_path / "data", other, progress=False).norm_mean) == 40


def test_normalize_text():
    assert normalize_text('  Héllo,   WORLD -- it\'s  "fine"! ') == "hello world it's fine"
    assert normalize_text("...") == ""


def test_demo_corpus_generation(tmp_path):
    if shutil.which("espeak-ng") is None:
        pytest.skip("espeak-ng is not installed (apt-get install espeak-ng fortunes-min)")
    from uniwav.data.prepare_demo import prepare_demo

    report = prepare_demo(tmp_path / "a", minutes=0.3, seed=1, num_speakers=5, test_speakers=1, dev_speakers=1, progress=False)
    again = prepare_demo(tmp_path / "b", minutes=0.3, seed=1, num_speakers=5, test_speakers=1, dev_speakers=1, progress=False)
    assert report.splits == again.splits and not report.problems
    train = load_cuts(tmp_path / "a", "train")
    a0 = next(iter(train))
    b0 = load_cuts(tmp_path / "b", "train")[a0.id]
    np.testing.assert_array_equal(a0.load_audio(), b0.load_audio())  # deterministic for a seed
    assert a0.supervisions[0].text and a0.sampling_rate == SR and a0.duration > 0.5
    train_text = {c.supervisions[0].text for c in train}
    test_text = {c.supervisions[0].text for c in load_cuts(tmp_path / "a", "test")}
    assert not train_text & test_text  # test sentences are never read in training
    assert len({c.supervisions[0].speaker for c in train}) == 3


def test_prepare_librispeech_layout(tmp_path):
    from uniwav.data.prepare_corpora import prepare_librispeech_dir

    root = tmp_path / "LibriSpeech"
    for part, spk in (("train-clean-100", "19"), ("dev-clean", "84"), ("test-clean", "121")):
        chapter = root / part / spk / "1000"
        lines = []
        for u in range(2):
            utt = f"{spk}-1000-{u:04d}"
            write_wav(chapter / f"{utt}.flac", tone(0.4, seed=u))
            lines.append(f"{utt} HELLO WORLD NUMBER {u}")
        (chapter / f"{spk}-1000.trans.txt").write_text("\n".join(lines) + "\n")
    written = prepare_librispeech_dir(root, tmp_path / "data", num_jobs=1)
    assert written == {"train": 2, "dev": 2, "test": 2}
    test = load_cuts(tmp_path / "data", "test")
    assert sorted(c.id for c in test) == ["121-1000-0000", "121-1000-0001"]
    assert test["121-1000-0001"].supervisions[0].text == "hello world number one"
    assert test["121-1000-0001"].supervisions[0].speaker == "121"
    with pytest.raises(DataError, match="no LibriSpeech parts"):
        prepare_librispeech_dir(tmp_path / "data", tmp_path / "x")
