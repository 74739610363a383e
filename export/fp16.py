"""A half-precision copy of a generator whose instance norms still compute, and keep their parameters, in fp32.

TensorRT 11 has no weak typing: precision is what the ONNX graph says. train.norm.InstanceNorm2d casts its input
to fp32 and its output back, so after `.half()` only its affine parameters need to go back to fp32; the export
then shows Cast(fp16→fp32) → InstanceNormalization(fp32 scale/bias) → Cast(fp32→fp16).
"""

from __future__ import annotations

import copy

from torch import nn

from train.norm import InstanceNorm2d


def half_with_fp32_instance_norm(generator: nn.Module) -> nn.Module:
    model = copy.deepcopy(generator).half()
    for module in model.modules():
        if isinstance(module, InstanceNorm2d):
            module.float()
    return model.eval()
