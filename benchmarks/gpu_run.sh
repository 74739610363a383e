#!/usr/bin/env bash
# The one command for a lent GPU machine (see benchmarks/gpu_speed.py and README "What was tested where"):
#   device run: bash benchmarks/gpu_run.sh      carry: [".gpu"]      timeout_s: 540
# .gpu/ is made here first by `bash benchmarks/prepare_gpu_carry.sh ../shared/assets` (ignored by git).
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-benchmarks/gpu-out}
mkdir -p "$OUT"
if ls .gpu/wheels/*.whl >/dev/null 2>&1; then  # what the machine's image lacks (PyAV)
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .gpu/wheels/*.whl \
    && export PYTHONPATH=/tmp/site${PYTHONPATH:+:$PYTHONPATH}
fi
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader | tee "$OUT/nvidia-smi.txt"
PYTHONUNBUFFERED=1 python3 benchmarks/gpu_speed.py --out "$OUT" --assets .gpu "$@" 2>&1 | tee "$OUT/log.txt"
