"""Live video in and out: a stream URL PyAV opens (rtsp, rtmp, http, udp, tcp, srt), a pipe (`-` with
`--input-format`, e.g. MPEG-TS from `ffmpeg -f v4l2 -i /dev/video0 -f mpegts -`), or a camera device, stylized frame
by frame (with runtime.temporal: no flicker) and written to a file, a pipe (`-`, MPEG-TS) or a stream URL.

When the model is slower than a live source, frames are dropped, not queued: a reader thread keeps only the newest
decoded frame, so memory stays bounded and the output stays close to real time; the count of dropped frames is
reported. A pipe or file is read at the model's pace instead (nothing dropped, the writer upstream waits), unless
`drop=True` (a camera behind a pipe).
"""

from __future__ import annotations

import contextlib
import statistics
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from runtime.errors import InputError, JobError

STREAM_SCHEMES = ("rtsp://", "rtsps://", "rtmp://", "rtmps://", "http://", "https://", "udp://", "tcp://", "srt://")
WRITE_FORMATS = {"udp": "mpegts", "tcp": "mpegts", "srt": "mpegts", "rtmp": "flv", "rtmps": "flv", "rtsp": "rtsp"}
OPEN_TIMEOUT_US = 10_000_000  # 10 s to connect and to wait for data, then a clear error instead of a hang


class StreamError(InputError):
    """A stream that cannot be opened, read or written; the message names it and the fix."""


def is_stream(source: str) -> bool:
    """A URL PyAV reads as a stream, or a camera device (/dev/videoN, on Linux)."""
    return source.lower().startswith(STREAM_SCHEMES) or source.startswith("/dev/video")


@dataclass
class StreamReport:
    source: str
    target: str
    frames_in: int = 0  # decoded from the source
    frames_out: int = 0  # stylized and written
    dropped: int = 0  # decoded but skipped because the model was busy
    seconds: float = 0.0
    # from a frame's arrival in the mailbox (decoded, and for a pipe, the model ready for it) to its being written
    latency_ms: list[float] = field(default_factory=list, repr=False)
    interrupted: bool = False  # stopped by Ctrl-C (the output is still finished)
    ended_by: str | None = None  # the source's error that ended a stream after frames had come (a live source's end)

    def summary(self) -> dict:
        latencies = sorted(self.latency_ms)
        return {
            "source": self.source, "target": self.target, "frames_in": self.frames_in,
            "frames_out": self.frames_out, "dropped": self.dropped, "seconds": round(self.seconds, 3),
            "frames_per_s": round(self.frames_out / self.seconds, 2) if self.seconds else None,
            "latency_ms_median": round(statistics.median(latencies), 1) if latencies else None,
            "latency_ms_p90": round(latencies[int(0.9 * (len(latencies) - 1))], 1) if latencies else None,
            "interrupted": self.interrupted,
            "ended_by": self.ended_by,
        }  # fmt: skip


def _open_input(source: str, input_format: str | None):
    import av

    # rw_timeout (µs) bounds every read of any protocol; `timeout` means different things per protocol (for RTMP a
    # listen timeout that turns the client into a server), so it is not set
    options = {"rw_timeout": str(OPEN_TIMEOUT_US)}
    if source.lower().startswith(("rtsp://", "rtsps://")):
        options["rtsp_transport"] = "tcp"
    try:
        if source == "-":
            return av.open(sys.stdin.buffer, format=input_format or "mpegts")
        if source.startswith("/dev/video"):
            return av.open(source, format=input_format or "v4l2")
        return av.open(source, format=input_format, options=options, timeout=OPEN_TIMEOUT_US / 1e6)
    except (av.error.FFmpegError, OSError, ValueError) as exc:
        what = "standard input" if source == "-" else source
        hint = " (give --input-format, e.g. mpegts)" if source == "-" else ""
        raise StreamError(f"{what}: cannot open the stream ({exc}){hint}") from None


def _open_output(target: str, output_format: str | None, path: Path | None):
    """`path`: where a file target is written first (runtime.atomic), its format from the target's suffix."""
    import av

    from runtime.video import CONTAINERS

    try:
        if target == "-":
            return av.open(sys.stdout.buffer, "w", format=output_format or "mpegts")
        if path is not None:
            suffix = Path(target).suffix.lower()
            return av.open(str(path), "w", format=output_format or CONTAINERS.get(suffix, "mpegts"))
        scheme = target.split("://", 1)[0].lower()
        return av.open(target, "w", format=output_format or WRITE_FORMATS.get(scheme, "mpegts"))
    except (av.error.FFmpegError, OSError, ValueError) as exc:
        raise StreamError(f"{target}: cannot open for writing ({exc})") from None


class _Latest:
    """A one-slot mailbox between the reader and the model: the reader puts the newest frame, replacing one not yet
    taken (counted as dropped) when `drop`, else waiting for the slot to empty."""

    def __init__(self, drop: bool):
        self.drop, self.dropped, self.closed, self.ended = drop, 0, False, False
        self.item: tuple[Any, float] | None = None  # (frame, when it became available)
        self.cond = threading.Condition()

    def put(self, item) -> bool:
        """False once the consumer has gone: the reader stops."""
        with self.cond:
            while not self.drop and self.item is not None and not self.closed:
                self.cond.wait(0.1)
            if self.closed:
                return False
            if self.item is not None:
                self.dropped += 1
            self.item = (item, time.perf_counter())  # latency counts from here: the frame is available
            self.cond.notify_all()
            return True

    def end(self) -> None:
        with self.cond:
            self.ended = True
            self.cond.notify_all()

    def get(self):
        """The next frame, or None when the source has ended and every frame was taken."""
        with self.cond:
            while self.item is None and not self.ended:
                self.cond.wait()
            item, self.item = self.item, None
            self.cond.notify_all()
            return item

    def close(self) -> None:
        with self.cond:
            self.closed = True
            self.cond.notify_all()


def run_stream(
    source: str,
    target: str,
    stylizer,
    *,
    input_format: str | None = None,
    output_format: str | None = None,
    drop: bool | None = None,
    max_size: int | None = None,
    temporal: bool = True,
    max_frames: int | None = None,
    on_frame: Callable[[StreamReport], None] = lambda report: None,
    overwrite: bool = False,
) -> StreamReport:
    """Stylize the video of `source` into `target` until the source ends, `max_frames` are written, or Ctrl-C
    (then the output is finished properly and `report.interrupted` is set). `drop`: None drops frames for URLs and
    devices (live) and not for pipes and files. A file target appears whole or not at all."""
    try:
        import av  # noqa: F401
    except ImportError:
        raise StreamError("streams need PyAV: pip install 'fast-style-toolkit[video]'") from None
    from runtime.atomic import atomic_path

    stream_target_ok(target, overwrite)
    report = StreamReport(source, target)
    with contextlib.ExitStack() as stack:
        is_file = target != "-" and "://" not in target
        path = stack.enter_context(atomic_path(Path(target))) if is_file else None
        _pump(source, target, path, stylizer, report, input_format, output_format,
              is_stream(source) if drop is None else drop, max_size, temporal, max_frames, on_frame)  # fmt: skip
    return report


def _pump(source, target, path, stylizer, report, input_format, output_format, drop, max_size, temporal,
          max_frames, on_frame) -> None:  # fmt: skip
    import av

    container = _open_input(source, input_format)
    mailbox = _Latest(drop)
    reader: threading.Thread | None = None
    sink: Any = None
    started = time.perf_counter()
    try:
        if not container.streams.video:
            raise StreamError(f"{source}: no video stream")
        video_in = container.streams.video[0]
        failure: list[BaseException] = []

        def read() -> None:
            try:
                for frame in container.decode(video_in):
                    report.frames_in += 1
                    if not mailbox.put(frame):
                        return
            except BaseException as exc:  # handed to the writer
                failure.append(exc)
            finally:
                mailbox.end()

        reader = threading.Thread(target=read, daemon=True)
        reader.start()
        video_out: Any = None
        last_pts = None
        try:
            with stylizer.temporal(temporal):
                while (item := mailbox.get()) is not None:
                    frame, arrived = item
                    rgb = frame.to_ndarray(format="rgb24")
                    if sink is None:
                        sink, video_out = _start_output(target, output_format, path, video_in, rgb, max_size)
                    if rgb.shape[:2] != (video_out.height, video_out.width):
                        from PIL import Image

                        size = (video_out.width, video_out.height)
                        rgb = np.asarray(Image.fromarray(rgb).resize(size, Image.Resampling.LANCZOS))
                    styled = stylizer.stylize_arrays([rgb])[0]
                    out = av.VideoFrame.from_ndarray(styled, format="rgb24").reformat(format=video_out.pix_fmt)
                    # strictly increasing timestamps in the input's time base, whatever a live source sends (none,
                    # a reconnect that goes back, a wrap)
                    pts = frame.pts if frame.pts is not None else (last_pts or 0) + 1
                    last_pts = pts = pts if last_pts is None or pts > last_pts else last_pts + 1
                    out.pts, out.time_base = pts, video_in.time_base
                    try:
                        for packet in video_out.encode(out):
                            sink.mux(packet)
                    except av.error.FFmpegError as exc:
                        if report.frames_out == 0:
                            raise StreamError(f"{target}: {exc}") from None
                        report.ended_by = f"{target}: writing stopped after {report.frames_out} frames ({exc})"
                        break
                    report.frames_out += 1
                    report.latency_ms.append(1000 * (time.perf_counter() - arrived))
                    on_frame(report)
                    if max_frames and report.frames_out >= max_frames:
                        break
        except KeyboardInterrupt:
            if report.frames_out == 0:
                raise  # nothing to keep: Ctrl-C as anywhere else (exit 130)
            report.interrupted = True  # the output so far is finished below, not thrown away
        finally:
            mailbox.close()
            reader.join(timeout=2.0)
            report.dropped = mailbox.dropped
        if failure and report.frames_in == 0:
            raise StreamError(f"{source}: reading stopped ({failure[0]})")
        if failure:  # a live source that goes away ends its stream: what came is written
            report.ended_by = f"{source}: the stream ended with an error after {report.frames_in} frames ({failure[0]})"
        if report.frames_out == 0:
            raise StreamError(f"{source}: no frame could be decoded")
        if report.ended_by is None or not report.ended_by.startswith(target):
            for packet in video_out.encode(None):
                sink.mux(packet)
    finally:
        report.seconds = time.perf_counter() - started
        if sink is not None:
            sink.close()
        if reader is None or not reader.is_alive():  # a reader still blocked on the network keeps its container
            container.close()


def _start_output(target: str, output_format: str | None, path: Path | None, video_in, first: np.ndarray,
                  max_size: int | None):  # fmt: skip
    """The output container and its video stream, sized from the first frame: H.264 tuned for low latency."""
    from runtime.video import _output_size

    sink = _open_output(target, output_format, path)
    rate = video_in.average_rate or video_in.guessed_rate or 25
    video_out = sink.add_stream("libx264", rate=rate)
    width, height = _output_size(first.shape[1], first.shape[0], max_size)
    video_out.width, video_out.height = width, height
    video_out.pix_fmt = "yuv420p" if height % 2 == 0 and width % 2 == 0 else "yuv444p"
    video_out.time_base = video_in.time_base
    video_out.codec_context.time_base = video_in.time_base
    video_out.options = {"preset": "veryfast", "tune": "zerolatency"}
    return sink, video_out


def stream_target_ok(target: str, overwrite: bool = False) -> None:
    """A file target: not a folder, its folder exists, and it is not replaced unless `overwrite` (a URL or `-` is
    checked when it opens)."""
    if target == "-" or "://" in target:
        return
    path = Path(target)
    if path.is_dir():
        raise JobError(f"-o {target}: a stream is written to one file; give a file name such as {path / 'live.mp4'}")
    if not path.parent.is_dir():
        raise JobError(f"-o {target}: folder {path.parent} does not exist")
    if path.exists() and not overwrite:
        raise JobError(f"-o {target}: the file exists; pass --overwrite to replace it")
