"""Flicker of stylized video: per-frame instance-norm statistics against statistics carried across frames
(runtime.temporal), next to the input and Johnson's 2016 model (issue 16).

    python benchmarks/flicker.py --assets ../shared/assets                 # the shared clip, about 6 min here
    python benchmarks/flicker.py --video clip.mp4 --frames 0 --variants 0.9:0.8 --no-johnson

For each variant: the warping error and the still-region difference of runtime.flicker (lower is steadier), and
for the temporal variants how far a frame moves from the per-frame stylization (mean |difference| and PSNR over the
frames), which is the price of the steadiness. Prints a markdown table.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from runtime.bench import psnr  # noqa: E402
from runtime.flicker import FlickerMeter  # noqa: E402
from runtime.stylizer import Stylizer  # noqa: E402


def read_frames(path: Path, count: int) -> list[np.ndarray]:
    import av

    with av.open(str(path)) as container:
        frames = []
        for frame in container.decode(container.streams.video[0]):
            frames.append(frame.to_ndarray(format="rgb24"))
            if count and len(frames) == count:
                break
    return frames


def stylize(model, frames: list[np.ndarray], temporal: bool, keep: float | None, blend: float | None,
            precision: str) -> tuple:  # fmt: skip
    with Stylizer.load(model, device="cpu", precision=precision) as stylizer, stylizer.temporal(temporal, keep, blend):
        start = time.perf_counter()
        outputs = [stylizer.stylize_arrays([frame])[0] for frame in frames]
        seconds = (time.perf_counter() - start) / len(frames)
        notes = stylizer.fresh_notes()
        cuts = getattr(stylizer.backend, "cuts", None)
    return outputs, seconds, notes, cuts


def measure(frames: list[np.ndarray], outputs: list[np.ndarray]) -> dict:
    meter = FlickerMeter()
    for frame, out in zip(frames, outputs, strict=True):
        meter.add(frame, out)
    return meter.result()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--assets", type=Path, default=REPO.parent / "shared" / "assets")
    parser.add_argument("--video", type=Path, help="Default: ASSETS/video/cutBunny.mp4.")
    parser.add_argument("--frames", type=int, default=0, help="The first N frames (0: all).")
    parser.add_argument("--model", default="mosaic", help="Bundled style or model file.")
    parser.add_argument("--precision", default="fp32")
    parser.add_argument("--variants", default="0.9:0,0:0.8,0.9:0.8,0.9:0.6",
                        help="Temporal variants KEEP:BLEND: share of carried statistics, share of the previous frame "
                             "blended along the flow (0: none).")  # fmt: skip
    parser.add_argument("--no-johnson", action="store_true")
    args = parser.parse_args()

    video = args.video or args.assets / "video" / "cutBunny.mp4"
    frames = read_frames(video, args.frames)
    rows = [{"variant": "input", **measure(frames, frames)}]
    print(json.dumps(rows[-1]), flush=True)
    plain, seconds, _, _ = stylize(args.model, frames, False, None, None, args.precision)
    rows.append({"variant": f"ours ({args.model}), per-frame statistics", "ms_per_frame": 1000 * seconds,
                 **measure(frames, plain)})  # fmt: skip
    print(json.dumps(rows[-1]), flush=True)
    for variant in (v for v in args.variants.split(",") if v.strip()):
        keep, blend = (float(x) for x in variant.split(":"))
        outputs, seconds, notes, cuts = stylize(args.model, frames, True, keep, blend, args.precision)
        gaps = [float(np.abs(a.astype(np.float64) - b).mean()) for a, b in zip(outputs, plain, strict=True)]
        values = [psnr(a, b) for a, b in zip(outputs, plain, strict=True)]
        name = " + ".join([*([f"statistics carried (keep {keep})"] if keep else []),
                           *([f"flow blend {blend}"] if blend else [])])  # fmt: skip
        rows.append({"variant": f"ours, {name}", "ms_per_frame": 1000 * seconds,
                     **measure(frames, outputs), "vs_per_frame_mean_abs": float(np.mean(gaps)),
                     "vs_per_frame_psnr_mean": float(np.mean(values)), "vs_per_frame_psnr_worst": float(min(values)),
                     "cuts_detected": cuts, "notes": notes})  # fmt: skip
        print(json.dumps(rows[-1]), flush=True)
    johnson = args.assets / "models" / "fns_mosaic.onnx"
    if not args.no_johnson and johnson.is_file():
        outputs, seconds, _, _ = stylize(johnson, frames, False, None, None, "auto")
        rows.append({"variant": "Johnson 2016 (fns_mosaic), per frame", "ms_per_frame": 1000 * seconds,
                     **measure(frames, outputs)})  # fmt: skip
        print(json.dumps(rows[-1]), flush=True)

    print(f"\n{video.name}: {len(frames)} frames, {frames[0].shape[1]}×{frames[0].shape[0]}; {args.precision}\n")
    print(
        "| variant | warping error | still-region difference | ms/frame | vs per-frame: mean abs · PSNR mean (worst) |"
    )
    print("|---|---|---|---|---|")
    for r in rows:
        gap = (f"{r['vs_per_frame_mean_abs']:.2f} · {r['vs_per_frame_psnr_mean']:.1f} dB "
               f"({r['vs_per_frame_psnr_worst']:.1f})") if "vs_per_frame_mean_abs" in r else "—"  # fmt: skip
        ms = f"{r['ms_per_frame']:.0f}" if "ms_per_frame" in r else "—"
        print(f"| {r['variant']} | {r['warping_error']:.2f} | {r['still_difference']:.2f} | {ms} | {gap} |")


if __name__ == "__main__":
    main()
