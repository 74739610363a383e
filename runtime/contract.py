"""A model's I/O contract: what its input and output tensors look like, read from its metadata or its graph."""

from __future__ import annotations

import json
from dataclasses import dataclass


@dataclass(frozen=True)
class Contract:
    input_name: str
    output_name: str
    layout: str = "NHWC"  # or "NCHW"
    dtype: str = "uint8"  # or "float32"
    channels: str = "RGB"  # or "BGR"
    fixed_size: tuple[int, int] | None = None  # the model only takes this H×W: the runtime resizes
    min_size: int = 1  # smaller sides are mirror-padded up to this
    max_batch: int | None = None  # the model's batch dimension is fixed to this (model-zoo models: 1)

    @classmethod
    def from_io_metadata(cls, io_json: str) -> Contract:
        """From the `io` entry that `toolkit export` writes into the ONNX metadata and the engine sidecar."""
        io = json.loads(io_json)
        fixed = io.get("fixed_size")
        return cls(
            io.get("input", "image"), io.get("output", "stylized"), io.get("layout", "NHWC"),
            io.get("dtype", "uint8"), io.get("channels", "RGB"), tuple(fixed) if fixed else None,
            int(io.get("min_size", 1)),
        )  # fmt: skip

    @classmethod
    def from_graph(cls, input_name: str, output_name: str, input_type: str, input_shape: list) -> Contract:
        """For a model without our metadata: uint8 N×H×W×3 or float N×3×H×W, RGB assumed."""
        if "uint8" in input_type and len(input_shape) == 4 and input_shape[3] == 3:
            return cls(input_name, output_name, "NHWC", "uint8")
        if len(input_shape) != 4 or input_shape[1] != 3:
            raise ValueError(f"input {input_name} {input_shape} is neither N×H×W×3 uint8 nor N×3×H×W float")
        h, w = input_shape[2], input_shape[3]
        fixed = (h, w) if isinstance(h, int) and isinstance(w, int) and h > 0 and w > 0 else None
        return cls(input_name, output_name, "NCHW", "float32", "RGB", fixed)
