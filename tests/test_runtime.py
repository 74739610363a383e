import json
import subprocess
import sys

import numpy as np
import onnx
import pytest
import torch
from onnx import TensorProto, helper
from PIL import Image

from runtime import ModelError, Stylizer
from runtime.engine_sidecar import SIDECAR_FORMAT, sidecar_path
from runtime.postprocess import preserve_colors
from tests.helpers import photo_like
from train.checkpoint import load_model


@pytest.fixture
def model_files(exported_style):
    return exported_style


def reference(checkpoint, rgb: np.ndarray) -> np.ndarray:
    model, _ = load_model(checkpoint)
    with torch.no_grad():
        y = model(torch.from_numpy(rgb).permute(2, 0, 1)[None].float())
    return y[0].clamp(0, 255).round().byte().permute(1, 2, 0).numpy()


@pytest.mark.parametrize("size", [(1, 1), (3, 7), (37, 52), (64, 64)])
def test_arrays_of_any_size_match_the_torch_model(model_files, size):
    checkpoint, onnx_path = model_files
    rgb = photo_like(size, seed=1) if min(size) > 1 else np.full((*size, 3), 90, np.uint8)
    with Stylizer.load(onnx_path) as stylizer:
        assert stylizer.backend_name == "onnxruntime"
        out = stylizer(rgb)
    assert out.shape == rgb.shape and out.dtype == np.uint8
    expected = reference(checkpoint, rgb)
    assert np.abs(out.astype(int) - expected.astype(int)).max() <= 1


def test_pil_images_keep_their_alpha_and_become_rgb(model_files):
    _, onnx_path = model_files
    stylizer = Stylizer.load(onnx_path)
    rgba = np.dstack([photo_like((20, 30), 2), np.linspace(0, 255, 600).reshape(20, 30).astype(np.uint8)])
    out = stylizer(Image.fromarray(rgba, "RGBA"))
    assert out.mode == "RGBA" and out.size == (30, 20)
    assert (np.asarray(out)[..., 3] == rgba[..., 3]).all()
    grey = stylizer(Image.fromarray(photo_like((20, 30), 3)[..., 0], "L"))
    assert grey.mode == "RGB" and grey.size == (30, 20)


def test_batches_lists_and_streams_give_what_single_calls_give(model_files):
    _, onnx_path = model_files
    stylizer = Stylizer.load(onnx_path)
    frames = [photo_like((24, 40), seed) for seed in range(5)]
    singles = [stylizer(frame) for frame in frames]
    batch = stylizer(np.stack(frames))
    assert batch.shape == (5, 24, 40, 3)
    assert all((batch[i] == singles[i]).all() for i in range(5))
    mixed = stylizer([frames[0], photo_like((10, 12), 9), frames[1]])
    assert [m.shape for m in mixed] == [(24, 40, 3), (10, 12, 3), (24, 40, 3)] and (mixed[2] == singles[1]).all()
    streamed = list(stylizer.stream(iter(frames), batch_size=2))
    assert len(streamed) == 5 and all((streamed[i] == singles[i]).all() for i in range(5))


def test_strength_and_preserve_color(model_files):
    _, onnx_path = model_files
    rgb = photo_like((32, 32), seed=4)
    assert (Stylizer.load(onnx_path, strength=0.0)(rgb) == rgb).all()
    full, half = Stylizer.load(onnx_path)(rgb), Stylizer.load(onnx_path, strength=0.5)(rgb)
    assert np.abs(half.astype(int) - (full.astype(int) + rgb.astype(int)) / 2).max() <= 1
    kept = Stylizer.load(onnx_path, preserve_color=True)(rgb)
    assert kept.shape == rgb.shape and not (kept == full).all()
    # The function itself, away from the gamut edges that clipping would distort:
    stylized = (60 + photo_like((32, 32), seed=7) // 2).astype(np.uint8)
    merged = preserve_colors(rgb // 2 + 64, stylized)
    ycc = lambda a: np.asarray(Image.fromarray(a).convert("YCbCr")).astype(int)  # noqa: E731
    assert np.abs(ycc(merged)[..., 1:] - ycc(rgb // 2 + 64)[..., 1:]).mean() < 2
    assert np.abs(ycc(merged)[..., 0] - ycc(stylized)[..., 0]).mean() < 2
    with pytest.raises(ModelError, match="strength"):
        Stylizer.load(onnx_path, strength=1.5)


def test_a_bgr_float_fixed_size_model_just_works(tmp_path):
    """A model-zoo-like graph (float NCHW, BGR, fixed 16×16): y = x · (1, 0.5, 0) per B, G, R channel."""
    factors = helper.make_tensor("factors", TensorProto.FLOAT, [1, 3, 1, 1], [1.0, 0.5, 0.0])
    graph = helper.make_graph(
        [helper.make_node("Mul", ["inputImage", "factors"], ["outputImage"])], "bgr",
        [helper.make_tensor_value_info("inputImage", TensorProto.FLOAT, [1, 3, 16, 16])],
        [helper.make_tensor_value_info("outputImage", TensorProto.FLOAT, [1, 3, 16, 16])], [factors],
    )  # fmt: skip
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    contract = {"layout": "NCHW", "channels": "BGR", "dtype": "float32", "input": "inputImage",
                "output": "outputImage", "fixed_size": [16, 16], "min_size": 1}  # fmt: skip
    model.metadata_props.add(key="io", value=json.dumps(contract))
    onnx.save_model(model, tmp_path / "zoo.onnx")
    rgb = np.empty((21, 33, 3), np.uint8)
    rgb[...] = (200, 100, 50)
    out = Stylizer.load(tmp_path / "zoo.onnx")(rgb)
    assert out.shape == (21, 33, 3)
    assert (out == (0, 50, 50)).all()  # R×0, G×0.5, B×1


def test_backend_choice_and_its_errors(model_files, tmp_path):
    checkpoint, onnx_path = model_files
    assert Stylizer.load(checkpoint).backend_name == "torch"
    with pytest.raises(
        ModelError, match=r"--backend onnxruntime cannot run model\.safetensors; for this file use torch"
    ):
        Stylizer.load(checkpoint, backend="onnxruntime")
    with pytest.raises(ModelError, match="unknown backend 'fast'"):
        Stylizer.load(onnx_path, backend="fast")
    with pytest.raises(ModelError, match="model not found"):
        Stylizer.load(tmp_path / "nope.onnx")
    broken = tmp_path / "broken.onnx"
    broken.write_bytes(b"not a model")
    with pytest.raises(ModelError, match=r"broken\.onnx: ONNX Runtime cannot load this model"):
        Stylizer.load(broken)
    # An engine for another machine (or no TensorRT here): auto falls back to the ONNX file beside it.
    engine = onnx_path.with_suffix(".engine")
    engine.write_bytes(b"plan")
    sidecar_path(engine).write_text(json.dumps({"format": SIDECAR_FORMAT, "gpu": {"name": "Other GPU"}}))
    stylizer = Stylizer.load(engine)
    assert stylizer.backend_name == "onnxruntime" and stylizer.notes and "tensorrt not used" in stylizer.notes[0]
    with pytest.raises(ModelError, match=r"--backend tensorrt cannot run style\.engine"):
        Stylizer.load(engine, backend="tensorrt")


def test_the_runtime_imports_and_runs_without_torch(model_files):
    _, onnx_path = model_files
    code = (
        "import sys; sys.modules['torch'] = None\n"
        "import numpy as np\nfrom runtime import Stylizer\n"
        f"out = Stylizer.load({str(onnx_path)!r})(np.zeros((9, 11, 3), np.uint8))\n"
        "assert out.shape == (9, 11, 3) and 'torch' not in [m for m in sys.modules if sys.modules[m] is not None]\n"
        "print('ok')"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.stdout.strip() == "ok", result.stderr


def test_an_engine_built_from_an_earlier_onnx_is_passed_over(model_files, tmp_path):
    import shutil

    _, onnx_path = model_files
    onnx_copy = tmp_path / "style.onnx"
    shutil.copy(onnx_path, onnx_copy)
    engine = tmp_path / "style.engine"
    engine.write_bytes(b"plan")
    sidecar_path(engine).write_text(json.dumps({"format": SIDECAR_FORMAT, "onnx": {"sha256": "0" * 64}}))
    stylizer = Stylizer.load(onnx_copy)
    assert stylizer.backend_name == "onnxruntime"
    assert "style.engine was built from an earlier style.onnx; rebuild it with toolkit export" in stylizer.notes[0]


def test_a_stream_left_early_releases_its_reader_thread(model_files):
    import itertools
    import time

    _, onnx_path = model_files
    stylizer = Stylizer.load(onnx_path)
    frames = (np.full((16, 16, 3), i % 255, np.uint8) for i in itertools.count())  # endless
    stream = stylizer.stream(frames)
    assert next(stream).shape == (16, 16, 3)
    stream.close()
    deadline = time.time() + 5
    while stylizer._producer.is_alive() and time.time() < deadline:
        time.sleep(0.05)
    assert not stylizer._producer.is_alive()


def test_onnxruntime_falling_back_to_the_cpu_on_its_own_is_noticed(exported_style, monkeypatch):
    """ORT drops a CUDA provider that cannot start and runs on the CPU without a word; the backend checks."""
    import onnxruntime as ort

    from runtime.backends.base import BackendUnavailable
    from runtime.backends.onnxruntime_backend import OnnxRuntimeBackend

    _, path = exported_style
    monkeypatch.setattr(ort, "get_available_providers", lambda: ["CUDAExecutionProvider", "CPUExecutionProvider"])
    backend = OnnxRuntimeBackend(path)
    assert backend.device == "cpu"
    assert any("CUDA provider did not start here" in n and "running on the CPU" in n for n in backend.notes)
    with pytest.raises(BackendUnavailable, match="CUDA provider did not start"):
        OnnxRuntimeBackend(path, "cuda")


def test_onnxruntime_and_onnxruntime_gpu_installed_together_is_named(exported_style, monkeypatch):
    from importlib import metadata

    from runtime.backends.base import BackendUnavailable
    from runtime.backends.onnxruntime_backend import OnnxRuntimeBackend

    _, path = exported_style
    monkeypatch.setattr(metadata, "version", lambda name: "1.32.0")  # both distributions "installed"
    with pytest.raises(BackendUnavailable, match="onnxruntime and onnxruntime-gpu are both installed"):
        OnnxRuntimeBackend(path, "cuda")
    assert any("pip uninstall -y onnxruntime onnxruntime-gpu" in n for n in OnnxRuntimeBackend(path).notes)
    assert OnnxRuntimeBackend(path, "cpu").notes == ()  # asked for the CPU: nothing to say


def test_the_api_answers_odd_calls_plainly(exported_style):
    _, path = exported_style
    photo = photo_like((20, 24), 1)
    stylizer = Stylizer.load(path)
    for shape in [(0, 0, 3), (0, 10, 3), (10, 0, 3)]:  # nothing to stylize: the same empty image back
        assert stylizer(np.zeros(shape, np.uint8)).shape == shape
    assert stylizer(np.zeros((0, 8, 8, 3), np.uint8)).shape == (0, 8, 8, 3)
    assert stylizer([]) == [] and stylizer.stylize_arrays([]) == []
    mixed = stylizer.stylize_arrays([photo, np.zeros((0, 5, 3), np.uint8), photo])
    assert [m.shape for m in mixed] == [(20, 24, 3), (0, 5, 3), (20, 24, 3)] and np.array_equal(mixed[0], mixed[2])
    with pytest.raises(ValueError, match="batch_size must be a whole number of at least 1, not 0"):
        stylizer.stylize_arrays([photo], batch_size=0)
    with pytest.raises(ValueError, match="batch_size must be"):
        list(stylizer.stream([photo], batch_size=0))
    with pytest.raises(ValueError, match=r"expected an H×W×3 \(RGB\), H×W×4 \(RGBA\) or H×W \(grey\) image"):
        stylizer(np.zeros((4, 4, 5), np.uint8))
    assert [f.shape for f in stylizer.stream([photo, photo], batch_size=2)] == [(20, 24, 3)] * 2
    stylizer.close()
    stylizer.close()  # idempotent
    with pytest.raises(ModelError, match="this Stylizer is closed; load a new one"):
        stylizer(photo)
    with pytest.raises(ModelError, match="closed"):
        list(stylizer.stream([photo]))


def test_importing_the_runtime_never_imports_torch_even_where_it_is_installed():
    """The other torch-free test blocks torch, so an optional `try: import torch` would pass it; this one does not."""
    code = "import sys, runtime, runtime.stylizer, runtime.jobs; print('torch' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0 and result.stdout.strip() == "False", result.stderr
