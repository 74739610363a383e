"""`toolkit run`: stylize image files, folders, globs, stdin, and videos."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskID, TextColumn, TimeRemainingColumn

from toolkit.reporting import stderr, user_errors

if TYPE_CHECKING:
    from runtime.jobs import Outcome, Task


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
    cutouts: str = typer.Option(
        "alone",
        "--cutouts",
        help="Pictures with transparency: alone (the subject stylized as if it were the whole picture) or on-grey "
        "(as if pasted on a mid-grey photo: darker subjects stay darker); the alpha is kept either way.",
    ),
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
        "auto", "--tile", help="auto: photos above 4 Mpx in 768-px tiles (ONNX Runtime/OpenVINO); N: N-px tiles; off."
    ),
    temporal: str = typer.Option(
        "auto", "--temporal", help="Video: auto carries instance-norm statistics across frames (no flicker); off."
    ),
    flicker: bool = typer.Option(
        False, "--flicker", help="Measure each video's flicker (warping error, still regions; needs OpenCV; slower)."
    ),
    input_format: str = typer.Option(
        None, "--input-format", help="Streams: the container on a pipe (- with mpegts, …) or a device (v4l2)."
    ),
    output_format: str = typer.Option(None, "--output-format", help="Streams: the container to write (mpegts, flv)."),
    drop: bool = typer.Option(
        None,
        "--drop/--no-drop",
        help="Streams: drop frames the model cannot keep up with (default: for URLs and devices, not for pipes).",
    ),
    max_frames: int = typer.Option(None, "--max-frames", help="Streams: stop after this many frames."),
    precision: str = typer.Option(
        "auto",
        "--precision",
        help="auto (NAME.int8.onnx beside NAME.onnx on a VNNI CPU with OpenVINO), fp32, fp16 or int8: that file.",
    ),
) -> None:
    """Stylize images and videos. Existing outputs are skipped, so an interrupted job resumes when run again."""
    from runtime.errors import JobError
    from runtime.images import DEFAULT_MAX_PIXELS
    from runtime.job import Job, JobSettings
    from runtime.jobs import check_output, plan
    from runtime.live import is_stream

    if len(inputs) == 1 and (is_stream(inputs[0]) or (inputs[0] == "-" and input_format)):
        with user_errors():
            settings = JobSettings(
                model=model, backend=backend, device=device, strength=strength, preserve_color=preserve_color,
                tile=tile, precision=precision, cutouts=cutouts, temporal=temporal, max_size=max_size,
            )  # fmt: skip
            if server or ray:
                raise JobError("a live stream runs here: drop --server and --ray")
            if flicker:
                raise JobError("--flicker measures video files; for a stream, record it and run benchmarks/flicker.py")
        _run_stream(inputs[0], out, settings, input_format, output_format, drop, max_frames, json_output, quiet,
                    overwrite)  # fmt: skip
        return
    with user_errors():
        settings = JobSettings(
            model=model, backend=backend, device=device, strength=strength, preserve_color=preserve_color, tile=tile,
            precision=precision, cutouts=cutouts, temporal=temporal, flicker=flicker, batch_size=batch_size,
            max_size=max_size, max_pixels=max_pixels or DEFAULT_MAX_PIXELS, format=format,
            overwrite=overwrite, server=server, model_name=model_name, ray=ray, ray_actors=ray_actors,
        )  # fmt: skip
        tasks, failures = plan(inputs, out, format)
        check_output(tasks)
        job = Job(tasks, settings)
    for note in job.notes():
        stderr.print(f"note: {note}", markup=False)

    to_stdout = out == "-"
    progress = Progress(
        TextColumn("{task.description}"), BarColumn(bar_width=24), MofNCompleteColumn(),
        TextColumn("{task.fields[speed]}"), TimeRemainingColumn(), console=stderr, disable=quiet or to_stdout,
    )  # fmt: skip

    def emit(outcome: Outcome) -> None:
        if json_output and not to_stdout:
            typer.echo(json.dumps({k: v for k, v in outcome.__dict__.items() if v not in (None, "")}))
        if outcome.status == "failed":
            stderr.print(f"failed: {outcome.reason}", markup=False)
        elif outcome.status == "done" and outcome.reason:
            stderr.print(f"note: {outcome.reason}", markup=False)
        if outcome.flicker and not json_output:
            f = outcome.flicker
            shown = {k: "—" if f[k] is None else f"{f[k]:.2f}" for k in ("warping_error", "still_difference")}
            line = (f"flicker of {outcome.target}: warping error {shown['warping_error']}, still-region difference "
                    f"{shown['still_difference']} over {f['pairs']} frame pairs")  # fmt: skip
            stderr.print(line, markup=False)

    images_bar = progress.add_task("images", total=len(job.images), speed="", visible=bool(job.images))
    video_bars: dict[str, TaskID] = {}

    def on_image(outcome: Outcome) -> None:
        emit(outcome)
        progress.advance(images_bar)
        speed = progress.tasks[images_bar].speed
        progress.update(images_bar, speed=f"{speed:.1f} img/s" if speed else "")

    def on_frames(task: Task, count: int, total: int | None) -> None:
        bar = video_bars.get(task.source)
        if bar is None:
            bar = video_bars[task.source] = progress.add_task(Path(task.source).name, total=None, speed="")
        progress.update(bar, completed=count, total=total)
        speed = progress.tasks[bar].speed
        progress.update(bar, speed=f"{speed:.1f} frames/s" if speed else "")

    with job, progress, user_errors():  # user_errors: a Ray node that cannot load the model
        outcomes = list(failures) + job.run(on_image, emit, on_frames)
    for note in job.notes():  # what the job itself ran into
        stderr.print(f"note: {note}", markup=False)
    for outcome in failures:
        emit(outcome)
    device_name, backend_name = job.where
    counts = {s: sum(o.status == s for o in outcomes) for s in ("done", "skipped", "failed")}
    summary = {"summary": True, **counts, "backend": backend_name, "device": device_name}
    if json_output and not to_stdout:
        typer.echo(json.dumps(summary))
    else:
        stderr.print(
            f"done {counts['done']}, skipped {counts['skipped']}, failed {counts['failed']} "
            f"({backend_name} on {device_name})",
            markup=False,
        )
    if counts["failed"]:
        raise typer.Exit(1)


def _run_stream(source: str, out: str, settings, input_format: str | None, output_format: str | None,
                drop: bool | None, max_frames: int | None, json_output: bool, quiet: bool,
                overwrite: bool) -> None:  # fmt: skip
    """`toolkit run URL|DEVICE|- -o FILE|URL|-`: a live stream, frame by frame (runtime.live)."""
    from runtime.live import run_stream
    from runtime.stylizer import Stylizer

    s = settings
    to_stdout = out == "-"

    def show(report) -> None:
        if not quiet and not to_stdout and report.frames_out % 25 == 0:
            stderr.print(f"  {report.frames_out} frames, {report.dropped} dropped", markup=False)

    with user_errors():
        stylizer = Stylizer.load(s.model, s.backend, s.device, s.strength, s.preserve_color, s.tile, s.precision)
        with stylizer:
            for note in stylizer.fresh_notes():
                stderr.print(f"note: {note}", markup=False)
            report = run_stream(source, out, stylizer, input_format=input_format, output_format=output_format,
                                drop=drop, max_size=s.max_size, temporal=s.temporal != "off", max_frames=max_frames,
                                on_frame=show, overwrite=overwrite)  # fmt: skip
            for note in stylizer.fresh_notes():
                stderr.print(f"note: {note}", markup=False)
    summary = report.summary()
    if report.ended_by:
        stderr.print(f"note: {report.ended_by}", markup=False)
    if json_output and not to_stdout:
        typer.echo(json.dumps({"summary": True, **summary}))
    else:
        stderr.print(f"done: {summary['frames_out']} frames written, {summary['dropped']} dropped of "
                     f"{summary['frames_in']} read, {summary['frames_per_s']} frames/s, latency "
                     f"{summary['latency_ms_median']} ms median", markup=False)  # fmt: skip
    if report.interrupted:
        raise typer.Exit(130)
