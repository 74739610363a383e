"""The exported graph's I/O contract, built into the graph so that clients feed image bytes directly."""

from __future__ import annotations

import torch
from torch import Tensor, nn

IO_CONTRACTS = {
    "uint8": {"layout": "NHWC", "channels": "RGB", "dtype": "uint8", "range": [0, 255]},
    "float": {"layout": "NCHW", "channels": "RGB", "dtype": "float32", "range": [0, 255]},
}


class ImageIO(nn.Module):
    """uint8 RGB NHWC in → uint8 RGB NHWC out (cast, layout, clamp and round inside), or float32 NCHW 0–255 both
    ways (the ONNX model zoo convention). `compute_dtype` is what the generator runs in (float16 for --fp16)."""

    def __init__(self, generator: nn.Module, io: str, compute_dtype: torch.dtype = torch.float32):
        super().__init__()
        if io not in IO_CONTRACTS:
            raise ValueError(f"unknown io {io!r}")
        self.generator = generator
        self.io = io
        self.compute_dtype = compute_dtype

    def forward(self, image: Tensor) -> Tensor:
        # TensorRT takes uint8 only as a network input feeding a Cast, or as an output made by a Cast: so cast
        # first and permute after on the way in, and the other way round on the way out.
        x = image.to(self.compute_dtype)
        x = x.permute(0, 3, 1, 2) if self.io == "uint8" else x
        y = self.generator(x)
        if self.io == "float":
            return y.float()
        return y.float().clamp(0, 255).round().permute(0, 2, 3, 1).to(torch.uint8)
