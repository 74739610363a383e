"""The TensorRT path end to end, on the stand-ins of tests/standins (no TensorRT, no GPU here): export --fp16 →
engines and sidecars → toolkit run on folders, batches above the profile, sides above it, a video → a Triton
repository with model.plan; and the failures a real GPU machine meets."""

import json

import numpy as np
import onnxruntime as ort
import pytest
from PIL import Image
from typer.testing import CliRunner

from export.pipeline import export_model
from runtime import Stylizer
from runtime.engine_sidecar import read_sidecar, sidecar_path
from tests.conftest import standins
from tests.helpers import photo_like
from tests.test_export import trained_model
from toolkit.cli import app

runner = CliRunner()
PROFILE = ["--min-shape", "1x32x32", "--opt-shape", "2x64x80", "--max-shape", "2x96x128"]


def export_engines(tmp_path, *extra):
    path, _ = trained_model(tmp_path / "run", "johnson", "instance")
    result = runner.invoke(app, ["export", str(path), "-o", str(tmp_path / "out"), "--fp16", "--engine", *PROFILE,
                                 *extra])  # fmt: skip
    assert result.exit_code == 0, result.output
    return tmp_path / "out", result


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """(out folder, export's stderr): engines exported once for the tests that only run them."""
    with standins():
        out, result = export_engines(tmp_path_factory.mktemp("engines"))
    return out, result.stderr


@pytest.fixture
def engines(built, tensorrt_standin):
    """The engines of `built`, on a fresh stand-in device (nothing allocated or counted yet)."""
    return built[0]


def onnx_run(path, batch):
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return session.run(None, {"image": batch})[0]


def test_export_fp16_builds_checked_engines_with_sidecars_and_a_timing_cache(built):
    out, stderr = built
    for stem, precision in (("run", "fp32"), ("run.fp16", "fp16")):
        sidecar = read_sidecar(out / f"{stem}.engine")
        assert sidecar["precision"] == precision and sidecar["tensorrt"]["version"] == "11.4.0.106"
        assert sidecar["profiles"][0]["max"] == [2, 96, 128, 3]
        assert sidecar["gpu"]["name"] == "Stand-in GPU (host memory)"
        assert f"{precision} engine: " in stderr  # the engine was checked against the fp32 ONNX
    assert "built run.fp16.engine (fp16) with TensorRT 11.4.0.106" in stderr
    assert (out / "timing.cache").read_bytes().startswith(b"TRT-STANDIN-CACHE")
    assert not [p for p in out.iterdir() if p.name.startswith(".")]  # no temporary file left


def test_a_timing_cache_from_another_gpu_is_replaced_not_reused(tensorrt_standin, tmp_path):
    _, cudart = tensorrt_standin
    out, _ = export_engines(tmp_path)
    cudart.STATE.properties = cudart.cudaDeviceProp(name=b"Another GPU", major=8, minor=6)
    path = tmp_path / "run" / "model.safetensors"
    result = runner.invoke(app, ["export", str(path), "-o", str(out), "--engine", *PROFILE])
    assert result.exit_code == 0, result.output
    assert "was made on another GPU or TensorRT version; starting a new one" in result.stderr
    assert b"Another GPU" in (out / "timing.cache").read_bytes()


def test_toolkit_run_on_engines_splits_batches_falls_back_for_large_sides_and_matches_the_onnx(
    engines, tensorrt_standin, tmp_path
):
    _, cudart = tensorrt_standin
    out = engines
    photos = tmp_path / "photos"
    photos.mkdir()
    for i in range(5):  # five of one size: batches of 4 asked for, the profile takes 2
        Image.fromarray(photo_like((60, 76), i)).save(photos / f"same_{i}.png")
    Image.fromarray(photo_like((150, 200), 9)).save(photos / "large.png")  # beyond the profile's 96×128
    Image.fromarray(photo_like((20, 30), 8)).save(photos / "small.png")  # below its 32 px: mirror-padded
    result = runner.invoke(app, ["run", str(photos), "-o", str(tmp_path / "styled"), "--model",
                                 str(out / "run.fp16.engine"), "--batch-size", "4"])  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "done 7, skipped 0, failed 0 (tensorrt on cuda)" in result.stderr, result.stderr
    assert "larger than the engine's profile (96×128) run with ONNX Runtime on run.fp16.onnx" in result.stderr
    assert cudart.STATE.mallocs == 4  # input and output, pinned and device, once: not per shape or batch
    assert cudart.STATE.launches >= 1  # the repeated 2×60×76 batches replayed a CUDA graph
    for i in range(5):
        got = np.asarray(Image.open(tmp_path / "styled" / f"same_{i}.png"))
        expected = onnx_run(out / "run.fp16.onnx", photo_like((60, 76), i)[None])[0]
        assert np.array_equal(got, expected)  # the engine runs the fp16 graph as it stands
    large = np.asarray(Image.open(tmp_path / "styled" / "large.png"))
    assert np.array_equal(large, onnx_run(out / "run.fp16.onnx", photo_like((150, 200), 9)[None])[0])
    assert np.asarray(Image.open(tmp_path / "styled" / "small.png")).shape == (20, 30, 3)


def test_a_video_on_an_engine_replays_a_cuda_graph_per_shape(engines, tensorrt_standin, tmp_path):
    pytest.importorskip("av")
    from tests.test_video import describe, make_clip

    _, cudart = tensorrt_standin
    out = engines
    make_clip(tmp_path / "clip.mp4", frames=10, size=(48, 64))
    result = runner.invoke(app, ["run", str(tmp_path / "clip.mp4"), "-o", str(tmp_path / "styled.mp4"), "--model",
                                 str(out / "run.engine"), "--batch-size", "2"])  # fmt: skip
    assert result.exit_code == 0, result.output
    assert describe(tmp_path / "styled.mp4")["frames"] == 10
    assert cudart.STATE.launches >= 3 and cudart.STATE.mallocs == 4
    assert "only blended along the flow" in result.output  # an engine takes no statistics: the blend steadies


def test_an_engine_built_elsewhere_or_failing_cuda_falls_back_to_the_onnx_in_auto(engines, tensorrt_standin):
    _, cudart = tensorrt_standin
    out = engines
    cudart.STATE.properties = cudart.cudaDeviceProp(name=b"Another GPU", major=8, minor=6)
    with Stylizer.load(out / "run.engine") as stylizer:
        assert stylizer.backend_name == "onnxruntime"
        assert any("built for Stand-in GPU (host memory)" in n and "this GPU is Another GPU" in n
                   for n in stylizer.fresh_notes())  # fmt: skip
    cudart.reset()

    def no_memory(size):
        return cudart.cudaError_t.cudaErrorMemoryAllocation, 0

    original = cudart.cudaMalloc
    cudart.cudaMalloc = no_memory  # a RuntimeError from CUDA, not a ValueError
    try:
        with Stylizer.load(out / "run.engine") as stylizer:
            assert stylizer.backend_name == "onnxruntime"
            assert any("CUDA error cudaErrorMemoryAllocation" in n for n in stylizer.fresh_notes())
    finally:
        cudart.cudaMalloc = original


def test_a_refused_tensor_address_is_an_error_not_a_silent_wrong_result(engines, tensorrt_standin, monkeypatch):
    trt, _ = tensorrt_standin
    out = engines
    monkeypatch.setattr(trt.IExecutionContext, "set_tensor_address", lambda self, name, memory: False)
    with Stylizer.load(out / "run.engine") as stylizer:
        assert stylizer.backend_name == "onnxruntime"
        assert any("refused the address of tensor" in n for n in stylizer.fresh_notes())


def test_cuda_start_failures_are_named(tensorrt_standin):
    _, cudart = tensorrt_standin
    from runtime.cuda_device import tensorrt_unavailable

    assert tensorrt_unavailable() is None
    cudart.STATE.device_count_error = cudart.cudaError_t.cudaErrorInsufficientDriver
    reason = tensorrt_unavailable()
    assert "driver is older" in reason and "cudaErrorInsufficientDriver" in reason
    cudart.STATE.device_count_error = cudart.cudaError_t.cudaErrorNoDevice
    assert "no CUDA GPU is visible (cudaErrorNoDevice" in tensorrt_unavailable()
    cudart.STATE.device_count_error = cudart.cudaError_t.cudaSuccess
    cudart.STATE.device_count = 0
    assert tensorrt_unavailable() == "no CUDA GPU is visible"


def test_the_triton_repository_gets_the_plan_and_the_engines_profile(tensorrt_standin, tmp_path):
    pytest.importorskip("tritonclient")
    path, _ = trained_model(tmp_path / "run", "johnson", "instance")
    result = runner.invoke(app, ["export", str(path), "-o", str(tmp_path / "out"), "--engine", *PROFILE,
                                 "--triton", str(tmp_path / "repo")])  # fmt: skip
    assert result.exit_code == 0, result.output
    model_dir = tmp_path / "repo" / "run"
    assert (model_dir / "1" / "model.plan").read_bytes() == (tmp_path / "out" / "run.engine").read_bytes()
    config = (model_dir / "config.pbtxt").read_text()
    assert 'platform: "tensorrt_plan"' in config and "max_batch_size: 2" in config and "KIND_GPU" in config


def test_export_without_an_engine_flag_builds_them_when_tensorrt_and_a_gpu_are_present(tensorrt_standin, tmp_path):
    path, _ = trained_model(tmp_path / "run", "johnson", "instance")
    result = export_model(path, tmp_path / "out", check=False)  # engine=None: build where possible
    assert (tmp_path / "out" / "run.engine").is_file() and sidecar_path(tmp_path / "out" / "run.engine").is_file()
    assert json.loads(sidecar_path(tmp_path / "out" / "run.engine").read_text())["profiles"][0]["max"][0] == 1
    assert result.ok
