import json
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
from onnx import TensorProto, helper
from torch.export import Dim
from typer.testing import CliRunner

from export.checks import natural_images
from export.onnx_export import read_metadata
from export.pipeline import export_model
from tests.helpers import assert_one_line_error
from toolkit.cli import app


class TinyStyle(torch.nn.Module):
    """A float NCHW 0–255 → 0–255 model, like the ONNX model zoo's, with an instance norm inside."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.conv = torch.nn.Conv2d(3, 8, 3, padding=1)
        self.norm = torch.nn.InstanceNorm2d(8, affine=True)
        self.out = torch.nn.Conv2d(8, 3, 1)

    def forward(self, input1):
        return self.out(torch.relu(self.norm(self.conv(input1)))) * 40 + 128 + input1[:, :1] * 0.5


@pytest.fixture(scope="module")
def zoo_like(tmp_path_factory):
    path = tmp_path_factory.mktemp("zoo") / "zoo.onnx"
    example = torch.rand(1, 3, 64, 64) * 255
    program = torch.onnx.export(TinyStyle().eval(), (example,), input_names=["input1"], output_names=["output1"],
                                dynamic_shapes={"input1": {0: Dim.DYNAMIC, 2: Dim.DYNAMIC, 3: Dim.DYNAMIC}},
                                dynamo=True, external_data=False)  # fmt: skip
    onnx.save_model(program.model_proto, path)
    return path


@pytest.mark.parametrize("order", ["rgb", "bgr"])
def test_a_zoo_style_model_is_wrapped_with_our_uint8_contract(zoo_like, tmp_path, order):
    result = export_model(zoo_like, tmp_path, name="zoo", channel_order=order)
    assert result.ok, [c for c in result.checks if not c.ok]
    assert any(c.name.startswith("parity with the original") and c.ok for c in result.checks)
    written = onnx.load(tmp_path / "zoo.onnx")
    contract = json.loads(read_metadata(written)["io"])
    assert (contract["dtype"], contract["layout"], contract["fixed_size"]) == ("uint8", "NHWC", None)
    assert json.loads(read_metadata(written)["training"]) == {"source": Path(zoo_like).name}  # not its folders
    images = natural_images(3, 50, 70, seed=1)
    out = ort.InferenceSession(tmp_path / "zoo.onnx", providers=["CPUExecutionProvider"]).run(None, {"image": images})[
        0
    ]
    nchw = images.transpose(0, 3, 1, 2).astype(np.float32)
    with torch.no_grad():
        fed = torch.from_numpy(nchw[:, ::-1].copy() if order == "bgr" else nchw)
        expected = TinyStyle().eval()(fed).numpy()
    if order == "bgr":
        expected = expected[:, ::-1]
    expected = np.clip(expected, 0, 255).round().astype(np.uint8).transpose(0, 2, 3, 1)
    assert out.dtype == np.uint8 and out.shape == images.shape
    assert np.abs(out.astype(int) - expected.astype(int)).max() <= 1


def legacy_model(path):
    """Opset 7 with an experimental op that no converter knows, at a fixed 8×8, like the WinML sample models."""
    scale = helper.make_tensor("scale", TensorProto.FLOAT, [3], [1.0, 1.0, 1.0])
    bias = helper.make_tensor("bias", TensorProto.FLOAT, [3], [0.0, 0.0, 0.0])
    nodes = [helper.make_node("ImageScaler", ["inputImage"], ["scaled"], scale=1.0, bias=[0.0, 0.0, 0.0]),
             helper.make_node("InstanceNormalization", ["scaled", "scale", "bias"], ["outputImage"])]  # fmt: skip
    graph = helper.make_graph(
        nodes, "legacy", [helper.make_tensor_value_info("inputImage", TensorProto.FLOAT, [1, 3, 8, 8])],
        [helper.make_tensor_value_info("outputImage", TensorProto.FLOAT, [1, 3, 8, 8])], [scale, bias],
    )  # fmt: skip
    onnx.save_model(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 7)], ir_version=4), path)


def test_a_legacy_model_is_kept_as_it_is_with_its_conventions_recorded(tmp_path):
    legacy_model(tmp_path / "candy.onnx")
    result = CliRunner().invoke(app, ["export", str(tmp_path / "candy.onnx"), "-o", str(tmp_path / "out"),
                                      "--channel-order", "bgr", "--fp16"])  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "kept as it is: opset 7 uses ops the converter does not know: ImageScaler" in result.stderr
    assert "--fp16 is not available for imported ONNX models" in result.stderr
    written = onnx.load(tmp_path / "out" / "candy.onnx")
    contract = json.loads(read_metadata(written)["io"])
    expected = {"layout": "NCHW", "channels": "BGR", "dtype": "float32", "range": [0, 255], "input": "inputImage",
                "output": "outputImage", "fixed_size": [8, 8], "min_size": 1}  # fmt: skip
    assert contract == expected
    assert [n.op_type for n in written.graph.node] == ["ImageScaler", "InstanceNormalization"]


def test_an_onnx_model_that_is_not_image_to_image_is_refused(tmp_path):
    graph = helper.make_graph(
        [helper.make_node("Relu", ["x"], ["y"])], "classifier",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 1000])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 1000])],
    )  # fmt: skip
    onnx.save_model(helper.make_model(graph), tmp_path / "classifier.onnx")
    result = CliRunner().invoke(app, ["export", str(tmp_path / "classifier.onnx"), "-o", str(tmp_path / "out")])
    assert_one_line_error(result, "classifier.onnx: not an image-to-image model", "expected float N×3×H×W")
    (tmp_path / "garbage.onnx").write_bytes(b"\x00\x01 not protobuf")
    result = CliRunner().invoke(app, ["export", str(tmp_path / "garbage.onnx"), "-o", str(tmp_path / "out")])
    assert_one_line_error(result, "garbage.onnx: not")
    assert not (tmp_path / "out").exists()


def test_a_fixed_batch_model_whose_names_clash_with_ours(tmp_path):
    """Model-zoo models are fixed at batch 1; this one also calls its tensors `image` and `stylized`."""
    program = torch.onnx.export(TinyStyle().eval(), (torch.rand(1, 3, 32, 32) * 255,), input_names=["image"],
                                output_names=["stylized"], dynamo=True, external_data=False)  # fmt: skip
    onnx.save_model(program.model_proto, tmp_path / "fixed.onnx")
    result = export_model(tmp_path / "fixed.onnx", tmp_path / "out")
    assert result.ok, [c for c in result.checks if not c.ok]
    parity = next(c for c in result.checks if c.name.startswith("parity"))
    assert "32×32, batch 1" in parity.detail
    written = onnx.load(tmp_path / "out" / "fixed.onnx")
    assert [n.op_type for n in written.graph.node if "image" in n.input] == ["Cast"]
    assert [n.op_type for n in written.graph.node if "stylized" in n.output] == ["Cast"]
    assert json.loads(read_metadata(written)["io"])["fixed_size"] == [32, 32]
    from runtime import Stylizer

    out = Stylizer.load(tmp_path / "out" / "fixed.onnx")(
        np.zeros((3, 40, 50, 3), np.uint8)
    )  # batch 3 on a batch-1 model
    assert out.shape == (3, 40, 50, 3)


def caffe_like_model(path, first: str, means: tuple[float, float, float], doc: str = ""):
    """Opset 7, float NCHW 0–255, fixed 16×16: a first layer that subtracts `means` (as Caffe-era models do), then
    a layer that undoes it and saturates the model's third channel, so the output tells which order was fed."""
    inits = [helper.make_tensor("keep", TensorProto.FLOAT, [1, 3, 1, 1], [1.0, 1.0, 0.0]),
             helper.make_tensor("third", TensorProto.FLOAT, [1, 3, 1, 1], [0.0, 0.0, 255.0])]  # fmt: skip
    if first == "ImageScaler":
        nodes = [helper.make_node("ImageScaler", ["x"], ["centered"], scale=1.0, bias=[-m for m in means])]
    else:
        inits.append(helper.make_tensor("means", TensorProto.FLOAT, [1, 3, 1, 1], list(means)))
        nodes = [helper.make_node("Sub", ["x", "means"], ["centered"])]
    inits.append(helper.make_tensor("back", TensorProto.FLOAT, [1, 3, 1, 1], list(means)))
    nodes += [helper.make_node("Add", ["centered", "back"], ["restored"]),
              helper.make_node("Mul", ["restored", "keep"], ["kept"]),
              helper.make_node("Add", ["kept", "third"], ["y"])]  # fmt: skip
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 16, 16])
    x.doc_string = doc
    graph = helper.make_graph(nodes, "caffe_like", [x], [helper.make_tensor_value_info("y", TensorProto.FLOAT,
                              [1, 3, 16, 16])], inits)  # fmt: skip
    onnx.save_model(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 7)], ir_version=4), path)
    return path


BGR_MEANS = (103.939, 116.779, 123.68)


@pytest.mark.parametrize("first", ["ImageScaler", "Sub"])
def test_a_caffe_bgr_model_without_metadata_runs_as_bgr_and_says_why(tmp_path, first):
    from runtime import Stylizer

    path = caffe_like_model(tmp_path / "bgr.onnx", first, BGR_MEANS)
    stylizer = Stylizer.load(path)
    assert stylizer.contract.channels == "BGR"
    assert any("subtracts Caffe's ImageNet means in BGR order" in note for note in stylizer.notes), stylizer.notes
    out = stylizer(np.zeros((16, 16, 3), np.uint8))
    assert tuple(out[0, 0]) == (255, 0, 0)  # the model's third channel is red in BGR
    # and the same model with the means in RGB order is run as RGB
    rgb = Stylizer.load(caffe_like_model(tmp_path / "rgb.onnx", first, BGR_MEANS[::-1]))
    assert rgb.contract.channels == "RGB" and tuple(rgb(np.zeros((16, 16, 3), np.uint8))[0, 0]) == (0, 0, 255)
    # `toolkit export` records what it found (auto is the default); --no-check: this toy has no instance norm
    result = CliRunner().invoke(app, ["export", str(path), "-o", str(tmp_path / "out"), "--no-check"])
    assert result.exit_code == 0, result.output
    assert "so it is imported as BGR" in result.stderr
    exported = Stylizer.load(tmp_path / "out" / "bgr.onnx")  # wrapped with our RGB contract, or kept as BGR
    assert tuple(exported(np.zeros((16, 16, 3), np.uint8))[0, 0]) == (255, 0, 0)


def test_a_model_whose_graph_does_not_show_its_channel_order_is_run_as_rgb_with_a_pointer(tmp_path):
    from runtime import Stylizer

    path = caffe_like_model(tmp_path / "plain.onnx", "Sub", (10.0, 20.0, 30.0))
    stylizer = Stylizer.load(path)
    assert stylizer.contract.channels == "RGB"
    assert any("--channel-order bgr" in note for note in stylizer.notes), stylizer.notes
    described = Stylizer.load(caffe_like_model(tmp_path / "doc.onnx", "Sub", (10.0, 20.0, 30.0), "Image in BGR."))
    assert described.contract.channels == "BGR"
    assert any("input's description says BGR" in note for note in described.notes)
    result = CliRunner().invoke(app, ["run", str(tmp_path / "x.png"), "-o", str(tmp_path / "o"), "--model", str(path)])
    assert "--channel-order bgr" in result.stderr
