"""Style models from elsewhere (ONNX model zoo, WinML samples, other tools), brought to our I/O contract.

Such a model maps a float NCHW image in 0–255 (RGB or BGR, `--channel-order`) to one of the same kind, often at a
fixed size. Where its opset allows (≥ 11, after conversion if needed), the graph is wrapped so that it speaks our
contract: uint8 RGB NHWC in and out (or float RGB NCHW). Otherwise it is copied as it is and its conventions are
recorded in the metadata, so the runtime can feed it (resizing to a fixed size, swapping channels).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper

from export.checks import Check, check_finite_weights, check_graph, natural_images, session
from export.image_io import IO_CONTRACTS
from export.onnx_export import INPUT_NAME, OUTPUT_NAME
from runtime.contract import MAX_FIXED_SIDE
from runtime.errors import UserError

WRAP_OPSET = 13


def _real_inputs(model: onnx.ModelProto) -> list[onnx.ValueInfoProto]:
    initializers = {t.name for t in model.graph.initializer}
    return [i for i in model.graph.input if i.name not in initializers]


def _dims(value: onnx.ValueInfoProto) -> list[int | None]:
    dims = value.type.tensor_type.shape.dim
    return [d.dim_value if d.HasField("dim_value") and d.dim_value > 0 else None for d in dims]


def describe(model: onnx.ModelProto, source: str) -> tuple[str, str, tuple[int, int] | None]:
    """(input name, output name, fixed H×W or None) of an image-to-image model; else a UserError."""
    inputs, outputs = _real_inputs(model), list(model.graph.output)
    if len(inputs) != 1 or len(outputs) != 1:
        raise UserError(f"{source}: not an image-to-image model ({len(inputs)} inputs, {len(outputs)} outputs)")
    for value in (inputs[0], outputs[0]):
        dims = _dims(value)
        if value.type.tensor_type.elem_type != TensorProto.FLOAT or len(dims) != 4 or dims[1] != 3:
            raise UserError(
                f"{source}: not an image-to-image model ({value.name} is {len(dims)}-D "
                f"{TensorProto.DataType.Name(value.type.tensor_type.elem_type)} {dims}; expected float N×3×H×W)"
            )
    h, w = _dims(inputs[0])[2:]
    if h and w and max(h, w) > MAX_FIXED_SIDE:  # checking it would allocate gigabytes
        raise UserError(f"{source}: it takes a fixed {h}×{w} input, beyond any picture (the limit is "
                        f"{MAX_FIXED_SIDE} a side); not a style model this can import")  # fmt: skip
    return inputs[0].name, outputs[0].name, (h, w) if h and w else None


def _opset(model: onnx.ModelProto) -> int:
    return next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), 0)


def wrap_with_contract(model: onnx.ModelProto, io: str, bgr: bool) -> onnx.ModelProto:
    """Put our I/O contract around the foreign graph: dtype, layout, channel order, clamp and round.

    The uint8 input feeds only a Cast and the uint8 output comes from a Cast, as TensorRT requires. The original
    input and output are renamed, so no name of theirs can clash with ours.
    """
    old_in, old_out, _ = describe(model, "model")
    inner_in, inner_out = "_toolkit_model_input", "_toolkit_model_output"
    graph = onnx.GraphProto()
    graph.CopyFrom(model.graph)
    for node in graph.node:
        node.input[:] = [inner_in if name == old_in else name for name in node.input]
        node.output[:] = [inner_out if name == old_out else name for name in node.output]
        if old_out in node.input:  # an output also read inside the graph
            node.input[:] = [inner_out if name == old_out else name for name in node.input]
    pre, post = [], []
    x = INPUT_NAME
    if io == "uint8":
        pre += [helper.make_node("Cast", [x], ["_toolkit_f32"], to=TensorProto.FLOAT),
                helper.make_node("Transpose", ["_toolkit_f32"], ["_toolkit_nchw"], perm=[0, 3, 1, 2])]  # fmt: skip
        x = "_toolkit_nchw"
    constants = [helper.make_tensor("_toolkit_reverse", TensorProto.INT64, [3], [2, 1, 0]),
                 helper.make_tensor("_toolkit_zero", TensorProto.FLOAT, [], [0.0]),
                 helper.make_tensor("_toolkit_max", TensorProto.FLOAT, [], [255.0])]  # fmt: skip
    if bgr:
        pre.append(helper.make_node("Gather", [x, "_toolkit_reverse"], ["_toolkit_bgr"], axis=1))
        x = "_toolkit_bgr"
    pre.append(helper.make_node("Identity", [x], [inner_in]))
    y = inner_out
    if bgr:
        post.append(helper.make_node("Gather", [y, "_toolkit_reverse"], ["_toolkit_rgb"], axis=1))
        y = "_toolkit_rgb"
    if io == "uint8":
        post += [helper.make_node("Clip", [y, "_toolkit_zero", "_toolkit_max"], ["_toolkit_clipped"]),
                 helper.make_node("Round", ["_toolkit_clipped"], ["_toolkit_rounded"]),
                 helper.make_node("Transpose", ["_toolkit_rounded"], ["_toolkit_nhwc"], perm=[0, 2, 3, 1]),
                 helper.make_node("Cast", ["_toolkit_nhwc"], [OUTPUT_NAME], to=TensorProto.UINT8)]  # fmt: skip
    else:
        post.append(helper.make_node("Identity", [y], [OUTPUT_NAME]))
    n, _, h, w = _dims(_real_inputs(model)[0])
    dims = [n or "N", h or "H", w or "W"]
    if io == "uint8":
        in_shape, in_type = [dims[0], dims[1], dims[2], 3], TensorProto.UINT8
    else:
        in_shape, in_type = [dims[0], 3, dims[1], dims[2]], TensorProto.FLOAT
    initializers = [i for i in graph.initializer if i.name != old_in]
    new_graph = helper.make_graph(
        [*pre, *graph.node, *post], graph.name or "style",
        [helper.make_tensor_value_info(INPUT_NAME, in_type, in_shape)],
        [helper.make_tensor_value_info(OUTPUT_NAME, in_type, [None] * 4)],
        [*initializers, *constants], sparse_initializer=list(graph.sparse_initializer),
    )  # fmt: skip
    wrapped = helper.make_model(
        new_graph, opset_imports=list(model.opset_import), ir_version=max(model.ir_version, 7),
        functions=list(model.functions),
    )  # fmt: skip
    return onnx.shape_inference.infer_shapes(wrapped)


def import_foreign(model: onnx.ModelProto, source: str, io: str, bgr: bool) -> tuple[onnx.ModelProto, dict, list[str]]:
    """Returns (model to write, I/O metadata, notes)."""
    try:
        onnx.checker.check_model(model)
    except onnx.checker.ValidationError as exc:
        raise UserError(f"{source}: not a valid ONNX model ({str(exc).splitlines()[0]})") from None
    old_in, old_out, fixed = describe(model, source)
    notes = []
    opset = _opset(model)
    if opset < WRAP_OPSET:
        try:
            model = onnx.version_converter.convert_version(model, WRAP_OPSET)
            notes.append(f"converted from opset {opset} to {WRAP_OPSET}")
        except Exception:  # the converter has no schema for deprecated experimental ops
            unknown = sorted({n.op_type for n in model.graph.node if not onnx.defs.has(n.op_type)})
            why = f"uses ops the converter does not know: {', '.join(unknown)}" if unknown else "cannot be converted"
            notes.append(f"kept as it is: opset {opset} {why}; its I/O conventions are recorded in the metadata")
            contract: dict[str, object] = {"layout": "NCHW", "channels": "BGR" if bgr else "RGB", "dtype": "float32",
                                           "range": [0, 255], "input": old_in, "output": old_out, "fixed_size": fixed,
                                           "min_size": 1}  # fmt: skip
            return model, contract, notes
    wrapped = wrap_with_contract(model, io, bgr)
    contract = {**IO_CONTRACTS[io], "input": INPUT_NAME, "output": OUTPUT_NAME, "fixed_size": fixed, "min_size": 1}
    return wrapped, contract, notes


def check_foreign_parity(original: onnx.ModelProto, result: onnx.ModelProto, contract: dict, bgr: bool) -> Check:
    """The imported model against the original, with our pre/post-processing done by hand in numpy."""
    name = "parity with the original model (ORT CPU)"
    old_in, _, fixed = describe(original, "original")
    h, w = fixed or (96, 128)
    batch = _dims(_real_inputs(original)[0])[0] or 2
    images = natural_images(batch, h, w, seed=3)
    nchw = images.transpose(0, 3, 1, 2).astype(np.float32)
    try:
        reference = session(original).run(None, {old_in: nchw[:, ::-1].copy() if bgr else nchw})[0]
    except Exception as exc:  # the original itself does not run on ONNX Runtime
        return Check(name, False, f"the original model fails on ONNX Runtime: {str(exc).splitlines()[0][:200]}")
    if bgr:
        reference = reference[:, ::-1]
    feed = images if contract["dtype"] == "uint8" else nchw
    try:
        got = session(result).run(None, {INPUT_NAME: feed})[0]
    except Exception as exc:  # ONNX Runtime's own error types: the imported model does not run
        return Check(name, False, f"ONNX Runtime failed: {str(exc).splitlines()[0][:200]}")
    if contract["dtype"] == "uint8":
        reference = np.clip(reference, 0, 255).round().astype(np.uint8).transpose(0, 2, 3, 1)
    diff = float(np.abs(got.astype(np.float64) - reference.astype(np.float64)).max())
    return Check(name, diff <= 1.0, f"max |diff| {diff:.3g} at {h}×{w}, batch {batch}")


def foreign_checks(original: onnx.ModelProto, result: onnx.ModelProto, contract: dict, bgr: bool) -> list[Check]:
    ops = [node.op_type for node in result.graph.node]
    norms = Check("InstanceNormalization nodes", ops.count("InstanceNormalization") > 0,
                  f"{ops.count('InstanceNormalization')} found")  # fmt: skip
    checks = [check_graph(result), check_finite_weights(result), norms]
    if "BatchNormalization" in ops:
        checks.append(Check("BatchNormalization nodes", True, "found: their statistics are frozen", warning=True))
    if contract["input"] == INPUT_NAME:  # a model kept as it is is the original: nothing to compare
        checks.append(check_foreign_parity(original, result, contract, bgr))
    return checks


def foreign_metadata(name: str, source: str, contract: dict, version: str) -> dict[str, str]:
    return {
        "format": "fast-style-toolkit/onnx",
        "toolkit_version": version,
        "style": name,
        "arch": "foreign",
        "norm": "instance",
        "precision": "fp32",
        "io": json.dumps(contract),
        "training": json.dumps({"source": Path(source).name}),  # the file, not its folders
    }
