"""The multi-process path users run on GPU nodes, through the real CLI and Lightning, on 2 CPU processes
(gloo): training, replica agreement, one checkpoint writer, kill -9 and exact resume, a refused change
of process count, fine-tuning, and two "nodes" on localhost."""

import os
import signal
import subprocess
import sys
import time

import pytest
import torch

from uniwav.checkpoint import load_checkpoint
from uniwav.utils import free_port

from conftest import SMALL_OVERRIDES

DDP = ["--devices", "2", "--strategy", "ddp", "trainer.accelerator=cpu", "data.num_workers=0", "trainer.sample_every=1000"]


def cli(*argv, env=None, **kwargs) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1", **(env or {})}
    return subprocess.run([sys.executable, "-m", "uniwav", *argv], capture_output=True, text=True, env=env, timeout=600, **kwargs)


def pretrain_argv(data, run, *extra):
    return ["pretrain", "--data", str(data), "--out", str(run), "--no-progress", *SMALL_OVERRIDES, *DDP, *extra]


def weights(run):
    return load_checkpoint(run / "checkpoints" / "last.ckpt")


def test_two_processes_train_agree_and_write_one_checkpoint_set(demo_data, tmp_path):
    run = tmp_path / "run"
    proc = cli(*pretrain_argv(demo_data, run, "--max-steps", "4"))
    assert proc.returncode == 0, proc.stderr[-3000:]
    ckpt = weights(run)
    assert ckpt["global_step"] == 4 and ckpt["world_size"] == 2  # replicas were compared at every checkpoint (check_replicas_agree)
    assert sorted(p.name for p in (run / "checkpoints").iterdir()) == ["last.ckpt", "step0000002.ckpt", "step0000004.ckpt"]
    assert proc.stdout.count("run: ") == 1 and (proc.stdout + proc.stderr).count("precision: ") == 1  # said once, not per process
    assert not (run / ".lock").exists()
    left = subprocess.run(["pgrep", "-f", f"--out {run} "], capture_output=True, text=True).stdout.split()
    assert not left, f"training processes still running after the command returned: {left}"


def test_kill_9_of_every_process_then_resume_continues_exactly(demo_data, tmp_path):
    reference = tmp_path / "reference"
    assert cli(*pretrain_argv(demo_data, reference, "--max-steps", "10")).returncode == 0
    run = tmp_path / "run"
    proc = subprocess.Popen([sys.executable, "-m", "uniwav", *pretrain_argv(demo_data, run, "--max-steps", "10")],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True, env={**os.environ, "OMP_NUM_THREADS": "1"})
    deadline = time.time() + 300
    # last.ckpt is written (atomically) after the step file of the same update: waiting for it alone is enough
    while time.time() < deadline and not (run / "checkpoints" / "last.ckpt").exists():
        time.sleep(0.2)
    os.killpg(proc.pid, signal.SIGKILL)  # the whole job, as a scheduler's pre-emption does
    proc.wait()
    step = load_checkpoint(run / "checkpoints" / "last.ckpt")["global_step"]
    assert 2 <= step < 10
    resumed = cli(*pretrain_argv(demo_data, run, "--max-steps", "10"))
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    a, b = weights(run)["state_dict"], weights(reference)["state_dict"]
    assert weights(run)["global_step"] == 10
    for k in b:
        assert torch.equal(a[k], b[k]), f"{k} differs from the uninterrupted run"


def test_resuming_with_another_process_count_is_refused(demo_data, tmp_path):
    run = tmp_path / "run"
    assert cli(*pretrain_argv(demo_data, run, "--max-steps", "2")).returncode == 0
    single = cli("pretrain", "--data", str(demo_data), "--out", str(run), "--no-progress", "--max-steps", "4", "--devices", "1")
    assert single.returncode == 2 and "trained by 2 process(es) and would be resumed by 1" in single.stderr
    assert weights(run)["global_step"] == 2


def test_two_process_fine_tuning(demo_data, tmp_path):
    pre = tmp_path / "pre"
    assert cli("pretrain", "--data", str(demo_data), "--out", str(pre), "--no-progress", "--max-steps", "1", *SMALL_OVERRIDES).returncode == 0
    asr = tmp_path / "asr"
    proc = cli("finetune-asr", "--init", str(pre), "--data", str(demo_data), "--out", str(asr), "--no-progress", "--max-steps", "3",
               "--devices", "2", "--strategy", "ddp", "trainer.accelerator=cpu", "data.num_workers=0", "data.max_duration=6",
               "freeze_encoder_steps=1", "val_every=1000")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert weights(asr)["global_step"] == 3 and weights(asr)["world_size"] == 2


def test_two_nodes_on_localhost(demo_data, tmp_path):
    """One process per "node", as SLURM or torchrun starts them: the same command with NODE_RANK 0 and 1."""
    run = tmp_path / "run"
    port = str(free_port())
    argv = ["pretrain", "--data", str(demo_data), "--out", str(run), "--no-progress", "--max-steps", "2", *SMALL_OVERRIDES,
            "--devices", "1", "--num-nodes", "2", "--strategy", "ddp", "trainer.accelerator=cpu", "data.num_workers=0"]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": port, "WORLD_SIZE": "2", "LOCAL_RANK": "0"}
    nodes = [subprocess.Popen([sys.executable, "-m", "uniwav", *argv], env={**env, "NODE_RANK": str(r)}, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for r in (1, 0)]
    outputs = [n.communicate(timeout=600) for n in nodes]
    assert all(n.returncode == 0 for n in nodes), [o[1][-2000:] for o in outputs]
    ckpt = weights(run)
    assert ckpt["global_step"] == 2 and ckpt["world_size"] == 2


@pytest.mark.parametrize("strategy", ["fsdp"])
def test_fsdp_on_cpu_is_refused_with_a_reason(demo_data, tmp_path, strategy):
    proc = cli("pretrain", "--data", str(demo_data), "--out", str(tmp_path / "run"), "--no-progress", "--max-steps", "1", *SMALL_OVERRIDES,
               "--devices", "2", "--strategy", strategy, "trainer.accelerator=cpu", "data.num_workers=0")
    assert proc.returncode == 2 and "fsdp" in proc.stderr.lower() and "requires a GPU" in proc.stderr and "Traceback" not in proc.stderr
