"""PyTorch: runs a `model.safetensors` from `toolkit train` directly, for GPU machines without TensorRT.

On CUDA: fp16 with instance norms in fp32 and channels_last memory (a uint8 NHWC batch permuted to NCHW already is
channels_last). Only used when torch is installed; imports the generator definitions from `train`.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from runtime.backends.base import Backend, BackendUnavailable
from runtime.contract import Contract


class TorchBackend(Backend):
    name = "torch"

    def __init__(self, path: str | Path, device: str | None = None):
        try:
            import torch
        except ImportError:
            raise BackendUnavailable("torch is not installed; export the model to ONNX with toolkit export") from None
        from train.checkpoint import load_model
        from train.errors import UserError
        from train.norm import half_with_fp32_instance_norm

        if device == "cuda" and not torch.cuda.is_available():
            raise BackendUnavailable("torch sees no CUDA GPU")
        self._torch = torch
        self.device = "cuda" if device != "cpu" and torch.cuda.is_available() else "cpu"
        try:
            model, _ = load_model(path)
        except UserError as exc:
            raise ValueError(str(exc)) from None
        if self.device == "cuda":
            model = half_with_fp32_instance_norm(model).to("cuda", memory_format=torch.channels_last)
            self.dtype = torch.float16
        else:
            self.dtype = torch.float32
        self.model = model.eval()
        self.contract = Contract("image", "stylized", "NHWC", "uint8", min_size=model.minimum_size)

    def run(self, batch: np.ndarray) -> np.ndarray:
        torch = self._torch
        with torch.inference_mode():
            x = torch.from_numpy(batch).to(self.device, non_blocking=True).permute(0, 3, 1, 2).to(self.dtype)
            y = self.model(x).float().clamp_(0, 255).round_().to(torch.uint8)
            return y.permute(0, 2, 3, 1).cpu().numpy()

    def close(self) -> None:
        self.model = None
