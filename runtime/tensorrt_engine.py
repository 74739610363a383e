"""Running a TensorRT engine on numpy arrays with cuda-python: explicit resources, every CUDA call checked.

Follows NVIDIA's `samples/python/common_runtime.py`: pinned host buffers and device buffers from
`cuda.bindings.runtime`, one stream, async copies, `execute_async_v3`. Buffers are allocated once per input shape
and reused while it stays the same. Not thread-safe: one instance per thread.
"""

from __future__ import annotations

import contextlib
import ctypes
from pathlib import Path

import numpy as np

from runtime.cuda_device import check, gpu_identity
from runtime.engine_sidecar import engine_mismatches, read_sidecar


class _Buffer:
    """A pinned host array and a device allocation of the same size."""

    def __init__(self, shape: tuple[int, ...], dtype: np.dtype):
        from cuda.bindings import runtime as cudart

        self.nbytes = int(np.prod(shape)) * np.dtype(dtype).itemsize
        self.device = check(cudart.cudaMalloc(self.nbytes))
        try:
            self.host_ptr = check(cudart.cudaMallocHost(self.nbytes))
        except RuntimeError:
            check(cudart.cudaFree(self.device))
            raise
        raw = ctypes.cast(int(self.host_ptr), ctypes.POINTER(ctypes.c_uint8))
        self.host = np.ctypeslib.as_array(raw, (self.nbytes,)).view(dtype).reshape(shape)

    def free(self) -> None:
        from cuda.bindings import runtime as cudart

        check(cudart.cudaFree(self.device))
        check(cudart.cudaFreeHost(self.host_ptr))


class TensorRTEngine:
    """An engine with one input and one output, refused when its sidecar says it was built for another machine."""

    def __init__(self, engine_path: str | Path):
        import tensorrt as trt
        from cuda.bindings import runtime as cudart

        self.stream = None  # so that close() works however far __init__ got
        self._buffers: tuple[_Buffer, _Buffer] | None = None
        self._shape: tuple[int, ...] | None = None
        engine_path = Path(engine_path)
        sidecar = read_sidecar(engine_path)
        reasons = engine_mismatches(sidecar, trt.__version__, *gpu_identity())
        if reasons:
            raise ValueError(f"{engine_path}: {'; '.join(reasons)}; rebuild it with toolkit export, or use the .onnx")
        self._trt = trt
        self.runtime = trt.Runtime(trt.Logger(trt.Logger.WARNING))
        self.engine = self.runtime.deserialize_cuda_engine(engine_path.read_bytes())
        if self.engine is None:
            raise ValueError(f"{engine_path}: TensorRT could not deserialize the engine")
        self.context = self.engine.create_execution_context()
        if self.context is None:
            raise RuntimeError(f"{engine_path}: TensorRT could not create an execution context (out of GPU memory?)")
        names = [self.engine.get_tensor_name(i) for i in range(self.engine.num_io_tensors)]
        inputs = [n for n in names if self.engine.get_tensor_mode(n) == trt.TensorIOMode.INPUT]
        outputs = [n for n in names if self.engine.get_tensor_mode(n) == trt.TensorIOMode.OUTPUT]
        if len(inputs) != 1 or len(outputs) != 1:
            raise ValueError(f"{engine_path}: expected one input and one output, found {inputs} and {outputs}")
        self.input_name, self.output_name = inputs[0], outputs[0]
        self.stream = check(cudart.cudaStreamCreate())

    def _prepare(self, shape: tuple[int, ...]) -> tuple[_Buffer, _Buffer]:
        if shape == self._shape and self._buffers is not None:
            return self._buffers
        if not self.context.set_input_shape(self.input_name, shape):
            low, _, high = self.engine.get_tensor_profile_shape(self.input_name, 0)
            raise ValueError(f"input shape {shape} is outside the engine's profile ({tuple(low)} … {tuple(high)})")
        out_shape = tuple(self.context.get_tensor_shape(self.output_name))
        trt = self._trt
        in_dtype = np.dtype(trt.nptype(self.engine.get_tensor_dtype(self.input_name)))
        out_dtype = np.dtype(trt.nptype(self.engine.get_tensor_dtype(self.output_name)))
        self._free()
        source = _Buffer(shape, in_dtype)
        try:
            target = _Buffer(out_shape, out_dtype)
        except RuntimeError:
            source.free()
            raise
        self._buffers = (source, target)
        self.context.set_tensor_address(self.input_name, int(self._buffers[0].device))
        self.context.set_tensor_address(self.output_name, int(self._buffers[1].device))
        self._shape = shape
        return self._buffers

    def __call__(self, batch: np.ndarray) -> np.ndarray:
        from cuda.bindings import runtime as cudart

        source, target = self._prepare(tuple(batch.shape))
        np.copyto(source.host, batch, casting="same_kind")
        h2d, d2h = cudart.cudaMemcpyKind.cudaMemcpyHostToDevice, cudart.cudaMemcpyKind.cudaMemcpyDeviceToHost
        check(cudart.cudaMemcpyAsync(source.device, source.host_ptr, source.nbytes, h2d, self.stream))
        if not self.context.execute_async_v3(int(self.stream)):
            raise RuntimeError("TensorRT execute_async_v3 failed")
        check(cudart.cudaMemcpyAsync(target.host_ptr, target.device, target.nbytes, d2h, self.stream))
        check(cudart.cudaStreamSynchronize(self.stream))
        return target.host.copy()

    def _free(self) -> None:
        if self._buffers is not None:
            for buffer in self._buffers:
                buffer.free()
            self._buffers, self._shape = None, None

    def close(self) -> None:
        from cuda.bindings import runtime as cudart

        self._free()
        if self.stream is not None:
            check(cudart.cudaStreamDestroy(self.stream))
            self.stream = None

    def __enter__(self) -> TensorRTEngine:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __del__(self) -> None:
        with contextlib.suppress(Exception):  # at interpreter exit CUDA may already be gone
            self.close()
