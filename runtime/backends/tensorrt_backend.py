"""TensorRT: a `.engine` with its `.engine.json` sidecar, run through cuda-python (see runtime.tensorrt_engine)."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np

from runtime.backends.base import Backend, BackendUnavailable
from runtime.contract import Contract
from runtime.cuda_device import tensorrt_unavailable
from runtime.engine_sidecar import read_sidecar


class TensorRTBackend(Backend):
    name = "tensorrt"
    device = "cuda"

    def __init__(self, path: str | Path):
        path = Path(path)
        try:
            sidecar = read_sidecar(path)
        except ValueError as exc:
            raise BackendUnavailable(str(exc)) from None
        source = path.with_suffix(".onnx")
        built_from = sidecar.get("onnx", {}).get("sha256")
        if source.is_file() and built_from and built_from != hashlib.sha256(source.read_bytes()).hexdigest():
            raise BackendUnavailable(
                f"{path.name} was built from an earlier {source.name}; rebuild it with toolkit export"
            )
        reason = tensorrt_unavailable()
        if reason:
            raise BackendUnavailable(reason)
        from runtime.tensorrt_engine import TensorRTEngine

        try:
            self.engine = TensorRTEngine(path)
        except ValueError as exc:
            raise BackendUnavailable(str(exc)) from None
        io = sidecar.get("contract")
        self.contract = Contract.from_io_metadata(io) if io else Contract("image", "stylized")
        low = sidecar["profiles"][0]["min"]
        sides = low[1:3] if self.contract.layout == "NHWC" else low[2:4]
        # Below the profile's minimum the engine cannot run: such images are mirror-padded up to it.
        self.contract = Contract(**{**self.contract.__dict__, "min_size": max(self.contract.min_size, *sides)})

    def run(self, batch: np.ndarray) -> np.ndarray:
        return self.engine(batch)

    def close(self) -> None:
        if self.engine is not None:
            self.engine.close()
            self.engine = None
