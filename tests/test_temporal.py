"""Video without flicker (issue 16): instance-norm statistics carried across frames, and the flicker measure."""

import itertools
import json

import numpy as np
import onnx
import onnxruntime as ort
import pytest

from runtime import Stylizer
from runtime.backends.base import Backend
from runtime.contract import Contract
from runtime.temporal import TemporalBackend, TemporalUnavailable
from runtime.tiling import KEEP, NEXT_STATS, STATS, stats_layout, tile_graph
from tests.helpers import photo_like
from tests.test_export import trained_model


@pytest.fixture(scope="module")
def weights_and_model(tmp_path_factory):
    """The same generator as model.safetensors (PyTorch) and as our ONNX export."""
    from export.pipeline import export_model

    root = tmp_path_factory.mktemp("temporal")
    path, _ = trained_model(root / "run", "johnson", "instance")
    export_model(path, root / "out", check=False, engine=False)
    return path, root / "out" / "run.onnx"


@pytest.fixture(scope="module")
def model(weights_and_model):
    return weights_and_model[1]


class StatisticsBlind(Backend):
    """Runs our export as TensorRT or Triton would here: the plain graph only, no statistics from outside."""

    name = "blind"

    def __init__(self, path, contract=None):
        self.session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        self.contract = contract or Contract(self.session.get_inputs()[0].name, self.session.get_outputs()[0].name)

    def run(self, batch):
        return self.session.run(None, {self.contract.input_name: batch})[0]


def jitter(outputs, where):
    """Mean change from frame to frame over the pixels `where`."""
    return np.mean([np.abs(b.astype(float) - a)[where].mean() for a, b in itertools.pairwise(outputs)])


def grainy_still(frames: int) -> list[np.ndarray]:
    """A still photo-like picture with fresh sensor-like noise in every frame, which the generator amplifies."""
    rng = np.random.default_rng(5)
    base = photo_like((96, 128), seed=6).astype(float)
    return [np.clip(base + rng.normal(0, 3, base.shape), 0, 255).astype(np.uint8) for _ in range(frames)]


def moving_square(frames: int, h: int = 160, w: int = 240) -> list[np.ndarray]:
    """A still photo-like background with a bright square sliding along its top: the frame's statistics move, and
    rows 100 and below are further from the square than the generator's 56-px receptive field."""
    background = photo_like((h, w), seed=3)
    video = []
    for t in range(frames):
        frame = background.copy()
        x = 4 + 8 * t
        frame[8:40, x : x + 32] = 250
        video.append(frame)
    return video


def test_the_temporal_graph_is_the_model_when_nothing_is_kept_and_hands_on_its_statistics(model):
    data = model.read_bytes()
    graph = tile_graph(data, temporal=True)
    onnx.checker.check_model(onnx.load_from_string(graph))
    width = 2 * sum(stats_layout(onnx.load_from_string(data)))
    temporal = ort.InferenceSession(graph, providers=["CPUExecutionProvider"])
    plain = ort.InferenceSession(data, providers=["CPUExecutionProvider"])
    a, b = photo_like((64, 80), 1)[None], photo_like((64, 80), 2)[None]
    zeros, keep0, keep1 = np.zeros((1, width), np.float32), np.zeros((1, 1), np.float32), np.ones((1, 1), np.float32)
    out, stats_a = temporal.run(None, {"image": a, STATS: zeros, KEEP: keep0})
    assert np.abs(out.astype(int) - plain.run(None, {"image": a})[0]).max() <= 1
    assert stats_a.shape == (1, width) and [o.name for o in temporal.get_outputs()][1] == NEXT_STATS
    # keep 1: frame b runs with frame a's statistics, which is not what b alone gives
    out_b_with_a, carried = temporal.run(None, {"image": b, STATS: stats_a, KEEP: keep1})
    assert np.allclose(carried, stats_a)
    assert np.abs(out_b_with_a.astype(int) - plain.run(None, {"image": b})[0]).mean() > 1


def test_carried_statistics_steady_the_still_background_while_a_bright_object_moves(model):
    video = moving_square(8)
    still = np.zeros(video[0].shape[:2], bool)
    still[100:, :] = True  # out of the square's reach: changes there come from the statistics alone
    with Stylizer.load(model, backend="onnxruntime") as stylizer:
        plain = [stylizer.stylize_arrays([f])[0] for f in video]
        with stylizer.temporal(keep=0.9):
            assert isinstance(stylizer.backend, TemporalBackend)
            steady = [stylizer.stylize_arrays([f])[0] for f in video]
        assert not isinstance(stylizer.backend, TemporalBackend)  # restored after the block

    def jitter(outputs):
        return np.mean([np.abs(b.astype(float) - a)[still].mean() for a, b in itertools.pairwise(outputs)])

    # the first frame gets its own statistics: the plain model's output up to rounding (the instance norm is
    # computed from its parts here, fused in the plain graph)
    assert np.abs(steady[0].astype(int) - plain[0]).max() <= 1
    assert jitter(steady) < 0.5 * jitter(plain)


def test_pytorch_carries_statistics_as_the_onnx_graph_does(weights_and_model):
    pytest.importorskip("torch")
    weights, model = weights_and_model
    video = moving_square(6)
    outputs = {}
    for path, backend in ((weights, "torch"), (model, "onnxruntime")):
        with Stylizer.load(path, backend=backend, device="cpu", precision="fp32") as stylizer:
            with stylizer.temporal(keep=0.9, blend=0):
                assert isinstance(stylizer.backend, TemporalBackend) and not stylizer.backend.notes
                outputs[backend] = [stylizer.stylize_arrays([f])[0].astype(int) for f in video]
            plain = [stylizer.stylize_arrays([f])[0].astype(int) for f in video]
        assert np.abs(outputs[backend][-1] - plain[-1]).mean() > 1  # the carried statistics changed the frame
    for ours, theirs in zip(outputs["torch"], outputs["onnxruntime"], strict=True):
        assert np.abs(ours - theirs).max() <= 1


def test_a_backend_that_takes_no_statistics_still_gets_the_flow_blend(model):
    pytest.importorskip("cv2")
    video = grainy_still(6)
    everywhere = np.ones(video[0].shape[:2], bool)
    blind = StatisticsBlind(model)
    plain = [blind.run(f[None])[0] for f in video]
    steadied = TemporalBackend(blind, keep=0.9, blend=0.8)
    assert any("only blended along the flow" in note for note in steadied.notes)
    out = steadied.run(np.stack(video))  # the model runs the whole batch at once, the blend frame by frame
    assert np.array_equal(out[0], plain[0])  # the first frame as the model gives it
    assert jitter(list(out), everywhere) < 0.5 * jitter(plain, everywhere)
    with pytest.raises(TemporalUnavailable, match="cannot run a model with statistics"):
        TemporalBackend(blind, keep=0.9, blend=0)  # nothing left to steady with
    nchw = Contract("image", "stylized", layout="NCHW", dtype="float32")
    with pytest.raises(TemporalUnavailable, match="nor blend"):
        TemporalBackend(StatisticsBlind(model, nchw), keep=0.9, blend=0.8)


def test_a_scene_cut_resets_the_statistics(model):
    first = moving_square(3)
    second = [photo_like((160, 240), seed=40 + i) // 3 for i in range(2)]  # another scene, darker
    with Stylizer.load(model, backend="onnxruntime") as stylizer:
        alone = stylizer.stylize_arrays([second[0]])[0]
        with stylizer.temporal(keep=0.9):
            outputs = [stylizer.stylize_arrays([f])[0] for f in [*first, *second]]
            assert stylizer.backend.cuts == 1
    assert np.abs(outputs[3].astype(int) - alone).max() <= 1


def test_video_carries_statistics_by_default_and_not_with_temporal_off(model, tmp_path):
    av = pytest.importorskip("av")
    source = tmp_path / "clip.mp4"
    with av.open(str(source), "w") as container:
        stream = container.add_stream("libx264", rate=12)
        stream.width, stream.height, stream.pix_fmt = 240, 160, "yuv444p"
        stream.options = {"qp": "0"}
        for frame in moving_square(8):
            for packet in stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode(None):
            container.mux(packet)
    from runtime.video import stylize_video

    def frames(path):
        with av.open(str(path)) as container:
            return [f.to_ndarray(format="rgb24").astype(float) for f in container.decode(video=0)]

    with Stylizer.load(model, backend="onnxruntime") as stylizer:
        assert stylize_video(source, tmp_path / "steady.mp4", stylizer, batch_size=4) == 8
        assert stylize_video(source, tmp_path / "plain.mp4", stylizer, batch_size=4, temporal=False) == 8
    steady, plain = frames(tmp_path / "steady.mp4"), frames(tmp_path / "plain.mp4")
    bottom = (slice(100, None), slice(None))
    assert np.mean([np.abs(b - a)[bottom].mean() for a, b in itertools.pairwise(steady)]) < 0.7 * np.mean(
        [np.abs(b - a)[bottom].mean() for a, b in itertools.pairwise(plain)]
    )


def test_the_flicker_meter_scores_motion_followed_as_steady_and_noise_as_flicker():
    pytest.importorskip("cv2")
    from runtime.flicker import FlickerMeter

    rng = np.random.default_rng(0)
    base = photo_like((80, 120), seed=9)
    frames = [np.roll(base, 2 * t, axis=1) for t in range(5)]  # the camera pans
    followed, noisy = FlickerMeter(), FlickerMeter()
    for frame in frames:
        styled = 255 - frame  # a "stylization" that follows the motion exactly
        followed.add(frame, styled)
        noisy.add(frame, np.clip(styled + rng.normal(0, 20, styled.shape), 0, 255).astype(np.uint8))
    steady, flicker = followed.result(), noisy.result()
    assert steady["pairs"] == 4 and steady["scene_cuts"] == 0
    assert steady["warping_error"] < 3 and flicker["warping_error"] > 10


def test_run_reports_a_videos_flicker_and_the_steadying_lowers_it(model, tmp_path):
    pytest.importorskip("cv2")
    av = pytest.importorskip("av")
    from typer.testing import CliRunner

    from toolkit.cli import app

    source = tmp_path / "clip.mp4"
    with av.open(str(source), "w") as container:
        stream = container.add_stream("libx264", rate=12)
        stream.width, stream.height, stream.pix_fmt = 240, 160, "yuv420p"
        rng = np.random.default_rng(1)
        for frame in moving_square(8):  # plus sensor-like noise, which the generator amplifies
            noisy = np.clip(frame + rng.normal(0, 3, frame.shape), 0, 255).astype(np.uint8)
            for packet in stream.encode(av.VideoFrame.from_ndarray(noisy, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode(None):
            container.mux(packet)
    reports = {}
    for mode in ("auto", "off"):
        result = CliRunner().invoke(app, ["run", str(source), "-o", str(tmp_path / f"{mode}.mp4"), "--model",
                                          str(model), "--temporal", mode, "--flicker", "--json"])  # fmt: skip
        assert result.exit_code == 0, result.output
        reports[mode] = json.loads(result.stdout.splitlines()[0])["flicker"]
    assert reports["off"]["pairs"] == reports["auto"]["pairs"] == 7
    assert reports["auto"]["warping_error"] < 0.75 * reports["off"]["warping_error"]
