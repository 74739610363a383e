"""Reflection padding that makes any H×W fit a network's stride, and is cropped off afterwards."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor


def _mirror_end(x: Tensor, pad: int, dim: int) -> Tensor:
    # One reflection adds at most size-1 pixels, so tiny images are mirrored repeatedly: every padded pixel is
    # still a copy of an input pixel, which keeps instance norm's contrast invariance exact at any size.
    while pad > 0:
        size = x.shape[dim]
        if size == 1:
            widths = (0, pad, 0, 0) if dim == -1 else (0, 0, 0, pad)
            return F.pad(x, widths, mode="replicate")
        step = min(pad, size - 1)
        widths = (0, step, 0, 0) if dim == -1 else (0, 0, 0, step)
        x = F.pad(x, widths, mode="reflect")
        pad -= step
    return x


def pad_to_multiple(x: Tensor, multiple: int, minimum: int) -> Tensor:
    """Mirror-pad the bottom and right so that H and W are multiples of `multiple` and at least `minimum`."""
    h, w = x.shape[-2], x.shape[-1]
    if torch.compiler.is_compiling():
        # torch.export / the ONNX exporter trace one path for every size, so branches on the size would be frozen
        # to the example's. For sizes >= minimum (>= multiple) the eager path below is exactly this single pad.
        torch._check(h >= minimum)
        torch._check(w >= minimum)
        return F.pad(x, (0, (-w) % multiple, 0, (-h) % multiple), mode="reflect")
    target_h = max(-(-h // multiple) * multiple, minimum)
    target_w = max(-(-w // multiple) * multiple, minimum)
    x = _mirror_end(x, target_h - h, -2)
    return _mirror_end(x, target_w - w, -1)
