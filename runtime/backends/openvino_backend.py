"""OpenVINO on the CPU: an optional backend (`--backend openvino`, `pip install openvino`), 10–15 % faster than ONNX
Runtime at 720p–1080p on this project's CPU when compiled for the input's shape (benchmarks/NOTES.md).

The model is compiled once per input shape (a few shapes are kept), in fp32: OpenVINO's CPU default on processors
with bf16 units is bf16, which would not match the exported model (and on this project's CPU, which has AVX-512 BF16
but no AMX, bf16 is 2.6× slower: docs/int8.md). An int8 model (`toolkit export --int8`) runs its convolutions in int8
with fp32 instance norms.

It takes instance-norm statistics from outside like ONNX Runtime (runtime.tiling's graphs, compiled here too), so
large photos run in tiles and cut-outs are normalized by their opaque pixels.
"""

from __future__ import annotations

from collections import OrderedDict
from pathlib import Path
from typing import Any

import numpy as np

from runtime.backends.base import Backend, BackendUnavailable
from runtime.contract import Contract
from runtime.precision import AVX2_WEIGHT_LIMIT, cpu_has_avx2, cpu_has_int8_dot, int8_weight_magnitude, precision_of
from runtime.weights import refuse_nonfinite

CONFIG = {"PERFORMANCE_HINT": "LATENCY", "INFERENCE_PRECISION_HINT": "f32"}


def _reason(exc: Exception) -> str:
    """OpenVINO's messages start with where in its C++ sources they were raised; the reason comes after."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    useful = [line for line in lines if not line.startswith(("Exception from", "Check '"))]
    return (useful or lines or [type(exc).__name__])[0]


class _Input:
    def __init__(self, name: str):
        self.name = name


class CompiledPerShape:
    """The model compiled for each set of input shapes it is run with (OpenVINO's CPU plugin is fastest with static
    shapes), the `kept` most recently used kept: one infer request each."""

    def __init__(self, core, model, config: dict, kept: int):
        self.core, self.model, self.config, self.kept = core, model, config, kept
        self._requests: OrderedDict[tuple, Any] = OrderedDict()

    def request(self, shapes: dict[str, tuple[int, ...]]):
        key = tuple(shapes.items())
        request = self._requests.get(key)
        if request is None:
            model = self.model.clone()
            model.reshape({name: list(shape) for name, shape in shapes.items()})
            request = self._requests[key] = self.core.compile_model(model, "CPU", self.config).create_infer_request()
            while len(self._requests) > self.kept:
                self._requests.popitem(last=False)
        self._requests.move_to_end(key)
        return request

    def shapes(self) -> list[dict[str, tuple[int, ...]]]:
        """The input shapes compiled now, least recently used first."""
        return [dict(key) for key in self._requests]

    def clear(self) -> None:
        self._requests.clear()


def _int8_notes(path: Path, model) -> list[str]:
    """What a CPU without int8 dot products (VNNI, AMX, Arm's dot product) means for an int8 file: with AVX2 and
    weights within ±64 nothing (1.8–1.9× the fp32 file on a Zen 3 EPYC: docs/int8.md); with 8-bit weights AVX2's
    int16 pair sums overflow (the bundled rain-princess's old file: 24.4 dB from fp32); without AVX2 int8 is slow."""
    if not cpu_has_avx2():
        return [f"{path.name}: this CPU has no int8 dot-product instructions (VNNI, AMX, Arm's dot product) nor AVX2, "
                "where int8 may be slower than fp32; --precision fp32 runs the fp32 file"]  # fmt: skip
    largest = int8_weight_magnitude(model)
    if largest is not None and largest > AVX2_WEIGHT_LIMIT:
        return [f"{path.name}: its int8 weights use 8 bits, which this CPU (AVX2, no VNNI or AMX) adds in int16 and "
                "can overflow, losing accuracy; export it again (toolkit export --int8 keeps them within ±64) or run "
                "--precision fp32"]  # fmt: skip
    return []


class OpenVinoSession:
    """A graph derived from the model (runtime.tiling) compiled per input shapes, with the part of ONNX Runtime's
    InferenceSession interface that runtime.tiling calls."""

    def __init__(self, core, model_bytes: bytes, shapes_kept: int = 4, config: dict | None = None):
        import openvino as ov

        self.model = core.read_model(model_bytes, ov.Tensor(type=ov.Type.u8, shape=[0]))
        self._compiled = CompiledPerShape(core, self.model, config or CONFIG, shapes_kept)

    def get_inputs(self) -> list[_Input]:
        return [_Input(port.get_any_name()) for port in self.model.inputs]

    def run(self, output_names, feeds: dict[str, np.ndarray], run_options=None) -> list[np.ndarray]:
        request = self._compiled.request({name: value.shape for name, value in feeds.items()})
        request.infer(feeds)
        return [request.get_output_tensor(i).data.copy() for i in range(len(self.model.outputs))]


class OpenVinoBackend(Backend):
    name = "openvino"
    takes_statistics = True  # runtime.tiling's graphs run as OpenVinoSession

    def __init__(
        self, path: str | Path, device: str | None = None, shapes_kept: int = 4, inference_precision: str = "fp32"
    ):
        try:
            import openvino as ov
        except ImportError:
            raise BackendUnavailable("openvino is not installed (pip install openvino)") from None
        if device == "cuda":
            raise BackendUnavailable("this backend runs OpenVINO on the CPU")
        path = Path(path)
        if inference_precision not in ("fp32", "bf16"):
            raise ValueError(f"inference precision {inference_precision!r}: choose fp32 or bf16")
        self.core, self.device, self.shapes_kept, self.path = ov.Core(), "cpu", shapes_kept, path
        self.config = {**CONFIG, "INFERENCE_PRECISION_HINT": "bf16" if inference_precision == "bf16" else "f32"}
        try:
            self.model = self.core.read_model(str(path))
        except RuntimeError as exc:
            raise ValueError(f"{path}: OpenVINO cannot read this model ({_reason(exc)})") from None
        if len(self.model.inputs) != 1 or len(self.model.outputs) != 1:
            raise ValueError(f"{path}: expected one input and one output")
        refuse_nonfinite(path)
        if self.model.has_rt_info("framework"):
            framework = self.model.get_rt_info("framework").astype(dict)
            self.metadata = {str(k): v.astype(str) if hasattr(v, "astype") else str(v) for k, v in framework.items()}
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
        self._input = self.model.inputs[0].get_any_name()  # read once: run() keys the compiled requests by it
        if precision_of(path) == "int8" and not cpu_has_int8_dot():
            self.notes = (*self.notes, *_int8_notes(path, self.model))
        self._compiled = CompiledPerShape(self.core, self.model, self.config, shapes_kept)

    def session_like(self, model_bytes: bytes) -> OpenVinoSession:
        """A graph derived from this model (runtime.tiling), compiled as this model is."""
        # a large photo's tiles come in up to 9 shapes (edges): keep them all compiled across photos
        return OpenVinoSession(self.core, model_bytes, max(self.shapes_kept, 12), self.config)

    def run(self, batch: np.ndarray) -> np.ndarray:
        request = self._compiled.request({self._input: tuple(batch.shape)})
        request.infer({0: batch})
        return request.get_output_tensor(0).data.copy()

    def close(self) -> None:
        self._compiled.clear()
