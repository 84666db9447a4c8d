import importlib.util
import json
import shutil
from pathlib import Path

import pytest

from uniwav.cli.main import main


def test_demo_smoke_runs_every_stage_and_continues(tmp_path, capsys):
    if shutil.which("espeak-ng") is None:
        pytest.skip("espeak-ng is not installed (apt-get install espeak-ng fortunes-min)")
    out = tmp_path / "demo"
    args = ["demo", "--out", str(out), "--corpus-minutes", "1.5", "--label-minutes", "0.5", "--max-steps", "2", "--eval-utterances", "2"]
    assert main(args) == 0
    stages = json.loads((out / "stages.json").read_text())
    assert list(stages) == ["corpus", "pretrain", "asr-pretrained", "asr-scratch", "asr-compare", "asr-phone", "align", "layers", "tokenizer",
                            "tts-pretrained", "tts-scratch", "tokens", "tts", "goals", "app", "report"]
    metrics = json.loads((out / "metrics.json").read_text())
    assert set(metrics) == {"corpus", "asr-pretrained", "asr-scratch", "asr-compare", "asr-phone", "align", "layers", "tokens", "tts", "goals",
                            "app", "report"}
    assert metrics["align"] == {"model": "asr-phone", "unit": "phone"}  # TTS speaks from phones
    assert metrics["layers"]["pretrained"][0].keys() >= {"probe_accuracy", "nmi_text", "nmi_speaker"}
    for unit in ("cer", "wer"):
        compare = metrics["asr-compare"][unit]
        assert compare["baseline"] == pytest.approx(metrics["asr-scratch"][f"test_{unit}"])
        assert compare["candidate"] == pytest.approx(metrics["asr-pretrained"][f"test_{unit}"])
    for name in ("asr-pretrained", "asr-scratch"):
        assert {"test_cer", "test_wer", "n"} <= set(metrics[name])
        assert (out / f"{name}.test.json").is_file()
    assert set(metrics["tokens"]["rows"]) == {"ground truth (vocoded)", "unquantized z (decoder ceiling)", "500 bit/s", "1000 bit/s"}
    assert set(metrics["tts"]["tts-pretrained"]["rows"]) == {"ground truth (vocoded)", "tts nfe=16 cfg=2 sway=-1", "tts nfe=32 cfg=2 sway=-1",
                                                             "tts nfe=16 cfg=1"}
    assert set(metrics["tts"]["tts-scratch"]["rows"]) == {"ground truth (vocoded)", "tts nfe=16 cfg=2 sway=-1"}
    assert {"cer", "wer"} <= set(metrics["tts"]["compare"])
    assert set(metrics["goals"]) == {"tokens 1000 bit/s", "tokens 500 bit/s", "tts from a 3 s prompt"}
    assert {"pretrained", "random", "plots"} == set(metrics["layers"]) and len(metrics["layers"]["pretrained"]) == 7
    for stage in ("tokens", "tts"):  # every sample a stage names exists
        samples = metrics[stage]["samples"] if stage == "tokens" else metrics[stage]["tts-pretrained"]["samples"]
        assert all((out / path).is_file() for paths in samples.values() for path in paths)
    assert (out / "export" / "model.safetensors").is_file() and (out / "pretrain" / "tb").is_dir()
    from uniwav.app.screenshots import find_browser

    if find_browser() and importlib.util.find_spec("playwright") and importlib.util.find_spec("gradio"):
        assert [Path(p).name for p in metrics["app"]["screenshots"]] == ["transcribe.png", "speak.png", "tokens.png"]
        assert all((out / p).stat().st_size > 10_000 for p in metrics["app"]["screenshots"])
        assert "The web page" in (out / "report.html").read_text()
    else:
        assert "not installed" in metrics["app"]["skipped"]
    check_report(out / "report.html")
    capsys.readouterr()
    assert main(args) == 0  # everything is done: every stage is skipped
    assert capsys.readouterr().out.count("done earlier") == len(stages)


def check_report(path):
    """Valid HTML whose every referenced picture and audio file exists."""
    from html.parser import HTMLParser

    refs, tags = [], []

    class Parser(HTMLParser):
        def handle_starttag(self, tag, attrs):
            tags.append(tag)
            refs.extend(v for k, v in attrs if k == "src")

    Parser().feed(path.read_text())
    assert {"html", "table", "img", "audio"} <= set(tags)
    assert refs and all((path.parent / ref).is_file() for ref in refs), [r for r in refs if not (path.parent / r).is_file()]
    assert sum(ref.endswith(".wav") for ref in refs) >= 6


def test_report_generator_on_tiny_artifacts(tmp_path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    from uniwav.config import FeatureConfig
    from uniwav.evaluation.report import Report
    from uniwav.features.mel import LogMel

    r = Report(tmp_path / "rep", "a <test> report")
    r.section("numbers & things")
    r.table({"system <a>": {"cer": 0.25, "n": 3}, "b": {"cer": None, "n": 4}})
    fig, ax = plt.subplots()
    ax.plot([0, 1])
    r.figure(fig, "curve", "a curve")
    t = np.arange(16000) / 16000
    r.clips([("tone", 0.3 * np.sin(2 * np.pi * 220 * t)), ("noise", 0.01 * np.random.default_rng(0).standard_normal(16000))], 16000,
            "clips", LogMel(FeatureConfig()))
    path = r.write()
    text = path.read_text()
    assert "&lt;test&gt;" in text and "system &lt;a&gt;" in text and "<td>-</td>" in text  # escaped, missing values shown
    check_report_files(path, min_audio=2)


def check_report_files(path, min_audio):
    from html.parser import HTMLParser

    refs = []

    class Parser(HTMLParser):
        def handle_starttag(self, tag, attrs):
            refs.extend(v for k, v in attrs if k == "src")

    Parser().feed(path.read_text())
    assert all((path.parent / ref).is_file() for ref in refs)
    assert sum(ref.endswith(".wav") for ref in refs) >= min_audio and sum(ref.endswith(".png") for ref in refs) >= 1


def test_demo_smoke_in_german_runs_every_stage_judged_by_our_recogniser(tmp_path):
    if shutil.which("espeak-ng") is None or not any(Path("/usr/share/games/fortunes/de").glob("*")):
        pytest.skip("espeak-ng or fortunes-de is not installed (install.sh installs both)")
    out = tmp_path / "demo"
    assert main(["demo", "--out", str(out), "--language", "de", "--corpus-minutes", "1.5", "--label-minutes", "0.5", "--max-steps", "2",
                 "--eval-utterances", "2"]) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert {"asr-pretrained", "asr-phone", "tts", "report"} <= set(metrics) and json.loads((out / "data" / "prepare_report.json").read_text())[
        "language"] == "de"
    row = metrics["tts"]["tts-pretrained"]["rows"][metrics["tts"]["tts-pretrained"]["system"]]
    assert "asr_cer" in row and "whisper_cer" not in row  # Whisper tiny.en is English-only
    from uniwav.models.tts import TTSModel

    tts = TTSModel.from_pretrained(out / "tts-pretrained")
    assert (tts.cfg.unit, tts.cfg.language) == ("phone", "de")
