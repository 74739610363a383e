"""Folder jobs: which files to stylize into which outputs, and the pipeline that does it.

Decoding and encoding run in worker threads while the model runs; images of the same size go through the model as
one batch. Every output is written to a temporary name and renamed, and an output that exists is skipped (unless
overwrite), so a job that was interrupted resumes where it stopped. A bad input fails alone; the job goes on.
"""

from __future__ import annotations

import glob
import sys
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from runtime.atomic import stale_temporaries, write_atomic
from runtime.errors import JobError
from runtime.images import (
    DEFAULT_MAX_PIXELS,
    FORMAT_BY_SUFFIX,
    ImageError,
    Photo,
    decode,
    encode,
    read_photo,
)
from runtime.stylizer import Stylizer

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".webp", ".tif", ".tiff", ".bmp", ".gif", ".ppm", ".pgm", ".pbm"}
VIDEO_SUFFIXES = {".mp4", ".mov", ".mkv", ".avi", ".webm", ".m4v"}
STDIO = "-"
FORMAT_NAMES = {"jpg": "JPEG", "jpeg": "JPEG", "png": "PNG", "webp": "WEBP", "tif": "TIFF", "tiff": "TIFF",
                "bmp": "BMP"}  # fmt: skip
SUFFIX_BY_FORMAT = {"JPEG": ".jpg", "PNG": ".png", "WEBP": ".webp", "TIFF": ".tif", "BMP": ".bmp"}


@dataclass
class Task:
    source: str  # a path, or "-" for standard input
    target: str  # a path, or "-" for standard output
    kind: str  # "image" or "video"


@dataclass
class Outcome:
    source: str
    target: str
    status: str  # "done", "skipped" or "failed"
    reason: str = ""  # why it failed or was skipped; for "done", a note the user should read
    seconds: float = 0.0
    frames: int | None = None
    flicker: dict | None = None  # a video's flicker (runtime.flicker), when asked for


MAX_STDIN_BYTES = 512 * 1024 * 1024


def read_stdin(limit: int | None = None) -> bytes:
    """The image on standard input, refused past `limit` bytes rather than read without end (`- < /dev/zero`)."""
    limit = MAX_STDIN_BYTES if limit is None else limit
    data = sys.stdin.buffer.read(limit + 1)
    if len(data) > limit:
        raise ImageError(f"<stdin>: more than {limit // 2**20} MiB, not an image this reads from a pipe; give a file")
    return data


def _kind(path: Path) -> str | None:
    suffix = path.suffix.lower()
    return "image" if suffix in IMAGE_SUFFIXES else "video" if suffix in VIDEO_SUFFIXES else None


def _target_name(relative: Path, kind: str, format: str | None) -> Path:
    if kind == "image" and format:
        return relative.with_suffix(SUFFIX_BY_FORMAT[FORMAT_NAMES[format]])
    if kind == "image" and relative.suffix.lower() not in FORMAT_BY_SUFFIX:
        return relative.with_suffix(".png")  # formats Pillow reads but we do not write (GIF, PPM, …)
    return relative


def plan(inputs: list[str], out: str, format: str | None = None) -> tuple[list[Task], list[Outcome]]:
    """Tasks for every input (files, folders searched recursively, globs, "-"), and failures for missing ones."""
    if format and format.lower() not in FORMAT_NAMES:
        raise JobError(f"--format {format}: choose one of {', '.join(sorted(FORMAT_NAMES))}")
    format = format.lower() if format else None
    if STDIO in inputs or out == STDIO:
        if inputs != [STDIO] or out != STDIO:
            raise JobError("'-' reads one image from stdin and writes it to stdout: use `toolkit run - -o -`")
        return [Task(STDIO, STDIO, "image")], []
    out_path = Path(out)
    found: list[tuple[Path, Path]] = []  # (source, path relative to the output folder)
    missing: list[Outcome] = []
    for item in inputs:
        path = Path(item)
        if path.is_dir():
            outputs = out_path.resolve()
            for child in sorted(p for p in path.rglob("*") if p.is_file() and _kind(p)):
                if outputs != path.resolve() and outputs in child.resolve().parents:
                    continue  # earlier outputs inside the input folder are not inputs
                found.append((child, child.relative_to(path)))
        elif path.is_file():
            found.append((path, Path(path.name)))
        elif any(ch in item for ch in "*?["):
            matches = sorted(Path(m) for m in glob.glob(item, recursive=True) if Path(m).is_file() and _kind(Path(m)))
            if not matches:
                missing.append(Outcome(item, "", "failed", f"{item}: no file matches this pattern"))
            found += [(m, Path(m.name)) for m in matches]
        else:
            missing.append(Outcome(item, "", "failed", f"{item}: no such file or folder"))
    single_file_target = len(inputs) == 1 and len(found) == 1 and not Path(inputs[0]).is_dir() and _kind(out_path)
    if single_file_target and format and FORMAT_BY_SUFFIX.get(out_path.suffix.lower()) != FORMAT_NAMES[format]:
        raise JobError(f"-o {out_path} and --format {format} disagree; name the output {out_path.stem}"
                       f"{SUFFIX_BY_FORMAT[FORMAT_NAMES[format]]} or drop --format")  # fmt: skip
    if single_file_target and _kind(found[0][0]) and _kind(found[0][0]) != _kind(out_path):
        raise JobError(f"-o {out_path}: a {_kind(found[0][0])} input cannot be written as a {_kind(out_path)} file")
    tasks = []
    claimed: dict[Path, Path] = {}
    sources = {source.resolve() for source, _ in found}
    seen: set[Path] = set()
    for source, relative in found:
        if source.resolve() in seen:
            continue  # named twice (b.jpg ./b.jpg, or a folder and a glob that overlap): stylized once
        seen.add(source.resolve())
        kind = _kind(source) or "image"
        target = out_path if single_file_target else out_path / _target_name(relative, kind, format)
        key = target.resolve()
        if key in sources:
            reason = f"{source}: its output {target} would replace an input; choose another -o"
            missing.append(Outcome(str(source), str(target), "failed", reason))
        elif key in claimed:
            missing.append(Outcome(str(source), str(target), "failed", f"{source}: same output {target} as "
                                   f"{claimed[key]}; run them separately or rename one"))  # fmt: skip
        else:
            claimed[key] = source
            tasks.append(Task(str(source), str(target), kind))
    return tasks, missing


def check_output(tasks: list[Task]) -> None:
    """Create the output folders and prove they can be written, before any work (else exit 2). Temporary files
    that a killed run left behind for this job's outputs are removed."""
    for folder in sorted({Path(t.target).parent for t in tasks if t.target != STDIO}):
        try:
            folder.mkdir(parents=True, exist_ok=True)
            names = {Path(t.target).name for t in tasks if Path(t.target).parent == folder}
            for stale in stale_temporaries(folder, names):
                stale.unlink(missing_ok=True)
            probe = folder / f".write-test.{time.time_ns()}"
            probe.write_bytes(b"")
            probe.unlink()
        except OSError as exc:
            raise JobError(
                f"cannot write to output folder {folder} ({exc.strerror or exc}); choose another -o"
            ) from None


def _fit_max_size(photo: Photo, max_size: int | None) -> Photo:
    h, w = photo.rgb.shape[:2]
    if not max_size or max(h, w) <= max_size:
        return photo
    scale = max_size / max(h, w)
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    rgb = np.asarray(Image.fromarray(photo.rgb).resize(size, Image.Resampling.LANCZOS))
    alpha = (
        None if photo.alpha is None else np.asarray(Image.fromarray(photo.alpha).resize(size, Image.Resampling.LANCZOS))
    )
    return Photo(rgb, alpha, photo.icc_profile, photo.exif, photo.format)


def _output_format(task: Task, photo: Photo, format: str | None) -> str:
    if format:
        return FORMAT_NAMES[format]
    if task.target != STDIO:
        return FORMAT_BY_SUFFIX.get(Path(task.target).suffix.lower(), "PNG")
    return photo.format if photo.format in SUFFIX_BY_FORMAT else "PNG"


def _flatten_for(photo: Photo, out_format: str) -> Photo:
    """JPEG and BMP hold no alpha: flatten on white, as an editor exporting to them does."""
    if photo.alpha is None or out_format not in ("JPEG", "BMP"):
        return photo
    a = photo.alpha[..., None].astype(np.float32) / 255.0
    rgb = np.clip(photo.rgb * a + 255.0 * (1 - a) + 0.5, 0, 255).astype(np.uint8)
    return Photo(rgb, None, photo.icc_profile, photo.exif, photo.format)


def pending(tasks: list[Task], overwrite: bool) -> tuple[list[Task], list[Outcome]]:
    """The tasks still to do, and a "skipped" outcome for each whose output exists (unless overwrite)."""
    todo, skipped = [], []
    for task in tasks:
        if task.target != STDIO and not overwrite and Path(task.target).exists():
            skipped.append(Outcome(task.source, task.target, "skipped", "output exists (use --overwrite)"))
        else:
            todo.append(task)
    return todo, skipped


def run_images(
    tasks: list[Task],
    stylizer: Stylizer,
    *,
    overwrite: bool = False,
    batch_size: int = 4,
    max_size: int | None = None,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    format: str | None = None,
    report: Callable[[Outcome], None] = lambda outcome: None,
    workers: int = 2,
) -> list[Outcome]:
    outcomes: list[Outcome] = []
    format = format.lower() if format else None

    def finish(outcome: Outcome) -> None:
        outcomes.append(outcome)
        report(outcome)

    def load(task: Task) -> Photo:
        if task.source == STDIO:
            photo = decode(read_stdin(), "<stdin>", max_pixels)
        else:
            photo = read_photo(task.source, max_pixels)
        return _fit_max_size(photo, max_size)

    def save(task: Task, photo: Photo, started: float) -> Outcome:
        out_format = _output_format(task, photo, format)
        data = encode(_flatten_for(photo, out_format), out_format)
        if task.target == STDIO:
            sys.stdout.buffer.write(data)
            sys.stdout.buffer.flush()
        else:
            write_atomic(data, Path(task.target))
        note = ""
        if photo.frames > 1:
            note = (f"{task.source}: {photo.frames} frames (animated or multi-page); only the first was stylized. "
                    "For all of them, make it a video first (e.g. ffmpeg -i in.gif out.mp4)")  # fmt: skip
        return Outcome(task.source, task.target, "done", note, seconds=time.perf_counter() - started)

    todo, skipped = pending(tasks, overwrite)
    for outcome in skipped:
        finish(outcome)
    # A remote backend can have several requests in flight (the server batches and computes while this process
    # waits); a local one runs one batch at a time.
    in_flight = stylizer.backend.max_in_flight

    with (
        ThreadPoolExecutor(workers, "decode") as decoders,
        ThreadPoolExecutor(workers, "encode") as encoders,
        ThreadPoolExecutor(in_flight, "infer") as inferrers,
    ):
        window = max(2 * batch_size, 4)
        decoding: deque[tuple[Task, Future, float]] = deque()
        saving: deque[tuple[Task, Future]] = deque()
        queue = iter(todo)

        def refill() -> None:
            while len(decoding) < window and (task := next(queue, None)) is not None:
                decoding.append((task, decoders.submit(load, task), time.perf_counter()))

        def collect_saved(block: bool) -> None:
            while saving and (block or saving[0][1].done()):
                task, future = saving.popleft()
                try:
                    finish(future.result())
                except Exception as exc:  # this output fails, the job goes on
                    finish(Outcome(task.source, task.target, "failed", f"{task.target}: cannot write ({exc})"))

        batch: list[tuple[Task, Photo, float]] = []
        inferring: deque[tuple[list[tuple[Task, Photo, float]], Future]] = deque()

        def collect_inferred(block: bool) -> None:
            while inferring and (block or inferring[0][1].done()):
                items, future = inferring.popleft()
                try:
                    outputs = future.result()
                except Exception as exc:  # a backend failure fails these inputs, not the job
                    for task, _, _ in items:
                        finish(Outcome(task.source, task.target, "failed", f"{task.source}: the model failed ({exc})"))
                    continue
                for (task, photo, started), rgb in zip(items, outputs, strict=True):
                    saving.append((task, encoders.submit(save, task, photo.with_rgb(rgb), started)))

        def flush() -> None:
            if not batch:
                return
            items = list(batch)
            batch.clear()
            rgbs, alphas = [p.rgb for _, p, _ in items], [p.alpha for _, p, _ in items]
            inferring.append((items, inferrers.submit(stylizer.stylize_arrays, rgbs, batch_size, alphas)))
            while len(inferring) >= in_flight:
                collect_inferred(block=True)

        refill()
        while decoding:
            task, future, started = decoding.popleft()
            refill()
            try:
                photo = future.result()
            except ImageError as exc:
                finish(Outcome(task.source, task.target, "failed", str(exc)))
                continue
            except Exception as exc:  # a decoder bug on a strange file: that file fails, the job goes on
                finish(Outcome(task.source, task.target, "failed", f"{task.source}: cannot decode ({exc!r})"))
                continue
            if batch and (photo.rgb.shape != batch[0][1].rgb.shape or len(batch) == batch_size):
                flush()
            batch.append((task, photo, started))
            collect_inferred(block=False)
            collect_saved(block=False)
        flush()
        collect_inferred(block=True)
        collect_saved(block=True)
    return outcomes
