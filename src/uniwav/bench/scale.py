"""``uniwav bench --scale``: the training data stream at LibriLight size, simulated on one machine.

A synthetic lazy manifest of ``hours`` of audio in 30 s cuts (LibriLight's 60k h: 7.2M cuts) that
point at a few recordings (only metadata is read when batches are planned). Measured, each in a
fresh process (time and peak memory):

- ``fresh``: time to the first batch of a new run (plain manifest: the one-time split into cached
  blocks is timed separately, ``split_blocks``);
- ``resume``: time to the first batch when resuming at update 400k from the saved stream position
  (constant time: one unit of blocks is read);
- ``replay``: the way runs written before positions were saved resume (and uniwav <= 0.1 did):
  planning every batch since the start; measured for a fixed time and extrapolated to 400k updates;
- ``loader``: seconds of audio per second that one data worker decodes and batches (real demo audio
  at the ``base`` preset's batch), against what one GPU consumes at the ``base`` preset's step rate:
  the analytic FLOPs of a step at the GPU's dense bf16 peak (H100/H200 SXM: 989 TFLOP/s) times an
  assumed MFU of 0.4 (a number to replace with ``benchmarks/gpu_check.sh``'s measurement).
"""

from __future__ import annotations

import gzip
import json
import subprocess
import sys
import time
from pathlib import Path

CUT = ('{{"id": "c{i}", "start": 0.0, "duration": {d}, "channel": 0, "supervisions": [], "recording": {{"id": "r{r}", '
       '"sources": [{{"type": "file", "channels": [0], "source": "/nonexistent/r{r}.flac"}}], "sampling_rate": 16000, '
       '"num_samples": {n}, "duration": {d}, "channel_ids": [0]}}, "type": "MonoCut"}}\n')

H100_BF16_TFLOPS = 989.0
ASSUMED_MFU = 0.4


def synthetic_manifest(path: Path, hours: float, cut_seconds: float = 30.0) -> int:
    """Write ``hours`` of metadata-only cuts to ``path`` (gzip level 1); returns the number of cuts."""
    n = int(hours * 3600 / cut_seconds)
    with gzip.open(path, "wt", compresslevel=1) as f:
        chunk = []
        for i in range(n):
            d = cut_seconds - (i % 7) * 0.5  # some spread of lengths for the buckets
            chunk.append(CUT.format(i=i, r=i % 50, d=d, n=int(d * 16000)))
            if len(chunk) == 10000:
                f.write("".join(chunk))
                chunk = []
        f.write("".join(chunk))
    return n


_CHILD = r"""
import json, resource, sys, time
from uniwav.data.batches import MIX, Blocks, EndlessBatchSampler
mode, path, budget = sys.argv[1], sys.argv[2], float(sys.argv[3])
t = time.perf_counter()
blocks = Blocks.from_manifest(path)
opened = time.perf_counter() - t
kwargs = dict(max_duration=200.0, crop_seconds=15.0, num_buckets=20, seed=0)
planned = 0
if mode == "replay":  # plan batches from the start until the budget runs out
    stream, start = iter(EndlessBatchSampler(blocks, **kwargs)), time.perf_counter()
    while time.perf_counter() - start < budget:
        next(stream)
        planned += 1
    seconds = time.perf_counter() - start
else:
    position = (3, len(blocks) // MIX // 2, 17) if mode == "resume" else None
    next(iter(EndlessBatchSampler(blocks, start=400_000 if position else 0, position=position, **kwargs)))
    seconds = time.perf_counter() - t
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print(json.dumps({"open_seconds": opened, "seconds": seconds, "planned_batches": planned, "peak_mb": peak, "blocks": len(blocks)}))
"""


def _child(mode: str, path: Path, budget: float = 20.0) -> dict:
    out = subprocess.run([sys.executable, "-c", _CHILD, mode, str(path), str(budget)], capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def loader_throughput(blocks, seconds: float = 30.0) -> dict:
    """Audio seconds per second that one worker (this process) reads and batches at the base preset's batch."""
    from uniwav.data.batches import AudioBatches, EndlessBatchSampler

    sampler = iter(EndlessBatchSampler(blocks, 200.0, 15.0, 20, seed=0))
    dataset, audio, t = AudioBatches(), 0.0, time.perf_counter()
    while time.perf_counter() - t < seconds:
        batch = dataset[next(sampler)]
        audio += float(batch["audio_lens"].sum()) / 16000
    return {"audio_seconds_per_second": audio / (time.perf_counter() - t)}


def gpu_consumption() -> dict:
    """Audio seconds per second one GPU trains on at the base preset's batch (200 s of 15 s crops)."""
    from uniwav.bench.flops import pretrain_step_flops
    from uniwav.config import preset_model

    cfg = preset_model("base")
    B, T = 13, int(15.0 * cfg.features.frame_rate)  # 200 s of 15 s crops
    flops = pretrain_step_flops(cfg, B, T, int(0.55 * B * T))["total"]
    step = flops / (H100_BF16_TFLOPS * 1e12 * ASSUMED_MFU)
    return {"step_tflops": flops / 1e12, "step_seconds": step, "audio_seconds_per_second": B * 15.0 / step,
            "assumed": f"H100/H200 dense bf16 peak {H100_BF16_TFLOPS:g} TFLOP/s x MFU {ASSUMED_MFU}"}


def run_scale(work_dir, hours: float = 60000.0, data_dir=None, replay_seconds: float = 20.0) -> dict:
    work = Path(work_dir)
    work.mkdir(parents=True, exist_ok=True)
    manifest = work / "cuts.jsonl.gz"
    t = time.perf_counter()
    n = synthetic_manifest(manifest, hours)
    result = {"hours": hours, "cuts": n, "manifest_mb": manifest.stat().st_size / 2**20, "write_seconds": time.perf_counter() - t}
    first = _child("fresh", manifest)  # the first start splits the manifest into cached blocks
    result["split_blocks"] = {"seconds": first["open_seconds"], "peak_mb": first["peak_mb"], "blocks": first["blocks"]}
    result["fresh"] = _child("fresh", manifest)
    result["resume_400k"] = _child("resume", manifest)
    replay = _child("replay", manifest, replay_seconds)
    rate = replay["planned_batches"] / replay["seconds"]
    result["replay"] = {"batches_per_second": rate, "peak_mb": replay["peak_mb"], "estimated_minutes_to_400k": 400_000 / rate / 60}
    if data_dir is not None:
        from uniwav.data.batches import Blocks
        from uniwav.data.manifests import cuts_path, load_cuts

        gpu = result["gpu_consumption"] = gpu_consumption()
        shar = work / "shar"
        if not shar.is_dir():
            shar.mkdir()
            load_cuts(data_dir, "train").to_shar(shar, fields={"recording": "flac"}, shard_size=1000)
        sources = {"files": Blocks.from_manifest(cuts_path(data_dir, "train")), "shar": Blocks.from_shar(shar)}
        for name, blocks in sources.items():
            worker = result[f"loader_one_worker.{name}"] = loader_throughput(blocks)
            worker["workers_per_gpu"] = gpu["audio_seconds_per_second"] / worker["audio_seconds_per_second"]
    return result
