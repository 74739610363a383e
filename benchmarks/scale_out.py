"""A 200-photo folder three ways, in one run (issue 7): local `toolkit run`, through `toolkit serve` with
`toolkit run --server` (HTTP and gRPC), and `toolkit run --ray local` with 2 actors.

    python benchmarks/scale_out.py [--assets ../shared/assets] [--count 200] [--side 512] [--model mosaic]

The folder is made from the shared content photos: each resized so its long side is `--side` (and a few sizes
around it, so that not every image has the same shape), saved as JPEG. Each path starts from nothing (a fresh
output folder) and its wall time includes its own start-up (model load; Triton start is excluded and reported
separately; Ray's start is included, as a user pays it).
"""

from __future__ import annotations

import argparse
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from PIL import Image, ImageOps

REPO = Path(__file__).resolve().parent.parent


def make_folder(assets: Path, folder: Path, count: int, side: int) -> None:
    photos = sorted(p for p in (assets / "content").iterdir() if p.suffix.lower() in (".jpg", ".png"))
    for i in range(count):
        image = ImageOps.exif_transpose(Image.open(photos[i % len(photos)])).convert("RGB")
        target = side - 32 * ((i // len(photos)) % 3)
        image.thumbnail((target, target), Image.Resampling.LANCZOS)
        image.save(folder / f"{i:04d}.jpg", quality=92)


def timed(command: list[str]) -> float:
    start = time.perf_counter()
    subprocess.run(command, check=True, capture_output=True)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--assets", type=Path, default=REPO.parent / "shared" / "assets")
    parser.add_argument("--count", type=int, default=200)
    parser.add_argument("--side", type=int, default=512)
    parser.add_argument("--model", default="mosaic")
    args = parser.parse_args()
    toolkit = [sys.executable, "-m", "toolkit.cli"]
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        photos = Path(tmp) / "photos"
        photos.mkdir()
        make_folder(args.assets, photos, args.count, args.side)
        seconds = timed([*toolkit, "run", str(photos), "-o", f"{tmp}/local", "--model", args.model, "--quiet"])
        rows.append(("local `toolkit run` (ONNX Runtime, 2 threads)", seconds, ""))

        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        log = Path(tmp) / "serve.log"
        started = time.perf_counter()
        with log.open("w") as out:
            server = subprocess.Popen([*toolkit, "serve", "--model", args.model, "--port", str(port)], stdout=out,
                                      stderr=subprocess.STDOUT)  # fmt: skip
        while "serving" not in log.read_text():
            if server.poll() is not None:
                raise SystemExit(log.read_text()[-2000:])
            time.sleep(0.2)
        start_up = time.perf_counter() - started
        try:
            seconds = timed([*toolkit, "run", str(photos), "-o", f"{tmp}/served", "--server", f"127.0.0.1:{port}",
                             "--quiet"])  # fmt: skip
            grpc_seconds = timed([*toolkit, "run", str(photos), "-o", f"{tmp}/served-grpc", "--server",
                                  f"grpc://127.0.0.1:{port + 1}", "--quiet"])  # fmt: skip
        finally:
            server.send_signal(signal.SIGTERM)
            server.wait(timeout=60)
        rows.append(("`toolkit serve` + `toolkit run --server` (HTTP, loopback)", seconds,
                     f"server start {start_up:.1f} s, not counted"))  # fmt: skip
        rows.append(("`toolkit serve` + `toolkit run --server grpc://` (gRPC, loopback)", grpc_seconds, "same server"))

        seconds = timed([*toolkit, "run", str(photos), "-o", f"{tmp}/ray", "--model", args.model, "--ray", "local",
                         "--ray-actors", "2", "--quiet"])  # fmt: skip
        rows.append(("`toolkit run --ray local --ray-actors 2`", seconds, "Ray start-up included"))
        same = all((Path(tmp) / d / p.name).read_bytes() == (Path(tmp) / "local" / p.name).read_bytes()
                   for d in ("served", "served-grpc", "ray") for p in photos.iterdir())  # fmt: skip
    print(f"\n{args.count} photos, long side {args.side - 64}–{args.side} px, model {args.model}; "
          f"outputs identical across paths: {same}\n")  # fmt: skip
    print("| path | seconds | images/s | note |\n|---|---|---|---|")
    for name, secs, note in rows:
        print(f"| {name} | {secs:.1f} | {args.count / secs:.2f} | {note} |")


if __name__ == "__main__":
    main()
