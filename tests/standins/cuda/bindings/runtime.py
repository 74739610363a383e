"""Stand-in for `cuda.bindings.runtime` on a machine without a GPU: device memory is host memory.

Calls return `(err, *values)` like cuda-bindings 13 and check their arguments the way a real device would fail
(an unknown pointer, a copy past the end of an allocation, a destroyed stream). `STATE` counts what was asked, for
tests. Names and parameter names are checked against the real module by tests/test_standin_names.py.
"""

from __future__ import annotations

import ctypes
import enum
from dataclasses import dataclass, field

import numpy as np


class cudaError_t(enum.IntEnum):
    cudaSuccess = 0
    cudaErrorInvalidValue = 1
    cudaErrorMemoryAllocation = 2
    cudaErrorInsufficientDriver = 35
    cudaErrorNoDevice = 100
    cudaErrorInvalidResourceHandle = 400
    cudaErrorStreamCaptureUnsupported = 900
    cudaErrorStreamCaptureInvalidated = 901


class cudaMemcpyKind(enum.IntEnum):
    cudaMemcpyHostToHost = 0
    cudaMemcpyHostToDevice = 1
    cudaMemcpyDeviceToHost = 2
    cudaMemcpyDeviceToDevice = 3
    cudaMemcpyDefault = 4


class cudaStreamCaptureMode(enum.IntEnum):
    cudaStreamCaptureModeGlobal = 0
    cudaStreamCaptureModeThreadLocal = 1
    cudaStreamCaptureModeRelaxed = 2


class cudaStream_t:
    def __init__(self, handle: int = 0):
        self._handle = handle

    def __int__(self) -> int:
        return self._handle

    def getPtr(self) -> int:
        return self._handle


class cudaGraph_t(cudaStream_t):
    pass


class cudaGraphExec_t(cudaStream_t):
    pass


@dataclass
class cudaDeviceProp:
    name: bytes = b"Stand-in GPU (host memory)"
    major: int = 9
    minor: int = 0


@dataclass
class _State:
    """What the code under test did; tests read and reset it."""

    device_count: int = 1
    device_count_error: cudaError_t = cudaError_t.cudaSuccess
    properties: cudaDeviceProp = field(default_factory=cudaDeviceProp)
    device: dict[int, np.ndarray] = field(default_factory=dict)  # address → backing array
    host: dict[int, np.ndarray] = field(default_factory=dict)
    streams: set[int] = field(default_factory=set)
    capturing: dict[int, list] = field(default_factory=dict)  # stream → operations recorded while capturing
    graphs: dict[int, list] = field(default_factory=dict)
    execs: dict[int, list] = field(default_factory=dict)
    mallocs: int = 0
    frees: int = 0
    synchronizations: int = 0
    launches: int = 0
    next_handle: int = 1000

    def handle(self) -> int:
        self.next_handle += 1
        return self.next_handle


STATE = _State()


def reset() -> None:
    """A fresh device (for a new test)."""
    global STATE
    STATE = _State()


def _err(code: cudaError_t) -> tuple:
    return (code,)


def cudaGetDeviceCount():
    if STATE.device_count_error != cudaError_t.cudaSuccess:
        return STATE.device_count_error, 0
    return cudaError_t.cudaSuccess, STATE.device_count


def cudaGetDeviceProperties(device):
    if not 0 <= int(device) < STATE.device_count:
        return cudaError_t.cudaErrorInvalidValue, None
    return cudaError_t.cudaSuccess, STATE.properties


def cudaGetErrorName(error):
    return cudaError_t.cudaSuccess, cudaError_t(error).name.encode()


def _allocate(pool: dict[int, np.ndarray], size) -> tuple:
    size = int(size)
    if size <= 0:
        return cudaError_t.cudaErrorInvalidValue, 0
    array = np.zeros(size, np.uint8)
    address = array.ctypes.data
    pool[address] = array
    STATE.mallocs += 1
    return cudaError_t.cudaSuccess, address


def cudaMalloc(size):
    return _allocate(STATE.device, size)


def cudaMallocHost(size):
    return _allocate(STATE.host, size)


def _release(pool: dict[int, np.ndarray], ptr) -> tuple:
    if pool.pop(int(ptr), None) is None:
        return _err(cudaError_t.cudaErrorInvalidValue)
    STATE.frees += 1
    return _err(cudaError_t.cudaSuccess)


def cudaFree(devPtr):
    return _release(STATE.device, devPtr)


def cudaFreeHost(ptr):
    return _release(STATE.host, ptr)


def cudaStreamCreate():
    handle = STATE.handle()
    STATE.streams.add(handle)
    return cudaError_t.cudaSuccess, cudaStream_t(handle)


def cudaStreamDestroy(stream):
    if int(stream) not in STATE.streams:
        return _err(cudaError_t.cudaErrorInvalidResourceHandle)
    STATE.streams.discard(int(stream))
    return _err(cudaError_t.cudaSuccess)


def inside(pool: dict[int, np.ndarray], address: int, nbytes: int) -> bool:
    """Whether [address, address + nbytes) lies inside one allocation of `pool` (else a real device would fault)."""
    return any(start <= address and address + nbytes <= start + array.nbytes for start, array in pool.items())


def _copy(dst: int, src: int, count: int, kind: cudaMemcpyKind) -> cudaError_t:
    to_device = kind in (cudaMemcpyKind.cudaMemcpyHostToDevice, cudaMemcpyKind.cudaMemcpyDeviceToDevice)
    from_device = kind in (cudaMemcpyKind.cudaMemcpyDeviceToHost, cudaMemcpyKind.cudaMemcpyDeviceToDevice)
    if (to_device and not inside(STATE.device, dst, count)) or (from_device and not inside(STATE.device, src, count)):
        return cudaError_t.cudaErrorInvalidValue
    ctypes.memmove(dst, src, count)  # host memory may be pageable: any address the caller owns
    return cudaError_t.cudaSuccess


def record_or_run(stream, operation) -> cudaError_t:
    """Run `operation` (a callable returning a cudaError_t) now, or record it when `stream` is being captured."""
    handle = int(stream)
    if handle not in STATE.streams:
        return cudaError_t.cudaErrorInvalidResourceHandle
    if handle in STATE.capturing:
        STATE.capturing[handle].append(operation)
        return cudaError_t.cudaSuccess
    return operation()


def cudaMemcpyAsync(dst, src, count, kind, stream):
    dst, src, count, kind = int(dst), int(src), int(count), cudaMemcpyKind(kind)
    return _err(record_or_run(stream, lambda: _copy(dst, src, count, kind)))


def cudaStreamSynchronize(stream):
    if int(stream) not in STATE.streams:
        return _err(cudaError_t.cudaErrorInvalidResourceHandle)
    if int(stream) in STATE.capturing:
        return _err(cudaError_t.cudaErrorStreamCaptureUnsupported)
    STATE.synchronizations += 1
    return _err(cudaError_t.cudaSuccess)


def cudaStreamBeginCapture(stream, mode):
    if int(stream) not in STATE.streams or int(stream) in STATE.capturing:
        return _err(cudaError_t.cudaErrorInvalidValue)
    cudaStreamCaptureMode(mode)
    STATE.capturing[int(stream)] = []
    return _err(cudaError_t.cudaSuccess)


def cudaStreamEndCapture(stream):
    operations = STATE.capturing.pop(int(stream), None)
    if operations is None:
        return cudaError_t.cudaErrorInvalidValue, None
    handle = STATE.handle()
    STATE.graphs[handle] = operations
    return cudaError_t.cudaSuccess, cudaGraph_t(handle)


def cudaGraphInstantiate(graph, flags):
    operations = STATE.graphs.get(int(graph))
    if operations is None:
        return cudaError_t.cudaErrorInvalidValue, None
    handle = STATE.handle()
    STATE.execs[handle] = list(operations)
    return cudaError_t.cudaSuccess, cudaGraphExec_t(handle)


def cudaGraphLaunch(graphExec, stream):
    operations = STATE.execs.get(int(graphExec))
    if operations is None or int(stream) not in STATE.streams:
        return _err(cudaError_t.cudaErrorInvalidValue)
    STATE.launches += 1
    for operation in operations:
        code = operation()
        if code != cudaError_t.cudaSuccess:
            return _err(code)
    return _err(cudaError_t.cudaSuccess)


def cudaGraphExecDestroy(graphExec):
    return _err(cudaError_t.cudaSuccess if STATE.execs.pop(int(graphExec), None) is not None else 1)


def cudaGraphDestroy(graph):
    return _err(cudaError_t.cudaSuccess if STATE.graphs.pop(int(graph), None) is not None else 1)
