import json
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
from typer.testing import CliRunner

import export.checks
from export.checks import natural_images
from export.onnx_export import read_metadata
from export.pipeline import export_model
from runtime.errors import UserError
from tests.helpers import assert_one_line_error
from tests.test_generators import pytorch_examples_keys
from toolkit.cli import app
from train.checkpoint import save_model
from train.generators import GeneratorSpec, build_generator
from train.johnson import TransformerNet
from train.onnx_weights import generator_from_onnx

runner = CliRunner()


def trained_model(folder, arch, norm, width=0.5, noise_channels=0):
    torch.manual_seed(0)
    spec = GeneratorSpec(arch, norm, width, noise_channels)
    generator = build_generator(spec)
    if norm == "batch":  # give the frozen statistics something other than their defaults
        for module in generator.modules():
            if isinstance(module, torch.nn.BatchNorm2d):
                module.running_mean.uniform_(-1, 1)
                module.running_var.uniform_(0.5, 2)
    last = generator.deconv3.conv2d if arch == "johnson" else generator.to_rgb
    with torch.no_grad():  # outputs spread over 0–255 like a trained model's, so accuracy checks have teeth
        last.weight.mul_(150.0)
        last.bias.fill_(128.0)
    folder.mkdir(parents=True)
    save_model(folder / "model.safetensors", generator, spec, {"style": "mosaic.jpg"})
    return folder / "model.safetensors", generator


CASES = [("johnson", "instance", "uint8"), ("johnson", "batch", "float"), ("texture", "instance", "uint8"),
         ("texture", "batch", "float")]  # fmt: skip


@pytest.fixture(scope="module", params=CASES, ids=lambda c: "-".join(c))
def exported(request, tmp_path_factory):
    arch, norm, io = request.param
    root = tmp_path_factory.mktemp(f"{arch}-{norm}")
    path, generator = trained_model(root / "run", arch, norm)
    result = export_model(path, root / "out", io=io)
    return request.param, result, generator


def test_export_passes_its_checks_and_keeps_instance_statistics(exported):
    (_, norm, io), result, generator = exported
    assert result.ok, [c for c in result.checks if not c.ok]
    checks = {c.name: c for c in result.checks}
    model = onnx.load(result.files[0])
    ops = [n.op_type for n in model.graph.node]
    expected = sum(isinstance(m, torch.nn.InstanceNorm2d) for m in generator.modules())
    if norm == "instance":
        assert ops.count("InstanceNormalization") == expected > 0 and "BatchNormalization" not in ops
    else:
        assert checks["BatchNormalization nodes"].warning and "frozen" in checks["BatchNormalization nodes"].detail
        assert "InstanceNormalization" not in ops
    assert float(checks["parity with PyTorch (ORT CPU)"].detail.split()[2]) <= (1 if io == "uint8" else 0.01)
    if io == "uint8":  # TensorRT takes uint8 only straight into a Cast, and out of one
        assert [n.op_type for n in model.graph.node if "image" in n.input] == ["Cast"]
        assert [n.op_type for n in model.graph.node if "stylized" in n.output] == ["Cast"]


def test_the_exported_file_gives_back_the_weights_it_was_exported_from(exported):
    """`toolkit train --init NAME.onnx`: fine-tuning from an exported file starts from exactly its weights."""
    (arch, norm, _), result, generator = exported
    if norm == "batch":  # folded into the convolutions by the exporter: refused, not rebuilt wrong
        with pytest.raises(UserError, match="folded this batch-norm generator's statistics"):
            generator_from_onnx(result.files[0])
        return
    rebuilt, spec = generator_from_onnx(result.files[0])
    assert (spec.arch, spec.norm, spec.width) == (arch, norm, 0.5)
    expected = generator.state_dict()
    assert set(rebuilt.state_dict()) == set(expected)
    for name, value in rebuilt.state_dict().items():
        torch.testing.assert_close(value, expected[name], atol=0, rtol=0, msg=name)


def test_exported_graph_takes_any_batch_and_size_in_its_io_contract(exported):
    (arch, norm, io), result, _ = exported
    session = ort.InferenceSession(result.files[0], providers=["CPUExecutionProvider"])
    images = natural_images(3, 70, 101, seed=5)
    feed = images if io == "uint8" else images.transpose(0, 3, 1, 2).astype(np.float32)
    out = session.run(None, {"image": feed})[0]
    assert out.shape == feed.shape and out.dtype == feed.dtype
    meta = read_metadata(onnx.load(result.files[0]))
    contract = json.loads(meta["io"])
    assert (meta["arch"], meta["norm"], meta["precision"], meta["style"]) == (arch, norm, "fp32", "mosaic.jpg")
    assert json.loads(meta["training"]) == {"style": "mosaic.jpg"} and meta["width"] == "0.5"
    assert contract["layout"] == ("NHWC" if io == "uint8" else "NCHW") and contract["min_size"] >= 8


def test_fp16_export_keeps_every_instance_norm_in_fp32_and_stays_accurate(tmp_path):
    path, generator = trained_model(tmp_path / "run", "johnson", "instance")
    result = export_model(path, tmp_path / "out", name="style", fp16=True)
    assert result.ok, [c for c in result.checks if not c.ok]
    assert sorted(p.rsplit("/", 1)[1] for p in result.files) == ["style.fp16.onnx", "style.onnx"]
    checks = {c.name: c for c in result.checks}
    assert float(checks["fp16: fp16 vs fp32 PSNR"].detail.split()[0]) >= 40
    model = onnx.load(tmp_path / "out" / "style.fp16.onnx")
    conv_weights = {i.name: i.data_type for i in model.graph.initializer}
    norms = [n for n in model.graph.node if n.op_type == "InstanceNormalization"]
    assert len(norms) == 15
    producers = {out: n for n in model.graph.node for out in n.output}
    for norm in norms:
        cast = producers[norm.input[0]]
        assert cast.op_type == "Cast" and cast.attribute[0].i == onnx.TensorProto.FLOAT
        assert conv_weights[norm.input[1]] == conv_weights[norm.input[2]] == onnx.TensorProto.FLOAT
    assert onnx.TensorProto.FLOAT16 in conv_weights.values()
    rebuilt, _ = generator_from_onnx(tmp_path / "out" / "style.fp16.onnx")  # --init from it: fp16-rounded weights
    for name, value in rebuilt.state_dict().items():
        torch.testing.assert_close(value, generator.state_dict()[name], atol=1e-6, rtol=1e-3, msg=name)
    assert checks["fp16: instance norms compute in fp32"].ok


def test_pytorch_examples_checkpoint_exports(tmp_path):
    reference = TransformerNet()
    state = {}
    for key in pytorch_examples_keys():
        base = key.rsplit(".", 1)[0]
        if key.endswith("running_mean") or key.endswith("running_var"):
            state[key] = torch.zeros(reference.state_dict()[base + ".weight"].shape)
        else:
            state[key] = torch.randn(reference.state_dict()[key].shape) * 0.05
    torch.save(state, tmp_path / "mosaic.pth")
    result = runner.invoke(app, ["export", str(tmp_path / "mosaic.pth"), "-o", str(tmp_path / "out"), "--no-check"])
    assert result.exit_code == 0, result.output
    assert "dropped 30 legacy InstanceNorm running-statistics keys" in result.stderr
    meta = read_metadata(onnx.load(tmp_path / "out" / "mosaic.onnx"))
    assert meta["width"] == "1.0" and json.loads(meta["training"]) == {"source": "pytorch/examples"}


def test_a_failed_check_writes_no_file(tmp_path, monkeypatch):
    path, _ = trained_model(tmp_path / "run", "johnson", "instance")
    monkeypatch.setattr(export.checks, "FP32_MAX_ABS", -1.0)
    result = runner.invoke(app, ["export", str(path), "-o", str(tmp_path / "out")])
    assert result.exit_code == 1
    assert "FAIL  parity with PyTorch" in result.stderr and "no file was written" in result.stderr
    assert not list((tmp_path / "out").iterdir())


def test_bad_inputs_are_one_line_errors(tmp_path):
    (tmp_path / "notes.txt").write_text("hello")
    assert_one_line_error(
        runner.invoke(app, ["export", str(tmp_path / "notes.txt"), "-o", str(tmp_path / "o")]),
        "unknown model type .txt",
    )
    partial = {k: v for k, v in TransformerNet().state_dict().items() if not k.startswith("res5")}
    partial["extra.weight"] = torch.zeros(1)
    torch.save(partial, tmp_path / "partial.pth")
    assert_one_line_error(
        runner.invoke(app, ["export", str(tmp_path / "partial.pth"), "-o", str(tmp_path / "o")]),
        "missing res5.conv1.conv2d.bias", "unexpected extra.weight",
    )  # fmt: skip
    path, _ = trained_model(tmp_path / "run", "johnson", "instance")
    blocker = tmp_path / "file"
    blocker.write_text("x")
    assert_one_line_error(
        runner.invoke(app, ["export", str(path), "-o", str(blocker / "o")]), "cannot write to output folder"
    )
    assert_one_line_error(runner.invoke(app, ["export", str(path), "-o", str(tmp_path / "o"), "--io", "rgb"]), "--io")


def test_an_exported_model_names_its_training_files_without_their_local_folders(tmp_path):
    torch.manual_seed(0)
    spec = GeneratorSpec("johnson", "instance", 0.25)
    training = {"style": "mosaic.jpg", "data": str(tmp_path / "alice" / "photos"), "steps": 3,
                "vgg_weights": str(tmp_path / "alice" / "vgg_r31.pth"), "loss_net": "vgg19"}  # fmt: skip
    save_model(tmp_path / "model.safetensors", build_generator(spec), spec, training)
    result = export_model(tmp_path / "model.safetensors", tmp_path / "out", name="style", check=False, engine=False)
    recorded = json.loads(read_metadata(onnx.load(result.files[0]))["training"])
    assert recorded == {**training, "data": "photos", "vgg_weights": "vgg_r31.pth"}
    written = Path(result.files[0]).read_bytes()
    assert b"alice" not in written and str(Path(export.checks.__file__).parent).encode() not in written


def test_every_option_is_checked_before_the_model_is_loaded(tmp_path, monkeypatch):
    import export.pipeline

    def must_not_load(path):
        raise AssertionError("the model was loaded before the options were checked")

    monkeypatch.setattr(export.pipeline, "load_source", must_not_load)
    bad = [
        (["--workspace", "0"], "--workspace must be positive"),
        (["--io", "bytes"], "--io must be uint8 or float"),
        (["--max-shape", "1x64"], "height: need min ≤ opt ≤ max"),
        (["--triton", str(tmp_path / "repo"), "--triton-max-batch", "0"], "--triton-max-batch must be at least 1"),
        (["--triton-device", "tpu"], "--triton-device must be cpu or gpu"),
        (["--opset", "7"], "--opset 7: choose 18–23"),
        (["--name", "../x"], "give a file name stem without folders"),
    ]
    for flags, message in bad:
        result = CliRunner().invoke(app, ["export", str(tmp_path / "model.safetensors"), "-o", str(tmp_path), *flags])
        assert_one_line_error(result, message)


def test_the_checks_fail_on_a_graph_that_lost_an_instance_norm_or_a_model_that_differs(tmp_path):
    """The norm-count and parity checks have teeth: an InstanceNormalization replaced by Identity, and a PyTorch
    reference whose last bias is shifted, both fail (the parity check must not compare ONNX Runtime with itself)."""
    from export.checks import check_norm_nodes, check_parity
    from export.image_io import ImageIO

    path, generator = trained_model(tmp_path / "run", "johnson", "instance")
    export_model(path, tmp_path / "out", name="m", check=False, engine=False)
    model = onnx.load(tmp_path / "out" / "m.onnx")
    assert all(c.ok for c in check_norm_nodes(model, generator, "instance"))
    node = next(n for n in model.graph.node if n.op_type == "InstanceNormalization")
    node.op_type, node.input[1:] = "Identity", []
    assert not check_norm_nodes(model, generator, "instance")[0].ok
    original = onnx.load(tmp_path / "out" / "m.onnx")
    assert check_parity(original, ImageIO(generator.eval(), "uint8").eval(), "uint8").ok
    shifted, _ = trained_model(tmp_path / "other", "johnson", "instance")
    from train.checkpoint import load_model

    other, _ = load_model(shifted)
    with torch.no_grad():
        other.deconv3.conv2d.bias.add_(3.0)  # 3 grey levels brighter: beyond the 1-level tolerance
    assert not check_parity(original, ImageIO(other, "uint8").eval(), "uint8").ok


@pytest.mark.parametrize("arch, io", [("texture", "uint8"), ("johnson", "float")])  # float IO is the same for both
def test_texture_net_and_float_io_exports_match_pytorch_independently(tmp_path, arch, io):
    """Compared here with the generator itself, not through the export's own parity check. The texture net has
    noise channels: the graph computes the same position noise as the generator does outside training."""
    path, generator = trained_model(tmp_path / "run", arch, "instance", noise_channels=2 if arch == "texture" else 0)
    result = export_model(path, tmp_path / "out", name="m", io=io, check=False, engine=False)
    assert result.files
    images = natural_images(2, 72, 88, seed=5)
    session = ort.InferenceSession(str(tmp_path / "out" / "m.onnx"), providers=["CPUExecutionProvider"])
    nchw = torch.from_numpy(images).permute(0, 3, 1, 2).float()
    with torch.no_grad():
        expected = generator.eval()(nchw).numpy()
    if io == "float":
        got = session.run(None, {"image": nchw.numpy()})[0]
        assert np.abs(got - expected).max() < 0.05
    else:
        got = session.run(None, {"image": images})[0]
        reference = np.clip(np.rint(expected), 0, 255).transpose(0, 2, 3, 1)
        assert np.abs(got.astype(int) - reference.astype(int)).max() <= 1


def test_a_texture_net_with_noise_channels_exports_checked_in_fp32_and_fp16(tmp_path):
    path, _ = trained_model(tmp_path / "run", "texture", "instance", noise_channels=2)
    result = export_model(path, tmp_path / "out", name="m", fp16=True, engine=False)
    assert result.ok, [c for c in result.checks if not c.ok]
    assert sorted(Path(f).name for f in result.files) == ["m.fp16.onnx", "m.onnx"]
    ops = {n.op_type for n in onnx.load(tmp_path / "out" / "m.fp16.onnx").graph.node}
    assert {"Range", "Mod"} <= ops  # the noise is computed in the graph, from the picture's size
    rebuilt, spec = generator_from_onnx(tmp_path / "out" / "m.onnx")  # --init keeps the noise channels
    assert spec.noise_channels == 2 and rebuilt.noise_channels == 2
