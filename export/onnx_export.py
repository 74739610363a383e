"""Writing one self-contained ONNX file with dynamic batch, height and width, and our metadata."""

from __future__ import annotations

import json
import logging
import warnings
from pathlib import Path

import onnx
import torch
from torch import nn
from torch.export import Dim

from export.image_io import IO_CONTRACTS, ImageIO
from runtime.atomic import write_atomic

INPUT_NAME, OUTPUT_NAME = "image", "stylized"
DEFAULT_OPSET = 20
LOCAL_PATHS = ("data", "vgg_weights")  # training-record fields that hold a local file or folder (or a URL)


def example_input(io: str, size: int) -> torch.Tensor:
    if io == "uint8":
        return torch.randint(0, 256, (1, size, size + 8, 3), dtype=torch.uint8)
    return torch.rand(1, 3, size, size + 8) * 255


def build_onnx(wrapped: ImageIO, opset: int, min_size: int) -> onnx.ModelProto:
    """Trace `wrapped` into an ONNX model with dynamic N, H, W (`add_metadata` gives it ours)."""
    h_axis, w_axis = (1, 2) if wrapped.io == "uint8" else (2, 3)
    dynamic = {INPUT_NAME: {0: Dim.DYNAMIC, h_axis: Dim.DYNAMIC, w_axis: Dim.DYNAMIC}}
    example = example_input(wrapped.io, max(min_size, 64))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        logging.getLogger("torch.onnx").setLevel(logging.ERROR)
        program = torch.onnx.export(
            _Named(wrapped), (example,), dynamic_shapes=dynamic, input_names=[INPUT_NAME],
            output_names=[OUTPUT_NAME], opset_version=opset, dynamo=True, external_data=False, verbose=False,
        )  # fmt: skip
    assert program is not None  # None only with dynamo=False
    model = program.model_proto
    for node in model.graph.node:  # the exporter's Python stack traces: paths of our install, 2% of the file
        kept = [entry for entry in node.metadata_props if entry.key != "pkg.torch.onnx.stack_trace"]
        del node.metadata_props[:]
        node.metadata_props.extend(kept)
    if wrapped.io == "uint8":
        only_casts_touch_uint8(model)
    return model


def add_metadata(model: onnx.ModelProto, metadata: dict[str, str]) -> onnx.ModelProto:
    for key, value in metadata.items():
        entry = model.metadata_props.add()
        entry.key, entry.value = key, value
    return model


def only_casts_touch_uint8(model: onnx.ModelProto) -> None:
    """Make the uint8 graph input feed nothing but its Cast (Shape nodes read the Cast's output instead, which has
    the same shape), and check that the uint8 output comes straight from a Cast: what TensorRT requires."""
    nodes = list(model.graph.node)
    casts = [n for n in nodes if n.op_type == "Cast" and INPUT_NAME in n.input]
    if len(casts) != 1:
        raise RuntimeError(f"expected one Cast of {INPUT_NAME}, found {len(casts)}")
    cast = casts[0]
    for node in nodes:
        if node is not cast:
            node.input[:] = [cast.output[0] if name == INPUT_NAME else name for name in node.input]
    del model.graph.node[:]
    model.graph.node.extend([cast, *(n for n in nodes if n is not cast)])
    producer = next(n for n in nodes if OUTPUT_NAME in n.output)
    if producer.op_type != "Cast":
        raise RuntimeError(f"{OUTPUT_NAME} is produced by {producer.op_type}, not by a Cast")


def save_onnx(model: onnx.ModelProto, path: Path) -> None:
    """One self-contained file, written to a temporary name and renamed: never a partial file."""
    write_atomic(model.SerializeToString(), path)


class _Named(nn.Module):
    """Gives the traced forward an argument named like the graph input, so `dynamic_shapes` can refer to it."""

    def __init__(self, inner: nn.Module):
        super().__init__()
        self.inner = inner

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        return self.inner(image)


def shareable(training: dict) -> dict:
    """The training record with local paths cut to their last part: an exported model gets passed around, and the
    folders it was trained from (user names, projects) are not the recipients' business. URLs are kept."""
    return {
        key: Path(value).name if key in LOCAL_PATHS and isinstance(value, str) and "://" not in value else value
        for key, value in training.items()
    }


def onnx_metadata(spec: dict, io: str, precision: str, min_size: int, training: dict, version: str) -> dict[str, str]:
    return {
        "format": "fast-style-toolkit/onnx",
        "toolkit_version": version,
        "style": str(training.get("style", "")),
        "arch": spec["arch"],
        "norm": spec["norm"],
        "width": str(spec["width"]),
        "noise_channels": str(spec.get("noise_channels", 0)),
        "precision": precision,
        "io": json.dumps({**IO_CONTRACTS[io], "input": INPUT_NAME, "output": OUTPUT_NAME, "min_size": min_size}),
        "training": json.dumps(shareable(training)),
    }


def read_metadata(model: onnx.ModelProto) -> dict[str, str]:
    return {entry.key: entry.value for entry in model.metadata_props}
