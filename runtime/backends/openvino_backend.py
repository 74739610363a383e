"""OpenVINO on the CPU: an optional backend (`--backend openvino`, `pip install openvino`), 10–15 % faster than ONNX
Runtime at 720p–1080p on this project's CPU when compiled for the input's shape (benchmarks/NOTES.md).

The model is compiled once per input shape (a few shapes are kept), in fp32: OpenVINO's CPU default on processors
with bf16 units is bf16, which would not match the exported model.
"""

from __future__ import annotations

from collections import OrderedDict
from pathlib import Path

import numpy as np

from runtime.backends.base import Backend, BackendUnavailable
from runtime.contract import Contract
from runtime.weights import refuse_nonfinite

CONFIG = {"PERFORMANCE_HINT": "LATENCY", "INFERENCE_PRECISION_HINT": "f32"}


def _reason(exc: Exception) -> str:
    """OpenVINO's messages start with where in its C++ sources they were raised; the reason comes after."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    useful = [line for line in lines if not line.startswith(("Exception from", "Check '"))]
    return (useful or lines or [type(exc).__name__])[0]


class OpenVinoBackend(Backend):
    name = "openvino"

    def __init__(self, path: str | Path, device: str | None = None, shapes_kept: int = 4):
        try:
            import openvino as ov
        except ImportError:
            raise BackendUnavailable("openvino is not installed (pip install openvino)") from None
        if device == "cuda":
            raise BackendUnavailable("this backend runs OpenVINO on the CPU")
        path = Path(path)
        self.core, self.device, self.shapes_kept = ov.Core(), "cpu", shapes_kept
        try:
            self.model = self.core.read_model(str(path))
        except RuntimeError as exc:
            raise ValueError(f"{path}: OpenVINO cannot read this model ({_reason(exc)})") from None
        if len(self.model.inputs) != 1 or len(self.model.outputs) != 1:
            raise ValueError(f"{path}: expected one input and one output")
        refuse_nonfinite(path)
        if self.model.has_rt_info(["framework", "io"]):
            try:
                self.contract = Contract.from_io_metadata(self.model.get_rt_info(["framework", "io"]).astype(str))
            except ValueError as exc:
                raise ValueError(f"{path}: {exc}; re-export it with toolkit export") from None
        else:
            port = self.model.inputs[0]
            shape = [d.get_length() if d.is_static else -1 for d in port.get_partial_shape()]
            kind = "tensor(uint8)" if port.get_element_type().get_type_name() == "u8" else "tensor(float)"
            try:
                self.contract = Contract.from_graph(port.get_any_name(), self.model.outputs[0].get_any_name(), kind,
                                                    shape)  # fmt: skip
            except ValueError as exc:
                raise ValueError(f"{path}: not an image-to-image model ({exc})") from None
            self.guess_channel_order(path)
        self._requests: OrderedDict[tuple, object] = OrderedDict()

    def _request(self, shape: tuple):
        request = self._requests.get(shape)
        if request is None:
            model = self.model.clone()
            model.reshape({model.inputs[0].get_any_name(): list(shape)})
            request = self.core.compile_model(model, "CPU", CONFIG).create_infer_request()
            self._requests[shape] = request
            while len(self._requests) > self.shapes_kept:
                self._requests.popitem(last=False)
        self._requests.move_to_end(shape)
        return request

    def run(self, batch: np.ndarray) -> np.ndarray:
        request = self._request(tuple(batch.shape))
        request.infer({0: batch})
        return request.get_output_tensor(0).data.copy()

    def close(self) -> None:
        self._requests.clear()
