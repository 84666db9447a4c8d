"""ONNX export (``uniwav export RUN --onnx DIR``): onnxruntime computes what torch computes for the
recogniser and the vocoder, at batch sizes and lengths other than the ones traced, padding included;
the CLI runs the exported files; what cannot be exported is refused with a clear message."""

import json

import pytest
import soundfile as sf
import torch

from uniwav.config import CTCModelConfig, VocoderModelConfig
from uniwav.models.ctc import CTCModel
from uniwav.models.vocoder import Vocoder

from conftest import small_model_config, tone

pytest.importorskip("onnxruntime", reason="the onnx extra is not installed (pip install 'uniwav[onnx]')")
from uniwav.inference.onnx import OnnxCTC, OnnxVocoder, export_onnx, load_onnx  # noqa: E402

SR = 16000


@pytest.fixture(scope="module")
def ctc_export(tmp_path_factory):
    torch.manual_seed(0)
    c = small_model_config()
    model = CTCModel(CTCModelConfig(features=c.features, encoder=c.encoder, vocab=["<blank>", " ", "a", "b", "c"])).eval()
    with torch.no_grad():  # a zero-initialised head would make every comparison trivially equal
        model.head.weight.normal_(0, 0.5)
    folder = tmp_path_factory.mktemp("ctc")
    model.save_pretrained(folder / "torch")
    export_onnx(model, folder / "onnx")
    return model, folder


@pytest.fixture(scope="module")
def vocoder_export(tmp_path_factory):
    torch.manual_seed(0)
    model = Vocoder(VocoderModelConfig(features=small_model_config().features, dim=16, intermediate_dim=32, layers=2)).eval()
    folder = tmp_path_factory.mktemp("vocoder")
    model.save_pretrained(folder / "torch")
    export_onnx(model, folder / "onnx")
    return model, folder


@pytest.mark.parametrize("lengths", [[SR], [SR, int(0.37 * SR), int(0.81 * SR)], [int(2.3 * SR), int(0.2 * SR)]])
def test_onnx_recogniser_equals_torch_on_padded_batches(ctc_export, lengths):
    model, folder = ctc_export
    onnx = load_onnx(folder / "onnx")
    assert isinstance(onnx, OnnxCTC) and onnx.vocab.symbols == model.vocab.symbols
    wav = torch.randn(len(lengths), max(lengths)) * 0.1
    expected, frames = model.log_probs(wav, torch.tensor(lengths))
    got, got_frames = onnx.log_probs(wav, torch.tensor(lengths))
    assert torch.equal(frames, got_frames) and got.shape == expected.shape
    for i, n in enumerate(frames.tolist()):  # valid frames; padded ones are not read by any decoder
        torch.testing.assert_close(got[i, :n], expected[i, :n], atol=1e-4, rtol=1e-4)
        alone, _ = onnx.log_probs(wav[i:i + 1, :lengths[i]])  # padding does not change an utterance's output
        torch.testing.assert_close(alone[0], got[i, :n], atol=1e-4, rtol=1e-4)


def test_onnx_transcripts_and_timestamps_equal_torch(ctc_export, tmp_path, capsys):
    from uniwav.cli.main import main
    from uniwav.inference.transcribe import transcribe

    from uniwav.inference.onnx import load_recogniser

    model, folder = ctc_export
    onnx = load_onnx(folder / "onnx")
    assert isinstance(load_recogniser(folder / "onnx"), OnnxCTC) and isinstance(load_recogniser(folder / "torch"), CTCModel)
    wavs = [torch.randn(n) * 0.1 for n in (SR, int(1.7 * SR), int(0.4 * SR))]
    assert transcribe(onnx, wavs) == transcribe(model, wavs)
    assert transcribe(onnx, wavs, beam=4) == transcribe(model, wavs, beam=4)
    words = transcribe(onnx, wavs[1], timestamps=True)
    reference = transcribe(model, wavs[1], timestamps=True)
    assert words["text"] == reference["text"] and len(words["words"]) == len(reference["words"])
    for a, b in zip(words["words"], reference["words"]):
        assert a["word"] == b["word"] and a["start"] == pytest.approx(b["start"]) and a["end"] == pytest.approx(b["end"])
    audio = tmp_path / "x.wav"
    sf.write(audio, tone(1.2), SR)
    printed = []
    for kind in ("torch", "onnx"):
        capsys.readouterr()
        assert main(["transcribe", "--model", str(folder / kind), str(audio), "--timestamps"]) == 0
        printed.append(json.loads(capsys.readouterr().out))
    assert printed[0]["text"] == printed[1]["text"] and printed[0]["words"]
    for a, b in zip(printed[0]["words"], printed[1]["words"], strict=True):
        assert a == pytest.approx(b, abs=2e-3)


@pytest.mark.parametrize("batch,frames", [(1, 50), (3, 17), (2, 2)])
def test_onnx_vocoder_equals_torch(vocoder_export, batch, frames):
    model, folder = vocoder_export
    onnx = load_onnx(folder / "onnx")
    assert isinstance(onnx, OnnxVocoder)
    mel = torch.randn(batch, frames, model.cfg.features.n_mels) - 4
    with torch.no_grad():
        expected = model(mel)
    got = onnx(mel)
    assert got.shape == expected.shape
    torch.testing.assert_close(got, expected, atol=1e-4, rtol=1e-3)


def test_vocode_runs_the_onnx_vocoder(vocoder_export, tmp_path):
    from uniwav.cli.main import main

    _, folder = vocoder_export
    sf.write(tmp_path / "in.wav", tone(0.8), SR)
    for kind in ("torch", "onnx"):
        assert main(["vocode", str(tmp_path / "in.wav"), "-o", str(tmp_path / f"{kind}.wav"), "--vocoder", str(folder / kind)]) == 0
    a, _ = sf.read(tmp_path / "torch.wav")
    b, _ = sf.read(tmp_path / "onnx.wav")
    assert a.shape == b.shape and abs(a - b).max() < 2e-3  # 16-bit files: a few quantisation steps at most


def test_export_cli_refuses_what_onnx_does_not_cover_and_damaged_graphs(tmp_path, capsys):
    from uniwav.cli.main import main
    from uniwav.models.uniwav import UniWav

    UniWav(small_model_config()).save_pretrained(tmp_path / "pre")
    assert main(["export", str(tmp_path / "pre"), "--onnx", str(tmp_path / "x")]) == 2
    assert "ONNX export covers CTC recognisers and vocoders, not UniWav" in capsys.readouterr().err
    assert not (tmp_path / "x" / "model.onnx").exists()
    assert main(["export", str(tmp_path / "pre")]) == 2
    assert "give --out DIR" in capsys.readouterr().err
    damaged = tmp_path / "damaged"
    damaged.mkdir()
    (damaged / "model.onnx").write_bytes(b"not a graph")
    (damaged / "config.json").write_text('{"model_type": "ctc", "model": {}, "format": "onnx"}')
    sf.write(tmp_path / "x.wav", tone(0.5), SR)
    assert main(["transcribe", "--model", str(damaged), str(tmp_path / "x.wav")]) == 2
    assert f"{damaged / 'model.onnx'}: onnxruntime cannot load it" in capsys.readouterr().err


def test_export_never_overwrites_a_users_folder_and_replaces_its_own_whole(ctc_export, tmp_path):
    from uniwav.cli.main import main

    model, folder = ctc_export
    assert sorted(p.name for p in (folder / "onnx").iterdir()) == ["config.json", "model.onnx"]  # one visible file, no hidden data
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "config.json").write_text("my own config")
    for flag in ("--onnx", "--out"):
        assert main(["export", str(folder / "torch"), flag, str(mine)]) == 2
        assert (mine / "config.json").read_text() == "my own config" and [p.name for p in mine.iterdir()] == ["config.json"]
    for flag, files in (("--onnx", ["config.json", "model.onnx"]), ("--out", ["config.json", "model.safetensors"])):
        out = tmp_path / flag.strip("-")
        for _ in range(2):  # the second export replaces the first, leaving nothing else behind
            assert main(["export", str(folder / "torch"), flag, str(out)]) == 0
            assert sorted(p.name for p in out.iterdir()) == files and not list(tmp_path.glob(".*"))
    assert main(["export", str(tmp_path / "no-such-run"), "--onnx", str(tmp_path / "never")]) == 2
    assert not (tmp_path / "never").exists()  # a failed export leaves no folder
