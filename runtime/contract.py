"""A model's I/O contract: what its input and output tensors look like, read from its metadata or its graph."""

from __future__ import annotations

import json
from dataclasses import dataclass

# Beyond these a model's declared sizes are not a picture's but an allocation of many gigabytes: refused at load.
MAX_FIXED_SIDE = 16384
MAX_MIN_SIZE = 4096


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
        try:
            io = json.loads(io_json)
            if not isinstance(io, dict):
                raise ValueError(f"a JSON object was expected, not {type(io).__name__}")
            fixed = io.get("fixed_size")
            contract = cls(
                str(io.get("input", "image")), str(io.get("output", "stylized")), io.get("layout", "NHWC"),
                io.get("dtype", "uint8"), io.get("channels", "RGB"),
                (int(fixed[0]), int(fixed[1])) if fixed else None, int(io.get("min_size", 1)),
            )  # fmt: skip
        except (ValueError, TypeError, IndexError, KeyError) as exc:
            raise ValueError(f"its io metadata is not valid ({exc})") from None
        contract.check()
        return contract

    def check(self) -> None:
        """ValueError when the contract asks for what no picture needs (and would exhaust memory)."""
        if self.layout not in ("NHWC", "NCHW") or self.dtype not in ("uint8", "float32"):
            raise ValueError(f"its io metadata names layout {self.layout!r} and dtype {self.dtype!r}")
        if self.channels not in ("RGB", "BGR"):
            raise ValueError(f"its io metadata names channels {self.channels!r}")
        if self.fixed_size and not all(0 < side <= MAX_FIXED_SIDE for side in self.fixed_size):
            raise ValueError(f"it takes a fixed {self.fixed_size[0]}×{self.fixed_size[1]} input (the limit is "
                             f"{MAX_FIXED_SIDE} a side)")  # fmt: skip
        if not 1 <= self.min_size <= MAX_MIN_SIZE:
            raise ValueError(f"it declares a minimum side of {self.min_size} px (the limit is {MAX_MIN_SIZE})")

    @classmethod
    def from_graph(cls, input_name: str, output_name: str, input_type: str, input_shape: list) -> Contract:
        """For a model without our metadata: uint8 N×H×W×3 or float N×3×H×W, RGB assumed."""
        if "uint8" in input_type and len(input_shape) == 4 and input_shape[3] == 3:
            return cls(input_name, output_name, "NHWC", "uint8")
        if len(input_shape) != 4 or input_shape[1] != 3:
            raise ValueError(f"input {input_name} {input_shape} is neither N×H×W×3 uint8 nor N×3×H×W float")
        h, w = input_shape[2], input_shape[3]
        fixed = (h, w) if isinstance(h, int) and isinstance(w, int) and h > 0 and w > 0 else None
        contract = cls(input_name, output_name, "NCHW", "float32", "RGB", fixed)
        contract.check()
        return contract
