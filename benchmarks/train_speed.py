"""Training throughput: `toolkit train`'s loop against a plain fp32 eager loop (the pytorch/examples way).

Both train the same generator against the same loss on the same device, reading the same generated photos, and
report the median images/s over the timed steps (after warm-up). On CUDA the toolkit loop uses autocast
(bf16, or fp16 with a grad scaler), channels_last and cuDNN autotuning; on the CPU it runs in fp32, so the two
should match there.

    python benchmarks/train_speed.py                      # CPU, 256² crops, batch 4
    python benchmarks/train_speed.py --device cuda --steps 30 --json
    python benchmarks/train_speed.py --size 192 --width 0.5 --variants fp32,fp32-cl,bf16,bf16-cl   # CPU choices

VGG weights are random unless --vgg-weights is given: speed does not depend on their values.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.helpers import photo_like, random_vgg_state
from train.config import resolve
from train.data import CropDataset, StreamSampler, load_style_image, scan_folder
from train.generators import GeneratorSpec, build_generator
from train.loop import Reporter, run_training
from train.losses import PerceptualLoss
from train.vgg_weights import build_loss_network, read_vgg_weights

CONTENT, STYLE = "relu2_2", "relu1_2,relu2_2,relu3_3,relu4_3"  # the pytorch-examples recipe


def plain_loop(args, data: Path, style: Path, vgg_path: Path) -> list[float]:
    """What pytorch/examples does: fp32, NCHW, no autocast, one step after another."""
    device = torch.device(args.device)
    torch.manual_seed(0)
    generator = build_generator(GeneratorSpec("johnson", "instance", args.width)).to(device).train()
    vgg = build_loss_network(read_vgg_weights(vgg_path), "vgg16", ["relu1_2", "relu2_2", "relu3_3", "relu4_3"])
    loss_fn = PerceptualLoss(
        vgg.to(device), load_style_image(style, None).to(device), {CONTENT: 1.0},
        {name: 1.0 for name in STYLE.split(",")}, 1e5, 1e10, 0.0,
    )  # fmt: skip
    optimizer = torch.optim.Adam(generator.parameters(), lr=1e-3)
    dataset = CropDataset(scan_folder(data).files, args.size, "random", 0)
    loader = torch.utils.data.DataLoader(
        dataset, batch_size=args.batch, sampler=StreamSampler(0, args.steps * args.batch)
    )
    rates = []
    for images, _ in loader:
        start = time.perf_counter()
        images = images.to(device)
        loss = loss_fn(generator(images), images)["total"]
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        if device.type == "cuda":
            torch.cuda.synchronize()
        rates.append(args.batch / (time.perf_counter() - start))
    return rates


class _StepTimes(Reporter):
    def __init__(self, batch: int, device: str):
        self.batch, self.device, self.rates, self.last = batch, device, [], None

    def start(self, total_steps, start_step, images_per_step):
        self.last = time.perf_counter()

    def step(self, step, losses):
        if self.device == "cuda":
            torch.cuda.synchronize()
        now = time.perf_counter()
        self.rates.append(self.batch / (now - self.last))
        self.last = now


def toolkit_loop(args, data: Path, style: Path, vgg_path: Path, out: Path, variant: str = "auto"):
    """`toolkit train`'s loop; `variant`: auto (its defaults), or PRECISION[-cl] (fp32, bf16, …; -cl: channels_last)."""
    settings = {}
    if variant != "auto":
        precision, _, layout = variant.partition("-")
        settings = {"precision": precision, "channels_last": layout == "cl"}
    config = resolve(
        {
            "style": str(style), "data": str(data), "out": str(out), "vgg_weights": str(vgg_path),
            "width": args.width, "image_size": args.size, "batch_size": args.batch, "steps": args.steps,
            "crop": "random", "device": args.device, "log_every": args.steps, "sample_every": 0,
            "checkpoint_every": 10**9, "content_layers": CONTENT, "style_layers": STYLE, **settings,
        }
    )  # fmt: skip
    reporter = _StepTimes(args.batch, args.device)
    result = run_training(config, reporter=reporter)
    label = result.precision + (" channels_last" if config.channels_last else "") if settings else result.precision
    return reporter.rates, label, result.losses.get("total", float("nan"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--width", type=float, default=1.0)
    parser.add_argument("--steps", type=int, default=7)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--vgg-weights", type=Path, help="VGG-16 weights reaching relu4_3 (default: random)")
    parser.add_argument("--variants", default="auto", help="toolkit loop settings: auto, or e.g. fp32,fp32-cl,bf16")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        (tmp / "photos").mkdir()
        for i in range(8):
            Image.fromarray(photo_like((args.size + 40, args.size + 90), seed=i)).save(tmp / "photos" / f"{i}.jpg")
        Image.fromarray(photo_like((args.size, args.size), seed=100)).save(tmp / "style.png")
        vgg_path = args.vgg_weights
        if vgg_path is None:
            vgg_path = tmp / "vgg16.pth"
            torch.save(random_vgg_state(10, "vgg16"), vgg_path)
        plain = plain_loop(args, tmp / "photos", tmp / "style.png", vgg_path)[args.warmup :]
        rows = [("plain fp32 eager (pytorch/examples way)", "fp32", statistics.median(plain), float("nan"))]
        for variant in args.variants.split(","):
            rates, label, loss = toolkit_loop(args, tmp / "photos", tmp / "style.png", vgg_path, tmp / variant, variant)
            rows.append(("toolkit train loop", label, statistics.median(rates[args.warmup :]), loss))

    device_name = torch.cuda.get_device_name() if args.device == "cuda" else f"CPU ({torch.get_num_threads()} threads)"
    if args.json:
        table = [{"loop": name, "precision": prec, "images_per_s": rate, "last_loss": loss}
                 for name, prec, rate, loss in rows]  # fmt: skip
        meta = {"device": device_name, "torch": torch.__version__, "size": args.size, "batch": args.batch}
        print(json.dumps({**meta, "width": args.width, "rows": table}))
        return
    print(f"training speed — {device_name}, torch {torch.__version__}, {args.size}² crops, batch {args.batch}, "
          f"width {args.width}, median of {len(plain)} steps after {args.warmup} warm-up")  # fmt: skip
    print("| loop | precision | images/s | vs plain | loss after the last step |")
    print("|---|---|---|---|---|")
    for name, prec, rate, loss in rows:
        print(f"| {name} | {prec} | {rate:.2f} | {rate / rows[0][2]:.2f}× | {loss:.4g} |")


if __name__ == "__main__":
    main()
