"""Reproduce the seed paper's claim with our own tools and write docs/paper.md with its figures (issue 5).

    python docs/paper.py --assets ../shared/assets            # about 1.5 h on a 2-core CPU

Ulyanov, Vedaldi, Lempitsky 2016: with instance norm (IN) instead of batch norm (BN), at training and at test
time, feed-forward generators stylize better and their output stops depending on the content image's contrast.
This script trains Johnson and texture-net generators with `--norm batch` and `--norm instance` (same data, same
losses, same steps) with `toolkit train`, exports them with `toolkit export`, runs them with the runtime (ONNX
Runtime, CPU), runs the slow method (`toolkit optimize`, Gatys et al.) as the reference, and measures everything
on the held-out photos twice: with the training objective (VGG-16 up to relu4_3) and with the quality yardstick's
independent judge (torchvision's VGG-19, train/quality.py). Runs are kept in runs/paper/ and reused when run again.
"""

from __future__ import annotations

import argparse
import json
import platform
import shlex
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageDraw

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from runtime.images import read_photo  # noqa: E402
from runtime.stylizer import Stylizer  # noqa: E402
from scripts.train_bundled_styles import TRAINING_SET, machine, read_log, training_seconds  # noqa: E402
from toolkit.contact_sheet import contact_sheet  # noqa: E402
from train.config import resolve  # noqa: E402
from train.loop import build_perceptual_loss  # noqa: E402
from train.quality import GramCloseness, ssim  # noqa: E402

VGG16 = "vgg/vgg16_imagenet_features.safetensors"
JUDGE = "vgg/vgg19_torchvision_features_0-10.pth"
# The loss of the bundled styles (`--preset balanced`): Johnson's style layers, each term a relative error.
LOSS = {
    "preset": "johnson", "loss_scale": "relative", "content_layers": "relu2_2:0.5,relu3_3:1",
    "style_layers": "relu1_2,relu2_2,relu3_3,relu4_3", "content_weight": 1.0, "style_weight": 3.0, "tv_weight": 10.0,
}  # fmt: skip


def flags(settings: dict) -> list[str]:
    return [item for key, value in settings.items() for item in (f"--{key.replace('_', '-')}", str(value))]


GENERATORS = (  # name, arch, width
    ("johnson-batch", "johnson", "0.5"),
    ("johnson-instance", "johnson", "0.5"),
    ("texture-batch", "texture", "1"),
    ("texture-instance", "texture", "1"),
)
LABELS = {
    "johnson-batch": "Johnson, BN",
    "johnson-instance": "Johnson, IN",
    "texture-batch": "texture net, BN",
    "texture-instance": "texture net, IN",
    "optimize": "Gatys (optimize)",
}
TERMS = ("style", "content", "tv", "total")
FIGURE_PHOTOS = ("chelsea.png", "hoovertowernight.jpg", "grace_hopper.jpg")
WIDE_PHOTO = "Landscape_6.jpg"


def sh(command: list[str]) -> str:
    print("+", shlex.join(command), flush=True)
    return subprocess.run(command, check=True, stdout=subprocess.PIPE, text=True).stdout


def rgb_of(path: Path) -> np.ndarray:
    """A photo as a photo editor shows it: EXIF applied, grey as RGB, alpha flattened on white."""
    photo = read_photo(path)
    rgb = photo.rgb.astype(np.float32)
    if photo.alpha is not None:
        a = photo.alpha[..., None].astype(np.float32) / 255
        rgb = rgb * a + 255 * (1 - a)
    return np.clip(np.rint(rgb), 0, 255).astype(np.uint8)


def resize_long_side(rgb: np.ndarray, side: int) -> np.ndarray:
    image = Image.fromarray(rgb)
    scale = side / max(image.size)
    size = (max(1, round(image.width * scale)), max(1, round(image.height * scale)))
    return np.asarray(image.resize(size, Image.Resampling.LANCZOS))


def resize_width(rgb: np.ndarray, width: int) -> np.ndarray:
    image = Image.fromarray(rgb)
    return np.asarray(image.resize((width, round(image.height * width / image.width)), Image.Resampling.LANCZOS))


def low_contrast(rgb: np.ndarray) -> np.ndarray:
    return np.clip(np.rint(rgb.astype(np.float32) * 0.5 + 64), 0, 255).astype(np.uint8)


def to_tensor(rgb: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.array(rgb)).permute(2, 0, 1)[None].float()


def measure(loss_fn, output: np.ndarray, content: np.ndarray) -> dict[str, float]:
    with torch.no_grad():
        terms = loss_fn(to_tensor(output), to_tensor(content))
    return {key: float(terms[key]) for key in TERMS}


def seconds_per_image(stylizer: Stylizer, rgb: np.ndarray, repeats: int = 5) -> float:
    stylizer(rgb)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        stylizer(rgb)
        times.append(time.perf_counter() - start)
    return float(np.median(times))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--assets", type=Path, default=REPO.parent / "shared" / "assets")
    parser.add_argument("--style", default="starry_night.jpg", help="A file in ASSETS/style.")
    parser.add_argument("--steps", type=int, default=800, help="Training steps per generator (batch 4).")
    parser.add_argument("--image-size", type=int, default=128, help="Training crop side (the painting: twice that).")
    parser.add_argument("--eval-size", type=int, default=256, help="Long side of the held-out photos when measured.")
    parser.add_argument("--optimize-steps", type=int, default=400, help="L-BFGS iterations of the reference.")
    parser.add_argument("--optimize-photos", type=int, default=6, help="Held-out photos given the slow method.")
    parser.add_argument("--runs", type=Path, default=REPO / "runs" / "paper")
    parser.add_argument("--docs", type=Path, default=REPO / "docs")
    parser.add_argument("--render-only", action="store_true", help="Rewrite paper.md from paper/results.json.")
    args = parser.parse_args()
    if args.render_only:
        summary = json.loads((args.docs / "paper" / "results.json").read_text())
        (args.docs / "paper.md").write_text(render(summary))
        return

    assets, runs = args.assets.resolve(), args.runs.resolve()
    figures = args.docs / "paper"
    figures.mkdir(parents=True, exist_ok=True)
    data = runs / "train16"
    data.mkdir(parents=True, exist_ok=True)
    for name in TRAINING_SET:
        if not (data / name).exists():
            (data / name).symlink_to(assets / "content" / name)
    style = assets / "style" / args.style
    vgg = assets / VGG16
    loss = {**LOSS, "style_size": 2 * args.image_size}
    recipe = [*flags(loss), "--image-size", str(args.image_size), "--crop", "random", "--batch-size", "4",
              "--seed", "42", "--lr", "1e-3"]  # fmt: skip

    # 1. Train and export the four generators.
    train_seconds, commands = {}, {}
    for name, arch, width in GENERATORS:
        out = runs / name
        command = [
            "toolkit", "train", "--style", str(style), "--data", str(data), "--out", str(out),
            "--vgg-weights", str(vgg), *recipe, "--arch", arch, "--norm", name.split("-")[1], "--width", width,
            "--steps", str(args.steps), "--sample-every", "0", "--log-every", "50", "--quiet",
        ]  # fmt: skip
        commands[name] = shlex.join(command).replace(str(assets), "ASSETS").replace(str(REPO) + "/", "")
        if (out / "checkpoint.safetensors").exists():
            command.append("--resume")  # a stopped run goes on; a finished one is left as it is
        sh(command)
        train_seconds[name] = training_seconds(read_log(out))  # from the logged rates: restarts cost nothing
        sh(["toolkit", "export", str(out / "model.safetensors"), "-o", str(runs / "onnx"), "--name", name])

    # 2. The held-out photos: every content photo not in the training set.
    held_out = sorted(p for p in (assets / "content").iterdir() if p.name not in TRAINING_SET)
    photos = {p.name: resize_long_side(rgb_of(p), args.eval_size) for p in held_out}
    config = resolve(dict(style=str(style), vgg_weights=str(vgg), device="cpu", **loss))
    loss_fn, _ = build_perceptual_loss(config, torch.device("cpu"))
    judge = GramCloseness(str(assets / JUDGE))
    judge.set_painting(rgb_of(style))

    def independent(outs: dict[str, np.ndarray]) -> dict[str, float]:
        """The yardstick's judge, which trained nothing here: closeness to the painting and SSIM to the photo."""
        return {
            "closeness": float(np.mean([judge(outs[p]) for p in outs])),
            "ssim": float(np.mean([ssim(photos[p], outs[p]) for p in outs])),
        }

    # 3. Each generator on every photo and on its low-contrast copy.
    outputs, low_outputs, results = {}, {}, {}
    for name, _, _ in GENERATORS:
        with Stylizer.load(runs / "onnx" / f"{name}.onnx", backend="onnxruntime", device="cpu") as stylizer:
            outputs[name] = {p: stylizer(rgb) for p, rgb in photos.items()}
            low_outputs[name] = {p: stylizer(low_contrast(rgb)) for p, rgb in photos.items()}
            speed = seconds_per_image(stylizer, photos[FIGURE_PHOTOS[0]])
        losses = [measure(loss_fn, outputs[name][p], photos[p]) for p in photos]
        diff = [np.abs(outputs[name][p].astype(np.float32) - low_outputs[name][p]).mean() for p in photos]
        results[name] = {
            **{key: float(np.mean([x[key] for x in losses])) for key in TERMS},
            **independent(outputs[name]),
            "per_photo": {p: loss for p, loss in zip(photos, losses, strict=True)},
            "contrast_diff": float(np.mean(diff)),
            "seconds_per_image": speed,
            "train_seconds": train_seconds[name],
            "command": commands[name],
        }
    input_diff = float(np.mean([np.abs(rgb.astype(np.float32) - low_contrast(rgb)).mean() for rgb in photos.values()]))

    # 4. The slow method on a few photos (the figure photos first), measured the same way.
    chosen = list(FIGURE_PHOTOS) + [p for p in photos if p not in FIGURE_PHOTOS]
    chosen = chosen[: args.optimize_photos]
    optimized, optimize_seconds, optimize_first, late_gain = {}, [], [], []
    for p in chosen:
        target = runs / "optimize" / f"{Path(p).stem}.png"
        source = runs / "optimize" / f"{Path(p).stem}-input.png"
        target.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(photos[p]).save(source)
        record = runs / "optimize" / f"{Path(p).stem}.json"
        if not record.exists():
            result = sh([
                "toolkit", "optimize", str(source), "--style", str(style), "-o", str(target), *flags(loss),
                "--vgg-weights", str(vgg), "--steps", str(args.optimize_steps), "--method", "lbfgs", "--device", "cpu",
                "--json",
            ])  # fmt: skip
            record.write_text(result)
        record_data = json.loads(record.read_text())
        optimize_seconds.append(record_data["seconds"])
        optimize_first.append(record_data["first"])
        curve = record_data["curve"]
        tail = curve[int(0.8 * len(curve)) - 1]  # the loss 80 % of the way through
        late_gain.append((tail - min(curve)) / tail)  # what the last 20 % of the iterations still gained
        optimized[p] = np.asarray(Image.open(target).convert("RGB"))
    opt_losses = [measure(loss_fn, optimized[p], photos[p]) for p in chosen]
    results["optimize"] = {
        **{key: float(np.mean([x[key] for x in opt_losses])) for key in TERMS},
        **independent({p: optimized[p] for p in chosen}),
        "late_gain": float(np.max(late_gain)),
        "seconds_per_image": float(np.mean(optimize_seconds)),
        "photos": chosen,
        "first": {key: float(np.mean([f[key] for f in optimize_first])) for key in TERMS},
    }
    for name, _, _ in GENERATORS:  # the generators on the same subset, for a like-for-like comparison
        subset = [results[name]["per_photo"][p] for p in chosen]
        results[name]["subset"] = {key: float(np.mean([x[key] for x in subset])) for key in TERMS}
        results[name]["subset"].update(independent({p: outputs[name][p] for p in chosen}))
    results["photos"] = independent(dict(photos))  # the untouched photos, for scale

    # 5. Figures.
    names = [n for n, _, _ in GENERATORS]
    rows = [[photos[p], *(outputs[n][p] for n in names), optimized[p]] for p in FIGURE_PHOTOS if p in optimized]
    titles = ["photo", *(LABELS[n] for n in names), LABELS["optimize"]]
    contact_sheet(rows, titles, 200).save(figures / "bn-vs-in.jpg", quality=88)
    p = FIGURE_PHOTOS[1]
    rows = [[photos[p], low_contrast(photos[p]), outputs[n][p], low_outputs[n][p]] for n in names]
    titles = ["photo", "x*0.5+64", "output", "output (low contrast)"]
    sheet = contact_sheet(rows, titles, 200)
    draw = ImageDraw.Draw(sheet)
    top = sheet.height - sum(round(200 * r[0].shape[0] / r[0].shape[1]) + 4 for r in rows)
    for r, n in enumerate(names):
        y = top + r * (round(200 * photos[p].shape[0] / photos[p].shape[1]) + 4)
        draw.text((10, y + 4), LABELS[n], fill=(255, 255, 255), stroke_width=2, stroke_fill=(0, 0, 0))
    sheet.save(figures / "contrast.jpg", quality=88)
    wide = rgb_of(assets / "content" / WIDE_PHOTO)
    with Stylizer.load(runs / "onnx" / "johnson-instance.onnx", backend="onnxruntime", device="cpu") as stylizer:
        for width in (512, 1080):
            Image.fromarray(stylizer(resize_width(wide, width))).save(figures / f"resolution-{width}.jpg", quality=85)

    summary = {
        "style": args.style, "steps": args.steps, "image_size": args.image_size, "eval_size": args.eval_size,
        "optimize_steps": args.optimize_steps, "held_out": list(photos), "input_contrast_diff": input_diff,
        "machine": machine(), "results": results, "python": platform.python_version(),
    }  # fmt: skip
    (figures / "results.json").write_text(json.dumps(summary, indent=2) + "\n")
    (args.docs / "paper.md").write_text(render(summary))
    print(f"wrote {args.docs / 'paper.md'} and {figures}/", flush=True)


def render(s: dict) -> str:
    r = s["results"]
    names = [n for n, _, _ in GENERATORS]
    photos = r["photos"]

    def row(label: str, m: dict, extra: str) -> str:
        return (f"| {label} | {m['style']:.3f} | {m['content']:.3f} | {m['tv']:.3f} | {m['total']:.3f} | "
                f"{m['closeness']:.3f} | {m['ssim']:.3f} | {extra}")  # fmt: skip

    table = "\n".join(
        row(LABELS[n], r[n], f"{r[n]['contrast_diff']:.1f} | {r[n]['seconds_per_image'] * 1000:.0f} ms |")
        for n in names
    )
    o = r["optimize"]
    subset_rows = [row(LABELS[n], r[n]["subset"], f"{r[n]['seconds_per_image'] * 1000:.0f} ms |") for n in names]
    subset_rows.append(row(LABELS["optimize"], o, f"{o['seconds_per_image']:.0f} s |"))
    subset_table = "\n".join(subset_rows)
    jb, ji, tb, ti = (r[n] for n in names)
    n_opt = len(o["photos"])
    commands = "\n".join(f"    {r[n]['command']}" for n in names)
    minutes = {n: r[n]["train_seconds"] / 60 for n in names}
    columns = "style | content | TV | total (the objective) | closeness (VGG-19) | SSIM"
    header = f"| generator | {columns} | contrast change | time |\n|---|---|---|---|---|---|---|---|---|"
    subset_header = f"| method | {columns} | time |\n|---|---|---|---|---|---|---|---|"
    best = min(names, key=lambda n: r[n]["subset"]["total"])

    def ratio(a: float, b: float) -> str:
        return f"{a / b:.0f}×" if b > 0 else "∞"

    def compare(label: str, bn: dict, inn: dict) -> str:
        style_change = 100 * (inn["style"] - bn["style"]) / bn["style"]
        closer = "closer to" if inn["closeness"] < bn["closeness"] else "further from"
        return (
            f"{label}: the style term goes from {bn['style']:.3f} (BN) to {inn['style']:.3f} (IN), "
            f"{style_change:+.0f} %, and the objective from {bn['total']:.3f} to {inn['total']:.3f}; the independent "
            f"judge puts IN {closer} the painting ({bn['closeness']:.3f} → {inn['closeness']:.3f}; the photos "
            f"themselves score {photos['closeness']:.3f})"
        )

    def verdict_for(label: str, bn_name: str, in_name: str) -> str:
        """Whether this generator's pair supports the paper: IN lowers the objective and the judge puts it closer
        to the painting, and both models are styled at all (closer to the painting than the untouched photos)."""
        bn, inn = r[bn_name], r[in_name]
        unstyled = [norm for norm, n in (("BN", bn_name), ("IN", in_name)) if r[n]["closeness"] >= photos["closeness"]]
        if unstyled:
            models = f"its {' and '.join(unstyled)} model{'s are' if len(unstyled) == 2 else ' is'}"
            return (f"{label}: {models} no closer to the painting than the untouched photos; after this short "
                    "training it has not learned the style, so its comparison neither supports nor contradicts the "
                    "paper")  # fmt: skip
        if inn["total"] < bn["total"] and inn["closeness"] < bn["closeness"]:
            return (f"{label}: IN lowers the objective and brings the output closer to the painting by a network "
                    "that did not train it, as the paper finds")  # fmt: skip
        return (f"{label}: IN {'lowers' if inn['total'] < bn['total'] else 'does not lower'} the objective and "
                f"{'brings' if inn['closeness'] < bn['closeness'] else 'does not bring'} the output closer to the "
                "painting, so here the paper's finding does not hold for it")  # fmt: skip

    verdict = ". ".join(
        verdict_for(label, *pair) for label, pair in (("Johnson", names[:2]), ("Texture net", names[2:]))
    )
    verdict += "."
    convergence = (
        f"It had nearly converged: on every photo the last 20 % of the iterations lowered the objective by at most "
        f"{100 * o['late_gain']:.1f} %."
        if o["late_gain"] < 0.05
        else f"It had not converged: on some photo the last 20 % of the iterations still lowered the objective by "
        f"{100 * o['late_gain']:.1f} %, so its numbers below are what it reached, not what it can reach."
    )
    quality = "- **Quality.** " + compare("Johnson", jb, ji) + ". " + compare("Texture net", tb, ti) + ". "
    quality += verdict
    slow_wins = all(o["total"] < r[n]["subset"]["total"] for n in names)
    gap = 100 * (r[best]["subset"]["total"] - o["total"]) / o["total"]
    versus = (
        f"- **Against the slow method.** On its {n_opt} photos, {s['optimize_steps']} L-BFGS iterations from the photo "
        f"take the objective from {o['first']['total']:.3f} to {o['total']:.3f}, "
        + ("lower than every generator" if slow_wins else "not lower than every generator")
        + f". The best generator ({LABELS[best]}) reaches {r[best]['subset']['total']:.3f} "
        + (f"({gap:.0f} % above the slow method)" if gap >= 0 else f"({-gap:.0f} % below the slow method)")
        + f" in {r[best]['seconds_per_image'] * 1000:.0f} ms instead of {o['seconds_per_image']:.0f} s, "
        f"{o['seconds_per_image'] / max(r[best]['seconds_per_image'], 1e-9):.0f}× faster. The independent judge: "
        f"closeness {r[best]['subset']['closeness']:.3f} for the generator, {o['closeness']:.3f} for the slow method."
    )

    return f"""# Instance norm vs batch norm, reproduced with this toolkit

Generated by `python docs/paper.py --assets ../shared/assets --steps {s["steps"]} --optimize-steps {s["optimize_steps"]}
--optimize-photos {n_opt}` (the numbers and figures below are its output; `docs/paper/results.json` has every value).
Machine: {s["machine"]}.

Ulyanov, Vedaldi and Lempitsky (2016) replaced batch norm (BN) by instance norm (IN) in feed-forward stylization
generators, **at training and at test time**, and found that (a) the generators then stylize better, approaching
the slow optimization method of Gatys et al., and (b) their output no longer depends on the contrast of the
content image. We repeat the experiment with our own `toolkit train`, `toolkit export`, the runtime (ONNX Runtime,
CPU) and `toolkit optimize`.

## Setup

- Style: `{s["style"]}`. Training data: the 16 photos listed in the shared assets' SOURCES.md (the paper, too,
  trained on 16 images). Held out for evaluation: the other {len(s["held_out"])} content photos, resized to
  {s["eval_size"]} px on the long side (EXIF orientation applied, grey as RGB, alpha flattened on white).
- Loss, the one the bundled styles are trained with (`--preset balanced`): the full VGG-16 of the shared assets;
  content on relu2_2 (weight 0.5) and relu3_3, Gram-matrix style on relu1_2, relu2_2, relu3_3 and relu4_3, every
  term a relative error (`--loss-scale relative`), weights content 1, style 3, TV 10; the painting at
  {2 * s["image_size"]} px. The same loss measures
  every output in the tables ("style", "content", "TV", "total").
- A second judge that trained nothing here: torchvision's VGG-19 (relu1_1, relu2_1, relu3_1), Gram distance to the
  painting at two picture sizes ("closeness", lower is closer; train/quality.py), and SSIM with the photo.
- Generators: Johnson et al.'s residual net at half width (0.42 M parameters) and Ulyanov et al.'s texture net
  (6 scales, 8 channels per scale), each with `--norm batch` and `--norm instance`; everything else equal:
  {s["steps"]} Adam steps of batch 4 on {s["image_size"]}² random crops, seed 42. BN uses its running statistics
  at test time (PyTorch `eval()`, as exported); IN uses the statistics of each image, at test time too.
- Reference: `toolkit optimize` (L-BFGS, {s["optimize_steps"]} iterations from the content photo, same loss) on
  {n_opt} of the held-out photos. {convergence}

Commands (the script runs them):

{commands}

## Results

"Contrast change" is the mean absolute difference, in 0–255 units, between a generator's output for a photo and
for its low-contrast copy `x·0.5 + 64`; the inputs themselves differ by {s["input_contrast_diff"]:.1f} on average.
Time is per {s["eval_size"]}-px image on this CPU (ONNX Runtime). The untouched photos score closeness
{photos["closeness"]:.3f} and SSIM 1.

All {len(s["held_out"])} held-out photos:

{header}
{table}

The {n_opt} photos the slow method ran on ({", ".join(o["photos"])}):

{subset_header}
{subset_table}

Training time (CPU): {", ".join(f"{LABELS[n]} {m:.0f} min" for n, m in minutes.items())} (from the logged
rates; other jobs shared the CPU part of the time).

![BN vs IN](paper/bn-vs-in.jpg)

*Figure 1 (the paper's Fig. 5): held-out photos, each generator, and the slow method.*

![Contrast test](paper/contrast.jpg)

*Figure 2: the contrast test. Each row is one generator: the photo, its low-contrast copy, and the generator's
output for each.*

| 512 px wide | 1080 px wide |
|---|---|
| ![512](paper/resolution-512.jpg) | ![1080](paper/resolution-1080.jpg) |

*Figure 3 (the paper's Fig. 6): one photo stylized at 512 and at 1080 px wide by the same Johnson IN generator.*

## What this shows

- **Contrast.** Lowering the photo's contrast changes the IN generators' output by {ji["contrast_diff"]:.1f}
  (Johnson) and {ti["contrast_diff"]:.1f} (texture net), against {jb["contrast_diff"]:.1f} and
  {tb["contrast_diff"]:.1f} with BN: BN's output moves {ratio(jb["contrast_diff"], ji["contrast_diff"])} and
  {ratio(tb["contrast_diff"], ti["contrast_diff"])} as much. IN divides each feature map by its own standard
  deviation, so a global change of contrast `a·x + b` is normalized away after the first convolution (exactly,
  with reflection padding, up to IN's epsilon and rounding to 8 bits); BN divides by statistics fixed at training
  time and passes the change on.
{quality}
{versus}

## What differs from the paper, and why

- **Scale of training.** The paper trained for thousands of iterations on GPUs at 256² and larger; this run is
  {s["steps"]} steps on {s["image_size"]}² crops on a 2-core CPU, so the numbers compare short trainings.
- **Loss.** Johnson et al.'s layers through a VGG-16 (the paper used a VGG-19 with content on relu4_2), with every
  term a relative error so that relu4_3 counts (with this VGG-16's raw scale its term is 1e5 times smaller).
- **Texture-net noise.** The paper fed noise channels to the texture net; we train it without (`--noise-channels 0`),
  as these numbers were measured before a model with noise gave deterministic outputs (it now takes a fixed
  position noise outside training).
"""


if __name__ == "__main__":
    main()
