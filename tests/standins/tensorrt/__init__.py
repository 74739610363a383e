"""Stand-in for the subset of TensorRT 11's Python API that the project calls (tests only; tests/standins/README.md).

The builder parses an ONNX file and checks what TensorRT's ONNX parser checks for graphs like ours; the "plan" is
the ONNX model plus the build's profile and the device it was built on. The runtime runs that model with ONNX
Runtime on the CPU, on the bytes at the addresses the context was given (the cuda stand-in's host-backed "device"
memory), in the precision the graph states: TensorRT 11 is strongly typed, so an fp16 graph runs in fp16.
What real TensorRT refuses, this refuses the same way (a bool False, or None, and an error in the logger):
shapes outside the profile, unknown tensor names, missing addresses, a timing cache from another device.
"""

from __future__ import annotations

import enum
import json
import threading

import numpy as np

__version__ = "11.4.0.106"
_PLAN_MAGIC = b"TRT-STANDIN-PLAN\n"
_CACHE_MAGIC = b"TRT-STANDIN-CACHE\n"


def _device() -> str:
    from cuda.bindings import runtime as cudart

    props = cudart.cudaGetDeviceProperties(0)[1]
    return f"{props.name.decode()} ({props.major}.{props.minor})"


class ILogger:
    class Severity(enum.IntEnum):
        INTERNAL_ERROR = 0
        ERROR = 1
        WARNING = 2
        INFO = 3
        VERBOSE = 4

    def log(self, severity, msg) -> None:
        pass


class Logger(ILogger):
    INTERNAL_ERROR, ERROR, WARNING, INFO, VERBOSE = ILogger.Severity

    def __init__(self, min_severity=ILogger.Severity.WARNING):
        self.min_severity = min_severity
        self.messages: list[str] = []

    def log(self, severity, msg) -> None:
        if severity <= self.min_severity:
            self.messages.append(str(msg))


class DataType(enum.IntEnum):
    FLOAT = 0
    HALF = 1
    INT8 = 2
    INT32 = 3
    BOOL = 4
    UINT8 = 5
    BF16 = 7
    INT64 = 8


float32, float16, int8, int32, bool, uint8, bfloat16, int64 = (
    DataType.FLOAT, DataType.HALF, DataType.INT8, DataType.INT32, DataType.BOOL, DataType.UINT8, DataType.BF16,
    DataType.INT64,
)  # fmt: skip
_NUMPY = {DataType.FLOAT: np.float32, DataType.HALF: np.float16, DataType.INT8: np.int8, DataType.INT32: np.int32,
          DataType.BOOL: np.bool_, DataType.UINT8: np.uint8, DataType.INT64: np.int64}  # fmt: skip
_ONNX = {1: DataType.FLOAT, 10: DataType.HALF, 3: DataType.INT8, 6: DataType.INT32, 9: DataType.BOOL,
         2: DataType.UINT8, 16: DataType.BF16, 7: DataType.INT64}  # fmt: skip


def nptype(trt_type):
    if trt_type in _NUMPY:
        return _NUMPY[trt_type]
    raise TypeError("Could not resolve TensorRT datatype to an equivalent numpy datatype.")


class TensorIOMode(enum.IntEnum):
    NONE = 0
    INPUT = 1
    OUTPUT = 2


class MemoryPoolType(enum.IntEnum):
    WORKSPACE = 0


class NetworkDefinitionCreationFlag(enum.IntEnum):
    STRONGLY_TYPED = 1  # deprecated in 11.0 and ignored: every network is strongly typed


class OnnxParserFlag(enum.IntEnum):
    NATIVE_INSTANCENORM = 0


class Dims(tuple):
    pass


class IHostMemory(bytes):
    """Serialized data; real IHostMemory offers the buffer protocol, so `bytes(plan)` works on both."""

    @property
    def nbytes(self) -> int:
        return len(self)


class ITensor:
    def __init__(self, name: str, dtype: DataType, shape: tuple):
        self.name, self.dtype, self.shape = name, dtype, Dims(shape)


class INetworkDefinition:
    def __init__(self, flags: int):
        self.flags = flags
        self.model = None
        self._inputs: list[ITensor] = []
        self._outputs: list[ITensor] = []

    @property
    def num_inputs(self) -> int:
        return len(self._inputs)

    @property
    def num_outputs(self) -> int:
        return len(self._outputs)

    def get_input(self, index: int) -> ITensor:
        return self._inputs[index]

    def get_output(self, index: int) -> ITensor:
        return self._outputs[index]


class ParserError:
    def __init__(self, text: str):
        self.text = text

    def desc(self) -> str:
        return self.text

    def __str__(self) -> str:
        return self.text


def _shape(value_info) -> tuple:
    return tuple(d.dim_value if d.HasField("dim_value") else -1 for d in value_info.type.tensor_type.shape.dim)


def _strong_typing_errors(model) -> list[str]:
    """What TensorRT's ONNX importer refuses in graphs like ours (onnx-tensorrt's importer, 10.x/11.x)."""
    import onnx

    inferred = onnx.shape_inference.infer_shapes(model)
    types = {v.name: v.type.tensor_type.elem_type for v in (*inferred.graph.value_info, *inferred.graph.input,
                                                             *inferred.graph.output)}  # fmt: skip
    types.update({t.name: t.data_type for t in model.graph.initializer})
    constants = {t.name: onnx.numpy_helper.to_array(t) for t in model.graph.initializer}
    errors = []
    for node in model.graph.node:
        touching = [n for n in (*node.input, *node.output) if n]
        if node.op_type != "Cast" and any(types.get(n) == onnx.TensorProto.UINT8 for n in touching):
            errors.append(f"{node.name or node.op_type}: a UINT8 tensor may only be the input or output of a Cast")
        if node.op_type == "InstanceNormalization":
            kinds = {types.get(n) for n in node.input[:3]}
            if len(kinds) != 1:
                errors.append(f"{node.name}: InstanceNormalization needs input, scale and bias of one type")
            elif kinds.pop() not in (onnx.TensorProto.FLOAT, onnx.TensorProto.FLOAT16, onnx.TensorProto.BFLOAT16):
                errors.append(f"{node.name}: InstanceNormalization takes FLOAT, HALF or BF16")
        if node.op_type in ("QuantizeLinear", "DequantizeLinear"):  # explicit quantization: symmetric INT8
            zero = constants.get(node.input[2]) if len(node.input) > 2 else None
            if zero is None or zero.dtype != np.int8 or np.any(zero != 0):
                errors.append(f"{node.name}: INT8 quantization is symmetric: the zero point must be an int8 0")
            if node.op_type == "DequantizeLinear" and types.get(node.input[0]) not in (onnx.TensorProto.INT8, None):
                errors.append(f"{node.name}: DequantizeLinear takes INT8 here, not type {types.get(node.input[0])}")
    return errors


class OnnxParser:
    def __init__(self, network: INetworkDefinition, logger: ILogger):
        self.network, self.logger = network, logger
        self._errors: list[ParserError] = []
        self.flags = 1 << int(OnnxParserFlag.NATIVE_INSTANCENORM)

    @property
    def num_errors(self) -> int:
        return len(self._errors)

    def get_error(self, index: int) -> ParserError:
        return self._errors[index]

    def clear_errors(self) -> None:
        self._errors.clear()

    def parse_from_file(self, model: str) -> bool:
        import onnx

        try:
            proto = onnx.load(model)
        except Exception as exc:
            self._errors.append(ParserError(f"cannot read {model}: {exc}"))
            return False
        errors = _strong_typing_errors(proto)
        if errors:
            self._errors += [ParserError(e) for e in errors]
            return False
        initializers = {t.name for t in proto.graph.initializer}
        self.network.model = proto
        self.network._inputs = [ITensor(v.name, _ONNX[v.type.tensor_type.elem_type], _shape(v))
                                for v in proto.graph.input if v.name not in initializers]  # fmt: skip
        self.network._outputs = [ITensor(v.name, _ONNX[v.type.tensor_type.elem_type], _shape(v))
                                 for v in proto.graph.output]  # fmt: skip
        return True


class IOptimizationProfile:
    def __init__(self):
        self.shapes: dict[str, tuple[tuple, tuple, tuple]] = {}

    def set_shape(self, input: str, min, opt, max) -> None:
        shapes = tuple(tuple(int(v) for v in s) for s in (min, opt, max))
        if len({len(s) for s in shapes}) != 1 or not all(a <= b <= c for a, b, c in zip(*shapes, strict=True)):
            raise ValueError(f"set_shape({input}): need min <= opt <= max of one rank, got {shapes}")
        self.shapes[input] = shapes  # type: ignore[assignment]

    def get_shape(self, input: str) -> list:
        return [Dims(s) for s in self.shapes.get(input, ((), (), ()))]


class ITimingCache:
    def __init__(self, device: str | None):
        self.device = device

    def serialize(self) -> IHostMemory:
        return IHostMemory(_CACHE_MAGIC + json.dumps({"device": self.device}).encode())

    def combine(self, input_cache, ignore_mismatch: bool) -> bool:
        return ignore_mismatch or input_cache.device in (None, self.device)

    def reset(self) -> bool:
        return True


class IBuilderConfig:
    def __init__(self):
        self.pools: dict[MemoryPoolType, int] = {}
        self.profiles: list[IOptimizationProfile] = []
        self._cache: ITimingCache | None = None

    def set_memory_pool_limit(self, pool: MemoryPoolType, pool_size: int) -> None:
        if pool_size <= 0:
            raise ValueError("memory pool size must be positive")
        self.pools[MemoryPoolType(pool)] = int(pool_size)

    def create_timing_cache(self, serialized_timing_cache) -> ITimingCache:
        data = bytes(serialized_timing_cache)
        if not data:
            return ITimingCache(None)  # empty: filled by the build, on this device
        if not data.startswith(_CACHE_MAGIC):
            raise ValueError("not a timing cache")
        return ITimingCache(json.loads(data[len(_CACHE_MAGIC) :])["device"])

    def set_timing_cache(self, cache: ITimingCache, ignore_mismatch: bool) -> bool:
        if cache.device not in (None, _device()) and not ignore_mismatch:
            return False  # a cache from another device; nothing is set (real TensorRT logs an error)
        self._cache = cache
        return True

    def get_timing_cache(self) -> ITimingCache | None:
        return self._cache

    def add_optimization_profile(self, profile: IOptimizationProfile) -> int:
        self.profiles.append(profile)
        return len(self.profiles) - 1


class Builder:
    def __init__(self, logger: ILogger):
        self.logger = logger

    def create_network(self, flags: int = 0) -> INetworkDefinition:
        return INetworkDefinition(flags)

    def create_builder_config(self) -> IBuilderConfig:
        return IBuilderConfig()

    def create_optimization_profile(self) -> IOptimizationProfile:
        return IOptimizationProfile()

    def build_serialized_network(self, network: INetworkDefinition, config: IBuilderConfig) -> IHostMemory | None:
        dynamic = [t for t in network._inputs if -1 in t.shape]
        if network.model is None or (dynamic and not config.profiles):
            self.logger.log(ILogger.Severity.ERROR, "network has dynamic inputs but no optimization profile")
            return None
        for profile in config.profiles:
            for tensor in dynamic:
                if tensor.name not in profile.shapes:
                    self.logger.log(ILogger.Severity.ERROR, f"profile has no shape for input {tensor.name}")
                    return None
                for shape in profile.shapes[tensor.name]:
                    fixed = [(want, got) for want, got in zip(tensor.shape, shape, strict=False) if want != -1]
                    if len(shape) != len(tensor.shape) or any(want != got for want, got in fixed):
                        self.logger.log(ILogger.Severity.ERROR, f"profile shape {shape} does not fit {tensor.name}")
                        return None
        if config._cache is not None:
            config._cache.device = _device()  # the build times its kernels here
        header = {
            "version": __version__,
            "device": _device(),
            "profiles": [{n: s for n, s in p.shapes.items()} for p in config.profiles],
            "inputs": [(t.name, int(t.dtype), list(t.shape)) for t in network._inputs],
            "outputs": [(t.name, int(t.dtype), list(t.shape)) for t in network._outputs],
        }
        return IHostMemory(_PLAN_MAGIC + json.dumps(header).encode() + b"\n" + network.model.SerializeToString())


class Runtime:
    def __init__(self, logger: ILogger):
        self.logger = logger

    def deserialize_cuda_engine(self, serialized_engine) -> ICudaEngine | None:
        data = bytes(serialized_engine)
        if not data.startswith(_PLAN_MAGIC):
            self.logger.log(ILogger.Severity.ERROR, "the data is not a serialized engine")
            return None
        head, _, model = data[len(_PLAN_MAGIC) :].partition(b"\n")
        header = json.loads(head)
        if header["version"] != __version__ or header["device"] != _device():
            # real TensorRT: "The engine plan file is not compatible with this version of TensorRT" / other device
            self.logger.log(ILogger.Severity.ERROR, "engine plan built by another TensorRT or for another device")
            return None
        return ICudaEngine(header, model)


class ICudaEngine:
    def __init__(self, header: dict, model: bytes):
        self._header, self._model = header, model
        self._tensors = {name: (TensorIOMode.INPUT, DataType(dtype), tuple(shape))
                         for name, dtype, shape in header["inputs"]}  # fmt: skip
        self._tensors.update({name: (TensorIOMode.OUTPUT, DataType(dtype), tuple(shape))
                              for name, dtype, shape in header["outputs"]})  # fmt: skip
        self._names = list(self._tensors)
        self._ort = None
        self._lock = threading.Lock()

    @property
    def num_io_tensors(self) -> int:
        return len(self._names)

    @property
    def num_optimization_profiles(self) -> int:
        return max(1, len(self._header["profiles"]))

    def get_tensor_name(self, index: int) -> str:
        return self._names[index]

    def get_tensor_mode(self, name: str) -> TensorIOMode:
        return self._tensors[name][0] if name in self._tensors else TensorIOMode.NONE

    def get_tensor_dtype(self, name: str) -> DataType:
        return self._tensors[name][1]

    def get_tensor_shape(self, name: str) -> Dims:
        return Dims(self._tensors[name][2])

    def get_tensor_profile_shape(self, name: str, profile_index: int) -> list[Dims]:
        shapes = self._header["profiles"][profile_index][name]
        return [Dims(s) for s in shapes]

    def create_execution_context(self) -> IExecutionContext:
        return IExecutionContext(self)

    def serialize(self) -> IHostMemory:
        return IHostMemory(_PLAN_MAGIC + json.dumps(self._header).encode() + b"\n" + self._model)

    def _session(self):
        with self._lock:
            if self._ort is None:
                import onnxruntime as ort

                options = ort.SessionOptions()
                options.intra_op_num_threads = 1
                self._ort = ort.InferenceSession(self._model, options, providers=["CPUExecutionProvider"])
            return self._ort


class IExecutionContext:
    def __init__(self, engine: ICudaEngine):
        self.engine = engine
        self._shapes: dict[str, tuple] = {}
        self._addresses: dict[str, int] = {}
        self.executions = 0

    def set_input_shape(self, name: str, shape) -> bool:
        shape = tuple(int(v) for v in shape)
        if self.engine.get_tensor_mode(name) != TensorIOMode.INPUT:
            return False
        low, _, high = self.engine.get_tensor_profile_shape(name, 0)
        if len(shape) != len(low) or not all(a <= v <= b for a, v, b in zip(low, shape, high, strict=True)):
            return False  # "Supplied binding dimension ... exceed min ~ max range"
        self._shapes[name] = shape
        return True

    def get_tensor_shape(self, name: str) -> Dims:
        mode = self.engine.get_tensor_mode(name)
        if mode == TensorIOMode.INPUT:
            return Dims(self._shapes.get(name, self.engine.get_tensor_shape(name)))
        declared = self.engine.get_tensor_shape(name)
        (source,) = [n for n in self.engine._names if self.engine.get_tensor_mode(n) == TensorIOMode.INPUT]
        if source not in self._shapes:
            return declared
        # Our graphs map an image to an image of the same size and layout.
        return Dims(self._shapes[source][: len(declared)])

    def infer_shapes(self) -> list[str]:
        return [n for n in self.engine._names
                if self.engine.get_tensor_mode(n) == TensorIOMode.INPUT and n not in self._shapes]  # fmt: skip

    def set_tensor_address(self, name: str, memory: int) -> bool:
        if self.engine.get_tensor_mode(name) == TensorIOMode.NONE or not int(memory):
            return False
        self._addresses[name] = int(memory)
        return True

    def get_tensor_address(self, name: str) -> int:
        return self._addresses.get(name, 0)

    def execute_async_v3(self, stream_handle: int) -> bool:
        from cuda.bindings import runtime as cudart

        if self.infer_shapes() or set(self._addresses) != set(self.engine._names):
            return False  # every input needs a shape and every tensor an address
        engine = self.engine
        plan = {
            n: (engine.get_tensor_mode(n), nptype(engine.get_tensor_dtype(n)), tuple(self.get_tensor_shape(n)),
                self._addresses[n])
            for n in engine._names
        }  # fmt: skip

        def run() -> cudart.cudaError_t:
            feeds, outputs = {}, []
            for name, (mode, dtype, shape, address) in plan.items():
                nbytes = int(np.prod(shape)) * np.dtype(dtype).itemsize
                if not cudart.inside(cudart.STATE.device, address, nbytes):
                    return cudart.cudaError_t.cudaErrorInvalidValue  # an illegal address: a real GPU faults
                if mode == TensorIOMode.INPUT:
                    view = np.ctypeslib.as_array((np.ctypeslib.ctypes.c_uint8 * nbytes).from_address(address))
                    feeds[name] = view.view(dtype).reshape(shape).copy()
                else:
                    outputs.append((name, dtype, shape, address, nbytes))
            results = self.engine._session().run([o[0] for o in outputs], feeds)
            for (_, dtype, shape, address, nbytes), result in zip(outputs, results, strict=True):
                if result.shape != shape or result.dtype != dtype:
                    return cudart.cudaError_t.cudaErrorInvalidValue
                np.ctypeslib.ctypes.memmove(address, np.ascontiguousarray(result).ctypes.data, nbytes)
            self.executions += 1
            return cudart.cudaError_t.cudaSuccess

        return cudart.record_or_run(stream_handle, run) == cudart.cudaError_t.cudaSuccess
