"""`toolkit run`: stylize image files, folders, globs, stdin, and videos."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, TypedDict

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskID, TextColumn, TimeRemainingColumn

from toolkit.reporting import stderr, user_errors

if TYPE_CHECKING:
    from runtime.jobs import Outcome


class _ImageOptions(TypedDict):
    """What run_images and run_images_on_ray both take."""

    overwrite: bool
    batch_size: int
    max_size: int | None
    max_pixels: int
    format: str | None
    report: Callable[[Outcome], None]


def run(
    inputs: list[str] = typer.Argument(..., help="Image or video files, folders (recursive), globs, or - for stdin."),
    out: str = typer.Option(..., "-o", "--out", help="Output folder (or file for one input; - for stdout)."),
    model: str = typer.Option(
        None, "--model", "-m", help="A bundled style's name (toolkit styles) or a .onnx/.engine/.safetensors file."
    ),
    backend: str = typer.Option(
        "auto", "--backend", help="auto (tensorrt, onnxruntime, torch), one of those, or openvino."
    ),
    device: str = typer.Option(None, "--device", help="cpu or cuda (default: the best available)."),
    batch_size: int = typer.Option(4, "--batch-size", help="Images of the same size run together."),
    max_size: int = typer.Option(None, "--max-size", help="Downscale the long side to this many pixels first."),
    max_pixels: int = typer.Option(None, "--max-pixels", help="Refuse larger images (default ≈ 179 Mpx)."),
    strength: float = typer.Option(1.0, "--strength", help="Blend with the original: 1 = full style, 0 = none."),
    preserve_color: bool = typer.Option(False, "--preserve-color", help="Keep the input's colours."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace outputs that exist (default: skip them)."),
    format: str = typer.Option(None, "--format", help="Output image format (default: the input's)."),
    json_output: bool = typer.Option(False, "--json", help="One JSON object per output, then a summary."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bar."),
    server: str = typer.Option(
        None, "--server", help="Run the model on a Triton server instead of here: HOST:PORT (HTTP) or grpc://HOST:PORT."
    ),
    model_name: str = typer.Option("stylize", "--model-name", help="The model's name on the --server."),
    ray: str = typer.Option(
        None, "--ray", help="Run the images on a Ray cluster: local (start one here), auto (RAY_ADDRESS) or ADDRESS."
    ),
    ray_actors: int = typer.Option(2, "--ray-actors", help="Stylizer actors (one GPU each on a GPU cluster)."),
    tile: str = typer.Option(
        "auto", "--tile", help="auto: photos above 4 Mpx in 768-px tiles (ONNX Runtime); N: tiles of N px; off."
    ),
) -> None:
    """Stylize images and videos. Existing outputs are skipped, so an interrupted job resumes when run again."""
    from runtime.images import DEFAULT_MAX_PIXELS
    from runtime.jobs import JobError, check_output, pending, plan, run_images
    from runtime.stylizer import Stylizer, resolve_model
    from runtime.video import run_videos

    with user_errors():
        if batch_size < 1 or (max_size is not None and max_size < 1) or not 0 <= strength <= 1:
            raise JobError("--batch-size and --max-size must be positive and --strength between 0 and 1")
        tasks, failures = plan(inputs, out, format)
        check_output(tasks)
        if ray:
            if any(t.kind != "image" or t.target == "-" for t in tasks):
                raise JobError("--ray runs image files and folders; run videos and stdin without --ray")
            if ray_actors < 1:
                raise JobError("--ray-actors must be at least 1")
            ray_model = str(resolve_model(model))  # a missing model fails here, before the cluster starts
            if pending(tasks, overwrite)[0]:  # a finished job does not start a cluster
                from runtime.ray_jobs import connect

                connect(ray)
            stylizer = None
        elif server:
            if model or backend != "auto" or device:
                raise JobError("--server runs the server's model: drop --model, --backend and --device")
            stylizer = Stylizer.remote(server, model_name, strength, preserve_color)
        else:
            stylizer = Stylizer.load(model, backend, device, strength, preserve_color, tile)
    for note in stylizer.fresh_notes() if stylizer else []:
        stderr.print(f"note: {note}", markup=False)
    if ray:
        where = (f"{ray}, {ray_actors} actors", "ray")
    else:
        assert stylizer is not None  # every way but --ray made one
        where = (stylizer.backend.device, stylizer.backend_name)

    to_stdout = out == "-"
    outcomes: list[Outcome] = list(failures)
    images = [t for t in tasks if t.kind == "image"]
    videos = [t for t in tasks if t.kind == "video"]
    show = not quiet and not to_stdout
    progress = Progress(
        TextColumn("{task.description}"), BarColumn(bar_width=24), MofNCompleteColumn(),
        TextColumn("{task.fields[speed]}"), TimeRemainingColumn(), console=stderr, disable=not show,
    )  # fmt: skip

    def emit(outcome: Outcome) -> None:
        if json_output and not to_stdout:
            typer.echo(json.dumps({k: v for k, v in outcome.__dict__.items() if v not in (None, "")}))
        if outcome.status == "failed":
            stderr.print(f"failed: {outcome.reason}", markup=False)
        elif outcome.status == "done" and outcome.reason:
            stderr.print(f"note: {outcome.reason}", markup=False)

    with stylizer or contextlib.nullcontext(), progress:
        if images:
            bar = progress.add_task("images", total=len(images), speed="")

            def on_image(outcome: Outcome) -> None:
                emit(outcome)
                progress.advance(bar)
                speed = progress.tasks[bar].speed
                progress.update(bar, speed=f"{speed:.1f} img/s" if speed else "")

            options = _ImageOptions(overwrite=overwrite, batch_size=batch_size, max_size=max_size,
                                    max_pixels=max_pixels or DEFAULT_MAX_PIXELS, format=format,
                                    report=on_image)  # fmt: skip
            if ray:
                from runtime.ray_jobs import run_images_on_ray

                with user_errors():  # a node that cannot load the model
                    outcomes += run_images_on_ray(
                        images, ray_model, address=ray, actors=ray_actors, backend=backend, device=device,
                        strength=strength, preserve_color=preserve_color, tile=tile, **options,
                    )  # fmt: skip
            else:
                assert stylizer is not None  # made by every way but --ray
                outcomes += run_images(images, stylizer, **options)
        if videos:
            assert stylizer is not None  # --ray takes no videos
            bars: dict[str, TaskID] = {}

            def on_frames(task, count: int, total: int | None) -> None:
                bar = bars.get(task.source)
                if bar is None:
                    bar = bars[task.source] = progress.add_task(Path(task.source).name, total=None, speed="")
                progress.update(bar, completed=count, total=total)
                speed = progress.tasks[bar].speed
                progress.update(bar, speed=f"{speed:.1f} frames/s" if speed else "")

            outcomes += run_videos(videos, stylizer, overwrite=overwrite, batch_size=batch_size, max_size=max_size,
                                   report=emit, on_frames=on_frames)  # fmt: skip
    for note in stylizer.fresh_notes() if stylizer else []:  # what the job itself ran into
        stderr.print(f"note: {note}", markup=False)
    for outcome in failures:
        emit(outcome)
    counts = {s: sum(o.status == s for o in outcomes) for s in ("done", "skipped", "failed")}
    summary = {"summary": True, **counts, "backend": where[1], "device": where[0]}
    if json_output and not to_stdout:
        typer.echo(json.dumps(summary))
    else:
        stderr.print(
            f"done {counts['done']}, skipped {counts['skipped']}, failed {counts['failed']} ({where[1]} on {where[0]})",
            markup=False,
        )
    if counts["failed"]:
        raise typer.Exit(1)
