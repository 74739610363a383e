#!/usr/bin/env bash
# Fill .gpu/ (ignored by git) with what benchmarks/gpu_run.sh needs on the lent GPU machine, which has no network:
# the PyAV wheel for its Python 3.12, a few held-out photos, the shared clip, and the default style's generator.
#   bash benchmarks/prepare_gpu_carry.sh ../shared/assets [runs/bundled/mosaic/model.safetensors]
set -euo pipefail
cd "$(dirname "$0")/.."
assets=${1:?usage: prepare_gpu_carry.sh ASSETS [MODEL.safetensors]}
model=${2:-runs/bundled/mosaic/model.safetensors}
grep -qx '/.gpu/' .git/info/exclude || echo '/.gpu/' >> .git/info/exclude
rm -rf .gpu && mkdir -p .gpu/wheels .gpu/photos
python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
  --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 -d .gpu/wheels av==18.1.0
for photo in grace_hopper.jpg hoovertowernight.jpg chelsea.png coffee.png rocket.jpg Landscape_6.jpg; do
  cp "$assets/content/$photo" .gpu/photos/
done
cp "$assets/video/cutBunny.mp4" .gpu/
[ -f "$model" ] && cp "$model" .gpu/model.safetensors
du -sh .gpu
