"""`toolkit train`: learn a generator for one style image from a folder of content photos."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskID, TextColumn, TimeRemainingColumn

from runtime.bundled import is_style_name
from toolkit.reporting import stderr, user_errors


def _abs(path: Path | None) -> str | None:
    return str(path.expanduser().resolve()) if path is not None else None


def _init_source(init: str | None) -> str | None:
    """--init as given when it names a bundled style (a bare name that is not a file here), else an absolute path."""
    if init is None or is_style_name(init):
        return init
    return _abs(Path(init))


def train(
    style: Path = typer.Option(None, "--style", help="Style image (JPEG/PNG)."),
    data: Path = typer.Option(None, "--data", help="Folder of content photos, searched recursively."),
    out: Path = typer.Option(..., "--out", help="Output folder: model.safetensors, checkpoint, log, samples."),
    preset: str = typer.Option(
        None, "--preset", help="Recipe: pytorch-examples (default), johnson, texture-nets, balanced, shallow."
    ),
    arch: str = typer.Option(None, "--arch", help="Generator: johnson (residual net) or texture (multi-scale)."),
    norm: str = typer.Option(None, "--norm", help="instance (default) or batch."),
    width: float = typer.Option(None, "--width", help="Channel multiplier; 0.5 = jcjohnson's half-width model."),
    noise_channels: int = typer.Option(None, "--noise-channels", help="Noise channels per scale (texture only)."),
    image_size: int = typer.Option(None, "--image-size", help="Side of the square training crops."),
    style_size: int = typer.Option(None, "--style-size", help="Resize the style image's long side to this."),
    crop: str = typer.Option(None, "--crop", help="random or center crops (after resizing the short side)."),
    zoom: float = typer.Option(
        None, "--zoom", help="Random crops from the short side enlarged up to this factor (1: the whole short side)."
    ),
    sky: float = typer.Option(
        None, "--sky", help="Fraction of crops (0–1) whose part beyond a random line becomes a smooth, grainy gradient."
    ),
    batch_size: int = typer.Option(None, "--batch-size"),
    steps: int = typer.Option(None, "--steps", help="Optimizer steps in all (a resumed run may raise it)."),
    epochs: float = typer.Option(None, "--epochs", help="Passes over the data folder, instead of --steps."),
    loss_net: str = typer.Option(None, "--loss-net", help="vgg16 or vgg19."),
    vgg_weights: Path = typer.Option(
        None, "--vgg-weights", help="Local VGG weights (torchvision or Caffe-normalised). Default: download."
    ),
    content_layers: str = typer.Option(None, "--content-layers", help="e.g. relu2_2 or relu2_2:1,relu3_3:0.5"),
    style_layers: str = typer.Option(None, "--style-layers", help="e.g. relu1_2,relu2_2,relu3_3,relu4_3"),
    style_grid: int = typer.Option(
        None, "--style-grid", help="Match the painting's Gram matrices in each cell of a GRID×GRID split (1: whole)."
    ),
    style_grid_layers: str = typer.Option(
        None, "--style-grid-layers", help="The style layers --style-grid applies to (default: all of them)."
    ),
    content_weight: float = typer.Option(None, "--content-weight"),
    content_structure: float = typer.Option(
        None,
        "--content-structure",
        help="> 0: content counts fully where the photo's 9×9 luma std reaches this, "
        "a tenth in flat areas (left to the style).",
    ),
    style_weight: float = typer.Option(None, "--style-weight"),
    loss_scale: str = typer.Option(
        None, "--loss-scale", help="absolute (published recipes) or relative (each term a relative error)."
    ),
    tv_weight: float = typer.Option(None, "--tv-weight", help="Total variation weight."),
    range_weight: float = typer.Option(
        None, "--range-weight", help="> 0: judge the output clipped to 0–255, and penalise values outside it."
    ),
    histogram_layers: str = typer.Option(
        None, "--histogram-layers", help="Layers whose feature distributions are matched (default relu1_1)."
    ),
    histogram_weight: float = typer.Option(
        None, "--histogram-weight", help="> 0: match those distributions to the painting's (sliced Wasserstein)."
    ),
    lowfreq_weight: float = typer.Option(
        None, "--lowfreq-weight", help="> 0: penalise large-scale colour change where the photo is smooth (arcs)."
    ),
    lowfreq_scale: int = typer.Option(
        None, "--lowfreq-scale", help="The box blur, in px, that --lowfreq-weight looks through (default 32)."
    ),
    lowfreq_gain: float = typer.Option(
        None, "--lowfreq-gain", help="How many times the photo's own large-scale change is free (default 2)."
    ),
    relight_weight: float = typer.Option(
        None, "--relight-weight", help="> 0: penalise redrawing a crop when its light changes smoothly (arcs)."
    ),
    relight_amount: float = typer.Option(
        None, "--relight-amount", help="Light changed by up to ×(1+this) in ramps and vignettes (default 0.5)."
    ),
    relight_scale: int = typer.Option(
        None, "--relight-scale", help="The box blur, in px, that --relight-weight looks through (default 16)."
    ),
    paste_weight: float = typer.Option(
        None, "--paste-weight", help="> 0: penalise redrawing the ground round a shape pasted into a crop (glows)."
    ),
    paste_scale: int = typer.Option(
        None, "--paste-scale", help="The box blur, in px, that --paste-weight looks through (default 8)."
    ),
    paste_band: int = typer.Option(
        None, "--paste-band", help="px round the pasted shape left free for its outline (default 6)."
    ),
    grain_weight: float = typer.Option(
        None, "--grain-weight", help="> 0: penalise the output's change when grain is added to a crop (hatching)."
    ),
    grain_sigma: float = typer.Option(
        None, "--grain-sigma", help="The grain's standard deviation, 0–255 units (default 4)."
    ),
    lr: float = typer.Option(None, "--lr", help="Adam learning rate."),
    lr_decay: float = typer.Option(None, "--lr-decay", help="Multiply the learning rate by this ..."),
    lr_decay_every: int = typer.Option(None, "--lr-decay-every", help="... every this many steps (0 = never)."),
    seed: int = typer.Option(None, "--seed"),
    init: str = typer.Option(
        None,
        "--init",
        help="Fine-tune: start from a model.safetensors, an .onnx from toolkit export, or a bundled style's name "
        "(same generator).",
    ),
    checkpoint_every: int = typer.Option(None, "--checkpoint-every", help="Steps between checkpoints."),
    log_every: int = typer.Option(None, "--log-every", help="Steps between log.jsonl lines."),
    sample_every: int = typer.Option(None, "--sample-every", help="Steps between sample grids (0 = none)."),
    resume: bool = typer.Option(False, "--resume", help="Continue the run in --out where it stopped."),
    device: str = typer.Option(None, "--device", help="auto, cpu or cuda."),
    precision: str = typer.Option(None, "--precision", help="auto (bf16/fp16 on CUDA), fp32, bf16, fp16."),
    channels_last: bool = typer.Option(None, "--channels-last/--no-channels-last", help="Default: on CUDA."),
    workers: int = typer.Option(None, "--workers", help="Data loading processes (default: 0 on CPU)."),
    json_output: bool = typer.Option(False, "--json", help="Print the result as one JSON object."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bar."),
) -> None:
    """Train a generator for one style. Stop with Ctrl-C at any time; --resume continues exactly."""
    from runtime.errors import UserError
    from train.checkpoint import read_checkpoint_config
    from train.config import resolve
    from train.loop import CHECKPOINT_FILE, run_training

    overrides = dict(
        style=_abs(style),
        data=_abs(data),
        out=str(out),
        preset=preset,
        arch=arch,
        norm=norm,
        width=width,
        noise_channels=noise_channels,
        image_size=image_size,
        style_size=style_size,
        crop=crop,
        zoom=zoom,
        sky=sky,
        batch_size=batch_size,
        steps=steps,
        epochs=epochs,
        loss_net=loss_net,
        vgg_weights=_abs(vgg_weights),
        content_layers=content_layers,
        style_layers=style_layers,
        style_grid=style_grid,
        style_grid_layers=style_grid_layers,
        content_weight=content_weight,
        style_weight=style_weight,
        tv_weight=tv_weight,
        loss_scale=loss_scale,
        range_weight=range_weight,
        histogram_layers=histogram_layers,
        histogram_weight=histogram_weight,
        lowfreq_weight=lowfreq_weight,
        lowfreq_scale=lowfreq_scale,
        lowfreq_gain=lowfreq_gain,
        relight_weight=relight_weight,
        relight_amount=relight_amount,
        relight_scale=relight_scale,
        paste_weight=paste_weight,
        paste_scale=paste_scale,
        paste_band=paste_band,
        content_structure=content_structure,
        grain_weight=grain_weight,
        grain_sigma=grain_sigma,
        lr=lr,
        lr_decay=lr_decay,
        lr_decay_every=lr_decay_every,
        seed=seed,
        init=_init_source(init),
        checkpoint_every=checkpoint_every,
        log_every=log_every,
        sample_every=sample_every,
        device=device,
        precision=precision,
        channels_last=channels_last,
        workers=workers,
    )
    with user_errors():
        saved = None
        if resume:
            checkpoint = out / CHECKPOINT_FILE
            if not checkpoint.is_file():
                raise UserError(f"--resume: no {CHECKPOINT_FILE} in {out}; start the run without --resume")
            saved = read_checkpoint_config(checkpoint)
        elif style is None or data is None:
            raise UserError("--style and --data are required (or --resume to continue the run in --out)")
        config = resolve(overrides, saved)
        reporter = _ProgressReporter(enabled=not quiet)
        try:
            result = run_training(config, resume=resume, reporter=reporter)
        finally:
            reporter.finish()
    if json_output:
        typer.echo(json.dumps(result.__dict__))
    else:
        state = "stopped" if result.interrupted else "finished"
        stderr.print(
            f"{state} at step {result.step}/{result.total_steps} ({result.images_per_s:.1f} images/s on "
            f"{result.device}, {result.precision}); model: {Path(result.out) / 'model.safetensors'}"
        )
        if result.interrupted:
            stderr.print(f"continue with: toolkit train --out {result.out} --resume")
        if result.skipped_files:
            stderr.print(f"skipped {len(result.skipped_files)} unreadable file(s)")
    if result.interrupted:  # saved, but not finished: a script must not take it for success
        raise typer.Exit(130)


class _ProgressReporter:
    def __init__(self, enabled: bool):
        self.enabled = enabled
        self.progress: Progress | None = None
        self.task: TaskID | None = None
        self.images_per_step = 1

    def warn(self, message: str) -> None:
        stderr.print(f"warning: {message}", markup=False)

    def start(self, total_steps: int, start_step: int, images_per_step: int) -> None:
        if not self.enabled:
            return
        self.images_per_step = images_per_step
        self.progress = Progress(
            BarColumn(bar_width=20),
            MofNCompleteColumn(),
            TextColumn("{task.fields[speed]}"),
            TimeRemainingColumn(),
            TextColumn("{task.fields[losses]}"),
            console=stderr,
        )
        self.progress.start()
        self.task = self.progress.add_task("train", total=total_steps, completed=start_step, speed="", losses="")

    def step(self, step: int, losses: dict[str, float] | None) -> None:
        if self.progress is None:
            return
        assert self.task is not None  # added with the progress bar
        fields: dict[str, Any] = {}  # the bar's own fields (losses, speed)
        if losses is not None:
            terms = " + ".join(f"{k} {losses[k]:.3g}" for k in ("content", "style", "tv"))
            fields["losses"] = f"loss {losses['total']:.4g} = {terms}"
        task = self.progress.tasks[0]
        if task.speed:
            fields["speed"] = f"{task.speed * self.images_per_step:.1f} img/s"
        self.progress.update(self.task, completed=step, **fields)

    def finish(self) -> None:
        if self.progress is not None:
            self.progress.stop()
            self.progress = None
