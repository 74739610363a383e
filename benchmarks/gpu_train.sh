#!/usr/bin/env bash
# Train the bundled styles for longer on a lent GPU (issue 12; scripts/continue_style.py), the styles side by side:
#   device run: bash benchmarks/gpu_train.sh      carry: [".gpu-train"]      timeout_s: 480
# .gpu-train/ is made here first by `bash benchmarks/prepare_gpu_carry.sh ../shared/assets --train` (ignored by git).
# Each style trains for TRAIN_SECONDS (default 330) and is then stopped with Ctrl-C, which saves it; what comes back
# is $OUT/NAME.safetensors, $OUT/NAME-log.jsonl and $OUT/continue.md. Then, here, for each NAME:
#   python docs/quality.py --assets ../shared/assets --no-peers --styles NAME --model NAME=FILES_AT/NAME.safetensors
# The rate halves every HALVE_EVERY (1500) steps, not LONGER's 500 on a CPU: a GPU is expected to run thousands.
# On this CPU LONGER from mosaic's stage 8 brought back a diagonal hatching in light skies; its stage 9 (the loss
# continued here) weighs content by the photo's structure and has less of it (docs/recipe.md). Look at the stripes
# and hatching columns and at 100 % crops of the cameraman's sky before taking a GPU-trained mosaic.
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-benchmarks/gpu-out}
mkdir -p "$OUT"
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader | tee "$OUT/nvidia-smi.txt"
PYTHONUNBUFFERED=1 python3 scripts/continue_style.py ${STYLES:-mosaic candy} --assets .gpu-train --device cuda \
  --steps "${TRAIN_STEPS:-6000}" --halve-every "${HALVE_EVERY:-1500}" --seconds "${TRAIN_SECONDS:-330}" \
  --out /tmp/runs --collect "$OUT" 2>&1 | tee "$OUT/train-log.txt"
