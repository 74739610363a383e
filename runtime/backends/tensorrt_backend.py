"""TensorRT: a `.engine` with its `.engine.json` sidecar, run through cuda-python (see runtime.tensorrt_engine).

An engine takes the shapes of its optimization profile only. Batches larger than the profile's maximum batch are
split (the contract's `max_batch`); images smaller than its minimum side are mirror-padded (`min_size`); images
larger than its maximum side run with ONNX Runtime on the `.onnx` the engine was built from, beside it, and a note
says so once (an engine cannot take them, and downscaling would lose detail the user asked for).
"""

from __future__ import annotations

import dataclasses
import hashlib
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from runtime.backends.base import Backend, BackendUnavailable
from runtime.contract import Contract
from runtime.cuda_device import tensorrt_unavailable
from runtime.engine_sidecar import read_sidecar

if TYPE_CHECKING:
    from runtime.tensorrt_engine import TensorRTEngine


class TensorRTBackend(Backend):
    name = "tensorrt"
    device = "cuda"

    def __init__(self, path: str | Path):
        path = Path(path)
        self.engine: TensorRTEngine | None = None
        self._fallback: Backend | None = None
        self._notes: tuple[str, ...] = ()
        try:
            sidecar = read_sidecar(path)
        except ValueError as exc:
            raise BackendUnavailable(str(exc)) from None
        self.source = path.with_suffix(".onnx")
        built_from = sidecar.get("onnx", {}).get("sha256")
        if self.source.is_file() and built_from and built_from != hashlib.sha256(self.source.read_bytes()).hexdigest():
            raise BackendUnavailable(
                f"{path.name} was built from an earlier {self.source.name}; rebuild it with toolkit export"
            )
        reason = tensorrt_unavailable()
        if reason:
            raise BackendUnavailable(reason)
        from runtime.tensorrt_engine import TensorRTEngine

        try:
            self.engine = TensorRTEngine(path)
        except (ValueError, RuntimeError) as exc:  # built elsewhere, or CUDA failed: `auto` moves on to the .onnx
            raise BackendUnavailable(str(exc)) from None
        io = sidecar.get("contract")
        contract = Contract.from_io_metadata(io) if io else Contract("image", "stylized")
        low, _, high = self.engine.profile
        nhwc = contract.layout == "NHWC"
        self.max_sides = tuple(high[1:3] if nhwc else high[2:4])
        min_sides = low[1:3] if nhwc else low[2:4]
        # Below the profile's minimum the engine cannot run: such images are mirror-padded up to it; batches are
        # split at its maximum.
        self.contract = dataclasses.replace(
            contract, min_size=max(contract.min_size, *min_sides), max_batch=min(high[0], contract.max_batch or high[0])
        )

    @property
    def notes(self) -> tuple[str, ...]:  # type: ignore[override]
        return (*self._notes, *(self.engine.notes if self.engine is not None else ()))

    def _sides(self, batch: np.ndarray) -> tuple[int, int]:
        h, w = batch.shape[1:3] if self.contract.layout == "NHWC" else batch.shape[2:4]
        return int(h), int(w)

    def run(self, batch: np.ndarray) -> np.ndarray:
        h, w = self._sides(batch)
        if h <= self.max_sides[0] and w <= self.max_sides[1]:
            assert self.engine is not None  # set in __init__, cleared by close()
            return self.engine(batch)
        return self._larger_than_the_profile(h, w).run(batch)

    def _larger_than_the_profile(self, h: int, w: int) -> Backend:
        if self._fallback is None:
            limit = f"{self.max_sides[0]}×{self.max_sides[1]}"
            if not self.source.is_file():
                raise ValueError(
                    f"a {h}×{w} image is larger than the engine's profile ({limit}) and {self.source.name} is not "
                    "beside it; rebuild the engine with a larger toolkit export --max-shape, or pass --max-size"
                )
            from runtime.backends.onnxruntime_backend import OnnxRuntimeBackend

            self._fallback = OnnxRuntimeBackend(self.source)
            self._notes = (
                *self._notes,
                f"images larger than the engine's profile ({limit}) run with ONNX Runtime on {self.source.name} "
                f"({self._fallback.device}); a larger toolkit export --max-shape keeps them on TensorRT",
            )
        return self._fallback

    def close(self) -> None:
        if self.engine is not None:
            self.engine.close()
            self.engine = None
        if self._fallback is not None:
            self._fallback.close()
            self._fallback = None
