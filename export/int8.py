"""INT8 models for CPUs with VNNI and for TensorRT's explicit quantization: convolutions in int8, instance norms fp32.

The file is a QDQ ONNX graph written by ONNX Runtime's static quantization:

- each convolution's input is quantized per tensor (scale from a calibration pass over the user's photos: the
  99.999th percentile of |x|) and its weight per output channel; its bias stays fp32 and its output is not quantized,
  so every InstanceNormalization takes fp32 input and measures its mean and variance in fp32;
- int8 with zero point 0 everywhere (symmetric), which is what TensorRT's explicit quantization accepts, so the same
  file builds an INT8 engine;
- weights within ±64 (ONNX Runtime's `reduce_range`, "7-bit" below; `WEIGHT_LIMIT`): a CPU without VNNI (AVX2
  only) multiplies uint8 activations by int8 weights with vpmaddubsw, which adds each pair of products in int16 and
  saturates above 32767 (2·255·127 = 64770); with 7-bit weights a pair stays under it (2·255·64 = 32640). Measured
  on a Zen 3 EPYC (AVX2, no VNNI): OpenVINO's int8 rain-princess with 8-bit weights was 24.4 dB from fp32, with
  7-bit ones 40.5 dB (docs/int8.md);
- convolutions are kept in fp32 from the input end while the int8 model is further than `INT8_MIN_PSNR` from the
  fp32 one. Why from the input end: instance norm rescales each early layer's output to unit variance, so on a dark or
  low-contrast photo it amplifies the rounding noise of the first layers most (measured on the bundled mosaic, one
  layer quantized at a time, worst of six held-out photos: 24 dB for the first convolution, 45–50 dB for the last
  eight; docs/int8.md).
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx

from export.checks import PARITY_SIZES, Check, natural_images, psnr, session, to_io
from export.onnx_export import INPUT_NAME
from runtime.errors import UserError
from runtime.precision import AVX2_WEIGHT_LIMIT

INT8_MIN_PSNR = 32.0  # dB against the fp32 model, worst image; see docs/int8.md for what it looks like
CALIBRATION_SIDE = 320  # calibration photos are centre squares of this side (the percentile pass needs one shape)
CALIBRATION_MAX = 24  # ONNX Runtime keeps every calibration image's activations in memory: ~56 MB each (half width)
PERCENTILE = 99.999
CHECK_PHOTOS = 4  # calibration photos also run at another size in the PSNR check
WEIGHT_LIMIT = AVX2_WEIGHT_LIMIT  # |int8 weight| ≤ 64: ONNX Runtime's reduce_range for symmetric int8 (module notes)
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".webp", ".tif", ".tiff", ".bmp", ".ppm")


@dataclass
class Int8Result:
    model: onnx.ModelProto
    kept_fp32: list[str]  # convolutions left in fp32
    worst_psnr: float
    record: dict  # what goes into the file's metadata


def calibration_photos(folder: Path) -> tuple[list[np.ndarray], list[str]]:
    """Up to CALIBRATION_MAX photos of `folder` (evenly spread over its sorted listing) as H×W×3 uint8, read as
    the runtime reads them (EXIF orientation, grey, 16-bit, alpha on grey); notes for files that could not be read."""
    from runtime.images import ImageError, read_photo

    if not folder.is_dir():
        raise UserError(f"--calib {folder}: not a folder; give a folder of photos like the ones the model will see")
    files = sorted(p for p in folder.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
    if len(files) > CALIBRATION_MAX:
        files = [files[round(i * (len(files) - 1) / (CALIBRATION_MAX - 1))] for i in range(CALIBRATION_MAX)]
    photos, notes = [], []
    for path in files:
        try:
            photo = read_photo(path)
        except ImageError as exc:
            notes.append(f"calibration: skipped {exc}")
            continue
        rgb = _longest_side(photo.rgb, 1024) if max(photo.rgb.shape[:2]) > 1024 else photo.rgb  # bounded memory
        if photo.alpha is not None:  # as the runtime shows a cut-out to a model that cannot take a mask: on grey
            alpha = photo.alpha if photo.alpha.shape == rgb.shape[:2] else _longest_side(
                np.repeat(photo.alpha[..., None], 3, 2), max(rgb.shape[:2]))[..., 0]  # fmt: skip
            a = alpha[..., None].astype(np.float32) / 255
            rgb = (rgb * a + 128 * (1 - a)).round().astype(np.uint8)
        photos.append(rgb)
    if not photos:
        raise UserError(f"--calib {folder}: no readable photo ({', '.join(IMAGE_SUFFIXES)}); give a folder of photos "
                        "like the ones the model will see (a dozen is enough)")  # fmt: skip
    return photos, notes


def _square(rgb: np.ndarray, side: int) -> np.ndarray:
    from PIL import Image

    h, w = rgb.shape[:2]
    s = min(h, w)
    top, left = (h - s) // 2, (w - s) // 2
    crop = Image.fromarray(np.ascontiguousarray(rgb[top : top + s, left : left + s]))
    return np.asarray(crop.resize((side, side), Image.Resampling.LANCZOS))


def _longest_side(rgb: np.ndarray, side: int) -> np.ndarray:
    from PIL import Image

    h, w = rgb.shape[:2]
    scale = side / max(h, w)
    size = (max(8, round(w * scale)), max(8, round(h * scale)))
    return np.asarray(Image.fromarray(rgb).resize(size, Image.Resampling.LANCZOS))


def convolutions(model: onnx.ModelProto) -> list[str]:
    """Names of the Conv nodes in graph order (the input end first); unnamed ones are named here."""
    names = []
    for i, node in enumerate(model.graph.node):
        if node.op_type == "Conv":
            node.name = node.name or f"Conv_{i}"
            names.append(node.name)
    return names


def quantize(fp32: onnx.ModelProto, calibration: list[np.ndarray], io: str, keep_fp32: list[str]) -> onnx.ModelProto:
    """The QDQ model: every Conv but `keep_fp32` quantized, activations calibrated on `calibration` (uint8 NHWC)."""
    try:
        from onnxruntime.quantization import (
            CalibrationDataReader,
            CalibrationMethod,
            QuantFormat,
            QuantType,
            quantize_static,
        )
    except ImportError:
        raise UserError("--int8 quantizes with ONNX Runtime, which is not installed: pip install the runtime extra "
                        "(onnxruntime)") from None  # fmt: skip

    class Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self.feeds = iter([{INPUT_NAME: to_io(image[None], io)} for image in calibration])

        def get_next(self):
            return next(self.feeds, None)

    with tempfile.TemporaryDirectory(prefix="toolkit-int8-") as tmp, _quiet():
        source, target = Path(tmp) / "fp32.onnx", Path(tmp) / "int8.onnx"
        onnx.save(fp32, source)
        quantize_static(
            str(source), str(target), Reader(), quant_format=QuantFormat.QDQ, per_channel=True,
            activation_type=QuantType.QInt8, weight_type=QuantType.QInt8, op_types_to_quantize=["Conv"],
            reduce_range=True,  # 7-bit weights: no int16 saturation on CPUs without VNNI (WEIGHT_LIMIT)
            nodes_to_exclude=keep_fp32, calibrate_method=CalibrationMethod.Percentile,
            extra_options={
                "ActivationSymmetric": True, "WeightSymmetric": True,  # TensorRT: int8, zero point 0
                "QuantizeBias": False,  # TensorRT dequantizes int8 only (no int32 bias)
                "OpTypesToExcludeOutputQuantization": ["Conv"],  # instance norms measure fp32 outputs
                "CalibPercentile": PERCENTILE,
            },
        )  # fmt: skip
        return onnx.load(str(target))


@contextlib.contextmanager
def _quiet():
    """ONNX Runtime's quantizer prints its progress and logs advice on the root logger; the export reports instead."""
    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            yield
    finally:
        root.setLevel(level)


def worst_psnr(int8: onnx.ModelProto, fp32: onnx.ModelProto, photos: list[np.ndarray], io: str) -> float:
    """The lowest PSNR of the int8 model against the fp32 one over photo-like test images at PARITY_SIZES and up to
    CHECK_PHOTOS of the calibration photos at 256 px (another size than calibration's), each also dark and flat
    (a quarter of its contrast, as a night shot): instance norm stretches such a photo back to full contrast, and
    the rounding noise of the early layers with it. NaN when any output is not finite."""
    a, b = session(int8), session(fp32)
    batches = [natural_images(2, h, w, seed=30 + i) for i, (h, w) in enumerate(PARITY_SIZES)]
    batches += [_longest_side(p, 256)[None] for p in photos[:CHECK_PHOTOS]]
    batches += [(8 + b.astype(np.float32) / 4).round().astype(np.uint8) for b in batches]
    worst = float("inf")
    for images in batches:
        feed = {INPUT_NAME: to_io(images, io)}
        low, high = a.run(None, feed)[0], b.run(None, feed)[0]
        if not np.isfinite(low.astype(np.float64)).all():
            return float("nan")
        if io == "float":
            low, high = np.clip(low, 0, 255), np.clip(high, 0, 255)
        worst = min(worst, psnr(low, high))
    return worst


def int8_model(fp32: onnx.ModelProto, photos: list[np.ndarray], io: str, min_psnr: float = INT8_MIN_PSNR) -> Int8Result:
    """Quantize, keeping convolutions fp32 from the input end until the int8 model is within `min_psnr` of the fp32
    one; at most half of them are kept (beyond that int8 would not pay). The last try is returned either way: the
    PSNR check decides whether it is written."""
    fp32 = onnx.ModelProto.FromString(fp32.SerializeToString())
    convs = convolutions(fp32)
    calibration = [_square(p, CALIBRATION_SIDE) for p in photos]
    model, kept, value = None, [], float("nan")
    for k in range(len(convs) // 2 + 1):
        kept = convs[:k]
        model = quantize(fp32, calibration, io, kept)
        value = worst_psnr(model, fp32, photos, io)
        if value >= min_psnr:
            break
    assert model is not None
    record = {
        "calibration_photos": len(photos), "calibration_side": CALIBRATION_SIDE, "percentile": PERCENTILE,
        "quantized_convolutions": len(convs) - len(kept), "fp32_convolutions": kept,
        "worst_psnr_db": round(value, 2) if np.isfinite(value) else None, "min_psnr_db": min_psnr,
    }  # fmt: skip
    metadata = {entry.key: entry.value for entry in fp32.metadata_props}
    metadata.update(precision="int8", int8=json.dumps(record))
    del model.metadata_props[:]
    for key, text in metadata.items():
        entry = model.metadata_props.add()
        entry.key, entry.value = key, text
    return Int8Result(model, kept, value, record)


def check_int8_psnr(result: Int8Result) -> Check:
    kept = len(result.kept_fp32)
    done = f"{result.record['quantized_convolutions']} convolutions int8, {kept} kept fp32"
    if not np.isfinite(result.worst_psnr):
        return Check("int8 vs fp32 PSNR", False, f"NaN or Inf in the int8 output ({done})")
    ok = result.worst_psnr >= INT8_MIN_PSNR
    detail = f"{result.worst_psnr:.1f} dB worst (target ≥ {INT8_MIN_PSNR:.0f} dB); {done}"
    return Check("int8 vs fp32 PSNR", ok, detail)


def check_tensorrt_qdq(model: onnx.ModelProto) -> Check:
    """TensorRT's rules for explicit quantization, as our graphs meet them: every Q/DQ is int8 with zero point 0;
    activations are quantized per tensor; a weight's DequantizeLinear is per output channel (axis 0); nothing
    dequantizes int32."""
    from onnx import numpy_helper

    constants = {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}
    problems = []
    for node in model.graph.node:
        if node.op_type not in ("QuantizeLinear", "DequantizeLinear"):
            continue
        zero = constants.get(node.input[2]) if len(node.input) > 2 and node.input[2] else None
        scale = constants.get(node.input[1])
        axis = next((a.i for a in node.attribute if a.name == "axis"), 1)
        if zero is None or zero.dtype != np.int8 or np.any(zero != 0):
            problems.append(f"{node.name}: zero point must be an int8 0")
        if node.op_type == "DequantizeLinear" and node.input[0] in constants:  # a weight
            weight = constants[node.input[0]]
            if weight.dtype != np.int8:
                problems.append(f"{node.name}: dequantizes {weight.dtype}, TensorRT takes int8")
            elif scale is not None and scale.size > 1 and axis != 0:
                problems.append(f"{node.name}: per-channel weight scale on axis {axis}, not 0")
        elif scale is None or scale.size != 1:
            problems.append(f"{node.name}: activations are quantized per tensor")
    count = sum(n.op_type in ("QuantizeLinear", "DequantizeLinear") for n in model.graph.node)
    detail = "; ".join(problems[:2]) if problems else f"{count} Q/DQ nodes: int8, zero point 0, weights per channel"
    return Check("TensorRT explicit-quantization rules", not problems, detail)


def check_weights_fit_cpus_without_vnni(model: onnx.ModelProto) -> Check:
    """Every int8 weight is within ±WEIGHT_LIMIT, so no pair of products saturates int16 on an AVX2-only CPU."""
    from onnx import numpy_helper

    constants = {t.name: t for t in model.graph.initializer}
    weights = [numpy_helper.to_array(constants[n.input[0]]) for n in model.graph.node
               if n.op_type == "DequantizeLinear" and n.input[0] in constants]  # fmt: skip
    largest = max((int(np.abs(w.astype(np.int32)).max()) for w in weights if w.dtype == np.int8 and w.size), default=0)
    detail = f"largest |weight| {largest} (limit {WEIGHT_LIMIT}: CPUs without VNNI add pairs of products in int16)"
    return Check("int8 weights on 7 bits", largest <= WEIGHT_LIMIT, detail)


def check_convolutions_quantized(model: onnx.ModelProto) -> Check:
    """At least one convolution runs in int8 (a weight arrives through DequantizeLinear)."""
    dequantized = {n.output[0] for n in model.graph.node if n.op_type == "DequantizeLinear"}
    convs = [n for n in model.graph.node if n.op_type == "Conv"]
    quantized = sum(n.input[1] in dequantized for n in convs)
    return Check("convolutions in int8", quantized > 0, f"{quantized} of {len(convs)}")
