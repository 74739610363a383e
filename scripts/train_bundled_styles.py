"""Train, export and record the styles that ship in `runtime/styles/` (issue 5).

    python scripts/train_bundled_styles.py --assets ../shared/assets [--styles mosaic,candy] [--steps 1200]

Each style: `toolkit train` (preset `shallow`: the shared VGG-19 stops at relu3_1) on the 16-photo training set
named in the assets' SOURCES.md, `toolkit export` into runtime/styles/NAME.onnx (fp32, uint8 I/O), and
runtime/styles/NAME.json with the provenance: commands, data, steps, final losses, wall time, machine.
Runs go to runs/bundled/NAME (kept out of git); a stopped run resumes where it stopped.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shlex
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
TRAINING_SET = [
    "amber.jpg",
    "tubingen.jpg",
    "golden_gate.jpg",
    "chicago.jpg",
    "cornell.jpg",
    "newyork.jpg",
    "sailboat.jpg",
    "modern.jpg",
    "flowers.jpg",
    "tiger.jpg",
    "karya.jpg",
    "in3.png",
    "in39.png",
    "china.jpg",
    "flower.jpg",
    "astronaut.png",
]
# name -> (style image in assets/style, extra train options that differ from the shared recipe)
STYLES = {
    "mosaic": ("mosaic.jpg", []),
    "starry-night": ("starry_night.jpg", []),
    "candy": ("candy.jpg", []),
    "wave": ("wave.jpg", []),
}
RECIPE = ["--preset", "shallow", "--width", "0.5", "--image-size", "128", "--batch-size", "4", "--seed", "42"]


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    import torch

    device = torch.cuda.get_device_name() if torch.cuda.is_available() else f"CPU only, {os.cpu_count()} cores"
    return f"{cpu}; {device}; torch {torch.__version__}"


def run(command: list[str]) -> None:
    print("+", shlex.join(command), flush=True)
    subprocess.run(command, check=True)


def training_folder(assets: Path, folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for name in TRAINING_SET:
        link = folder / name
        if not link.exists():
            link.symlink_to((assets / "content" / name).resolve())
    return folder


def last_log_line(run_dir: Path) -> dict:
    lines = (run_dir / "log.jsonl").read_text().splitlines()
    return json.loads(lines[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--assets", type=Path, default=REPO.parent / "shared" / "assets")
    parser.add_argument("--styles", default=",".join(STYLES))
    parser.add_argument("--steps", type=int, default=1200)
    parser.add_argument("--runs", type=Path, default=REPO / "runs" / "bundled")
    parser.add_argument("--out", type=Path, default=REPO / "runtime" / "styles")
    args = parser.parse_args()

    data = training_folder(args.assets, args.runs / "train16")
    vgg = args.assets / "vgg" / "vgg_r31.pth"
    for name in args.styles.split(","):
        style_file, extra = STYLES[name]
        run_dir = args.runs / name
        train = [
            "toolkit", "train", "--style", str(args.assets / "style" / style_file), "--data", str(data),
            "--out", str(run_dir), "--vgg-weights", str(vgg), *RECIPE, "--steps", str(args.steps), *extra,
            "--sample-every", "400", "--log-every", "50", "--quiet",
        ]  # fmt: skip
        if (run_dir / "checkpoint.safetensors").exists():
            train.append("--resume")
        started = time.perf_counter()
        run(train)
        train_seconds = time.perf_counter() - started
        export = ["toolkit", "export", str(run_dir / "model.safetensors"), "-o", str(args.out), "--name", name]
        run(export)
        final = last_log_line(run_dir)
        record = {
            "style_image": f"{style_file} (../shared/assets/style; see its SOURCES.md; not shipped)",
            "training": {
                "command": shlex.join(train).replace(str(args.assets), "ASSETS").replace(str(REPO) + "/", ""),
                "data": f"16 photos: {', '.join(TRAINING_SET)}",
                "loss_network": "VGG-19 Caffe-normalised, conv1_1..relu3_1 (vgg_r31.pth): no relu4_1 or deeper",
                "steps": final["step"],
                "images_seen": final["step"] * 4,
                "final_losses": {k: round(v, 5) for k, v in final.items() if k not in ("step", "lr", "images_per_s")},
                "wall_seconds": round(train_seconds),
            },
            "export": shlex.join(export).replace(str(REPO) + "/", ""),
            "machine": machine(),
            "precision": "fp32",
        }
        (args.out / f"{name}.json").write_text(json.dumps(record, indent=2) + "\n")
        print(f"{name}: {final['step']} steps in {train_seconds / 60:.1f} min -> {args.out / name}.onnx", flush=True)


if __name__ == "__main__":
    sys.exit(main())
