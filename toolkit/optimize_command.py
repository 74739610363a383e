"""`toolkit optimize`: Gatys et al.'s optimization-based stylization of one photo, the quality reference."""

from __future__ import annotations

import json
from pathlib import Path

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from toolkit.reporting import stderr, user_errors


def optimize(
    content: Path = typer.Argument(..., help="The photo to stylize."),
    style: Path = typer.Option(..., "--style", help="Style image."),
    out: Path = typer.Option(..., "-o", "--out", help="Output image file."),
    preset: str = typer.Option(None, "--preset", help="Loss recipe, as for toolkit train (default pytorch-examples)."),
    vgg_weights: Path = typer.Option(None, "--vgg-weights", help="Local VGG weights. Default: download."),
    loss_net: str = typer.Option(None, "--loss-net"),
    content_layers: str = typer.Option(None, "--content-layers"),
    style_layers: str = typer.Option(None, "--style-layers"),
    content_weight: float = typer.Option(None, "--content-weight"),
    style_weight: float = typer.Option(None, "--style-weight"),
    loss_scale: str = typer.Option(
        None, "--loss-scale", help="absolute (published recipes) or relative (each term a relative error)."
    ),
    tv_weight: float = typer.Option(None, "--tv-weight"),
    style_size: int = typer.Option(None, "--style-size", help="Resize the style image's long side to this."),
    image_size: int = typer.Option(None, "--image-size", help="Resize the photo's long side to this first."),
    steps: int = typer.Option(300, "--steps", help="Optimizer steps (L-BFGS iterations or Adam steps)."),
    method: str = typer.Option("lbfgs", "--method", help="lbfgs or adam."),
    lr: float = typer.Option(None, "--lr", help="Default: 1 for L-BFGS, 0.01 (in 0–1 pixel units) for Adam."),
    device: str = typer.Option(None, "--device", help="auto, cpu or cuda."),
    json_output: bool = typer.Option(False, "--json", help="Print the result as one JSON object."),
) -> None:
    """Stylize one photo by optimizing its pixels against the perceptual loss (slow; the quality reference)."""
    import torch
    from PIL import Image

    from train.config import resolve
    from train.data import image_to_tensor, open_rgb
    from train.loop import build_perceptual_loss, resolve_device
    from train.optimize import optimize_image

    def _abs(path):
        return str(path.expanduser().resolve()) if path else None

    overrides = dict(
        style=_abs(style), preset=preset, vgg_weights=_abs(vgg_weights), loss_net=loss_net,
        content_layers=content_layers, style_layers=style_layers, content_weight=content_weight,
        style_weight=style_weight, tv_weight=tv_weight, loss_scale=loss_scale, style_size=style_size, device=device,
    )  # fmt: skip
    with user_errors():
        config = resolve(overrides)
        target = resolve_device(config.device)
        from runtime.errors import UserError
        from train.data import DECODE_ERRORS

        try:
            photo = open_rgb(content)
        except (FileNotFoundError, *DECODE_ERRORS) as exc:
            raise UserError(f"cannot read {content}: {exc}") from None
        if image_size and max(photo.size) > image_size:
            photo.thumbnail((image_size, image_size), Image.Resampling.LANCZOS)
        x = image_to_tensor(photo)[None].to(target)
        loss_fn, _ = build_perceptual_loss(config, target)
        progress = Progress(BarColumn(bar_width=24), MofNCompleteColumn(), TextColumn("{task.fields[loss]}"),
                            TimeRemainingColumn(), console=stderr, disable=json_output)  # fmt: skip
        with progress:
            bar = progress.add_task("optimize", total=steps, loss="")
            result = optimize_image(
                x, loss_fn, steps, method, lr,
                on_step=lambda step, losses: progress.update(bar, completed=step, loss=f"loss {losses['total']:.4g}"),
            )  # fmt: skip
        image = result.image[0].round().to(torch.uint8).permute(1, 2, 0).cpu().numpy()
        from runtime.atomic import write_atomic
        from runtime.images import FORMAT_BY_SUFFIX, Photo, encode

        out.parent.mkdir(parents=True, exist_ok=True)
        write_atomic(encode(Photo(image), FORMAT_BY_SUFFIX.get(out.suffix.lower(), "PNG")), out)
    first, best = result.first, result.best
    summary = {"out": str(out), "steps": steps, "method": method, "seconds": round(result.seconds, 2),
               "first": first, "last": best, "notes": result.notes,
               "curve": [round(h["total"], 6) for h in result.losses]}  # fmt: skip
    if json_output:
        typer.echo(json.dumps(summary))
    else:
        for note in result.notes:
            stderr.print(f"note: {note}", markup=False)
        stderr.print(
            f"loss {first['total']:.4g} → {best['total']:.4g} (best, step {best['step']}) in {result.seconds:.1f} s; "
            f"wrote {out}"
        )
