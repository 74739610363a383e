"""`toolkit run` throughput per backend against a plain torch eager loop (the pytorch/examples `eval` way).

    python benchmarks/run_speed.py                                  # ../shared/assets/content, 16 photos
    python benchmarks/run_speed.py --photos DIR --count 32 --max-size 0 --model runs/x/model.safetensors

All paths stylize the same photos with the same weights (a random-weight full-width TransformerNet unless --model
is given: speed does not depend on the values) at the same sizes (long side ≤ --max-size), decoding the files and
writing PNGs, and report wall-clock images/s over the whole folder, in one run on one machine.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from export.pipeline import export_model
from runtime.jobs import Task, run_images
from runtime.stylizer import Stylizer
from train.checkpoint import load_model, save_model
from train.generators import GeneratorSpec, build_generator


def torch_eager(model_path: Path, photos: list[Path], out: Path, max_size: int | None) -> float:
    """What pytorch/examples `neural_style.py eval` does, once per photo, model loaded once."""
    model, _ = load_model(model_path)
    start = time.perf_counter()
    for path in photos:
        image = Image.open(path).convert("RGB")
        if max_size and max(image.size) > max_size:
            image.thumbnail((max_size, max_size), Image.Resampling.LANCZOS)
        x = torch.from_numpy(np.array(image)).permute(2, 0, 1)[None].float()
        with torch.no_grad():
            y = model(x)[0].clamp(0, 255).permute(1, 2, 0).byte().numpy()
        Image.fromarray(y).save(out / f"{path.stem}.png")
    return time.perf_counter() - start


def toolkit_run(model: Path, backend: str, photos: list[Path], out: Path, max_size: int | None) -> float:
    tasks = [Task(str(p), str(out / f"{p.stem}.png"), "image") for p in photos]
    with Stylizer.load(model, backend=backend, device="cpu") as stylizer:
        start = time.perf_counter()
        outcomes = run_images(tasks, stylizer, batch_size=4, max_size=max_size)
        elapsed = time.perf_counter() - start
    failed = [o for o in outcomes if o.status != "done"]
    if failed:
        raise SystemExit(f"{backend}: {len(failed)} photos failed: {failed[0].reason}")
    return elapsed


def main() -> None:
    default_photos = Path(__file__).resolve().parents[2] / "shared" / "assets" / "content"
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--photos", type=Path, default=default_photos)
    parser.add_argument("--count", type=int, default=16)
    parser.add_argument("--max-size", type=int, default=640, help="0 = full size")
    parser.add_argument("--model", type=Path, help="a model.safetensors (default: random full-width johnson)")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    photos = sorted(p for p in args.photos.iterdir() if p.suffix.lower() in {".jpg", ".png"})[: args.count]
    max_size = args.max_size or None
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        model = args.model
        if model is None:
            torch.manual_seed(0)
            spec = GeneratorSpec("johnson", "instance", 1.0)
            model = tmp / "model.safetensors"
            save_model(model, build_generator(spec), spec, {"style": "random"})
        export_model(model, tmp / "exported", name="style", check=False, engine=False)
        rows = []
        for name, run in (
            ("torch eager loop (pytorch/examples eval)", lambda out: torch_eager(model, photos, out, max_size)),
            ("toolkit run --backend onnxruntime", lambda out: toolkit_run(tmp / "exported" / "style.onnx",
                                                                          "onnxruntime", photos, out, max_size)),
            ("toolkit run --backend torch", lambda out: toolkit_run(model, "torch", photos, out, max_size)),
        ):  # fmt: skip
            out = tmp / name.split()[0] / name.split()[-1]
            out.mkdir(parents=True)
            rows.append((name, len(photos) / run(out)))
    machine = f"CPU, {os.cpu_count()} cores, torch {torch.__version__}"
    if args.json:
        print(json.dumps({"machine": machine, "photos": len(photos), "max_size": max_size,
                          "rows": [{"path": n, "images_per_s": r} for n, r in rows]}))  # fmt: skip
        return
    print(f"toolkit run speed — {machine}; {len(photos)} photos from {args.photos.name}/, long side ≤ {max_size}")
    print("| path | images/s | vs torch eager |")
    print("|---|---|---|")
    for name, rate in rows:
        print(f"| {name} | {rate:.2f} | {rate / rows[0][1]:.2f}× |")


if __name__ == "__main__":
    main()
