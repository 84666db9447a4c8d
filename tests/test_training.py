"""Pre-training through the real CLI and Lightning: smoke run, exact resume, atomic and safe checkpoints."""

import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest
import torch

from uniwav.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from uniwav.cli.main import main
from uniwav.config import ConfigError
from uniwav.models.uniwav import UniWav
from uniwav.training.pretrain import PretrainTask
from uniwav.training.pretrain import pretrain

from conftest import SMALL_OVERRIDES


def test_cli_smoke_pretrain_export_and_tensorboard(demo_data, tmp_path, capsys):
    run = tmp_path / "run"
    assert main(["pretrain", "--data", str(demo_data), "--out", str(run), "--config", "tiny", "--max-steps", "4", "--no-progress",
                 *SMALL_OVERRIDES]) == 0
    assert (run / "config.yaml").is_file() and (run / "checkpoints" / "last.ckpt").is_file()
    ckpt = load_checkpoint(run / "checkpoints" / "last.ckpt")
    assert ckpt["global_step"] == 4
    assert ckpt["hyper_parameters"]["config"]["model"]["encoder"]["dim"] == 32  # resolved config inside the checkpoint
    assert len(ckpt["hyper_parameters"]["config"]["model"]["features"]["norm_mean"]) == 20  # with the data's statistics
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(run / "tb"))
    events.Reload()
    tags = events.Tags()
    for tag in ("loss/encoder", "loss/decoder", "codebook/perplexity_0", "encoder/accuracy", "teacher/decay", "decoder/infill_l1",
                "decoder/mean_frame_l1", "representation/effective_rank_layer1", "representation/rms_layer3"):
        assert tag in tags["scalars"], tag
    assert "samples/mel_target_masked_infilled" in tags["images"] and "model/layer_mixer_weights" in tags["images"]
    assert "samples/infilled_griffinlim" in tags["audio"]
    assert main(["evaluate", "infill", "--model", str(run), "--data", str(demo_data), "--split", "dev", "--nfe", "2",
                 "--json", str(tmp_path / "infill.json")]) == 0
    import json

    infill = json.loads((tmp_path / "infill.json").read_text())
    assert infill["masked_frames"] > 0 and infill["infill_l1"] > 0 and infill["mean_frame_l1"] > 0
    assert main(["evaluate", "infill", "--model", str(run), "--data", str(demo_data), "--cfg", "2"]) == 2  # no condition dropout
    assert "cannot be guided" in capsys.readouterr().err
    assert main(["export", str(run), "--out", str(tmp_path / "export")]) == 0
    model = UniWav.from_pretrained(tmp_path / "export")
    assert torch.equal(model.codebooks.codewords, UniWav.from_pretrained(run).codebooks.codewords)


def _calls(monkeypatch):
    seen = []
    original = PretrainTask.training_step

    def spy(self, batch, idx):
        seen.append(batch["index"])
        return original(self, batch, idx)

    monkeypatch.setattr(PretrainTask, "training_step", spy)
    return seen


def test_resume_is_exact(demo_data, tmp_path, monkeypatch):
    # dropout and condition dropout: their random draws must resume too
    overrides = SMALL_OVERRIDES + ["model.encoder.dropout=0.1", "model.cond_drop_prob=0.5", "trainer.sample_every=1000"]
    seen = _calls(monkeypatch)
    pretrain(demo_data, tmp_path / "a", "tiny", overrides, max_steps=3, progress=False)
    assert seen == [0, 1, 2]
    seen.clear()
    pretrain(demo_data, tmp_path / "a", None, [], max_steps=6, progress=False)
    assert seen == [3, 4, 5]  # resumed from step 3, not restarted
    pretrain(demo_data, tmp_path / "b", "tiny", overrides, max_steps=6, progress=False)
    a = load_checkpoint(tmp_path / "a" / "checkpoints" / "last.ckpt")
    b = load_checkpoint(tmp_path / "b" / "checkpoints" / "last.ckpt")
    for k, v in b["state_dict"].items():
        assert torch.equal(a["state_dict"][k], v), k
    for sa, sb in zip(a["optimizer_states"][0]["state"].values(), b["optimizer_states"][0]["state"].values()):
        assert torch.equal(sa["exp_avg"], sb["exp_avg"])


def test_resume_with_a_different_config_is_refused(demo_data, tmp_path):
    pretrain(demo_data, tmp_path / "a", "tiny", SMALL_OVERRIDES, max_steps=1, progress=False)
    with pytest.raises(ConfigError, match="optim.lr"):
        pretrain(demo_data, tmp_path / "a", "tiny", SMALL_OVERRIDES + ["optim.lr=0.1"], max_steps=2, progress=False)


def test_sample_rate_mismatch_is_refused(demo_data, tmp_path):
    with pytest.raises(ConfigError, match="16000 Hz"):
        pretrain(demo_data, tmp_path / "a", "tiny", SMALL_OVERRIDES + ["model.features.sample_rate=24000", "model.features.fmax=8000"],
                 max_steps=1, progress=False)


def test_planted_pickle_is_refused(tmp_path):
    marker = tmp_path / "pwned"

    class Exploit:
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))

    bad = tmp_path / "run" / "checkpoints" / "last.ckpt"
    bad.parent.mkdir(parents=True)
    torch.save({"state_dict": {}, "payload": Exploit()}, bad)
    with pytest.raises(CheckpointError, match="refused to load"):
        load_checkpoint(bad)
    with pytest.raises(CheckpointError, match="refused to load"):
        UniWav.from_pretrained(tmp_path / "run")
    assert not marker.exists()
    with pytest.raises(CheckpointError, match="not found"):
        UniWav.from_pretrained(tmp_path / "nothing.ckpt")
    (tmp_path / "trunc.ckpt").write_bytes(b"PK\x03\x04 truncated")
    with pytest.raises(CheckpointError, match="truncated or corrupt"):
        load_checkpoint(tmp_path / "trunc.ckpt")


WRITER = textwrap.dedent("""
    import sys, torch
    from uniwav.checkpoint import save_checkpoint
    path = sys.argv[1]
    i = 0
    while True:
        i += 1
        save_checkpoint({"version": i, "weights": torch.full((2_000_000,), float(i))}, path)
        print(i, flush=True)
""")


def test_kill_9_during_checkpoint_writes_leaves_a_loadable_checkpoint(tmp_path):
    path = tmp_path / "last.ckpt"
    save_checkpoint({"version": 0, "weights": torch.zeros(2_000_000)}, path)
    for delay in (0.3, 0.55, 0.8):
        proc = subprocess.Popen([sys.executable, "-c", WRITER, str(path)], stdout=subprocess.PIPE)
        proc.stdout.readline()  # at least one write completed
        time.sleep(delay)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        ckpt = load_checkpoint(path)
        assert ckpt["version"] >= 1
        assert torch.all(ckpt["weights"] == float(ckpt["version"]))  # a whole checkpoint, never a mix or a prefix
    leftovers = [p for p in tmp_path.iterdir() if p.name != "last.ckpt"]
    assert len(leftovers) <= 3  # at most the temporary file each kill interrupted


def test_non_finite_gradients_skip_the_update(demo_data):
    from uniwav.config import PretrainConfig, load_config

    cfg = load_config(PretrainConfig, "tiny", SMALL_OVERRIDES)
    task = PretrainTask.from_config(cfg)
    for p in task.model.parameters():
        if p.requires_grad:
            p.grad = torch.zeros_like(p)
    next(task.model.backbone.decoder.parameters()).grad[0] = float("nan")
    with pytest.warns(UserWarning, match="non-finite gradient"):
        task.on_before_optimizer_step(None)
    assert task._skip_step and all(p.grad is None for p in task.model.parameters())
    task._bad_steps = cfg.trainer.max_bad_steps
    next(task.model.backbone.decoder.parameters()).grad = torch.full_like(next(task.model.backbone.decoder.parameters()), float("inf"))
    with pytest.raises(RuntimeError, match="consecutive non-finite"), pytest.warns(UserWarning):
        task.on_before_optimizer_step(None)


@pytest.mark.parametrize("sig,group", [(signal.SIGINT, False), (signal.SIGTERM, False), (signal.SIGINT, True), (signal.SIGTERM, True)],
                         ids=["ctrl-c", "sigterm", "ctrl-c-to-the-group", "sigterm-to-the-group"])
def test_interrupt_writes_a_checkpoint_and_the_run_resumes(demo_data, tmp_path, sig, group):
    """To the group (a terminal's Ctrl-C, SLURM's pre-emption, kill -TERM -PGID): the data loader's worker gets it too."""
    run = tmp_path / "run"
    cmd = [sys.executable, "-m", "uniwav", "pretrain", "--data", str(demo_data), "--out", str(run), "--config", "tiny",
           "--max-steps", "100000", "--no-progress", *SMALL_OVERRIDES, "trainer.checkpoint_every=100000", "trainer.sample_every=100000",
           f"data.num_workers={1 if group else 0}"]

    def own_group_with_default_sigint():  # a shell's background jobs inherit an ignored SIGINT; a user's terminal never does
        signal.signal(signal.SIGINT, signal.SIG_DFL)
        os.setpgid(0, 0)

    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, preexec_fn=own_group_with_default_sigint)
    deadline = time.time() + 120
    while time.time() < deadline and _event_bytes(run) < 2000:  # a few steps have been logged
        time.sleep(0.5)
    if group:
        os.killpg(proc.pid, sig)
    else:
        proc.send_signal(sig)
    _, stderr = proc.communicate(timeout=120)
    ckpt = load_checkpoint(run / "checkpoints" / "last.ckpt")
    assert ckpt["global_step"] >= 1
    step = ckpt["global_step"]
    # not a success: `pretrain && export` must not export a half-trained model; the message says where and how to resume
    assert proc.returncode == (143 if sig == signal.SIGTERM else 130), stderr[-2000:]
    assert f"at update {step}" in stderr and "Run the same command again to resume" in stderr
    assert "Traceback" not in stderr and not (run / ".lock").exists()
    pretrain(demo_data, run, None, [], max_steps=step + 2, progress=False)
    assert load_checkpoint(run / "checkpoints" / "last.ckpt")["global_step"] == step + 2


def _event_bytes(run):
    return sum(p.stat().st_size for p in (run / "tb").glob("events.*")) if (run / "tb").is_dir() else 0


def test_collapse_is_warned_about(monkeypatch):
    from uniwav.config import PretrainConfig, load_config

    task = PretrainTask.from_config(load_config(PretrainConfig, "tiny", SMALL_OVERRIDES))
    monkeypatch.setattr(PretrainTask, "global_step", property(lambda self: 500))
    with pytest.warns(UserWarning, match="COLLAPSE"):
        for _ in range(10):
            task._check_collapse(torch.tensor([1.05, 40.0]))


def test_out_of_memory_names_the_batch_and_the_fix(monkeypatch):
    from uniwav.config import PretrainConfig, load_config
    from uniwav.models.uniwav import UniWav as Model
    from uniwav.training.oom import BatchTooLargeError

    task = PretrainTask.from_config(load_config(PretrainConfig, "tiny", SMALL_OVERRIDES))

    def boom(*args, **kwargs):
        raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")

    monkeypatch.setattr(Model, "forward", boom)
    batch = {"audio": torch.zeros(3, 16000), "audio_lens": torch.tensor([16000, 8000, 4000]), "index": 7, "ids": ["a", "b", "c"]}
    with pytest.raises(BatchTooLargeError, match="batch 7: 3 utterances, longest 16000 samples.*data.max_duration"):
        task.training_step(batch, 0)


def test_precision_auto_follows_the_cpu_bf16_feature(monkeypatch):
    from uniwav.training import launch

    assert launch.resolve_precision("32-true")[0] == "32-true" and launch.resolve_precision("bf16-mixed", "cpu")[0] == "bf16-mixed"
    amd = "processor\t: 0\nflags\t\t: fpu sse2 avx2 avx512f avx512_bf16\n"
    intel = "flags\t: fpu avx2 amx_bf16 amx_tile avx512_bf16\n"
    arm = "processor\t: 0\nFeatures\t: fp asimd bf16 i8mm\n"
    old = "flags\t: fpu sse2 avx2 avx512f\n"
    assert [launch.cpu_bf16_feature(t) for t in (amd, intel, arm, old)] == ["AVX512-BF16", "AMX", "BF16", None]
    for feature, expected in (("AMX", "bf16-mixed"), (None, "32-true")):
        monkeypatch.setattr(launch, "cpu_bf16_feature", lambda feature=feature: feature)
        precision, why = launch.resolve_precision("auto", "cpu")
        assert precision == expected and ("AMX" in why if feature else "without" in why)
