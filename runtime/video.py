"""Video files with PyAV (FFmpeg's libraries in its wheel): every frame stylized, same frame count, frame rate and
timestamps, audio streams copied unchanged, written to a temporary name and renamed."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import cast

import numpy as np
from PIL import Image

from runtime.atomic import atomic_path
from runtime.errors import InputError
from runtime.jobs import Outcome, Task
from runtime.stylizer import Stylizer

BT709, UNSPECIFIED = 1, 2  # AVColorSpace values
CONTAINERS = {".mp4": "mp4", ".m4v": "mp4", ".mov": "mov", ".mkv": "matroska", ".webm": "webm", ".avi": "avi"}


class VideoError(InputError):
    """A video that cannot be read or written; the message names the file."""


def _encoder(suffix: str) -> str:
    return {".webm": "libvpx-vp9", ".avi": "mpeg4"}.get(suffix, "libx264")


def _output_size(width: int, height: int, max_size: int | None) -> tuple[int, int]:
    if not max_size or max(width, height) <= max_size:
        return width, height
    scale = max_size / max(width, height)
    w, h = max(2, round(width * scale)), max(2, round(height * scale))
    # Keep even sides where the input had them (4:2:0, which every player takes).
    return w - w % 2 if width % 2 == 0 else w, h - h % 2 if height % 2 == 0 else h


def stylize_video(
    source: Path, target: Path, stylizer: Stylizer, batch_size: int = 4, max_size: int | None = None,
    on_frames=lambda count, total: None, temporal: bool = True, meter=None,
) -> int:  # fmt: skip
    """Write the stylized `source` to `target`; returns the number of frames written. `temporal`: instance-norm
    statistics carried across frames (Stylizer.temporal), so the picture does not flicker. `meter`: a
    runtime.flicker.FlickerMeter fed every (input, stylized) frame pair."""
    try:
        import av
    except ImportError:
        raise VideoError("video needs PyAV: pip install 'fast-style-toolkit[video]'") from None
    try:
        source_container = av.open(str(source))
    except (av.error.FFmpegError, OSError) as exc:
        raise VideoError(f"{source}: cannot open video ({exc})") from None
    written = 0
    try:
        with atomic_path(target) as tmp, source_container, stylizer.temporal(temporal):
            if not source_container.streams.video:
                raise VideoError(f"{source}: no video stream")
            video_in = source_container.streams.video[0]
            audio_in = list(source_container.streams.audio)
            total = video_in.frames or None
            with av.open(str(tmp), "w", format=CONTAINERS.get(target.suffix.lower(), "mp4")) as sink:
                rate = video_in.average_rate or video_in.guessed_rate
                video_out = sink.add_stream(_encoder(target.suffix.lower()), rate=rate)
                video_out.time_base = video_in.time_base
                video_out.codec_context.time_base = video_in.time_base  # keep variable frame timing exact
                width, height = _output_size(video_in.codec_context.width, video_in.codec_context.height, max_size)
                video_out.width, video_out.height = width, height
                # 4:2:0 needs even sides; an odd-sized video keeps its size in 4:4:4.
                video_out.pix_fmt = "yuv420p" if height % 2 == 0 and width % 2 == 0 else "yuv444p"
                # Players read untagged HD video as BT.709: tag the output like the input, and convert RGB to YUV
                # with the input's matrix, so colours come out as they went in.
                source_colors = video_in.codec_context
                bt709 = source_colors.colorspace == BT709
                if source_colors.colorspace != UNSPECIFIED:
                    for tag in ("colorspace", "color_primaries", "color_trc"):
                        setattr(video_out.codec_context, tag, getattr(source_colors, tag))
                audio_out = {stream.index: sink.add_stream_from_template(stream) for stream in audio_in}
                pending: list = []

                def encode(frames: list) -> int:
                    arrays = [frame.to_ndarray(format="rgb24") for frame in frames]
                    if arrays[0].shape[:2] != (height, width):
                        arrays = [np.asarray(Image.fromarray(a).resize((width, height), Image.Resampling.LANCZOS))
                                  for a in arrays]  # fmt: skip
                    styled = stylizer.stylize_arrays(arrays, batch_size)
                    if meter is not None:
                        for array, rgb in zip(arrays, styled, strict=True):
                            meter.add(array, rgb)
                    for frame, rgb in zip(frames, styled, strict=True):
                        out = av.VideoFrame.from_ndarray(rgb, format="rgb24").reformat(
                            format=video_out.pix_fmt, dst_colorspace="ITU709" if bt709 else None
                        )
                        out.pts, out.time_base = frame.pts, frame.time_base
                        for packet in video_out.encode(out):
                            sink.mux(packet)
                    return len(frames)

                # Nothing is muxed before the first video frame is seen: the container header (written at the first
                # mux) must carry the input's display rotation, which only decoded frames report.
                held_audio: list | None = []

                def mux_audio(packet) -> None:
                    packet.stream = audio_out[packet.stream.index]
                    sink.mux(packet)

                for packet in source_container.demux(video_in, *audio_in):
                    if packet.stream.type == "audio":
                        if packet.dts is None:
                            continue
                        if held_audio is None:
                            mux_audio(packet)
                        else:
                            held_audio.append(packet)
                        continue
                    for frame in cast("list[av.VideoFrame]", packet.decode()):  # audio packets went on above
                        if held_audio is not None:
                            if frame.rotation:
                                video_out.set_display_rotation(frame.rotation)
                            for audio_packet in held_audio:
                                mux_audio(audio_packet)
                            held_audio = None
                        pending.append(frame)
                        if len(pending) == batch_size:
                            written += encode(pending)
                            pending = []
                            on_frames(written, total)
                if pending:
                    written += encode(pending)
                    on_frames(written, total)
                for packet in video_out.encode(None):
                    sink.mux(packet)
            if written == 0:
                raise VideoError(f"{source}: no frame could be decoded")
    except av.error.FFmpegError as exc:
        raise VideoError(f"{source}: {exc}") from None
    return written


def run_videos(
    tasks: list[Task],
    stylizer: Stylizer,
    *,
    overwrite,
    batch_size,
    max_size,
    report,
    on_frames: Callable[[Task, int, int | None], None] = lambda task, count, total: None,
    temporal: bool = True,
    measure_flicker: bool = False,
) -> list[Outcome]:
    """Each video task in turn; `on_frames(task, frames done, frames in all or None)` as frames are written (the
    caller shows progress), `report(outcome)` when a video is done, skipped or failed."""
    outcomes = []
    for task in tasks:
        target = Path(task.target)
        if target.exists() and not overwrite:
            outcome = Outcome(task.source, task.target, "skipped", "output exists (use --overwrite)")
        else:
            started = time.perf_counter()
            try:
                meter = None
                if measure_flicker:
                    from runtime.flicker import FlickerMeter

                    try:
                        meter = FlickerMeter()
                    except ImportError as exc:
                        raise VideoError(f"--flicker: {exc}") from None
                frames = stylize_video(
                    Path(task.source), target, stylizer, batch_size, max_size,
                    lambda count, total, task=task: on_frames(task, count, total), temporal, meter,
                )  # fmt: skip
                outcome = Outcome(
                    task.source,
                    task.target,
                    "done",
                    seconds=time.perf_counter() - started,
                    frames=frames,
                    flicker=meter.result() if meter is not None else None,
                )
            except VideoError as exc:
                outcome = Outcome(task.source, task.target, "failed", str(exc))
            except Exception as exc:  # PyAV, encoder or backend failures: this video fails, not the job
                outcome = Outcome(task.source, task.target, "failed", f"{task.source}: {exc}")
        report(outcome)
        outcomes.append(outcome)
    return outcomes
