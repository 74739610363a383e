"""Checks that run on every export: graph validity, instance statistics kept, parity with PyTorch, fp16 accuracy."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import onnx
import torch
from torch import nn

from export.onnx_export import INPUT_NAME
from runtime.bench import psnr  # one PSNR for the export checks and the bench
from runtime.errors import UserError
from train.norm import InstanceNorm2d

PARITY_SIZES = ((67, 93), (96, 128))  # one not a multiple of 4; both above the texture net's 64 px minimum
FP32_MAX_ABS = 1.0
FP16_MIN_PSNR = 40.0


@dataclass
class Check:
    name: str
    ok: bool
    detail: str
    warning: bool = False  # passed, but the user should know


def natural_images(n: int, h: int, w: int, seed: int = 0) -> np.ndarray:
    """Smooth gradients, soft shapes, edges and mild noise (uint8 NHWC): photo-like enough for accuracy checks."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w] / max(h, w)
    images = []
    for _ in range(n):
        channels = [
            0.5 + 0.4 * np.sin(rng.uniform(1, 6) * 6.3 * xx + rng.uniform(0, 6)) * np.cos(rng.uniform(1, 6) * 6.3 * yy)
            for _ in range(3)
        ]
        image = np.stack(channels, -1)
        for _ in range(3):
            cy, cx, r = rng.uniform(0, 1), rng.uniform(0, 1), rng.uniform(0.1, 0.3)
            image[(yy - cy) ** 2 + (xx - cx) ** 2 < r**2] = rng.uniform(0, 1, 3)
        image += rng.normal(0, 0.02, image.shape)
        images.append((np.clip(image, 0, 1) * 255).round().astype(np.uint8))
    return np.stack(images)


def to_io(images: np.ndarray, io: str) -> np.ndarray:
    return images if io == "uint8" else images.transpose(0, 3, 1, 2).astype(np.float32)


def session(model: onnx.ModelProto):
    try:
        import onnxruntime as ort
    except ImportError:
        raise UserError(
            "the export checks run the model with ONNX Runtime, which is not installed: pip install the runtime "
            "extra (onnxruntime) or, on a GPU machine, the gpu extra (onnxruntime-gpu); or pass --no-check"
        ) from None

    options = ort.SessionOptions()
    options.log_severity_level = 3
    return ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])


def check_finite_weights(model: onnx.ModelProto) -> Check:
    """No NaN or infinite weight: with uint8 output a NaN comes out as 0, so parity alone passes a black model."""
    from runtime.weights import nonfinite_initializers

    bad = nonfinite_initializers(model)
    detail = f"NaN or infinite in {', '.join(bad[:3])}" if bad else "all finite"
    return Check("weights", not bad, detail)


def check_graph(model: onnx.ModelProto) -> Check:
    try:
        onnx.checker.check_model(model, full_check=True)
    except (onnx.checker.ValidationError, onnx.shape_inference.InferenceError) as exc:
        return Check("onnx checker + shape inference", False, str(exc).splitlines()[0])
    return Check("onnx checker + shape inference", True, f"opset {model.opset_import[0].version}")


def check_norm_nodes(model: onnx.ModelProto, generator: nn.Module, norm: str) -> list[Check]:
    ops = [node.op_type for node in model.graph.node]
    expected = sum(isinstance(m, InstanceNorm2d) for m in generator.modules())
    found, batch = ops.count("InstanceNormalization"), ops.count("BatchNormalization")
    checks = [Check("InstanceNormalization nodes", found == expected, f"{found} in the graph, {expected} in the model")]
    if norm == "batch":
        checks.append(
            Check(
                "BatchNormalization nodes", True,
                f"{batch}{' (folded into the convolutions)' if batch == 0 else ''}: trained with --norm batch, so "
                "its statistics are frozen from training (the output will follow the input's contrast)", warning=True,
            )
        )  # fmt: skip
    else:
        checks.append(Check("no BatchNormalization", batch == 0, f"{batch} found"))
    return checks


def check_fp32_instance_norm(model: onnx.ModelProto) -> Check:
    """Every InstanceNormalization in an fp16 graph must take fp32 input, scale and bias."""
    inferred = onnx.shape_inference.infer_shapes(model)
    types = {v.name: v.type.tensor_type.elem_type for v in (*inferred.graph.value_info, *inferred.graph.input)}
    types.update({t.name: t.data_type for t in inferred.graph.initializer})
    for node in inferred.graph.node:
        if node.op_type == "Constant":
            types[node.output[0]] = node.attribute[0].t.data_type
    bad = [
        node.name
        for node in inferred.graph.node
        if node.op_type == "InstanceNormalization" and any(types.get(i) != onnx.TensorProto.FLOAT for i in node.input)
    ]
    total = sum(node.op_type == "InstanceNormalization" for node in inferred.graph.node)
    return Check("instance norms compute in fp32", not bad, f"{total - len(bad)} of {total} have fp32 inputs")


def check_parity(model: onnx.ModelProto, reference: nn.Module, io: str) -> Check:
    """ONNX Runtime CPU against PyTorch, batch 2, at PARITY_SIZES: max abs difference in 0–255 units."""
    runner = session(model)
    worst = 0.0
    for i, (h, w) in enumerate(PARITY_SIZES):
        images = to_io(natural_images(2, h, w, seed=i), io)
        got = runner.run(None, {INPUT_NAME: images})[0]
        with torch.no_grad():
            expected = reference(torch.from_numpy(images)).numpy()
        if got.shape != expected.shape:
            return Check("parity with PyTorch (ORT CPU)", False, f"shape {got.shape} != {expected.shape} at {h}×{w}")
        worst = max(worst, float(np.abs(got.astype(np.float64) - expected.astype(np.float64)).max()))
    sizes = ", ".join(f"{h}×{w}" for h, w in PARITY_SIZES)
    return Check("parity with PyTorch (ORT CPU)", worst <= FP32_MAX_ABS, f"max |diff| {worst:.3g} at {sizes}, batch 2")


def check_fp16(fp16: onnx.ModelProto, fp32: onnx.ModelProto, io: str) -> Check:
    """PSNR of the fp16 graph against the fp32 graph on photo-like images; no NaN or Inf."""
    a, b = session(fp16), session(fp32)
    values = []
    for i, (h, w) in enumerate(PARITY_SIZES):
        images = to_io(natural_images(2, h, w, seed=10 + i), io)
        low, high = a.run(None, {INPUT_NAME: images})[0], b.run(None, {INPUT_NAME: images})[0]
        if not np.isfinite(low.astype(np.float64)).all():
            return Check("fp16 vs fp32 PSNR", False, "NaN or Inf in the fp16 output")
        if io == "float":
            low, high = np.clip(low, 0, 255), np.clip(high, 0, 255)
        values.append(psnr(low, high))
    worst = min(values)
    return Check("fp16 vs fp32 PSNR", worst >= FP16_MIN_PSNR, f"{worst:.1f} dB (target ≥ {FP16_MIN_PSNR:.0f} dB)")


def check_engine(
    engine_path, fp32: onnx.ModelProto, io: str, sizes: list[tuple[int, int, int]], min_psnr: float = FP16_MIN_PSNR
) -> Check:
    """PSNR of the TensorRT engine's output against the fp32 ONNX on ONNX Runtime CPU, at shapes in its profile."""
    from runtime.tensorrt_engine import TensorRTEngine

    reference = session(fp32)
    values = []
    with TensorRTEngine(engine_path) as engine:
        for i, (n, h, w) in enumerate(sizes):
            images = to_io(natural_images(n, h, w, seed=20 + i), io)
            got, expected = engine(images), reference.run(None, {INPUT_NAME: images})[0]
            if not np.isfinite(got.astype(np.float64)).all():
                return Check("engine vs fp32 ONNX PSNR", False, "NaN or Inf in the engine output")
            if io == "float":
                got, expected = np.clip(got, 0, 255), np.clip(expected, 0, 255)
            values.append(psnr(got, expected))
    shapes = ", ".join(f"{n}×{h}×{w}" for n, h, w in sizes)
    worst = min(values)
    return Check("engine vs fp32 ONNX PSNR", worst >= min_psnr, f"{worst:.1f} dB at {shapes} (target ≥ {min_psnr:.0f})")
