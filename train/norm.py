"""Normalization layers for the generators.

Instance norm is the point of the whole product (Ulyanov et al. 2016): statistics are computed per image and
per channel over H×W, at training *and* at test time, so there are no running statistics to track or fold.
"""

from __future__ import annotations

import contextlib
import copy
from collections.abc import Iterator
from typing import TypeVar

import torch
from torch import Tensor, nn

NORMS = ("instance", "batch")
M = TypeVar("M", bound=nn.Module)


class InstanceNorm2d(nn.InstanceNorm2d):
    """`nn.InstanceNorm2d(affine=True)` that always computes in float32.

    Under fp16/bf16 autocast the variance of large activations overflows or loses precision; computing the
    statistics in float32 and casting back keeps the output exact. Parameter names are those of
    `nn.InstanceNorm2d` (`weight`, `bias`), so pytorch/examples state dicts load unchanged.
    """

    def __init__(self, num_features: int):
        super().__init__(num_features, affine=True, track_running_stats=False)

    def forward(self, x: Tensor) -> Tensor:
        return super().forward(x.float()).to(x.dtype)


def make_norm(kind: str, channels: int) -> nn.Module:
    if kind == "instance":
        return InstanceNorm2d(channels)
    if kind == "batch":
        return nn.BatchNorm2d(channels)
    raise ValueError(f"unknown norm {kind!r}; choose one of {', '.join(NORMS)}")


def half_with_fp32_instance_norm(generator: M, dtype: torch.dtype = torch.float16) -> M:
    """A half-precision (fp16, or bf16) copy whose instance norms keep fp32 parameters (and, via InstanceNorm2d,
    fp32 statistics).

    Exported to ONNX this gives Cast(fp16→fp32) → InstanceNormalization(fp32 scale/bias) → Cast(fp32→fp16), which is
    what TensorRT 11 (no weak typing) needs; in PyTorch it is the fast fp16 path that cannot overflow the variance.
    """
    model = copy.deepcopy(generator).to(dtype)
    for module in model.modules():
        if isinstance(module, InstanceNorm2d):
            module.float()
    return model.eval()


def _normalized(module: nn.Module, x: Tensor, mean: Tensor, var: Tensor, dtype: torch.dtype) -> Tensor:
    """`x` (float32) normalized by the given N×C×1×1 `mean` and `var` and `module`'s affine parameters, as `dtype`."""
    assert isinstance(module, nn.InstanceNorm2d)
    y = (x - mean) / torch.sqrt(var + module.eps)
    if module.affine:
        y = y * module.weight.float()[:, None, None] + module.bias.float()[:, None, None]
    return y.to(dtype)


@contextlib.contextmanager
def _on_every_norm(generator: nn.Module, hook) -> Iterator[None]:
    """`hook` as a forward hook on every instance norm of `generator` within the block: its result replaces the
    norm's output."""
    hooks = [m.register_forward_hook(hook) for m in generator.modules() if isinstance(m, nn.InstanceNorm2d)]
    try:
        yield
    finally:
        for handle in hooks:
            handle.remove()


@contextlib.contextmanager
def weighted_statistics(generator: nn.Module, weights: Tensor) -> Iterator[None]:
    """Within the block, every instance norm of `generator` normalizes its input by the mean and variance of the
    pixels weighted by `weights` (N×1×H×W, 0–1, at the input's size; resized to each layer's H×W, antialiased
    bilinear, so a stride-2 layer sees the mean opacity of the pixels it covers): a cut-out is normalized by its
    subject alone. The same rule as the ONNX graphs of runtime.tiling (`_measure_weighted_one`)."""

    def normalize(module: nn.Module, inputs: tuple[Tensor, ...], _output: Tensor) -> Tensor:
        assert isinstance(module, nn.InstanceNorm2d)
        x = inputs[0].float()
        w = nn.functional.interpolate(weights.float(), size=x.shape[-2:], mode="bilinear", antialias=True)
        total = w.sum((2, 3), keepdim=True).clamp_min(1e-6)
        mean = (x * w).sum((2, 3), keepdim=True) / total
        var = ((x - mean).square() * w).sum((2, 3), keepdim=True) / total
        return _normalized(module, x, mean, var, inputs[0].dtype)

    with _on_every_norm(generator, normalize):
        yield


@contextlib.contextmanager
def carried_statistics(
    generator: nn.Module, carried: list[tuple[Tensor, Tensor]] | None, keep: float
) -> Iterator[list[tuple[Tensor, Tensor]]]:
    """Within the block, every instance norm of `generator` normalizes by the statistics of a mixture, `keep` of the
    `carried` ones (each norm's N×C mean and variance, in the order the norms run) and 1 − `keep` its input's own:
    mean keep·m + (1 − keep)·m_own, variance keep·(v + m²) + (1 − keep)·(v_own + m_own²) − mean², so a shift of the
    mean counts as spread. The statistics used are appended to the yielded list, to carry to the next frame. `carried`
    None: every norm its own statistics (the plain model). The same rule as the temporal graph of runtime.tiling."""
    used: list[tuple[Tensor, Tensor]] = []
    if carried is not None and not 0.0 <= keep <= 1.0:
        raise ValueError(f"keep must be in [0, 1], not {keep}")

    def normalize(module: nn.Module, inputs: tuple[Tensor, ...], _output: Tensor) -> Tensor:
        assert isinstance(module, nn.InstanceNorm2d)
        x = inputs[0].float()
        mean = x.mean((2, 3))
        var = x.var((2, 3), unbiased=False)
        if carried is not None:
            if len(used) >= len(carried) or carried[len(used)][0].shape != mean.shape:
                raise ValueError("the carried statistics are not this model's (another model or frame batch)")
            m, v = carried[len(used)]
            second = keep * (v + m.square()) + (1 - keep) * (var + mean.square())
            mean = keep * m + (1 - keep) * mean
            var = (second - mean.square()).clamp_min(0.0)
        used.append((mean, var))
        return _normalized(module, x, mean[..., None, None], var[..., None, None], inputs[0].dtype)

    with _on_every_norm(generator, normalize):
        yield used
