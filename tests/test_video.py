from fractions import Fraction

import numpy as np
import pytest
from typer.testing import CliRunner

from tests.helpers import photo_like
from toolkit.cli import app

av = pytest.importorskip("av")


def make_clip(path, frames=12, fps=12, size=(48, 64), audio=True, pts=None, pix_fmt="yuv420p", rotation=0):
    """A short H.264 clip with an AAC sine track, made here."""
    with av.open(str(path), "w") as container:
        video = container.add_stream("libx264", rate=fps)
        video.width, video.height, video.pix_fmt = size[1], size[0], pix_fmt
        if rotation:
            video.set_display_rotation(rotation)
        sound = container.add_stream("aac", rate=44100, layout="mono") if audio else None
        for i in range(frames):
            frame = av.VideoFrame.from_ndarray(photo_like(size, seed=i), format="rgb24")
            frame.pts = pts[i] if pts else i
            frame.time_base = Fraction(1, fps)
            for packet in video.encode(frame):
                container.mux(packet)
        for packet in video.encode(None):
            container.mux(packet)
        if sound is not None:
            seconds = frames / fps
            t = np.arange(int(44100 * seconds)) / 44100
            samples = (0.3 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)[None]
            for start in range(0, samples.shape[1], 1024):
                chunk = av.AudioFrame.from_ndarray(
                    np.ascontiguousarray(samples[:, start : start + 1024]), format="fltp", layout="mono"
                )
                chunk.sample_rate, chunk.pts = 44100, start
                for packet in sound.encode(chunk):
                    container.mux(packet)
            for packet in sound.encode(None):
                container.mux(packet)


def describe(path):
    with av.open(str(path)) as container:
        time_base = container.streams.video[0].time_base
        frames = list(container.decode(video=0))
    with av.open(str(path)) as container:
        audio = [p for p in container.demux(audio=0) if p.dts is not None] if container.streams.audio else []
        rate = container.streams.video[0].average_rate
    return {"frames": len(frames), "size": (frames[0].height, frames[0].width), "fps": rate,
            "pts": [f.pts for f in frames], "audio": [bytes(p) for p in audio], "time_base": time_base}  # fmt: skip


def test_a_video_keeps_frames_rate_timestamps_and_audio(exported_style, tmp_path):
    _, model = exported_style
    make_clip(tmp_path / "clip.mp4")
    result = CliRunner().invoke(app, ["run", str(tmp_path / "clip.mp4"), "-o", str(tmp_path / "out.mp4"),
                                      "--model", str(model), "--json"])  # fmt: skip
    assert result.exit_code == 0, result.output
    source, out = describe(tmp_path / "clip.mp4"), describe(tmp_path / "out.mp4")
    assert out["frames"] == source["frames"] == 12 and out["fps"] == source["fps"] == 12
    assert out["size"] == (48, 64)
    assert [p * out["time_base"] for p in out["pts"]] == [p * source["time_base"] for p in source["pts"]]
    assert out["audio"] and out["audio"] == source["audio"]  # copied packet for packet
    assert '"frames": 12' in result.stdout
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]


def test_odd_sized_video_downscaling_and_a_broken_one(exported_style, tmp_path):
    _, model = exported_style
    make_clip(tmp_path / "odd.mkv", frames=5, size=(25, 33), audio=False, pix_fmt="yuv444p")
    make_clip(tmp_path / "big.mp4", frames=5, size=(48, 64), audio=False)
    (tmp_path / "broken.mp4").write_bytes(b"\x00\x00\x00\x18ftypmp42 not really")
    inputs = [str(tmp_path / name) for name in ("odd.mkv", "big.mp4", "broken.mp4")]
    result = CliRunner().invoke(app, ["run", *inputs, "-o", str(tmp_path / "out"), "--model", str(model)])
    assert result.exit_code == 1
    assert describe(tmp_path / "out" / "odd.mkv")["size"] == (25, 33)  # odd sides kept (4:4:4)
    assert "broken.mp4" in result.stderr and "failed" in result.stderr
    assert not (tmp_path / "out" / "broken.mp4").exists()
    small = CliRunner().invoke(app, ["run", str(tmp_path / "big.mp4"), "-o", str(tmp_path / "small.mp4"),
                                     "--model", str(model), "--max-size", "33"])  # fmt: skip
    assert small.exit_code == 0 and describe(tmp_path / "small.mp4")["size"] == (24, 32)  # even, as the input


def test_variable_frame_timing_is_kept(exported_style, tmp_path):
    _, model = exported_style
    timing = [0, 1, 3, 4, 7, 8, 9, 13]  # a clip with gaps, in 1/12 s
    make_clip(tmp_path / "vfr.mp4", frames=len(timing), audio=False, pts=timing)
    result = CliRunner().invoke(app, ["run", str(tmp_path / "vfr.mp4"), "-o", str(tmp_path / "out.mp4"),
                                      "--model", str(model)])  # fmt: skip
    assert result.exit_code == 0, result.output
    source, out = describe(tmp_path / "vfr.mp4"), describe(tmp_path / "out.mp4")
    assert [p * out["time_base"] for p in out["pts"]] == [p * source["time_base"] for p in source["pts"]]


def test_the_display_rotation_of_a_phone_video_is_kept(exported_style, tmp_path):
    _, model = exported_style
    make_clip(tmp_path / "phone.mp4", frames=4, rotation=90)
    with av.open(str(tmp_path / "phone.mp4")) as container:
        rotation = next(container.decode(video=0)).rotation
    assert rotation != 0
    result = CliRunner().invoke(app, ["run", str(tmp_path / "phone.mp4"), "-o", str(tmp_path / "out.mp4"),
                                      "--model", str(model)])  # fmt: skip
    assert result.exit_code == 0, result.output
    with av.open(str(tmp_path / "out.mp4")) as container:
        assert next(container.decode(video=0)).rotation == rotation
    assert describe(tmp_path / "out.mp4")["audio"] == describe(tmp_path / "phone.mp4")["audio"]


def test_bt709_video_keeps_its_colour_tags_and_colours(exported_style, tmp_path):
    _, model = exported_style
    green = np.zeros((64, 96, 3), np.uint8)
    green[..., 1] = 200
    with av.open(str(tmp_path / "hd.mp4"), "w") as container:
        video = container.add_stream("libx264", rate=12)
        video.width, video.height, video.pix_fmt = 96, 64, "yuv420p"
        video.codec_context.colorspace = video.codec_context.color_primaries = video.codec_context.color_trc = 1
        for i in range(3):
            frame = av.VideoFrame.from_ndarray(green, format="rgb24").reformat(
                format="yuv420p", dst_colorspace="ITU709"
            )
            frame.pts, frame.time_base = i, Fraction(1, 12)
            for packet in video.encode(frame):
                container.mux(packet)
        for packet in video.encode(None):
            container.mux(packet)
    result = CliRunner().invoke(app, ["run", str(tmp_path / "hd.mp4"), "-o", str(tmp_path / "out.mp4"),
                                      "--model", str(model), "--strength", "0"])  # fmt: skip
    assert result.exit_code == 0, result.output
    with av.open(str(tmp_path / "out.mp4")) as container:
        frame = next(container.decode(video=0))
    assert (frame.colorspace, frame.color_primaries, frame.color_trc) == (1, 1, 1)
    as_709 = frame.reformat(format="rgb24", src_colorspace="ITU709").to_ndarray()
    assert np.abs(as_709[8:-8, 8:-8].astype(int) - green[8:-8, 8:-8]).max() <= 4
