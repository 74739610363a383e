"""Which channel order a foreign ONNX model expects, read from its graph where the graph shows it.

Caffe-era models (Johnson's fast-neural-style as exported to ONNX for WinML, most VGG ports) take BGR, and their
first layer subtracts the ImageNet means in that order: an opset-7 `ImageScaler` with bias (−103.939, −116.779,
−123.68), or a Sub/Add of a 3-value constant. Run as RGB, such a model swaps red and blue. Our own exports record
the order in their metadata; this is for files that do not.
"""

from __future__ import annotations

import re
from pathlib import Path

CAFFE_MEANS_BGR = (103.939, 116.779, 123.68)  # ImageNet means of Caffe's VGG, in its B, G, R order
TOLERANCE = 0.5


def _order_of_means(values: list[float]) -> str | None:
    """'BGR' or 'RGB' when `values` are Caffe's means in that order (to within TOLERANCE), else None."""
    if len(values) != 3:
        return None
    if all(abs(v - m) <= TOLERANCE for v, m in zip(values, CAFFE_MEANS_BGR, strict=True)):
        return "BGR"
    if all(abs(v - m) <= TOLERANCE for v, m in zip(values, reversed(CAFFE_MEANS_BGR), strict=True)):
        return "RGB"
    return None


def _constant_values(model, name: str) -> list[float] | None:
    from onnx import numpy_helper

    for tensor in model.graph.initializer:
        if tensor.name == name:
            return [float(v) for v in numpy_helper.to_array(tensor).reshape(-1)]
    for node in model.graph.node:
        if node.op_type == "Constant" and node.output and node.output[0] == name:
            for attribute in node.attribute:
                if attribute.name == "value":
                    return [float(v) for v in numpy_helper.to_array(attribute.t).reshape(-1)]
    return None


def guess_channel_order(path: str | Path) -> tuple[str, str] | None:
    """('BGR' or 'RGB', the evidence) for a model without our metadata, or None when its graph does not tell
    (or the `onnx` package, which reads the graph, is not installed)."""
    try:
        import onnx
        from onnx import helper
    except ImportError:
        return None
    try:
        model = onnx.load(str(path), load_external_data=False)
    except Exception:  # the backend that loaded it already reported what matters
        return None
    initializers = {t.name for t in model.graph.initializer}
    inputs = [i for i in model.graph.input if i.name not in initializers]
    if len(inputs) != 1:
        return None
    name = inputs[0].name
    for node in model.graph.node:
        if name not in node.input:
            continue
        order, values = None, None
        if node.op_type == "ImageScaler":
            bias = next((helper.get_attribute_value(a) for a in node.attribute if a.name == "bias"), None)
            values = [-float(v) for v in bias] if bias is not None else None
        elif node.op_type in ("Sub", "Add") and len(node.input) == 2:
            other = node.input[1] if node.input[0] == name else node.input[0]
            found = _constant_values(model, other)
            if found is not None:
                values = found if node.op_type == "Sub" else [-v for v in found]
        if values is not None:
            order = _order_of_means(values)
        if order:
            assert values is not None  # order comes from values
            means = ", ".join(f"{v:.3f}" for v in values)
            evidence = f"its first layer ({node.op_type}) subtracts Caffe's ImageNet means in {order} order ({means})"
            return order, evidence
        break  # only the layer that reads the input says anything about its channel order
    words = set(re.findall(r"\b(BGR|RGB)\b", inputs[0].doc_string))
    if len(words) == 1:
        order = words.pop()
        return order, f"its input's description says {order}"
    return None


def channel_order_note(path: str | Path) -> tuple[str, str]:
    """The channel order to run a model without our metadata in, and one line for the user saying why."""
    path = Path(path)
    guess = guess_channel_order(path)
    if guess is None:
        return "RGB", (
            f"{path.name} has no channel-order metadata and its graph does not show one: run as RGB; if red and "
            f"blue come out swapped, `toolkit export {path.name} --channel-order bgr` records the right order"
        )
    order, evidence = guess
    return order, f"{path.name} has no channel-order metadata; {evidence}, so it runs as {order}"
