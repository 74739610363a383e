"""Running a TensorRT engine on numpy arrays with cuda-python: explicit resources, every call checked.

Follows NVIDIA's `samples/python/common_runtime.py`: pinned host buffers and device buffers from
`cuda.bindings.runtime`, one stream, async copies, `execute_async_v3`. The buffers are allocated once, at the
largest shape the engine's profile allows (`cudaFree` synchronises the whole device, so nothing is freed while
running), and the tensor addresses are set once. A new input shape costs one `set_input_shape`.

Repeated shapes (a video, a folder of one camera's photos) replay a CUDA graph: the copy in, the engine and the copy
out are captured on the second batch of a shape (the first one runs normally, as TensorRT asks) and replayed after
that, which saves the launch overhead of every layer. Capture that fails turns graphs off for the engine, with a
note. Not thread-safe: one instance per thread.
"""

from __future__ import annotations

import contextlib
import ctypes
from collections import OrderedDict
from pathlib import Path

import numpy as np

from runtime.cuda_device import check, gpu_identity
from runtime.engine_sidecar import engine_mismatches, read_sidecar

GRAPHS_KEPT = 8  # CUDA graphs kept, one per input shape (least recently used dropped first)


class _Buffer:
    """A pinned host buffer and a device buffer of `nbytes` each."""

    def __init__(self, nbytes: int):
        from cuda.bindings import runtime as cudart

        self.nbytes = nbytes
        self.device = check(cudart.cudaMalloc(nbytes))
        try:
            self.host_ptr = check(cudart.cudaMallocHost(nbytes))
        except RuntimeError:
            check(cudart.cudaFree(self.device))
            raise
        raw = ctypes.cast(int(self.host_ptr), ctypes.POINTER(ctypes.c_uint8))
        self.host = np.ctypeslib.as_array(raw, (nbytes,))

    def view(self, shape: tuple[int, ...], dtype: np.dtype) -> np.ndarray:
        """The first bytes of the pinned buffer as an array of `shape`."""
        count = int(np.prod(shape)) * dtype.itemsize
        return self.host[:count].view(dtype).reshape(shape)

    def free(self) -> None:
        from cuda.bindings import runtime as cudart

        check(cudart.cudaFree(self.device))
        check(cudart.cudaFreeHost(self.host_ptr))


class TensorRTEngine:
    """An engine with one input and one output, refused when its sidecar says it was built for another machine."""

    def __init__(self, engine_path: str | Path, cuda_graphs: bool = True):
        import tensorrt as trt
        from cuda.bindings import runtime as cudart

        self.stream = None  # so that close() works however far __init__ got
        self._buffers: list[_Buffer] = []
        self._graphs: OrderedDict[tuple[int, ...], object] = OrderedDict()
        self._seen: set[tuple[int, ...]] = set()
        self._shape: tuple[int, ...] | None = None
        self.cuda_graphs = cuda_graphs
        self.notes: list[str] = []
        engine_path = Path(engine_path)
        sidecar = read_sidecar(engine_path)
        reasons = engine_mismatches(sidecar, trt.__version__, *gpu_identity())
        if reasons:
            raise ValueError(f"{engine_path}: {'; '.join(reasons)}; rebuild it with toolkit export, or use the .onnx")
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
        self.in_dtype = np.dtype(trt.nptype(self.engine.get_tensor_dtype(self.input_name)))
        self.out_dtype = np.dtype(trt.nptype(self.engine.get_tensor_dtype(self.output_name)))
        low, opt, high = (tuple(int(v) for v in s) for s in self.engine.get_tensor_profile_shape(self.input_name, 0))
        self.profile = (low, opt, high)
        # Size both buffers once, for the largest input the profile allows.
        if not self.context.set_input_shape(self.input_name, high):
            raise ValueError(f"{engine_path}: the engine refuses its own profile's maximum {high}")
        out_high = tuple(int(v) for v in self.context.get_tensor_shape(self.output_name))
        self.stream = check(cudart.cudaStreamCreate())
        self._buffers = [_Buffer(int(np.prod(high)) * self.in_dtype.itemsize)]
        self._buffers.append(_Buffer(int(np.prod(out_high)) * self.out_dtype.itemsize))
        for name, buffer in ((self.input_name, self._buffers[0]), (self.output_name, self._buffers[1])):
            if not self.context.set_tensor_address(name, int(buffer.device)):
                raise RuntimeError(f"{engine_path}: TensorRT refused the address of tensor {name}")
        self._shape = high

    def fits(self, shape: tuple[int, ...]) -> bool:
        low, _, high = self.profile
        return len(shape) == len(low) and all(a <= v <= b for a, v, b in zip(low, shape, high, strict=True))

    def _set_shape(self, shape: tuple[int, ...]) -> None:
        if shape == self._shape:
            return
        if not self.context.set_input_shape(self.input_name, shape):
            low, _, high = self.profile
            raise ValueError(f"input shape {shape} is outside the engine's profile ({low} … {high})")
        self._shape = shape

    def _enqueue(self, in_bytes: int, out_bytes: int) -> None:
        """Copy in, run, copy out, on the stream (not synchronised)."""
        from cuda.bindings import runtime as cudart

        source, target = self._buffers
        assert self.stream is not None  # created in __init__ before the buffers, destroyed in close() after them
        h2d, d2h = cudart.cudaMemcpyKind.cudaMemcpyHostToDevice, cudart.cudaMemcpyKind.cudaMemcpyDeviceToHost
        check(cudart.cudaMemcpyAsync(source.device, source.host_ptr, in_bytes, h2d, self.stream))
        if not self.context.execute_async_v3(int(self.stream)):
            raise RuntimeError("TensorRT execute_async_v3 failed")
        check(cudart.cudaMemcpyAsync(target.host_ptr, target.device, out_bytes, d2h, self.stream))

    def _capture(self, shape: tuple[int, ...], in_bytes: int, out_bytes: int):
        """A CUDA graph of `_enqueue` for this shape, or None (graphs then stay off, with a note)."""
        from cuda.bindings import runtime as cudart

        mode = cudart.cudaStreamCaptureMode.cudaStreamCaptureModeThreadLocal
        try:
            check(cudart.cudaStreamBeginCapture(self.stream, mode))
            try:
                self._enqueue(in_bytes, out_bytes)
            finally:
                graph = check(cudart.cudaStreamEndCapture(self.stream))
            executable = check(cudart.cudaGraphInstantiate(graph, 0))
            check(cudart.cudaGraphDestroy(graph))
        except RuntimeError as exc:
            self.cuda_graphs = False
            self.notes.append(f"CUDA graphs turned off for this engine: capture failed ({exc})")
            return None
        self._graphs[shape] = executable
        while len(self._graphs) > GRAPHS_KEPT:
            _, old = self._graphs.popitem(last=False)
            check(cudart.cudaGraphExecDestroy(old))
        return executable

    def __call__(self, batch: np.ndarray) -> np.ndarray:
        from cuda.bindings import runtime as cudart

        shape = tuple(batch.shape)
        self._set_shape(shape)
        out_shape = tuple(int(v) for v in self.context.get_tensor_shape(self.output_name))
        source, target = self._buffers
        np.copyto(source.view(shape, self.in_dtype), batch, casting="same_kind")
        in_bytes, out_bytes = batch.size * self.in_dtype.itemsize, int(np.prod(out_shape)) * self.out_dtype.itemsize
        graph = self._graphs.get(shape)
        if graph is None and self.cuda_graphs and shape in self._seen:
            graph = self._capture(shape, in_bytes, out_bytes)
        self._seen.add(shape)
        if graph is not None:
            self._graphs.move_to_end(shape)
            check(cudart.cudaGraphLaunch(graph, self.stream))
        else:
            self._enqueue(in_bytes, out_bytes)
        check(cudart.cudaStreamSynchronize(self.stream))
        return target.view(out_shape, self.out_dtype).copy()

    def close(self) -> None:
        from cuda.bindings import runtime as cudart

        while self._graphs:
            check(cudart.cudaGraphExecDestroy(self._graphs.popitem()[1]))
        for buffer in self._buffers:
            buffer.free()
        self._buffers = []
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
