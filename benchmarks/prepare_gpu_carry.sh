#!/usr/bin/env bash
# Fill the folders (ignored by git) that a lent GPU machine, which has no network, needs:
#   bash benchmarks/prepare_gpu_carry.sh ../shared/assets [runs/bundled/mosaic/model.safetensors]
#     .gpu/ for benchmarks/gpu_run.sh: the PyAV wheel for its Python 3.12, a few held-out photos, the shared clip,
#     and the default style's generator.
#   bash benchmarks/prepare_gpu_carry.sh ../shared/assets --train
#     .gpu-train/ for scripts/continue_style.py --device cuda (training the bundled styles for longer): the paintings,
#     the 16 training photos and the VGG-16 file cut after conv4_3 (the deepest layer the styles' loss reads; 30 MB
#     instead of 59, so that it travels within the 64 MiB a call may carry).
set -euo pipefail
cd "$(dirname "$0")/.."
assets=${1:?usage: prepare_gpu_carry.sh ASSETS [MODEL.safetensors | --train]}
if [ "${2:-}" = "--train" ]; then
  grep -qx '/.gpu-train/' .git/info/exclude || echo '/.gpu-train/' >> .git/info/exclude
  rm -rf .gpu-train && mkdir -p .gpu-train/style .gpu-train/content .gpu-train/vgg
  cp "$assets"/style/{mosaic.jpg,candy.jpg,starry_night.jpg,rain-princess-cropped.jpg} .gpu-train/style/
  python3 - "$assets" <<'PY'
import shutil, sys
from pathlib import Path
from safetensors.torch import load_file, save_file
sys.path.insert(0, ".")
from scripts.train_bundled_styles import TRAINING_SET, VGG
assets = Path(sys.argv[1])
for name in TRAINING_SET:
    shutil.copy(assets / "content" / name, Path(".gpu-train/content") / name)
state = load_file(assets / VGG)  # torchvision's VGG-16 features: conv4_3 is features.21
kept = {k: v for k, v in state.items() if int(k.split(".")[1]) <= 21}
save_file(kept, Path(".gpu-train") / VGG, metadata={"cut": "features.0-21 (conv1_1..conv4_3) of ASSETS/" + VGG})
PY
  du -sh .gpu-train
  exit 0
fi
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
