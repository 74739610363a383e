"""Throughput and per-frame latency of the streaming path (runtime.live) at 360p and 720p (issue 16).

    python benchmarks/stream_speed.py --assets ../shared/assets            # about 4 min on a 2-core CPU

The shared clip is re-encoded as MPEG-TS at each size and streamed through `run_stream` read at the model's pace
(as a pipe is: nothing dropped), with the default style as `Stylizer.load` picks it and pinned to fp32 on ONNX
Runtime, with and without the temporal steadying. Latency is from a frame's decoding to its being written (model,
steadying, colour conversion, H.264 encoding). Prints a markdown table.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

import numpy as np
from PIL import Image

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from runtime.live import run_stream  # noqa: E402
from runtime.stylizer import Stylizer  # noqa: E402

SIZES = {"360p": (640, 360), "720p": (1280, 720)}


def encode(source: Path, target: Path, size: tuple[int, int], frames: int) -> None:
    import av

    with av.open(str(source)) as src, av.open(str(target), "w", format="mpegts") as sink:
        stream_in = src.streams.video[0]
        out = sink.add_stream("libx264", rate=stream_in.average_rate or 24)
        out.width, out.height, out.pix_fmt = size[0], size[1], "yuv420p"
        for i, frame in enumerate(src.decode(stream_in)):
            if i == frames:
                break
            rgb = np.asarray(Image.fromarray(frame.to_ndarray(format="rgb24")).resize(size, Image.Resampling.LANCZOS))
            new = av.VideoFrame.from_ndarray(rgb, format="rgb24")
            new.pts = i
            for packet in out.encode(new):
                sink.mux(packet)
        for packet in out.encode(None):
            sink.mux(packet)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--assets", type=Path, default=REPO.parent / "shared" / "assets")
    parser.add_argument("--frames", type=int, default=48)
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for name, size in SIZES.items():
            clip = Path(tmp) / f"{name}.ts"
            encode(args.assets / "video" / "cutBunny.mp4", clip, size, args.frames)
            pinned = {"backend": "onnxruntime", "precision": "fp32"}
            for label, settings in (("auto", {}), ("fp32 ONNX Runtime", pinned)):
                for temporal in (True, False):
                    with Stylizer.load("mosaic", device="cpu", **settings) as stylizer:
                        how = f"{stylizer.backend_name}, {Path(stylizer.backend.inner.path).name}"
                        report = run_stream(str(clip), str(Path(tmp) / "out.mp4"), stylizer, drop=False,
                                            temporal=temporal)  # fmt: skip
                    rows.append({"size": name, "model": label, "how": how, "temporal": temporal, **report.summary()})
                    print(json.dumps(rows[-1]), flush=True)
    print("\n| size | model | temporal | frames/s | latency median ms | latency p90 ms |")
    print("|---|---|---|---|---|---|")
    for r in rows:
        print(
            f"| {r['size']} | {r['model']} ({r['how']}) | {'on' if r['temporal'] else 'off'} | {r['frames_per_s']} "
            f"| {r['latency_ms_median']} | {r['latency_ms_p90']} |"
        )


if __name__ == "__main__":
    main()
