"""Arithmetic cost of a generator: multiply-adds of its convolutions, counted on a real forward pass."""

from __future__ import annotations

import torch
from torch import nn


def conv_gflop(model: nn.Module, height: int, width: int) -> float:
    """GFLOP (2 × multiply-adds) of the convolutions for one image of `height`×`width`."""
    total = 0

    def count(module: nn.Conv2d, _inputs, output: torch.Tensor) -> None:
        nonlocal total
        kh, kw = module.kernel_size
        total += output.numel() // output.shape[0] * (module.in_channels // module.groups) * kh * kw

    hooks = [m.register_forward_hook(count) for m in model.modules() if isinstance(m, nn.Conv2d)]
    try:
        with torch.no_grad():
            model(torch.zeros(1, 3, height, width))
    finally:
        for hook in hooks:
            hook.remove()
    return 2 * total / 1e9
