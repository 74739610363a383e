"""The optional OpenVINO backend: the same pixels as ONNX Runtime (within 1), any size, only when named."""

import numpy as np
import pytest
from typer.testing import CliRunner

from runtime import Stylizer
from tests.helpers import photo_like
from toolkit.cli import app

pytest.importorskip("openvino")


def test_openvino_matches_onnxruntime_at_any_size(exported_style):
    _, model = exported_style
    with (Stylizer.load(model, backend="openvino") as ov, Stylizer.load(model, backend="onnxruntime",
                                                                         device="cpu", tile="off") as ort):  # fmt: skip
        assert ov.backend_name == "openvino" and ov.contract == ort.contract
        for shape in [(1, 1), (7, 13), (67, 93), (96, 128)]:
            image = photo_like(shape, 1)
            assert np.abs(ov(image).astype(int) - ort(image)).max() <= 1
        batch = np.stack([photo_like((40, 56), s) for s in range(3)])
        assert np.abs(ov(batch).astype(int) - ort(batch)).max() <= 1


def test_compiled_shapes_are_kept_up_to_a_limit(exported_style):
    _, model = exported_style
    with Stylizer.load(model, backend="openvino") as ov:
        for side in (16, 20, 24, 28, 32, 16):
            ov(photo_like((side, side), 2))
        inner = ov.backend.inner  # tiled: OpenVINO takes statistics from outside (cut-outs, large photos)
        shapes = inner._compiled.shapes()
        assert len(shapes) == inner.shapes_kept == 4
        assert list(shapes[-1].values()) == [(1, 16, 16, 3)]


def test_auto_picks_openvino_only_for_an_int8_file_and_the_cli_can_name_it(exported_style, tmp_path):
    from PIL import Image

    _, model = exported_style  # no NAME.int8.onnx beside it (tests/test_int8.py covers one that has)
    with Stylizer.load(model) as auto:
        assert auto.backend_name == "onnxruntime"
    Image.fromarray(photo_like((30, 40), 3)).save(tmp_path / "p.png")
    result = CliRunner().invoke(app, ["run", str(tmp_path / "p.png"), "-o", str(tmp_path / "o"), "--model",
                                      str(model), "--backend", "openvino"])  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "(openvino on cpu)" in result.stderr


def test_openvino_computes_a_texture_nets_position_noise_as_pytorch_does(tmp_path):
    """The noise hash stays below 2²⁴: OpenVINO's CPU computes an int32 Mod through float32 in some graphs (here
    the noise alone: with a prime of 46337 nearly every value differed), so a larger hash would not be exact."""
    import openvino as ov
    import torch
    from torch.export import Dim

    from export.pipeline import export_model
    from tests.test_export import trained_model
    from train.texture import position_noise

    class Noise(torch.nn.Module):
        def forward(self, x):
            return position_noise(2, x.shape[2], x.shape[3], 5, x) + x[:, :1] * 0

    example = torch.rand(1, 3, 64, 72)
    program = torch.onnx.export(Noise().eval(), (example,), dynamic_shapes={"x": {2: Dim.DYNAMIC, 3: Dim.DYNAMIC}},
                                input_names=["x"], opset_version=20, dynamo=True)  # fmt: skip
    assert program is not None
    graph = program.model_proto.SerializeToString()
    x = torch.rand(1, 3, 300, 5000)
    got = ov.Core().compile_model(ov.Core().read_model(graph, b""), "CPU")({"x": x.numpy()})[0]
    assert np.abs(got - Noise()(x).numpy()).max() < 1e-6  # the integers exact; the division by the prime to an ulp
    path, _ = trained_model(tmp_path / "run", "texture", "instance", noise_channels=2)  # and within a model
    export_model(path, tmp_path, name="m", check=False, engine=False)
    with (Stylizer.load(tmp_path / "m.onnx", backend="openvino") as ov_model,
          Stylizer.load(tmp_path / "m.onnx", backend="onnxruntime", device="cpu") as ort_model):  # fmt: skip
        image = photo_like((150, 230), 3)
        assert np.abs(ov_model(image).astype(int) - ort_model(image)).max() <= 1
