"""ONNX Runtime: the CUDA execution provider where onnxruntime-gpu has a GPU, else the CPU provider tuned for
throughput. (The TensorRT EP of PyPI's onnxruntime-gpu links TensorRT 10, so it is not used.)"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

import numpy as np

from runtime.backends.base import Backend, BackendUnavailable
from runtime.contract import Contract
from runtime.weights import refuse_nonfinite


def _both_onnxruntime_packages() -> str | None:
    """onnxruntime and onnxruntime-gpu install the same module, and the one installed last wins: a line saying so
    when both are installed (the CPU one has won if the CUDA provider is missing)."""
    from importlib import metadata

    installed = []
    for name in ("onnxruntime", "onnxruntime-gpu"):
        try:
            metadata.version(name)
            installed.append(name)
        except metadata.PackageNotFoundError:
            continue
    if len(installed) < 2:
        return None
    return (
        "onnxruntime and onnxruntime-gpu are both installed and the CPU one took over the module: "
        "pip uninstall -y onnxruntime onnxruntime-gpu && pip install onnxruntime-gpu"
    )


class OnnxRuntimeBackend(Backend):
    name = "onnxruntime"
    takes_statistics = True  # the graphs runtime.tiling derives run in sessions like this one's

    def __init__(self, path: str | Path, device: str | None = None, threads: int | None = None):
        try:
            import onnxruntime as ort
        except ImportError:
            raise BackendUnavailable("onnxruntime is not installed (pip install onnxruntime)") from None
        path = Path(path)
        available = ort.get_available_providers()
        both = _both_onnxruntime_packages() if "CUDAExecutionProvider" not in available else None
        if device == "cuda" and "CUDAExecutionProvider" not in available:
            raise BackendUnavailable(both or "onnxruntime has no CUDA provider here (pip install onnxruntime-gpu)")
        use_cuda = device != "cpu" and "CUDAExecutionProvider" in available
        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        options.intra_op_num_threads = threads or os.cpu_count() or 1
        options.log_severity_level = 3
        providers = ["CUDAExecutionProvider", "CPUExecutionProvider"] if use_cuda else ["CPUExecutionProvider"]
        self.path, self._options, self._providers = path, options, providers
        try:
            self.session = ort.InferenceSession(str(path), options, providers=providers)
        except Exception as exc:  # ORT raises its own exception types for unreadable or invalid models
            first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
            raise ValueError(f"{path}: ONNX Runtime cannot load this model ({first})") from None
        self.device = "cuda" if use_cuda and "CUDAExecutionProvider" in self.session.get_providers() else "cpu"
        if use_cuda and self.device == "cpu":
            # ONNX Runtime drops a provider that cannot start (no driver, missing CUDA/cuDNN libraries) silently.
            why = "onnxruntime-gpu's CUDA provider did not start here (missing CUDA/cuDNN libraries or driver)"
            if device == "cuda":
                raise BackendUnavailable(why)
            self.notes = (*self.notes, f"{why}; running on the CPU")
        if both and device != "cpu":
            self.notes = (*self.notes, both)
        refuse_nonfinite(path)
        inputs, outputs = self.session.get_inputs(), self.session.get_outputs()
        if len(inputs) != 1 or len(outputs) != 1:
            raise ValueError(f"{path}: expected one input and one output, found {len(inputs)} and {len(outputs)}")
        meta = self.metadata = dict(self.session.get_modelmeta().custom_metadata_map)
        if "io" in meta:
            try:
                self.contract = Contract.from_io_metadata(meta["io"])
            except ValueError as exc:
                raise ValueError(f"{path}: {exc}; re-export it with toolkit export") from None
        else:
            try:
                self.contract = Contract.from_graph(inputs[0].name, outputs[0].name, inputs[0].type, inputs[0].shape)
            except ValueError as exc:
                raise ValueError(f"{path}: not an image-to-image model ({exc})") from None
            self.guess_channel_order(path)
        batch_dim = inputs[0].shape[0] if inputs[0].shape else None
        if isinstance(batch_dim, int) and batch_dim > 0:
            self.contract = dataclasses.replace(self.contract, max_batch=batch_dim)

    def session_like(self, model_bytes: bytes):
        """Another session with this one's options and providers (for graphs derived from this model)."""
        import onnxruntime as ort

        return ort.InferenceSession(model_bytes, self._options, providers=self._providers)

    def run(self, batch: np.ndarray) -> np.ndarray:
        return self.session.run([self.contract.output_name], {self.contract.input_name: batch})[0]

    def close(self) -> None:
        self.session = None
