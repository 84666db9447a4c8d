"""A user's mistake gets one clear line naming the file and the problem (exit 2), never a traceback,
and nothing is lost: bad outputs are refused before any work, one bad input does not sink a batch."""

import argparse
import importlib
import os
import shutil
import subprocess
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from uniwav.cli.main import SUBCOMMANDS, main
from uniwav.config import FeatureConfig, VocoderModelConfig
from uniwav.inference.codes import CodesError, load_codes, save_codes
from uniwav.models.vocoder import Vocoder

from conftest import tone, write_wav
from test_tokens import small_tokenizer, write_public_vocos


def run_cli(capsys, *argv) -> tuple[int, str]:
    capsys.readouterr()
    try:
        code = main(list(argv))
    except SystemExit as e:  # argparse refusals
        code = e.code
    err = capsys.readouterr().err
    assert "Traceback" not in err
    return code, err


def test_every_option_of_every_command_says_what_it_does():
    silent = []

    def walk(parser, prefix):
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                for name, child in action.choices.items():
                    walk(child, f"{prefix} {name}")
            elif not action.help and action.dest != "help":
                silent.append(f"{prefix} {'/'.join(action.option_strings) or action.dest}")

    for name, module in SUBCOMMANDS.items():
        parser = argparse.ArgumentParser()
        importlib.import_module(module).add_arguments(parser)
        walk(parser, name)
    assert not silent, silent


def test_help_shows_defaults(capsys):
    with pytest.raises(SystemExit):
        main(["tts", "--help"])
    out = capsys.readouterr().out
    assert "(default: 1.0)" in out and "(default: 0)" in out  # --speed, --seed


@pytest.fixture(scope="module")
def tts_model(tmp_path_factory):
    from uniwav.config import TTSModelConfig
    from uniwav.models.tts import TTSModel
    from uniwav.models.uniwav import UniWav

    from conftest import small_model_config

    folder = tmp_path_factory.mktemp("tts") / "model"
    TTSModel.from_pretrained_backbone(UniWav(small_model_config()), TTSModelConfig(vocab=list(" 'abcdefghijklmnopqrstuvwxyz"))
                                      ).save_pretrained(folder)
    return folder


@pytest.mark.parametrize("output, message", [(".", "is a folder"), ("x.mp3", "cannot write .mp3")])
def test_tts_refuses_an_unwritable_output_before_synthesising(tts_model, tmp_path, capsys, output, message):
    write_wav(tmp_path / "p.wav", tone(2.0))
    code, err = run_cli(capsys, "tts", "--model", str(tts_model), "--prompt", str(tmp_path / "p.wav"), "--text", "hello",
                        "-o", str(tmp_path / output))
    assert code == 2 and message in err


@pytest.mark.parametrize("flag, value, message", [("--nfe", "0", "must be positive"), ("--speed", "0", "must be positive"),
                                                  ("--nfe", "-3", "must be positive"),
                                                  ("--seed", "99999999999999999999999", "a seed is a whole number from 0 to 4294967295")])
def test_tts_refuses_impossible_settings(tts_model, tmp_path, capsys, flag, value, message):
    code, err = run_cli(capsys, "tts", "--model", str(tts_model), "--prompt", "p.wav", "--text", "a", "-o", str(tmp_path / "o.wav"),
                        flag, value)
    assert code == 2 and message in err


def test_tts_refuses_text_with_words_it_cannot_say(tts_model, tmp_path, capsys):
    write_wav(tmp_path / "p.wav", tone(2.0))
    code, err = run_cli(capsys, "tts", "--model", str(tts_model), "--prompt", str(tmp_path / "p.wav"), "--text", "I live in 東京",
                        "-o", str(tmp_path / "o.wav"))
    assert code == 2 and "cannot speak" in err and not (tmp_path / "o.wav").exists()


def _forge(path, tmp_path, name, change):
    with np.load(path) as z:
        arrays = dict(z)
    change(arrays)
    np.savez(tmp_path / name, **arrays)
    return tmp_path / name


def test_damaged_or_forged_codes_files_are_refused(tmp_path):
    tok = small_tokenizer(size=16).eval()
    path = tmp_path / "codes.npz"
    save_codes(path, ["a.wav"], [np.random.default_rng(0).integers(0, 16, (30, 2))], tok)
    data = path.read_bytes()
    (tmp_path / "trunc.npz").write_bytes(data[: len(data) // 2])
    with pytest.raises(CodesError, match="trunc.npz: not a readable uniwav codes file"):
        load_codes(tmp_path / "trunc.npz", tok)
    cases = {
        "negative": (lambda a: a.update(codes_0=-a["codes_0"] - 1), "outside 0..15"),
        "large": (lambda a: a.update(codes_0=a["codes_0"] + 16), "outside 0..15"),
        "float": (lambda a: a.update(codes_0=a["codes_0"].astype(np.float32) + 0.5), "not whole numbers"),
        "shape": (lambda a: a.update(num_quantizers=np.array(1)), "the header says 1 codebook"),
    }
    for name, (change, message) in cases.items():
        with pytest.raises(CodesError, match=message):
            load_codes(_forge(path, tmp_path, f"{name}.npz", change), tok)
    assert zipfile.is_zipfile(path) and load_codes(path, tok).codes[0].shape == (30, 2)


def test_detokenize_gives_files_with_the_same_name_different_outputs(tmp_path):
    from uniwav.cli.detokenize import output_paths

    paths = output_paths(tmp_path / "out", ["a/x.wav", "b/x.wav", "c/y.flac", "d/x.wav"])
    assert [p.name for p in paths] == ["x.wav", "x-2.wav", "y.wav", "x-3.wav"]
    assert output_paths(tmp_path / "one.wav", ["a/x.wav"]) == [tmp_path / "one.wav"]


def test_public_vocos_with_missing_keys_or_code_is_refused(tmp_path):
    from uniwav.checkpoint import CheckpointError
    from uniwav.inference.vocoders import load_vocoder_model

    ref = Vocoder(VocoderModelConfig(features=FeatureConfig.vocos_24k(), dim=16, intermediate_dim=24, layers=1, padding="same"))
    write_public_vocos(tmp_path / "v", ref)
    cfg = yaml.safe_load((tmp_path / "v" / "config.yaml").read_text())
    del cfg["backbone"]["init_args"]["dim"]
    (tmp_path / "v" / "config.yaml").write_text(yaml.safe_dump(cfg))
    with pytest.raises(CheckpointError, match="config.yaml: not a Vocos config.yaml .key 'dim'"):
        load_vocoder_model(tmp_path / "v")
    write_public_vocos(tmp_path / "w", ref)

    class Exploit:
        def __reduce__(self):
            return (os.system, ("true",))

    torch.save({"payload": Exploit()}, tmp_path / "w" / "pytorch_model.bin")
    with pytest.raises(CheckpointError, match="refused to load"):
        load_vocoder_model(tmp_path / "w")


@pytest.fixture(scope="module")
def asr_model(tmp_path_factory):
    from uniwav.config import CTCModelConfig, EncoderConfig
    from uniwav.models.ctc import CTCModel

    folder = tmp_path_factory.mktemp("asr") / "model"
    CTCModel(CTCModelConfig(features=FeatureConfig(n_mels=20), vocab=["<blank>", " ", "a"],
                            encoder=EncoderConfig(dim=16, layers=1, heads=2, ffn_dim=32, pos_conv_kernel=5, pos_conv_groups=4))
             ).save_pretrained(folder)
    return folder


def test_transcribe_reports_a_missing_or_broken_file_and_transcribes_the_rest(asr_model, tmp_path, capsys):
    write_wav(tmp_path / "good.wav", tone(1.0))
    (tmp_path / "broken.wav").write_bytes(b"RIFF junk")
    code = main(["transcribe", "--model", str(asr_model), str(tmp_path / "good.wav"), str(tmp_path / "missing.wav"),
                 str(tmp_path / "broken.wav")])
    out, err = capsys.readouterr()
    assert code == 2 and "good.wav" in out and "missing.wav: file not found" in err and "broken.wav: not readable" in err
    assert "2 of 3 files could not be read" in err


@pytest.mark.parametrize("seconds", ["0", "2"])
def test_transcribe_refuses_windows_shorter_than_their_overlap(asr_model, tmp_path, capsys, seconds):
    write_wav(tmp_path / "a.wav", tone(1.0))
    code, err = run_cli(capsys, "transcribe", "--model", str(asr_model), str(tmp_path / "a.wav"), "--chunk-seconds", seconds)
    assert code == 2 and "--chunk-seconds must be longer" in err


def test_build_lm_refuses_order_zero(capsys):
    code, err = run_cli(capsys, "build-lm", "--data", "x", "--out", "y.arpa", "--order", "0")
    assert code == 2 and "must be positive" in err


def test_bench_skips_the_hubert_row_without_transformers_and_keeps_rows_as_they_finish(tmp_path, monkeypatch):
    import importlib.util
    import json

    from uniwav.bench import run as bench

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "transformers" else real(name, *a))
    assert "not installed" in bench.hubert_row("tiny", "cpu", 1)["skipped"]
    saved = []
    monkeypatch.setattr(bench, "train_step", lambda *a, **k: {"step_seconds": 1.0, "mfu": 0.5, "matmul_tflops": 1.0})
    monkeypatch.setattr(bench, "memory", lambda *a, **k: (_ for _ in ()).throw(RuntimeError("the machine died")))
    with pytest.raises(RuntimeError, match="died"):
        bench.run_all(True, "cpu", [], compile=False, on_row=lambda rows: saved.append(json.loads(json.dumps(rows))))
    assert "train_step.tiny" in saved[-1]  # what was measured before the failure is kept


def test_install_script_fails_loudly_when_apt_cannot_update(tmp_path):
    fake = tmp_path / "bin"
    fake.mkdir()
    for tool in ("bash", "dirname", "id", "ls", "cat"):
        (fake / tool).symlink_to(shutil.which(tool))
    (fake / "apt-get").write_text("#!/bin/bash\necho 'E: Could not get lock /var/lib/dpkg/lock-frontend' >&2\nexit 100\n")
    (fake / "apt-get").chmod(0o755)
    root = Path(__file__).resolve().parents[1]
    proc = subprocess.run(["bash", str(root / "install.sh")], env={"PATH": str(fake), "HOME": str(tmp_path)}, capture_output=True, text=True)
    assert proc.returncode == 1 and "'apt-get update' failed" in proc.stderr and "another apt process holds the lock" in proc.stderr


@pytest.mark.parametrize("text", ["hi", "a"])
def test_tts_of_a_very_short_text_gives_audio(tts_model, tmp_path, capsys, text):
    prompt = tmp_path / "p.wav"
    write_wav(prompt, tone(2.0))
    out = tmp_path / "out.wav"
    code, err = run_cli(capsys, "tts", "--model", str(tts_model), "--prompt", str(prompt), "--text", text, "-o", str(out), "--nfe", "2")
    assert code == 0, err
    import soundfile as sf

    assert sf.info(str(out)).frames > 0


@pytest.mark.parametrize("ms", [30, 45])
def test_very_short_codes_decode_and_no_frames_is_refused(tmp_path, capsys, ms):
    tok = small_tokenizer()
    tok.save_pretrained(tmp_path / "tok")
    wav = tmp_path / "short.wav"
    write_wav(wav, tone(ms / 1000))
    codes = tmp_path / "c.npz"
    assert run_cli(capsys, "tokenize", "--model", str(tmp_path / "tok"), str(wav), "-o", str(codes))[0] == 0
    code, err = run_cli(capsys, "detokenize", "--model", str(tmp_path / "tok"), str(codes), "-o", str(tmp_path / "o.wav"), "--nfe", "2")
    assert code == 0 and (tmp_path / "o.wav").stat().st_size > 44, err
    empty = _forge(codes, tmp_path, "empty.npz", lambda a: a.update(codes_0=a["codes_0"][:0]))  # from another tool
    code, err = run_cli(capsys, "detokenize", "--model", str(tmp_path / "tok"), str(empty), "-o", str(tmp_path / "e.wav"))
    assert code == 2 and "no frames" in err and not (tmp_path / "e.wav").exists()
    write_wav(tmp_path / "tiny.wav", tone(0.005))
    code, err = run_cli(capsys, "tokenize", "--model", str(tmp_path / "tok"), str(tmp_path / "tiny.wav"), "-o", str(tmp_path / "t.npz"))
    assert code == 2 and "tiny.wav" in err and "shorter than one frame" in err and not (tmp_path / "t.npz").exists()
