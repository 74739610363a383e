"""Which file of a model to run: NAME.onnx (fp32), NAME.fp16.onnx, NAME.int8.onnx (`toolkit export --fp16/--int8`).

`auto` runs the file it is given, except that on a CPU with int8 dot-product instructions (x86 VNNI or AMX, Arm
dot product) an fp32 NAME.onnx with NAME.int8.onnx beside it runs as int8 on OpenVINO, where int8 is 2.6–3× faster
than fp32 on this project's CPU (ONNX Runtime's int8 convolutions are not faster than its fp32 ones there, so
without OpenVINO the fp32 file runs: docs/int8.md). On an x86 CPU with AVX2 but no VNNI the int8 file runs too if
its weights are on 7 bits, as `toolkit export --int8` writes them (1.8–1.9× OpenVINO's fp32 on a Zen 3 EPYC): AVX2
adds pairs of uint8×int8 products in int16, which 8-bit weights can overflow (export/int8.py). A GPU keeps its
engines.
"""

from __future__ import annotations

import functools
import re
from pathlib import Path

from runtime.errors import ModelError

PRECISIONS = ("auto", "fp32", "fp16", "int8")
VARIANTS = ("fp16", "int8")  # NAME.<variant>.onnx / .engine
INT8_DOT_FLAGS = {"avx512_vnni", "avx_vnni", "amx_int8", "asimddp"}  # x86 VNNI/AMX, Arm dot product
AVX2_WEIGHT_LIMIT = 64  # |int8 weight| ≤ 64 (ONNX Runtime's reduce_range): a pair of uint8×int8 products fits int16


@functools.lru_cache(maxsize=1)
def _cpuinfo() -> str:
    """/proc/cpuinfo (Linux), read once; empty elsewhere."""
    try:
        return Path("/proc/cpuinfo").read_text()
    except OSError:
        return ""


@functools.lru_cache(maxsize=1)
def cpu_flags() -> frozenset[str]:
    """The CPU's feature flags from /proc/cpuinfo (Linux); empty elsewhere."""
    match = re.search(r"^(?:flags|Features)\s*:(.*)$", _cpuinfo(), re.MULTILINE)
    return frozenset(match.group(1).split()) if match else frozenset()


def cpu_name() -> str:
    """The CPU's model name from /proc/cpuinfo (Linux); the platform's processor or machine name elsewhere."""
    import platform

    match = re.search(r"^model name\s*:(.*)$", _cpuinfo(), re.MULTILINE)
    return match.group(1).strip() if match else platform.processor() or platform.machine()


def cpu_int8_kind() -> str:
    """What this CPU has for int8 convolutions, in words (docs and records)."""
    if not cpu_flags():
        return "CPU flags unknown"
    return "int8 dot products (VNNI)" if cpu_has_int8_dot() else "AVX2, no VNNI" if cpu_has_avx2() else "no AVX2"


def cpu_has_int8_dot() -> bool:
    return bool(cpu_flags() & INT8_DOT_FLAGS)


def cpu_has_avx2() -> bool:
    return "avx2" in cpu_flags()


CONVOLUTIONS = {"Convolution", "GroupConvolution", "ConvolutionBackpropData", "GroupConvolutionBackpropData"}
WEIGHT_PATH = {"Multiply", "Subtract", "Convert", "Reshape", "Transpose", "Unsqueeze", "Squeeze"}
EIGHT_BITS = 127  # what a weight quantized any other way counts as: OpenVINO quantizes it on 8 bits


def int8_weight_magnitude(model) -> int | None:
    """The largest |weight − zero point| over the int8 weights of an OpenVINO model's convolutions, as OpenVINO reads
    a QDQ file: Constant int8 → Convert → [Subtract zero point] → Multiply scale → convolution. A weight quantized
    any other way (a float weight through FakeQuantize, uint8, a zero point that is not a constant) counts as
    EIGHT_BITS; activations' zero points are not weights and are not counted. None when no convolution has
    quantized weights."""
    import numpy as np

    largest = None
    for op in model.get_ordered_ops():
        if op.get_type_name() not in CONVOLUTIONS:
            continue
        node, zero_point, converted = op.input_value(1).get_node(), np.int32(0), False
        while node.get_type_name() in WEIGHT_PATH:
            if node.get_type_name() == "Convert":
                converted = True
            if node.get_type_name() == "Subtract":
                zero_point = _constant_below(node.input_value(1).get_node())
                if zero_point is None:
                    break
            node = node.input_value(0).get_node()
        kind = node.get_type_name()
        if kind == "Constant" and not converted:
            continue  # a float weight: this convolution runs in float
        if kind == "Constant" and node.get_element_type().get_type_name() == "i8" and zero_point is not None:
            try:
                value = int(np.abs(node.get_data().astype(np.int32) - zero_point).max(initial=0))
            except ValueError:  # shapes that do not broadcast as numpy's: cannot tell
                value = EIGHT_BITS
        elif kind == "Constant" or kind == "FakeQuantize" or converted:
            value = EIGHT_BITS
        else:
            continue  # computed some other way, not quantized as far as can be told
        largest = value if largest is None else max(largest, value)
    return largest


def _constant_below(top):
    """The integer values of a Constant under Converts and reshapes, in `top`'s output shape; None if there is none."""
    node = top
    while node.get_type_name() in ("Convert", "Reshape", "Unsqueeze", "Squeeze"):
        node = node.input_value(0).get_node()
    if node.get_type_name() != "Constant" or not top.get_output_partial_shape(0).is_static:
        return None
    try:
        return node.get_data().astype("int32").reshape(tuple(top.get_output_shape(0)))
    except ValueError:
        return None


def int8_fits_avx2(path: Path) -> bool | None:
    """Whether the int8 file's convolution weights lie within ±AVX2_WEIGHT_LIMIT, so that a CPU with AVX2 and no VNNI
    runs it without overflow; None when OpenVINO cannot read it here."""
    try:
        import openvino as ov

        model = ov.Core().read_model(str(path))
    except (ImportError, RuntimeError, OSError):
        return None
    largest = int8_weight_magnitude(model)
    return largest is not None and largest <= AVX2_WEIGHT_LIMIT


def precision_of(path: Path) -> str:
    """fp16/int8 for NAME.fp16.onnx / NAME.int8.onnx (and engines); fp32 otherwise."""
    parts = path.name.split(".")
    if path.suffix.lower() not in (".onnx", ".engine"):
        return "fp32"
    return parts[-2] if len(parts) >= 3 and parts[-2] in VARIANTS else "fp32"


def variant(path: Path, precision: str) -> Path:
    """The file of `path`'s model in `precision` (same folder, same suffix)."""
    stem = path.name[: -len(path.suffix)] if path.suffix else path.name
    if precision_of(path) != "fp32":
        stem = stem.rsplit(".", 1)[0]
    middle = "" if precision == "fp32" else f".{precision}"
    return path.with_name(f"{stem}{middle}{path.suffix}")


def choose_file(path: Path, precision: str) -> Path:
    """The file `--precision` asks for; `auto` keeps `path` (open_backend may still prefer the int8 file)."""
    if precision not in PRECISIONS:
        raise ModelError(f"--precision {precision!r}: choose {', '.join(PRECISIONS)}")
    if precision == "auto" or precision == precision_of(path):
        return path
    if path.suffix.lower() == ".safetensors":
        raise ModelError(f"--precision {precision} needs an exported model; {path.name} is a training checkpoint "
                         f"(toolkit export {path} -o DIR{' --int8 --calib PHOTOS' if precision == 'int8' else ''}"
                         f"{' --fp16' if precision == 'fp16' else ''})")  # fmt: skip
    wanted = variant(path, precision)
    if not wanted.exists() and not wanted.with_suffix(".onnx").exists():
        how = {"int8": " --int8 --calib PHOTOS", "fp16": " --fp16", "fp32": ""}[precision]
        raise ModelError(f"--precision {precision}: {wanted.with_suffix('.onnx').name} does not exist beside "
                         f"{path.name}; write it with toolkit export MODEL -o {path.parent}{how}")  # fmt: skip
    return wanted if wanted.exists() else wanted.with_suffix(".onnx")


def gpu_runs_onnx() -> bool:
    """Whether ONNX Runtime here has its CUDA provider (onnxruntime-gpu): then fp32 runs on the GPU, not int8."""
    try:
        import onnxruntime as ort
    except ImportError:
        return False
    return "CUDAExecutionProvider" in ort.get_available_providers()


def openvino_installed() -> bool:
    import importlib.util

    return importlib.util.find_spec("openvino") is not None


def prefer_int8(path: Path, device: str | None) -> tuple[Path | None, str | None]:
    """For `auto`: NAME.int8.onnx when it should run instead of the fp32 `path` on this machine, else None; with a
    note when the int8 file is passed over for a reason its owner can fix (8-bit weights on an AVX2 CPU)."""
    if precision_of(path) != "fp32" or path.suffix.lower() not in (".onnx", ".engine") or device == "cuda":
        return None, None
    int8 = variant(path.with_suffix(".onnx"), "int8")
    if not int8.exists() or not openvino_installed():
        return None, None
    if device is None and gpu_runs_onnx():
        return None, None
    if cpu_has_int8_dot():
        return int8, None
    if not cpu_has_avx2():  # int8 would be slower than fp32 here
        return None, None
    fits = int8_fits_avx2(int8)
    if fits is None:
        return None, f"{int8.name} not used: OpenVINO cannot read it"
    if not fits:  # an int8 file exported before weights went to 7 bits (session 43)
        return None, (f"{int8.name} not used: its int8 weights use 8 bits, which overflow on a CPU with AVX2 and no "
                      f"VNNI (this one); export it again (toolkit export MODEL --int8 --calib PHOTOS) for 7-bit "
                      f"weights, which run here about twice as fast as fp32")  # fmt: skip
    return int8, None
