import json
import shutil

import pytest

from uniwav.cli.main import main


def test_demo_smoke_runs_every_stage_and_continues(tmp_path, capsys):
    if shutil.which("espeak-ng") is None:
        pytest.skip("espeak-ng is not installed (apt-get install espeak-ng fortunes-min)")
    out = tmp_path / "demo"
    args = ["demo", "--out", str(out), "--corpus-minutes", "1.5", "--label-minutes", "0.5", "--max-steps", "2", "--budget-minutes", "5"]
    assert main(args) == 0
    stages = json.loads((out / "stages.json").read_text())
    assert list(stages) == ["corpus", "pretrain", "export", "asr-pretrained", "asr-scratch"]
    metrics = json.loads((out / "metrics.json").read_text())
    for name in ("asr-pretrained", "asr-scratch"):
        assert {"test_cer", "test_wer", "n"} <= set(metrics[name])
        assert (out / f"{name}.test.json").is_file()
    assert (out / "export" / "model.safetensors").is_file() and (out / "pretrain" / "tb").is_dir()
    capsys.readouterr()
    assert main(args) == 0  # everything is done: every stage is skipped
    assert capsys.readouterr().out.count("done earlier") == 5
