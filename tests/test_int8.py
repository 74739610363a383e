"""INT8 models (issue 15): `toolkit export --int8 --calib DIR`, its checks, and which file the runtime runs."""

import json

import numpy as np
import onnx
import pytest
from onnx import numpy_helper
from typer.testing import CliRunner

import export.int8
import runtime.precision
from export.checks import psnr
from export.int8 import WEIGHT_LIMIT, check_tensorrt_qdq, check_weights_fit_cpus_without_vnni
from export.onnx_export import read_metadata
from export.pipeline import export_model
from runtime import Stylizer
from runtime.errors import ModelError
from runtime.precision import cpu_has_avx2, cpu_has_int8_dot
from tests.conftest import standins
from tests.helpers import assert_one_line_error, photo_like, write_images
from tests.test_export import trained_model
from toolkit.cli import app

runner = CliRunner()


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """(out folder, export result): a johnson generator exported with --int8, calibrated on 6 generated photos."""
    root = tmp_path_factory.mktemp("int8")
    path, _ = trained_model(root / "run", "johnson", "instance")
    write_images(root / "calib", 6, size=(72, 96), suffix=".jpg")
    result = export_model(path, root / "out", int8=True, calib=root / "calib")
    return root / "out", result


def producers(model: onnx.ModelProto) -> dict[str, onnx.NodeProto]:
    return {out: node for node in model.graph.node for out in node.output}


def test_int8_export_quantizes_the_convolutions_and_leaves_every_instance_norm_fp32(exported):
    out, result = exported
    assert result.ok, [c for c in result.checks if not c.ok]
    assert str(out / "run.int8.onnx") in result.files and str(out / "run.onnx") in result.files
    names = {c.name for c in result.checks}
    assert {"int8: TensorRT explicit-quantization rules", "int8: int8 vs fp32 PSNR",
            "int8: instance norms compute in fp32", "int8: int8 weights on 7 bits"} <= names  # fmt: skip
    model = onnx.load(str(out / "run.int8.onnx"))
    made_by = producers(model)
    constants = {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}
    norms = [n for n in model.graph.node if n.op_type == "InstanceNormalization"]
    assert len(norms) == 15
    for norm in norms:  # measured on the convolution's fp32 output, never on a dequantized int8 tensor
        assert made_by[norm.input[0]].op_type == "Conv"
        assert all(constants[name].dtype == np.float32 for name in norm.input[1:])
    convs = [n for n in model.graph.node if n.op_type == "Conv"]
    record = json.loads(read_metadata(model)["int8"])
    quantized = [c for c in convs if c.input[1] in made_by and made_by[c.input[1]].op_type == "DequantizeLinear"]
    assert len(quantized) == record["quantized_convolutions"] >= len(convs) // 2
    assert [c.name for c in convs[: len(convs) - len(quantized)]] == record["fp32_convolutions"]  # from the input end
    assert record["worst_psnr_db"] >= export.int8.INT8_MIN_PSNR and record["calibration_photos"] == 6
    assert read_metadata(model)["precision"] == "int8" and read_metadata(model)["arch"] == "johnson"


@pytest.mark.parametrize("backend", ["onnxruntime", "openvino"])
def test_the_int8_file_runs_close_to_the_fp32_one_whole_in_tiles_and_as_a_cut_out(exported, backend):
    out, _ = exported
    image = photo_like((150, 170), seed=5)
    alpha = np.zeros(image.shape[:2], np.uint8)
    alpha[30:120, 40:140] = 255
    with Stylizer.load(out / "run.onnx", backend="onnxruntime", precision="fp32", tile=64) as fp32:
        expected = fp32.stylize_arrays([image])[0]
        expected_cut = fp32.stylize_arrays([image], alphas=[alpha])[0]
    with Stylizer.load(out / "run.onnx", backend=backend, precision="int8", tile=64) as int8:
        assert int8.backend.inner.path.name == "run.int8.onnx"  # tiled: statistics from outside on both backends
        got = int8.stylize_arrays([image])[0]
        got_cut = int8.stylize_arrays([image], alphas=[alpha])[0]
        notes = int8.fresh_notes()
    if backend == "openvino":  # right on any CPU (7-bit weights); where int8 is slow it says so
        slow = not cpu_has_int8_dot() and not cpu_has_avx2()
        assert any("no int8 dot-product instructions" in note for note in notes) == slow
    assert psnr(got, expected) > 28
    assert psnr(got_cut, expected_cut) > 28
    assert psnr(got_cut, got) < psnr(got_cut, expected_cut) - 3  # the cut-out was normalized by its subject


def with_8_bit_weights(out, folder):
    """A copy of the exported model whose int8 file has 8-bit weights (each doubled, its scale halved), as files
    exported before the weights went to 7 bits have."""
    folder.mkdir()
    (folder / "run.onnx").write_bytes((out / "run.onnx").read_bytes())
    model = onnx.load(str(out / "run.int8.onnx"))
    constants = {t.name: t for t in model.graph.initializer}
    for node in model.graph.node:
        weight = constants.get(node.input[0]) if node.op_type == "DequantizeLinear" else None
        if weight is not None and numpy_helper.to_array(weight).ndim == 4:
            doubled = np.clip(numpy_helper.to_array(weight).astype(np.int32) * 2, -127, 127).astype(np.int8)
            weight.CopyFrom(numpy_helper.from_array(doubled, weight.name))
            scale = constants[node.input[1]]
            scale.CopyFrom(numpy_helper.from_array(numpy_helper.to_array(scale) / 2, scale.name))
    onnx.save(model, str(folder / "run.int8.onnx"))
    return folder


def test_openvino_says_when_int8_is_slow_or_inaccurate_on_this_cpu(exported, tmp_path, monkeypatch):
    out, _ = exported
    old = with_8_bit_weights(out, tmp_path / "old")
    cases = [  # (flags, folder, the note expected)
        ({"avx2", "avx512_vnni"}, out, None), ({"avx2"}, out, None), (set(), out, "nor AVX2"),
        ({"avx2", "avx512_vnni"}, old, None), ({"avx2"}, old, "its int8 weights use 8 bits"),
    ]  # fmt: skip
    for flags, folder, expected in cases:
        monkeypatch.setattr(runtime.precision, "cpu_flags", lambda flags=flags: frozenset(flags))
        with Stylizer.load(folder / "run.onnx", backend="openvino", precision="int8", tile="off") as stylizer:
            notes = [n for n in stylizer.fresh_notes() if n.startswith("run.int8.onnx: ")]
        assert (notes == []) if expected is None else (len(notes) == 1 and expected in notes[0]), (flags, notes)


def test_auto_runs_the_int8_file_on_openvino_where_the_cpu_runs_it_right_and_fast(exported, tmp_path, monkeypatch):
    out, _ = exported
    old = with_8_bit_weights(out, tmp_path / "old")
    monkeypatch.setattr(runtime.precision, "cpu_flags", lambda: frozenset({"avx512f", "avx512_vnni"}))
    for folder in (out, old):  # VNNI adds in int32: 8-bit weights are fine
        with Stylizer.load(folder / "run.onnx") as stylizer:
            assert stylizer.backend_name == "openvino" and stylizer.backend.inner.path.name == "run.int8.onnx"
            notes = stylizer.fresh_notes()
            assert any("run.int8.onnx" in n and "int8 dot products; --precision fp32" in n for n in notes), notes
    with Stylizer.load(out / "run.onnx", precision="fp32") as stylizer:
        assert stylizer.backend_name == "onnxruntime" and stylizer.backend.inner.path.name == "run.onnx"
    monkeypatch.setattr(runtime.precision, "cpu_flags", lambda: frozenset({"avx2", "fma"}))
    with Stylizer.load(out / "run.onnx") as stylizer:  # AVX2 with 7-bit weights: int8
        assert stylizer.backend_name == "openvino" and stylizer.backend.inner.path.name == "run.int8.onnx"
        assert any("has AVX2 and the file's weights fit in 7 bits" in note for note in stylizer.fresh_notes())
    with Stylizer.load(old / "run.onnx") as stylizer:  # AVX2 with 8-bit weights would overflow: fp32, and it says why
        assert stylizer.backend_name == "onnxruntime" and stylizer.backend.inner.path.name == "run.onnx"
        notes = [n for n in stylizer.fresh_notes() if n.startswith("run.int8.onnx not used")]
        assert len(notes) == 1 and "int8 weights use 8 bits" in notes[0] and "export it again" in notes[0], notes
    with Stylizer.load(out / "run.onnx") as stylizer:  # a 7-bit file is not named so
        assert not any("not used" in n for n in stylizer.fresh_notes())
    monkeypatch.setattr(runtime.precision, "cpu_flags", lambda: frozenset({"sse4_2"}))
    with Stylizer.load(old / "run.onnx") as stylizer:  # neither: int8 would be slow, nothing to fix
        assert stylizer.backend.inner.path.name == "run.onnx"
        assert not any("not used" in n for n in stylizer.fresh_notes())
    monkeypatch.setattr(runtime.precision, "cpu_flags", lambda: frozenset({"avx512_vnni"}))
    monkeypatch.setattr(runtime.precision, "openvino_installed", lambda: False)
    with Stylizer.load(out / "run.onnx") as stylizer:  # ONNX Runtime's int8 is not faster than its fp32
        assert stylizer.backend.inner.path.name == "run.onnx"


def test_an_int8_file_that_cannot_be_read_leaves_auto_on_the_fp32_file(exported, tmp_path, monkeypatch):
    out, _ = exported
    (tmp_path / "run.onnx").write_bytes((out / "run.onnx").read_bytes())
    (tmp_path / "run.int8.onnx").write_bytes(b"not an onnx file")
    monkeypatch.setattr(runtime.precision, "cpu_flags", lambda: frozenset({"avx512_vnni"}))
    with Stylizer.load(tmp_path / "run.onnx") as stylizer:
        assert stylizer.backend_name == "onnxruntime" and stylizer.backend.inner.path.name == "run.onnx"
        assert any(note.startswith("run.int8.onnx not used") for note in stylizer.fresh_notes())
    monkeypatch.setattr(runtime.precision, "cpu_flags", lambda: frozenset({"avx2"}))  # read before it is chosen
    with Stylizer.load(tmp_path / "run.onnx") as stylizer:
        assert stylizer.backend_name == "onnxruntime" and stylizer.backend.inner.path.name == "run.onnx"
        assert "run.int8.onnx not used: OpenVINO cannot read it" in stylizer.fresh_notes()


def test_asking_for_a_precision_whose_file_is_missing_names_the_export_that_writes_it(exported, tmp_path):
    out, _ = exported
    with pytest.raises(ModelError, match=r"run.fp16.onnx does not exist .* toolkit export MODEL -o .* --fp16"):
        Stylizer.load(out / "run.onnx", precision="fp16")
    with pytest.raises(ModelError, match="choose auto, fp32, fp16, int8"):
        Stylizer.load(out / "run.onnx", precision="int4")
    result = runner.invoke(app, ["run", str(tmp_path), "-o", str(tmp_path / "o"), "--model", str(out / "run.onnx"),
                                 "--precision", "fp16"])  # fmt: skip
    assert result.exit_code != 0
    assert_one_line_error(result, "--fp16")


def test_a_bundled_styles_int8_file_is_not_listed_as_a_style(tmp_path, monkeypatch):
    import runtime.bundled

    (tmp_path / "mosaic.onnx").write_bytes(b"")
    (tmp_path / "mosaic.int8.onnx").write_bytes(b"")
    monkeypatch.setattr(runtime.bundled, "styles_folder", lambda: tmp_path)
    assert [s.name for s in runtime.bundled.bundled_styles()] == ["mosaic"]


def test_a_failed_int8_check_writes_no_file_and_exits_1(tmp_path, monkeypatch):
    path, _ = trained_model(tmp_path / "run", "johnson", "instance")
    write_images(tmp_path / "calib", 3, size=(64, 80))
    monkeypatch.setattr(export.int8, "INT8_MIN_PSNR", 200.0)  # no int8 model can meet it
    result = runner.invoke(app, ["export", str(path), "-o", str(tmp_path / "out"), "--int8", "--calib",
                                 str(tmp_path / "calib"), "--no-engine"])  # fmt: skip
    assert result.exit_code == 1
    assert "FAIL  int8: int8 vs fp32 PSNR" in result.stderr and "no file was written" in result.stderr
    assert not list((tmp_path / "out").glob("*")) if (tmp_path / "out").exists() else True


def test_int8_options_are_checked_before_the_model_is_loaded(tmp_path):
    path, _ = trained_model(tmp_path / "run", "johnson", "instance")
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "notes.txt").write_text("not a photo")
    cases = [
        (["--int8"], "--int8 needs --calib DIR"),
        (["--calib", str(tmp_path / "empty")], "--calib is for --int8"),
        (["--int8", "--calib", str(tmp_path / "missing")], "not a folder"),
        (["--int8", "--calib", str(tmp_path / "empty")], "no readable photo"),
    ]
    for flags, message in cases:
        result = runner.invoke(app, ["export", str(path), "-o", str(tmp_path / "out"), *flags])
        assert result.exit_code != 0, flags
        assert_one_line_error(result, message)


def test_the_tensorrt_rules_refuse_what_tensorrt_refuses(exported):
    out, _ = exported
    model = onnx.load(str(out / "run.int8.onnx"))
    assert check_tensorrt_qdq(model).ok
    for breaking in ("uint8 zero point", "weight axis 1", "int32 bias"):
        broken = onnx.ModelProto.FromString(model.SerializeToString())
        constants = {t.name: t for t in broken.graph.initializer}
        dq = next(n for n in broken.graph.node if n.op_type == "DequantizeLinear" and n.input[0] in constants
                  and numpy_helper.to_array(constants[n.input[1]]).size > 1)  # fmt: skip
        if breaking == "uint8 zero point":
            zero = constants[dq.input[2]]
            zero.CopyFrom(numpy_helper.from_array(numpy_helper.to_array(zero).astype(np.uint8) + 128, zero.name))
        elif breaking == "weight axis 1":
            next(a for a in dq.attribute if a.name == "axis").i = 1
        else:
            weight = constants[dq.input[0]]
            weight.CopyFrom(numpy_helper.from_array(numpy_helper.to_array(weight).astype(np.int32), weight.name))
            zero = constants[dq.input[2]]
            zero.CopyFrom(numpy_helper.from_array(numpy_helper.to_array(zero).astype(np.int32), zero.name))
        assert not check_tensorrt_qdq(broken).ok, breaking


def test_int8_weights_are_on_7_bits_so_cpus_without_vnni_do_not_saturate(exported):
    """AVX2's vpmaddubsw adds pairs of uint8×int8 products in int16: with 8-bit weights a pair can reach 64770 and
    saturate (OpenVINO's int8 rain-princess was 24.4 dB from fp32 on a Zen 3 EPYC); with 7-bit ones it stays under."""
    out, _ = exported
    model = onnx.load(str(out / "run.int8.onnx"))
    constants = {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}
    weights = [constants[n.input[0]] for n in model.graph.node
               if n.op_type == "DequantizeLinear" and n.input[0] in constants]  # fmt: skip
    assert weights and all(w.dtype == np.int8 for w in weights)
    largest = max(int(np.abs(w.astype(np.int32)).max()) for w in weights)
    assert WEIGHT_LIMIT // 2 < largest <= WEIGHT_LIMIT == 64  # the 7-bit range is used, not exceeded
    assert check_weights_fit_cpus_without_vnni(model).ok
    broken = onnx.ModelProto.FromString(model.SerializeToString())
    weight = next(t for t in broken.graph.initializer if numpy_helper.to_array(t).dtype == np.int8
                  and numpy_helper.to_array(t).ndim == 4)  # fmt: skip
    doubled = np.clip(numpy_helper.to_array(weight).astype(np.int32) * 2, -127, 127).astype(np.int8)
    weight.CopyFrom(numpy_helper.from_array(doubled, weight.name))
    assert not check_weights_fit_cpus_without_vnni(broken).ok


def one_conv_qdq(weight: np.ndarray, weight_zero: np.ndarray, activation_zero: int = 0, float_weight=False):
    """X → QuantizeLinear/DequantizeLinear (int8, `activation_zero`) → Conv(W) → Y, W an int8 `weight` with
    per-channel zero points `weight_zero` through DequantizeLinear, or (float_weight) a float weight quantized when
    the model loads (QuantizeLinear then DequantizeLinear)."""
    from onnx import TensorProto, helper

    channels = weight.shape[0]
    inits = [numpy_helper.from_array(np.array(0.05, np.float32), "xs"),
             numpy_helper.from_array(np.array(activation_zero, np.int8), "xz"),
             numpy_helper.from_array(np.full(channels, 0.01, np.float32), "ws"),
             numpy_helper.from_array(weight_zero, "wz")]  # fmt: skip
    nodes = [helper.make_node("QuantizeLinear", ["x", "xs", "xz"], ["xq"]),
             helper.make_node("DequantizeLinear", ["xq", "xs", "xz"], ["xd"])]  # fmt: skip
    if float_weight:
        inits.append(numpy_helper.from_array(weight.astype(np.float32) * 0.01, "wf"))
        nodes.append(helper.make_node("QuantizeLinear", ["wf", "ws", "wz"], ["w"], axis=0))
    else:
        inits.append(numpy_helper.from_array(weight, "w"))
    nodes += [helper.make_node("DequantizeLinear", ["w", "ws", "wz"], ["wd"], axis=0),
              helper.make_node("Conv", ["xd", "wd"], ["y"], pads=[1, 1, 1, 1])]  # fmt: skip
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 8, 8])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, channels, 8, 8])
    graph = helper.make_graph(nodes, "one_conv", [x], [y], inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 21)])


def test_the_int8_weight_magnitude_counts_weights_minus_their_zero_points_and_nothing_else(tmp_path):
    import openvino as ov

    from runtime.precision import int8_weight_magnitude

    def magnitude(model):
        onnx.save(model, str(tmp_path / "m.onnx"))
        return int8_weight_magnitude(ov.Core().read_model(str(tmp_path / "m.onnx")))

    weight = np.zeros((2, 3, 3, 3), np.int8)
    weight[0, 0, 0, 0], weight[1, 2, 1, 1] = 60, -50
    zero = np.zeros(2, np.int8)
    assert magnitude(one_conv_qdq(weight, zero)) == 60
    assert magnitude(one_conv_qdq(weight, np.array([-60, 0], np.int8))) == 120  # |60 − (−60)|: 8 bits
    assert magnitude(one_conv_qdq(weight, zero, activation_zero=-100)) == 60  # an activation's zero point: no weight
    assert magnitude(one_conv_qdq(weight, zero, float_weight=True)) == 127  # quantized on load: on 8 bits
    as_uint8 = one_conv_qdq((weight.astype(np.int16) + 128).astype(np.uint8), np.full(2, 128, np.uint8))
    assert magnitude(as_uint8) == 127  # not int8 weights: counted as 8 bits
    fp32 = one_conv_qdq(weight, zero)
    fp32.graph.node[3].input[1] = "wf"  # the convolution takes a float weight: nothing quantized
    fp32.graph.initializer.append(numpy_helper.from_array(np.ones((2, 3, 3, 3), np.float32), "wf"))
    del fp32.graph.node[2]
    assert magnitude(fp32) is None


def test_the_int8_file_builds_a_checked_tensorrt_engine_on_the_standin(tmp_path):
    path, _ = trained_model(tmp_path / "run", "johnson", "instance")
    write_images(tmp_path / "calib", 4, size=(64, 80))
    with standins():
        result = export_model(path, tmp_path / "out", int8=True, calib=tmp_path / "calib", engine=True,
                              min_shape="1x32x32", opt_shape="1x64x64", max_shape="2x96x128")  # fmt: skip
        assert result.ok, [c for c in result.checks if not c.ok]
        assert (tmp_path / "out" / "run.int8.engine").exists()
        assert any(c.name.startswith("int8 engine:") and c.ok for c in result.checks)
        broken = onnx.load(str(tmp_path / "out" / "run.int8.onnx"))  # the stand-in's parser refuses uint8 Q/DQ
        zero = next(t for t in broken.graph.initializer if t.name.endswith("zero_point"))
        zero.CopyFrom(numpy_helper.from_array(numpy_helper.to_array(zero).astype(np.uint8), zero.name))
        onnx.save(broken, str(tmp_path / "broken.int8.onnx"))
        import tensorrt as trt

        parser = trt.OnnxParser(trt.Builder(trt.Logger()).create_network(0), trt.Logger())
        assert not parser.parse_from_file(str(tmp_path / "broken.int8.onnx"))
        assert any("zero point" in str(parser.get_error(i)) for i in range(parser.num_errors))


def test_the_cpu_is_described_by_its_int8_instructions(monkeypatch):
    cases = [({"avx2", "avx512_vnni"}, "int8 dot products (VNNI)"), ({"avx2", "fma"}, "AVX2, no VNNI"),
             ({"sse4_2"}, "no AVX2"), (set(), "CPU flags unknown")]  # fmt: skip
    for flags, expected in cases:
        monkeypatch.setattr(runtime.precision, "cpu_flags", lambda flags=flags: frozenset(flags))
        assert runtime.precision.cpu_int8_kind() == expected
    assert runtime.precision.cpu_name().strip()  # /proc/cpuinfo's model name, or the platform's name elsewhere
