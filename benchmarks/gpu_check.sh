#!/usr/bin/env bash
# GPU acceptance check for the first CUDA machine we get (about 8 minutes on one H200). Usage:
#   bash benchmarks/gpu_check.sh [OUT_DIR]          (DATA=folder to use a prepared corpus instead of making one)
# Writes OUT_DIR/gpu_check.json, row by row, most telling first:
#   env            GPUs, driver, torch / CUDA versions, the bf16 and float32 matmul rates measured here
#   train_step     one bare pre-training update of the faithful `base` preset (DinoSR Base) on random features:
#                  MFU against the matmul rate of the same dtype, float32 and bf16
#   loop_overhead  every task run as `uniwav <task>` runs it (base shape, bf16) against its bare update on the
#                  same batches: real / bare (1.0 = the loop costs nothing); bench/loop.py
#   hubert         our encoder against transformers' HuBERT encoder of the same shape, bf16 and float32
#   pretrain       DDP pre-training of `base` on every visible GPU: wall time, audio seconds per second
#   resume         the same run resumed for 20 more updates: it continues at the global step it stopped at
# Needs: the repository installed (`bash install.sh --dev` over a CUDA build of torch), or its src/ on
# PYTHONPATH with its dependencies; espeak-ng only when DATA is not given.
# DEVICE=cpu runs the same script on the CPU with the `tiny` preset and fewer updates: a rehearsal that
# checks the script itself before GPU time is spent on it.
set -euo pipefail
OUT=${1:-gpu_check}
mkdir -p "$OUT"
PY=${PYTHON:-python3}
UNIWAV=("$PY" -m uniwav)
DEVICE=${DEVICE:-cuda}
if [ "$DEVICE" = cuda ]; then
  GPUS=$($PY -c "import torch; print(torch.cuda.device_count())")
  [ "$GPUS" -ge 1 ] || { echo "gpu_check: no CUDA device visible to torch" >&2; exit 1; }
  PRESET=base; UPDATES=100; STRATEGY=ddp
else
  GPUS=1; PRESET=tiny; UPDATES=20; STRATEGY=auto
fi
DATA=${DATA:-$OUT/data}
[ -d "$DATA/train" ] || "${UNIWAV[@]}" prepare demo --out "$DATA" --minutes 30 --jobs 8

PYTHONUNBUFFERED=1 $PY - "$OUT" "$DATA" "$DEVICE" "$PRESET" <<'EOF'
import json, subprocess, sys, time
from pathlib import Path
import torch
from uniwav.bench.run import encoder_vs_hubert, matmul_rate, train_shape, train_step
from uniwav.bench.loop import loop_overhead

out, data, device, preset = Path(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4]
gpu = device == "cuda"
result = {}
def row(name, value):
    result[name] = value
    (out / "gpu_check.json").write_text(json.dumps(result, indent=1))
    print(name, json.dumps(value, indent=1), flush=True)

env = {"torch": torch.__version__, "cuda": torch.version.cuda, "gpus": [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())],
       "bf16_matmul_tflops": matmul_rate(device, torch.bfloat16) / 1e12, "float32_matmul_tflops": matmul_rate(device) / 1e12,
       "tf32": torch.backends.cuda.matmul.allow_tf32, "device": device, "preset": preset}
try:
    env["nvidia_smi"] = subprocess.run(["nvidia-smi", "--query-gpu=name,memory.total,driver_version,clocks.sm", "--format=csv,noheader"],
                                       capture_output=True, text=True, timeout=30).stdout.strip().splitlines()
except OSError:
    pass
row("env", env)
batch, seconds = train_shape(preset, device)
for bf16 in (True, False):
    row(f"train_step.{preset}.{'bf16' if bf16 else 'float32'}", train_step(preset, device, batch, seconds, repeats=10 if gpu else 2, bf16=bf16))
start = time.time()
rows = loop_overhead(data, device, updates=30 if gpu else 5, warmup=10 if gpu else 2, preset=preset, work_dir=str(out))
rows["seconds"] = time.time() - start
row("loop_overhead", rows)
row(f"hubert.{preset}", encoder_vs_hubert(preset, device, batch, seconds, repeats=10 if gpu else 2, bf16=True))
EOF

COMMON=(--data "$DATA" --out "$OUT/run" --config "$PRESET" --devices "$GPUS" --strategy "$STRATEGY" --no-progress
        optim.total_steps=2000 trainer.checkpoint_every=100 trainer.sample_every=100000)
START=$(date +%s)
"${UNIWAV[@]}" pretrain "${COMMON[@]}" --max-steps "$UPDATES" 2>&1 | tee "$OUT/pretrain.log"
PRETRAIN_SECONDS=$(( $(date +%s) - START ))
START=$(date +%s)
"${UNIWAV[@]}" pretrain "${COMMON[@]}" --max-steps $(( UPDATES + 20 )) 2>&1 | tee "$OUT/resume.log"
RESUME_SECONDS=$(( $(date +%s) - START ))

$PY - "$OUT" "$PRETRAIN_SECONDS" "$RESUME_SECONDS" "$UPDATES" <<'EOF'
import json, sys
from pathlib import Path
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from uniwav.checkpoint import load_checkpoint
out, pretrain_seconds, resume_seconds, updates = Path(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
events = EventAccumulator(str(out / "run" / "tb"), size_guidance={"scalars": 0})
events.Reload()
rate = [e.value for e in events.Scalars("throughput/audio_seconds_per_second")][updates // 10:]
ckpt = load_checkpoint(out / "run" / "checkpoints" / "last.ckpt")
result = json.loads((out / "gpu_check.json").read_text())
result["pretrain"] = {"updates": updates, "wall_seconds": pretrain_seconds, "world_size": ckpt.get("world_size"),
                      "audio_seconds_per_second_per_process": sum(rate) / max(1, len(rate))}
result["resume"] = {"global_step": ckpt["global_step"], "expected": updates + 20, "wall_seconds": resume_seconds}
(out / "gpu_check.json").write_text(json.dumps(result, indent=1))
print(json.dumps({k: result[k] for k in ("pretrain", "resume")}, indent=1))
assert ckpt["global_step"] == updates + 20, f"the resumed run did not continue to update {updates + 20}"
EOF
echo "gpu_check: wrote $OUT/gpu_check.json"
