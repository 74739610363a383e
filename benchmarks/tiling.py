"""A 4000×3000 photo whole and in tiles: peak memory, time, and how far thumbnail statistics move the output.

    python benchmarks/tiling.py [--model mosaic] [--photo ../shared/assets/content/Landscape_3.jpg] [--size 4000x3000]

Each mode runs in a fresh process (peak RSS = that process's ru_maxrss, model load included). The tiled output is
compared with the whole-image one (exact instance-norm statistics): mean and max absolute difference, PSNR, and
the seam check: the mean absolute step between neighbouring pixels on tile borders against everywhere else.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
from PIL import Image

REPO = Path(__file__).resolve().parent.parent

WORKER = """
import json, resource, sys, time
import numpy as np
sys.path.insert(0, {repo!r})
from runtime import Stylizer
image = np.load({src!r})
with Stylizer.load({model!r}, backend="onnxruntime", device="cpu", tile={tile!r}) as stylizer:
    start = time.perf_counter()
    out = stylizer(image)
    seconds = time.perf_counter() - start
np.save({dst!r}, out)
print(json.dumps({{"seconds": seconds, "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}}))
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--model",
        default="mosaic",
        help="A bundled style, a .onnx file, or `bench`: the "
        "full-width pytorch/examples TransformerNet with random weights (as toolkit bench uses).",
    )
    parser.add_argument("--photo", type=Path, default=REPO.parent / "shared" / "assets" / "content" / "Landscape_3.jpg")
    parser.add_argument("--size", default="4000x3000", help="W×H the photo is resized to.")
    parser.add_argument("--modes", default="off,auto,512")
    args = parser.parse_args()
    w, h = (int(v) for v in args.size.split("x"))
    sys.path.insert(0, str(REPO))
    from runtime.images import read_photo
    from runtime.tiling import DEFAULT_TILE

    rgb = np.asarray(Image.fromarray(read_photo(args.photo).rgb).resize((w, h), Image.Resampling.LANCZOS))
    results, outputs = {}, {}
    with tempfile.TemporaryDirectory() as tmp:
        np.save(f"{tmp}/in.npy", rgb)
        if args.model == "bench":
            sys.path.insert(0, str(REPO / "benchmarks"))
            from cpu_tuning import make_model

            args.model = str(make_model(Path(tmp)) / "bench.onnx")
        for mode in args.modes.split(","):
            code = WORKER.format(
                repo=str(REPO), src=f"{tmp}/in.npy", dst=f"{tmp}/{mode}.npy", model=args.model, tile=mode
            )
            done = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True)
            results[mode] = json.loads(done.stdout.strip().splitlines()[-1])
            outputs[mode] = np.load(f"{tmp}/{mode}.npy").astype(np.float32)
            print(f"  {mode}: {results[mode]}", flush=True)
    model = "bench (full-width TransformerNet)" if args.model.endswith("bench.onnx") else args.model
    print(f"\n{args.photo.name} resized to {w}×{h}, model {model}, ONNX Runtime CPU\n")
    print("| --tile | seconds | peak RSS | mean abs diff to whole | max | PSNR | border step / elsewhere |")
    print("|---|---|---|---|---|---|---|")
    whole = outputs.get("off")
    for mode, r in results.items():
        row = f"| {mode} | {r['seconds']:.1f} | {r['peak_rss_mib'] / 1024:.2f} GiB |"
        if whole is not None and mode != "off":
            diff = np.abs(outputs[mode] - whole)
            psnr = 10 * np.log10(255**2 / max(float((diff**2).mean()), 1e-12))
            tile = DEFAULT_TILE if mode == "auto" else int(mode)
            steps = np.abs(np.diff(outputs[mode], axis=1)).mean(axis=(0, 2))  # between column x and x+1
            border = [x - 1 for x in range(tile, w, tile)]
            ratio = steps[border].mean() / np.delete(steps, border).mean()
            row += f" {diff.mean():.2f} | {diff.max():.0f} | {psnr:.1f} dB | {ratio:.2f} |"
        else:
            row += " — | — | — | — |"
        print(row)


if __name__ == "__main__":
    main()
