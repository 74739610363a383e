"""Every backend in one table: its name, the class that runs it (imported only when chosen), the model files it
runs, and whether `auto` tries it. The order of the table is `auto`'s order of preference."""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from pathlib import Path

from runtime.backends.base import Backend, BackendUnavailable
from runtime.errors import ModelError


@dataclass(frozen=True)
class BackendKind:
    name: str
    module: str  # imported only when this backend is chosen: each one's library is optional
    cls: str
    suffix: str  # the model file it runs
    in_auto: bool
    gpu_only: bool = False

    def open(self, path: Path, device: str | None) -> Backend:
        if self.gpu_only and device == "cpu":
            raise BackendUnavailable(f"{self.name} needs a GPU and --device cpu was asked")
        backend_class = getattr(importlib.import_module(self.module), self.cls)
        return backend_class(path) if self.gpu_only else backend_class(path, device)


BACKENDS = {
    kind.name: kind
    for kind in (
        BackendKind("tensorrt", "runtime.backends.tensorrt_backend", "TensorRTBackend", ".engine", True, True),
        BackendKind("onnxruntime", "runtime.backends.onnxruntime_backend", "OnnxRuntimeBackend", ".onnx", True),
        BackendKind("openvino", "runtime.backends.openvino_backend", "OpenVinoBackend", ".onnx", False),
        BackendKind("torch", "runtime.backends.torch_backend", "TorchBackend", ".safetensors", True),
    )
}
# An engine is built from the ONNX file beside it, so each stands for the other; a torch checkpoint stands alone.
SAME_MODEL = {".engine": (".engine", ".onnx"), ".onnx": (".engine", ".onnx"), ".safetensors": (".safetensors",)}


def candidates(path: Path) -> list[tuple[BackendKind, Path]]:
    """Which backend can run which file for the model at `path`, best first."""
    suffix = path.suffix.lower()
    if suffix not in SAME_MODEL:
        raise ModelError(f"{path}: unknown model type {suffix or '(none)'}; give a .onnx, .engine or .safetensors file")
    return [(kind, path.with_suffix(kind.suffix)) for kind in BACKENDS.values() if kind.suffix in SAME_MODEL[suffix]]
