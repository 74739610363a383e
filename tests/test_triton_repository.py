"""`toolkit export --triton REPO`: a model repository that Triton loads, its config checked on write."""

import json

import pytest
from typer.testing import CliRunner

from export.triton import check_config, config_text, write_repository
from runtime.errors import UserError
from toolkit.cli import app

pytest.importorskip("tritonclient.grpc")


def good(name="mosaic", platform="onnxruntime_onnx", max_batch=8, kind="KIND_CPU"):
    return config_text(name, platform, max_batch, kind, "image", "stylized")


def test_the_written_configs_parse_and_pass_the_checks():
    assert check_config(good(), "mosaic") == []
    assert check_config(good(platform="tensorrt_plan", max_batch=1, kind="KIND_GPU"), "mosaic") == []
    assert 'profile: [ "0" ]' in good(platform="tensorrt_plan", kind="KIND_GPU")
    assert "preferred_batch_size: [ 4, 6 ]" in good(max_batch=6)


@pytest.mark.parametrize(
    ("edit", "problem"),
    [
        (lambda t: t.replace("max_batch_size", "max_batchsize"), "does not parse"),
        (lambda t: t.replace("KIND_CPU", "KIND_CPUU"), "does not parse"),
        (lambda t: t.replace("TYPE_UINT8 format", "TYPE_U8 format"), "does not parse"),
        (lambda t: t.replace('name: "mosaic"', 'name: "candy"'), "is not the folder's name"),
        (lambda t: t.replace("max_batch_size: 8", "max_batch_size: 0"), "needs max_batch_size > 0"),
        (lambda t: t.replace("[ 4, 8 ]", "[ 4, 16 ]"), "outside 1..max_batch_size 8"),
        (lambda t: t.replace("dims: [ -1, -1, 3 ] }", "dims: [ -1, 0, 3 ] }", 1), "zero or invalid dim"),
        (lambda t: t.replace('name: "image"', 'name: "input"'), "input must be one tensor named 'image'"),
        (lambda t: t.replace("data_type: TYPE_UINT8 dims", "data_type: TYPE_FP32 dims"), "must be TYPE_UINT8"),
    ],
)
def test_each_mistake_is_caught(edit, problem):
    text = edit(good())
    assert text != good()
    problems = check_config(text, "mosaic")
    assert any(problem in p for p in problems), problems


def test_an_engine_goes_in_as_a_gpu_plan_and_replaces_an_older_onnx(tmp_path):
    onnx_file, engine = tmp_path / "m.onnx", tmp_path / "m.engine"
    onnx_file.write_bytes(b"onnx")
    engine.write_bytes(b"plan")
    write_repository(tmp_path / "repo", "m", onnx_file, 8, "cpu")
    write_repository(tmp_path / "repo", "m", engine, 2, "gpu")
    assert sorted(p.name for p in (tmp_path / "repo" / "m" / "1").iterdir()) == ["model.plan"]
    text = (tmp_path / "repo" / "m" / "config.pbtxt").read_text()
    assert 'platform: "tensorrt_plan"' in text and "max_batch_size: 2" in text and "KIND_GPU" in text
    with pytest.raises(UserError, match="GPU only"):
        write_repository(tmp_path / "repo", "m", engine, 2, "cpu")


def test_toolkit_export_writes_a_repository_that_onnxruntime_runs(exported_style, tmp_path):
    import numpy as np

    from runtime import Stylizer
    from tests.helpers import photo_like

    model, onnx_path = exported_style
    result = CliRunner().invoke(app, ["export", str(model), "-o", str(tmp_path / "out"), "--name", "mosaic",
                                      "--no-check", "--triton", str(tmp_path / "repo"), "--json"])  # fmt: skip
    assert result.exit_code == 0, result.output
    files = json.loads(result.stdout)["files"]
    assert str(tmp_path / "repo" / "mosaic" / "config.pbtxt") in files
    config = (tmp_path / "repo" / "mosaic" / "config.pbtxt").read_text()
    assert check_config(config, "mosaic") == [] and "KIND_CPU" in config and "max_batch_size: 8" in config
    served = tmp_path / "repo" / "mosaic" / "1" / "model.onnx"
    image = photo_like((33, 47), 2)
    with Stylizer.load(served, device="cpu") as a, Stylizer.load(onnx_path, device="cpu") as b:
        assert np.array_equal(a(image), b(image))
