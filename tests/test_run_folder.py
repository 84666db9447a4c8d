"""What a run folder promises (README, "Runs, resuming and checkpoints"): a run whose checkpoint cannot be
read is never written to, one process at a time, no leftovers of killed writes, no duplicate
checkpoint copies, and clear refusals of impossible requests."""

import os
import subprocess
import sys

import pytest
import torch

from uniwav.checkpoint import load_checkpoint
from uniwav.cli.main import main

from conftest import SMALL_OVERRIDES

ARGS = ["--no-progress", *SMALL_OVERRIDES, "trainer.sample_every=1000"]


def pretrain(data, run, *extra):
    return main(["pretrain", "--data", str(data), "--out", str(run), *extra, *ARGS])


def _break(path, how):
    if how == "truncated":
        path.write_bytes(path.read_bytes()[:1000])
    else:  # a pickle that would run code: refused by weights_only loading
        class Exploit:
            def __reduce__(self):
                return (os.system, ("true",))

        torch.save({"state_dict": {}, "payload": Exploit()}, path)


@pytest.mark.parametrize("how", ["truncated", "pickle"])
def test_an_unreadable_checkpoint_is_never_overwritten_and_the_error_says_how_to_resume(demo_data, tmp_path, capsys, how):
    run = tmp_path / "run"
    assert pretrain(demo_data, run, "--max-steps", "4") == 0
    last = run / "checkpoints" / "last.ckpt"
    _break(last, how)
    evidence = last.read_bytes()
    files = sorted(p.name for p in run.rglob("*"))
    capsys.readouterr()
    for _ in range(2):  # the second attempt must not find a fresh step-0 model either
        assert pretrain(demo_data, run, "--max-steps", "6") == 2
        err = capsys.readouterr().err
        assert "last.ckpt" in err and "step0000004.ckpt (update 4)" in err and "--resume-from" in err and "Traceback" not in err
        assert last.read_bytes() == evidence and sorted(p.name for p in run.rglob("*")) == files
    assert pretrain(demo_data, run, "--max-steps", "6", "--resume-from", str(run / "checkpoints" / "step0000004.ckpt")) == 0
    assert load_checkpoint(last)["global_step"] == 6
    assert (run / "checkpoints" / "last.ckpt.replaced").read_bytes() == evidence


def test_a_second_process_on_the_same_run_is_refused_and_a_dead_ones_lock_is_taken_over(demo_data, tmp_path, capsys):
    run = tmp_path / "run"
    run.mkdir()
    (run / ".lock").write_text(f"{os.getpid()} {os.uname().nodename}")  # a live process (this one) holds it
    assert pretrain(demo_data, run, "--max-steps", "1") == 2
    assert "in use by process" in capsys.readouterr().err and not (run / "checkpoints").exists()
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    (run / ".lock").write_text(f"{gone.pid} {os.uname().nodename}")  # kill -9 leaves this behind
    assert pretrain(demo_data, run, "--max-steps", "1") == 0
    assert "taking over the lock" in capsys.readouterr().err and not (run / ".lock").exists()


def test_leftovers_of_killed_writes_are_removed_and_checkpoints_are_not_duplicated(demo_data, tmp_path):
    run = tmp_path / "run"
    assert pretrain(demo_data, run, "--max-steps", "2") == 0
    leftover = run / "checkpoints" / ".last.ckpt.x1y2.ckpt"  # what atomic_path leaves when the writer is killed
    leftover.write_bytes(b"0" * 1000)
    assert pretrain(demo_data, run, "--max-steps", "4") == 0
    assert pretrain(demo_data, run, "--max-steps", "6") == 0
    names = sorted(p.name for p in (run / "checkpoints").iterdir())
    assert names == ["last.ckpt", "step0000004.ckpt", "step0000006.ckpt"], names


@pytest.mark.parametrize("extra, message", [(["--max-steps", "-1"], "--max-steps must be at least 1"),
                                            (["--max-minutes", "0"], "--max-minutes must be positive")])
def test_impossible_budgets_are_refused(demo_data, tmp_path, capsys, extra, message):
    assert pretrain(demo_data, tmp_path / "run", *extra) == 2
    assert message in capsys.readouterr().err


def test_an_out_that_is_a_file_is_refused(demo_data, tmp_path, capsys):
    (tmp_path / "file").write_text("mine")
    assert pretrain(demo_data, tmp_path / "file", "--max-steps", "1") == 2
    assert "is a file" in capsys.readouterr().err and (tmp_path / "file").read_text() == "mine"


def test_the_log_names_the_precision_once_and_hides_lightnings_noise(demo_data, tmp_path, capfd):
    assert pretrain(demo_data, tmp_path / "run", "--max-steps", "2") == 0
    out, err = capfd.readouterr()
    log = out + err
    assert log.count("precision: ") == 1 and ("bf16-mixed (CPU with native bf16" in log or "32-true (CPU without" in log)
    for noise in ("litlogger", "GPU available", "weights_only", "ckpt_path=None", "LeafSpec"):
        assert noise not in log, noise


def test_the_progress_bar_ends_where_max_minutes_will_stop_the_run(demo_data, tmp_path, capfd):
    import re

    argv = ["pretrain", "--data", str(demo_data), "--out", str(tmp_path / "run"), "--max-minutes", "0.08", *SMALL_OVERRIDES,
            "optim.total_steps=100000", "trainer.sample_every=100000", "trainer.checkpoint_every=100000"]
    assert main(argv) == 0
    out, err = capfd.readouterr()
    totals = [int(t) for t in re.findall(r"\b\d+/(\d+) \[", out + err)]
    assert totals and totals[-1] < 10000, totals[-5:]  # not the schedule's 100000 updates


@pytest.fixture
def tiny_disk(tmp_path):
    """A 300 kB file system (tmpfs): too small for one checkpoint. Needs the right to mount (root in CI)."""
    disk = tmp_path / "disk"
    disk.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=300k", "tmpfs", str(disk)], capture_output=True).returncode != 0:
        pytest.skip("cannot mount a small tmpfs here (needs root)")
    yield disk
    subprocess.run(["umount", str(disk)], check=True)


def test_a_full_disk_is_one_line_naming_the_checkpoint(demo_data, tiny_disk, capsys):
    run = tiny_disk / "run"
    assert pretrain(demo_data, run, "--max-steps", "2", "trainer.checkpoint_every=1", "data.num_workers=0") == 2
    err = capsys.readouterr().err
    assert f"{run / 'checkpoints'}" in err and "No space left on device" in err and "free some space" in err
    assert "Traceback" not in err and not list((run / "checkpoints").iterdir())  # no half-written file left behind


def _tree(run):
    return {p.relative_to(run).as_posix(): p.read_bytes() for p in run.rglob("*") if p.is_file() and p.name != ".lock"}


def test_resume_from_a_checkpoint_of_another_model_leaves_the_run_as_it_was(demo_data, tmp_path, capsys):
    from test_asr import ASR_OVERRIDES

    run, other = tmp_path / "run", tmp_path / "asr"
    assert pretrain(demo_data, run, "--max-steps", "2") == 0
    assert main(["finetune-asr", "--init", "none", "--data", str(demo_data), "--out", str(other), "--max-steps", "1", "--no-progress",
                 *ASR_OVERRIDES]) == 0
    before = _tree(run)
    capsys.readouterr()
    assert pretrain(demo_data, run, "--max-steps", "4", "--resume-from", str(other / "checkpoints" / "last.ckpt")) == 2
    err = capsys.readouterr().err
    assert "not a checkpoint of this run's model" in err and "left as it is" in err and "Traceback" not in err
    assert _tree(run) == before  # last.ckpt not moved aside, nothing written
    assert pretrain(demo_data, run, "--max-steps", "3") == 0 and load_checkpoint(run / "checkpoints" / "last.ckpt")["global_step"] == 3


@pytest.mark.parametrize("extra,message", [
    (["--devices", "0"], "trainer.devices (--devices) is"),
    (["optim.lrr=1"], "Did you mean: 'lr'"),
    (["--config", "BAD_YAML"], "bad.yaml, line 2, column"),
    (["seed=99999999999999999999999"], "a seed is a whole number from 0"),
    (["seed=-1"], "a seed is a whole number from 0"),
])
def test_a_run_refused_before_it_starts_leaves_no_folder(demo_data, tmp_path, capsys, extra, message):
    bad = tmp_path / "bad.yaml"
    bad.write_text("optim:\n  lr: 1e-3: x\n")
    run = tmp_path / "run"
    capsys.readouterr()
    assert pretrain(demo_data, run, "--max-steps", "1", *[str(bad) if e == "BAD_YAML" else e for e in extra]) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err and err.count("\n") <= 2, err
    assert not run.exists()


def test_more_cpu_processes_than_cores_are_warned_about(capsys):
    from uniwav.config import TrainerConfig
    from uniwav.training.launch import warn_about_cpu_processes

    cores = len(os.sched_getaffinity(0))
    warn_about_cpu_processes(TrainerConfig(devices=cores + 1, accelerator="cpu"))
    assert f"--devices {cores + 1} starts {cores + 1} training processes" in capsys.readouterr().err
    warn_about_cpu_processes(TrainerConfig(devices=1, accelerator="cpu"))
    assert capsys.readouterr().err == ""
