#!/usr/bin/env bash
# GPU acceptance check, for the first CUDA machine we get (about 10 minutes). Usage:
#   bash benchmarks/gpu_check.sh [OUT_DIR]
# Writes OUT_DIR/gpu_check.json with:
#   env       GPUs, driver, torch / CUDA versions
#   pretrain  bf16 pre-training of the `base` preset on the demo corpus on every visible GPU (DDP):
#             updates, wall time, audio seconds per second (TensorBoard), peak memory per GPU
#   resume    the same run resumed for 50 more updates: starts where it stopped (global step), exit 0
#   bench     `uniwav bench --device cuda`: MFU against the GPU's measured bf16 matmul rate, our encoder
#             vs transformers' HuBERT on the GPU, inference real-time factors, peak step memory
# Needs: the repository installed with `bash install.sh --dev` over a CUDA build of torch, and espeak-ng.
set -euo pipefail
OUT=${1:-gpu_check}
mkdir -p "$OUT"
PY=${PYTHON:-python3}
GPUS=$($PY -c "import torch; print(torch.cuda.device_count())")
[ "$GPUS" -ge 1 ] || { echo "gpu_check: no CUDA device visible to torch" >&2; exit 1; }

$PY - "$OUT/env.json" <<'EOF'
import json, subprocess, sys, torch
env = {"torch": torch.__version__, "cuda": torch.version.cuda, "gpus": [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())],
       "bf16": torch.cuda.is_bf16_supported()}
try:
    env["nvidia_smi"] = subprocess.run(["nvidia-smi", "--query-gpu=name,memory.total,driver_version", "--format=csv,noheader"],
                                       capture_output=True, text=True, timeout=30).stdout.strip().splitlines()
except OSError:
    pass
json.dump(env, open(sys.argv[1], "w"), indent=1)
print(env)
EOF

[ -d "$OUT/data/train" ] || uniwav prepare demo --out "$OUT/data" --minutes 30 --jobs 8
COMMON=(--data "$OUT/data" --out "$OUT/run" --config base --devices "$GPUS" --strategy ddp --no-progress
        optim.warmup_steps=50 data.max_duration=100 trainer.checkpoint_every=100 trainer.sample_every=100000)
START=$(date +%s)
uniwav pretrain "${COMMON[@]}" --max-steps 300 2>&1 | tee "$OUT/pretrain.log"
PRETRAIN_SECONDS=$(( $(date +%s) - START ))
START=$(date +%s)
uniwav pretrain "${COMMON[@]}" --max-steps 350 2>&1 | tee "$OUT/resume.log"
RESUME_SECONDS=$(( $(date +%s) - START ))
uniwav bench --device cuda --no-compile --json "$OUT/bench.json" --data "$OUT/data" 2>&1 | tee "$OUT/bench.log"

$PY - "$OUT" "$PRETRAIN_SECONDS" "$RESUME_SECONDS" <<'EOF'
import json, sys
from pathlib import Path
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from uniwav.checkpoint import load_checkpoint
out, pretrain_seconds, resume_seconds = Path(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
events = EventAccumulator(str(out / "run" / "tb"), size_guidance={"scalars": 0})
events.Reload()
rate = [e.value for e in events.Scalars("throughput/audio_seconds_per_second")][5:]
ckpt = load_checkpoint(out / "run" / "checkpoints" / "last.ckpt")
result = {"env": json.loads((out / "env.json").read_text()),
          "pretrain": {"updates": 300, "wall_seconds": pretrain_seconds, "world_size": ckpt.get("world_size"),
                       "audio_seconds_per_second_per_process": sum(rate) / max(1, len(rate))},
          "resume": {"global_step": ckpt["global_step"], "expected": 350, "wall_seconds": resume_seconds},
          "bench": json.loads((out / "bench.json").read_text())}
(out / "gpu_check.json").write_text(json.dumps(result, indent=1))
print(json.dumps({k: v for k, v in result.items() if k != "bench"}, indent=1))
assert ckpt["global_step"] == 350, "the resumed run did not continue to update 350"
EOF
echo "gpu_check: wrote $OUT/gpu_check.json"
