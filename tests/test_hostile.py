"""Odd and hostile models and inputs: each ends in one line naming the input and the fix, the right exit code, and
nothing partial."""

import json

import numpy as np
import onnx
import pytest
from onnx import helper, numpy_helper
from PIL import Image
from safetensors.torch import load_file, save_file
from typer.testing import CliRunner

import runtime.jobs
from tests.helpers import assert_one_line_error, nchw_model, photo_like
from tests.test_export import trained_model
from toolkit.cli import app

runner = CliRunner()


@pytest.fixture
def photo(tmp_path):
    path = tmp_path / "photo.png"
    Image.fromarray(photo_like((40, 52), 1)).save(path)
    return path


def test_a_model_whose_output_is_not_the_inputs_size_fails_every_file_and_writes_none(tmp_path, photo):
    model = nchw_model(tmp_path / "pool.onnx", [helper.make_node("GlobalAveragePool", ["x"], ["y"])],
                       out_shape=("N", 3, 1, 1))  # fmt: skip
    result = runner.invoke(app, ["run", str(photo), "-o", str(tmp_path / "out"), "--model", str(model)])
    assert result.exit_code == 1
    assert "returned (1, 3, 1, 1) for an input of (1, 3, 40, 52)" in result.stderr
    assert not (tmp_path / "out" / "photo.png").exists()


def test_nan_weights_are_refused_at_export_and_at_load(tmp_path, photo):
    path, _ = trained_model(tmp_path / "run", "johnson", "instance")
    tensors = load_file(path)
    tensors["conv1.conv2d.weight"][0, 0, 0, 0] = float("nan")
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as handle:
        metadata = handle.metadata()
    save_file(tensors, tmp_path / "nan.safetensors", metadata=metadata)
    result = runner.invoke(
        app, ["run", str(photo), "-o", str(tmp_path / "o"), "--model", str(tmp_path / "nan.safetensors")]
    )
    assert_one_line_error(result, "nan.safetensors: weights that are NaN or infinite (conv1.conv2d.weight)")
    # an ONNX file with a NaN weight: its export check fails, and the runtime refuses one made elsewhere
    runner.invoke(app, ["export", str(path), "-o", str(tmp_path / "good"), "--no-check", "--io", "float"])
    model = onnx.load(tmp_path / "good" / "run.onnx")  # float NCHW, as a model from elsewhere would be
    init = next(t for t in model.graph.initializer if numpy_helper.to_array(t).dtype.kind == "f" and t.dims)
    values = numpy_helper.to_array(init).copy()
    values.flat[0] = np.nan
    init.CopyFrom(numpy_helper.from_array(values, init.name))
    onnx.save(model, tmp_path / "nan.onnx")
    result = runner.invoke(app, ["run", str(photo), "-o", str(tmp_path / "o2"), "--model", str(tmp_path / "nan.onnx")])
    assert_one_line_error(result, "nan.onnx: weights that are NaN or infinite", "every output would be black")
    exported = runner.invoke(app, ["export", str(tmp_path / "nan.onnx"), "-o", str(tmp_path / "again")])
    assert exported.exit_code == 1 and "FAIL  weights: NaN or infinite in" in exported.stderr
    assert not (tmp_path / "again").exists() or not list((tmp_path / "again").glob("*.onnx"))


def test_sizes_no_picture_needs_are_refused_before_any_allocation(tmp_path, photo):
    huge = nchw_model(tmp_path / "huge.onnx", [helper.make_node("Identity", ["x"], ["y"])],
                      shape=(1, 3, 100000, 100000), out_shape=(1, 3, 100000, 100000))  # fmt: skip
    result = runner.invoke(app, ["run", str(photo), "-o", str(tmp_path / "o"), "--model", str(huge)])
    assert_one_line_error(result, "huge.onnx", "fixed 100000×100000 input", "16384")
    assert_one_line_error(runner.invoke(app, ["export", str(huge), "-o", str(tmp_path / "x")]),
                          "fixed 100000×100000 input")  # fmt: skip
    path, _ = trained_model(tmp_path / "run", "johnson", "instance")
    runner.invoke(app, ["export", str(path), "-o", str(tmp_path / "good"), "--no-check"])
    for change, message in [({"min_size": 200000}, "minimum side of 200000 px"), (None, "io metadata is not valid")]:
        model = onnx.load(tmp_path / "good" / "run.onnx")
        entry = next(e for e in model.metadata_props if e.key == "io")
        entry.value = json.dumps({**json.loads(entry.value), **change}) if change else "{not json"
        onnx.save(model, tmp_path / "odd.onnx")
        result = runner.invoke(
            app, ["run", str(photo), "-o", str(tmp_path / "o"), "--model", str(tmp_path / "odd.onnx")]
        )
        assert_one_line_error(result, "odd.onnx", message)


@pytest.mark.parametrize(
    "generator, message",
    [("{bad json", "Expecting"), (json.dumps({"arch": "johnson", "extra": 1}), "extra"), ("[1, 2]", "argument"),
     (json.dumps({"arch": "johnson", "norm": "instance", "width": 4000}), "width 4000")],
)  # fmt: skip
def test_bad_generator_metadata_is_one_line_in_export_and_run(tmp_path, photo, generator, message):
    path, _ = trained_model(tmp_path / "run", "johnson", "instance")
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as handle:
        metadata = handle.metadata()
    save_file(load_file(path), tmp_path / "odd.safetensors", metadata={**metadata, "generator": generator})
    odd = str(tmp_path / "odd.safetensors")
    for args in (
        ["export", odd, "-o", str(tmp_path / "x")],
        ["run", str(photo), "-o", str(tmp_path / "o"), "--model", odd],
    ):
        assert_one_line_error(runner.invoke(app, args), "odd.safetensors: its generator metadata", message)


def test_long_names_twice_named_files_stdin_floods_and_animations(tmp_path, photo, exported_style, monkeypatch):
    _, model = exported_style
    long = tmp_path / ("写" * 78 + ".png")  # 238 bytes: the old temporary name made it too long to write
    Image.fromarray(photo_like((30, 40), 2)).save(long)
    frames = [Image.fromarray(photo_like((30, 40), i)) for i in range(3)]
    frames[0].save(tmp_path / "moving.gif", save_all=True, append_images=frames[1:], duration=100)
    inputs = [str(long), str(photo), str(tmp_path / "photo.png"), str(tmp_path / "moving.gif")]
    result = runner.invoke(app, ["run", *inputs, "-o", str(tmp_path / "out"), "--model", str(model)])
    assert result.exit_code == 0, result.output
    assert "done 3, skipped 0, failed 0" in result.stderr  # photo.png named twice: stylized once
    assert (tmp_path / "out" / long.name).is_file()
    assert "moving.gif: 3 frames (animated or multi-page); only the first was stylized" in result.stderr
    assert Image.open(tmp_path / "out" / "moving.png").size == (40, 30)
    monkeypatch.setattr(runtime.jobs, "MAX_STDIN_BYTES", 1000)
    flood = runner.invoke(app, ["run", "-", "-o", "-", "--model", str(model)], input=b"\0" * 5000)
    assert flood.exit_code == 1 and "<stdin>: more than" in flood.stderr and not flood.stdout_bytes


def test_external_data_that_escapes_its_folder_is_named_as_such(tmp_path):
    weights = numpy_helper.from_array(np.ones((1, 3, 1, 1), np.float32), "w")
    model = nchw_model(tmp_path / "m.onnx", [helper.make_node("Mul", ["x", "w"], ["y"])], inits=[weights])
    proto = onnx.load(model)
    onnx.save(proto, model, save_as_external_data=True, location="weights.bin", size_threshold=0)
    proto = onnx.load(model, load_external_data=False)
    entry = next(e for e in proto.graph.initializer[0].external_data if e.key == "location")
    entry.value = "../../../etc/passwd"
    onnx.save(proto, tmp_path / "evil.onnx")
    result = runner.invoke(app, ["export", str(tmp_path / "evil.onnx"), "-o", str(tmp_path / "out")])
    assert_one_line_error(result, "evil.onnx: its weights are in an external data file that cannot be used",
                          "points outside the directory", "self-contained")  # fmt: skip


def test_openvino_messages_lose_their_source_location():
    from runtime.backends.openvino_backend import _reason

    message = "Exception from src/inference/src/cpp/core.cpp:84:\nCheck 'x' failed at src/y.cpp:12:\nno such data\n"
    assert _reason(RuntimeError(message)) == "no such data"
