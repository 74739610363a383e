"""PyTorch: runs a `model.safetensors` from `toolkit train` directly, for GPU machines without TensorRT.

On CUDA: fp16 (or bf16) with instance norms computing in fp32, channels_last memory (a uint8 NHWC batch permuted to
NCHW already is), cuDNN autotuning, and CUDA graphs: the second batch of a shape is captured (upload, convert, model,
round, download) and later batches of that shape replay it, which removes the per-layer launch cost that dominates
small frames. `compile=True` runs the model through `torch.compile` first. On the CPU: plain fp32.
Only used when torch is installed; imports the generator definitions from `train`.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from runtime.backends.base import Backend, BackendUnavailable
from runtime.contract import Contract

GRAPHS_KEPT = 8  # CUDA graphs kept, one per input shape (least recently used dropped first)
PRECISIONS = ("fp16", "bf16", "fp32")


class TorchBackend(Backend):
    name = "torch"

    def __init__(
        self, path: str | Path, device: str | None = None, precision: str | None = None, cuda_graphs: bool = True,
        compile: bool = False,
    ):  # fmt: skip
        try:
            import torch
        except ImportError:
            raise BackendUnavailable("torch is not installed; export the model to ONNX with toolkit export") from None
        from runtime.errors import UserError
        from train.checkpoint import load_model
        from train.norm import half_with_fp32_instance_norm

        if device == "cuda" and not torch.cuda.is_available():
            raise BackendUnavailable("torch sees no CUDA GPU")
        self._torch = torch
        self.device = "cuda" if device != "cpu" and torch.cuda.is_available() else "cpu"
        precision = precision or ("fp16" if self.device == "cuda" else "fp32")
        if precision not in PRECISIONS or (self.device == "cpu" and precision == "fp16"):
            raise ValueError(f"precision {precision!r}: choose fp32 or bf16 on the CPU, or {', '.join(PRECISIONS)}")
        try:
            model, _ = load_model(path)
        except UserError as exc:
            raise ValueError(str(exc)) from None
        self.dtype = {"fp16": torch.float16, "bf16": torch.bfloat16, "fp32": torch.float32}[precision]
        if self.dtype != torch.float32:
            model = half_with_fp32_instance_norm(model, self.dtype)
        if self.device == "cuda":
            # Module.to takes memory_format (documented); the overloads of its annotations omit it
            model = model.to("cuda", memory_format=torch.channels_last)  # type: ignore[call-overload]
            torch.backends.cudnn.benchmark = True  # fixed shapes repeat (folders, videos): pick the fastest kernels
        self._module = model.eval()
        self.model: Callable[..., Any] | None = self._module  # or torch.compile's wrapper; None once closed
        self.precision = precision
        self.cuda_graphs = cuda_graphs and self.device == "cuda"
        if compile:  # on CUDA "reduce-overhead" captures CUDA graphs itself
            mode = "reduce-overhead" if self.device == "cuda" else None
            self.model, self.cuda_graphs = torch.compile(self.model, mode=mode, dynamic=False), False
        self._graphs: OrderedDict[tuple[int, ...], tuple] = OrderedDict()  # shape → (graph, input, output)
        self._seen: set[tuple[int, ...]] = set()
        self.contract = Contract("image", "stylized", "NHWC", "uint8", min_size=model.minimum_size)

    def _forward(self, x_uint8, model: Callable[..., Any] | None = None):
        """uint8 NHWC on the device → uint8 NHWC on the device, through `model` (default: self.model)."""
        torch = self._torch
        x = x_uint8.permute(0, 3, 1, 2).to(self.dtype)
        model = model or self.model
        assert model is not None  # None only after close()
        y = model(x).float().clamp_(0, 255).round_().to(torch.uint8)
        return y.permute(0, 2, 3, 1).contiguous()

    def _capture(self, shape: tuple[int, ...]) -> tuple:
        torch = self._torch
        static_in = torch.empty(shape, dtype=torch.uint8, device="cuda")
        side = torch.cuda.Stream()
        side.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(side):  # warm-up on a side stream, as torch.cuda.graphs asks
            for _ in range(2):
                self._forward(static_in)
        torch.cuda.current_stream().wait_stream(side)
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph):
            static_out = self._forward(static_in)
        self._graphs[shape] = (graph, static_in, static_out)
        while len(self._graphs) > GRAPHS_KEPT:
            self._graphs.popitem(last=False)
        return self._graphs[shape]

    def run(self, batch: np.ndarray) -> np.ndarray:
        torch = self._torch
        shape = tuple(batch.shape)
        with torch.inference_mode():
            source = torch.from_numpy(batch)
            if not self.cuda_graphs:
                return self._forward(source.to(self.device, non_blocking=True)).cpu().numpy()
            entry = self._graphs.get(shape)
            if entry is None and shape in self._seen:
                entry = self._capture(shape)
            self._seen.add(shape)
            if entry is None:
                return self._forward(source.to("cuda", non_blocking=True)).cpu().numpy()
            graph, static_in, static_out = entry
            self._graphs.move_to_end(shape)
            static_in.copy_(source, non_blocking=False)
            graph.replay()
            return static_out.cpu().numpy()

    def run_masked(self, batch: np.ndarray, weights: np.ndarray) -> np.ndarray:
        """Run `batch` with each instance norm's statistics taken from each pixel in proportion to `weights` (N×H×W,
        0–1): a cut-out is normalized by its subject alone, as with ONNX Runtime (runtime.tiling)."""
        from train.norm import weighted_statistics

        torch = self._torch
        if self.model is None:
            raise RuntimeError("the backend is closed")
        w = torch.from_numpy(np.ascontiguousarray(weights, dtype=np.float32)[:, None]).to(self.device)
        # the plain module, not torch.compile's wrapper or a CUDA graph: the hooks change what each norm computes
        with torch.inference_mode(), weighted_statistics(self._module, w):
            return self._forward(torch.from_numpy(batch).to(self.device), self._module).cpu().numpy()

    def run_carried(self, batch: np.ndarray, carried: list | None, keep: float) -> tuple[np.ndarray, list]:
        """Run `batch` with each instance norm's statistics a mixture of `keep` of `carried` (as returned by the call
        before; None: its own) and 1 − `keep` its own, and return the statistics used, to carry to the next frame of
        a video (runtime.temporal; the rule of train.norm.carried_statistics, as in the ONNX temporal graph)."""
        from train.norm import carried_statistics

        torch = self._torch
        if self.model is None:
            raise RuntimeError("the backend is closed")
        # the plain module, not torch.compile's wrapper or a CUDA graph: the hooks change what each norm computes
        with torch.inference_mode(), carried_statistics(self._module, carried, keep) as used:
            out = self._forward(torch.from_numpy(batch).to(self.device), self._module).cpu().numpy()
        return out, used

    def close(self) -> None:
        self._graphs.clear()
        self.model = None
