"""Preparing a corpus never loses or silently changes a user's data: whole folders or nothing, numbers
spelled out, bad split lists and broken files named, evaluation-only corpora supported."""

import json

import pytest

from uniwav.cli.main import main
from uniwav.data.manifests import DataError, available_splits, load_cuts
from uniwav.data.prepare_folder import prepare_folder
from uniwav.data.text import normalize_text, unspoken_characters

from test_prepare import make_tree


def prepare(root, out, **kwargs):
    return prepare_folder(root, out, progress=False, num_workers=1, **kwargs)


def test_numbers_and_symbols_are_spelled_out_and_the_rest_is_named():
    assert normalize_text("saves 9") == "saves nine"
    assert normalize_text("I have 42 cats, 3.5% of 1,000 in the 1990s; the 2nd one costs $5") == (
        "i have forty two cats three point five percent of one thousand in the nineteen nineties the second one costs five dollars")
    assert unspoken_characters("I have 42 cats!") == [] and sorted(unspoken_characters("東京 x²")) == sorted(["2", "東", "京"])


def test_tts_refuses_text_it_would_speak_without_some_words():
    import torch

    from uniwav.config import TTSModelConfig
    from uniwav.data.text import VocabularyError
    from uniwav.models.tts import TTSModel
    from uniwav.models.uniwav import UniWav

    from conftest import small_model_config

    tts = TTSModel.from_pretrained_backbone(UniWav(small_model_config()), TTSModelConfig(vocab=list(" 'abcdefghijklmnopqrstuvwxyz")))
    assert tts.encode_text("I have 42 cats") == tts.encode_text("i have forty two cats")
    with pytest.raises(VocabularyError, match="東京"):
        tts.encode_text("Tokyo is 東京")
    assert torch.is_tensor(torch.tensor(tts.encode_text("fine, thanks!")))


def test_prepare_into_a_foreign_folder_is_refused_and_a_rebuild_leaves_nothing_stale(tmp_path):
    root = make_tree(tmp_path / "corpus")
    out = tmp_path / "data"
    (out / "audio").mkdir(parents=True)
    (out / "audio" / "mine.txt").write_text("my notes")
    with pytest.raises(DataError, match="not empty and is not a folder `uniwav prepare` wrote"):
        prepare(root, out)
    assert (out / "audio" / "mine.txt").read_text() == "my notes" and sorted(p.name for p in out.rglob("*")) == ["audio", "mine.txt"]
    fresh = tmp_path / "fresh"
    prepare(root, fresh, test_speakers=["s4"], dev_speakers=["s5"])
    assert set(available_splits(fresh)) == {"train", "dev", "test"}
    prepare(root, fresh, test_speakers=["s4"], dev_speakers=[])  # the same input again: rebuilt as a whole
    assert set(available_splits(fresh)) == {"train", "test"}  # no stale dev split
    assert not list(tmp_path.glob(".fresh*"))  # no staging folder left
    other = make_tree(tmp_path / "other", n_speakers=3)
    with pytest.raises(DataError, match="prepared from"):
        prepare(other, fresh)
    (tmp_path / "afile").write_text("x")
    with pytest.raises(DataError, match="is a file"):
        prepare(root, tmp_path / "afile")


def test_a_failed_prepare_leaves_no_folder(tmp_path):
    root = tmp_path / "corpus"
    (root / "s0").mkdir(parents=True)
    (root / "s0" / "bad.wav").write_bytes(b"RIFF nonsense")
    with pytest.raises(DataError, match="no usable audio"):
        prepare(root, tmp_path / "data")
    assert not (tmp_path / "data").exists() and not list(tmp_path.glob(".data*"))


def test_split_lists_with_unknown_or_repeated_ids_are_refused(tmp_path):
    root = make_tree(tmp_path / "corpus", n_speakers=2, per_speaker=2)
    rows = ["s0_u0\ttrain", "s0_u1\ttrain", "s1_u0\ttest", "s1_u1\ttest"]
    (tmp_path / "dup.tsv").write_text("\n".join(rows + ["s1_u0\ttrain"]))
    with pytest.raises(DataError, match=r"listed twice: s1_u0 \(line 5\)"):
        prepare(root, tmp_path / "a", splits_file=tmp_path / "dup.tsv")
    (tmp_path / "unknown.tsv").write_text("\n".join(rows + ["ghost_1\ttest", "ghost_2\tdev"]))
    with pytest.raises(DataError, match="2 ids are not utterances of the audio folder: ghost_1, ghost_2"):
        prepare(root, tmp_path / "b", splits_file=tmp_path / "unknown.tsv")


def test_truncated_wav_broken_transcripts_and_broken_test_files_are_named(tmp_path):
    root = make_tree(tmp_path / "corpus")
    whole = (root / "s0" / "s0_u0.wav").read_bytes()
    (root / "s0" / "s0_u0.wav").write_bytes(whole[: len(whole) // 2])  # a copy cut short
    (root / "s1" / "s1_u0.txt").write_bytes("caf\xe9".encode("latin-1"))  # not UTF-8
    (root / "s4" / "broken.wav").write_bytes(b"RIFF....WAVEfmt garbage")  # a test speaker's broken file, no transcript
    report = prepare(root, tmp_path / "data", test_speakers=["s4"], dev_speakers=["s5"])
    warnings = {p.split("/")[-1]: why for p, why in report.warnings}
    assert "truncated" in warnings["s0_u0.wav"]
    problems = {p.split("/")[-1]: why for p, why in report.problems}
    assert "not UTF-8" in problems["s1_u0.wav"] and "s1_u0.txt" in problems["s1_u0.wav"]
    assert "not readable" in problems["broken.wav"]
    (root / "transcripts.tsv").write_bytes(b"s0_u1\tna\xefve\n")
    with pytest.raises(DataError, match="transcripts.tsv: not UTF-8"):
        prepare(root, tmp_path / "data2")


def test_an_evaluation_only_corpus_is_prepared_and_scored_with_the_models_statistics(tmp_path, capsys):
    root = make_tree(tmp_path / "corpus", n_speakers=2, per_speaker=2)
    (tmp_path / "splits.tsv").write_text("".join(f"s{s}_u{u}\ttest\n" for s in range(2) for u in range(2)))
    assert main(["prepare", "folder", "--audio-dir", str(root), "--out", str(tmp_path / "data"), "--splits", str(tmp_path / "splits.tsv"),
                 "--jobs", "1"]) == 0
    assert available_splits(tmp_path / "data") == ["test"] and not list((tmp_path / "data").glob("feature_stats*"))
    from uniwav.config import CTCModelConfig, EncoderConfig, FeatureConfig
    from uniwav.models.ctc import CTCModel

    model = CTCModel(CTCModelConfig(features=FeatureConfig(n_mels=20, norm_mean=[0.0] * 20, norm_std=[1.0] * 20),
                                    encoder=EncoderConfig(dim=16, layers=1, heads=2, ffn_dim=32, pos_conv_kernel=5, pos_conv_groups=4),
                                    vocab=["<blank>", *" 'abcdefghijklmnopqrstuvwxyz"]))
    model.save_pretrained(tmp_path / "asr")
    assert main(["evaluate", "asr", "--model", str(tmp_path / "asr"), "--data", str(tmp_path / "data"), "--split", "test",
                 "--json", str(tmp_path / "r.json")]) == 0
    assert json.loads((tmp_path / "r.json").read_text())["n"] == 4
    assert len(load_cuts(tmp_path / "data", "test")) == 4


@pytest.mark.parametrize("argv, message", [
    (["prepare", "demo", "--out", "X", "--sample-rate", "0"], "must be positive"),
    (["prepare", "folder", "--audio-dir", "X", "--out", "Y", "--jobs", "-2"], "must be positive"),
])
def test_impossible_numbers_are_refused_by_the_argument_parser(argv, message, capsys):
    with pytest.raises(SystemExit) as e:
        main(argv)
    assert e.value.code == 2 and message in capsys.readouterr().err


def test_a_rebuild_keeps_every_file_prepare_did_not_write(tmp_path):
    root = make_tree(tmp_path / "corpus")
    out = tmp_path / "data"
    prepare(root, out, test_speakers=["s4"], dev_speakers=["s5"])
    (out / "my_notes.txt").write_text("mine")
    (out / "lm").mkdir()
    (out / "lm" / "lm.arpa").write_text("x")
    (out / "train" / "mine.txt").write_text("also mine")
    (out / "experiments").mkdir()  # an empty folder of the user's
    (out / "feature_stats-abc.json").write_text("{}")  # derived from the old train split: must not survive
    prepare(root, out, test_speakers=["s4"], dev_speakers=[])
    assert (out / "my_notes.txt").read_text() == "mine" and (out / "lm" / "lm.arpa").read_text() == "x"
    assert (out / "train" / "mine.txt").read_text() == "also mine" and (out / "experiments").is_dir()
    assert not (out / "feature_stats-abc.json").exists() and set(available_splits(out)) == {"train", "test"}
    assert not list(tmp_path.glob(".data*"))  # no staging or old folder left
    (out / "test" / "cuts.jsonl.gz").unlink()
    (out / "test" / "cuts.jsonl.gz").mkdir()  # a user's folder where prepare writes a file: refused, nothing changed
    (out / "test" / "cuts.jsonl.gz" / "x").write_text("x")
    before = sorted(p.relative_to(out).as_posix() for p in out.rglob("*"))
    with pytest.raises(DataError, match="where prepare writes its own"):
        prepare(root, out, test_speakers=["s4"], dev_speakers=[])
    assert sorted(p.relative_to(out).as_posix() for p in out.rglob("*")) == before


def test_a_corpus_too_small_for_a_held_out_split_says_so_and_how_to_get_one(tmp_path, capsys):
    root = make_tree(tmp_path / "corpus", n_speakers=1, per_speaker=4)
    assert main(["prepare", "folder", "--audio-dir", str(root), "--out", str(tmp_path / "data")]) == 0
    report = json.loads((tmp_path / "data" / "prepare_report.json").read_text())
    assert list(report["splits"]) == ["train"]
    (where, warning), = [w for w in report["warnings"] if "split" in w[1]]
    assert "no dev or test split" in warning and "--splits FILE" in warning and "no dev or test split" in capsys.readouterr().out
