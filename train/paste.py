"""A figure should not redraw the ground round it: a training term that compares the generator's output for a crop
with its output for the same crop with a flat shape pasted in, away from the shape.

Why: round dark figures on a light sky, mosaic draws a second outline 10–25 px out (the yardstick's `echo`),
starry-night and rain-princess a glow. Gram matrices do not see where texture sits, so nothing in the loss counts
against it. Measured without training (the yardstick's six sheet photos at 384 px, three dark ellipses pasted into
each, the change of the output through an 8-px box blur between 10 and 48 px out from each ellipse, its mean
removed; 0–255): bundled mosaic 8.5 against Johnson's 5.5, candy 22.8 against Johnson's 10.7, starry-night 14.9,
rain-princess 19.3, the photo itself 0. The output may change inside the shape and in a thin band round it (an
outline there is the painting's); further out, only as a whole (instance norm's statistics moved: the mean is
removed) or finer than the blur. Trained into every bundled style's last stage, the weight picked per style
(docs/recipe.md): the yardstick's figure change, mosaic at 10000 7.2 → 2.6 (Johnson's 5.5), starry-night at 3000
11.0 → 3.7, candy at 1000 15.9 → 9.8 (Johnson's 10.2; at 3000 6.6, but its SSIM 0.343 → 0.321), rain-princess at
1000 13.6 → 6.9. mosaic's arcs round the cameraman fainter, starry-night's glow round him gone, candy's dark-red
bars along the rocket's masts thin.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor

BAND = 6  # px round the shape where the output may change freely: the shape's own outline (--paste-band)


def random_shapes(n: int, h: int, w: int, seed: int, device: torch.device) -> tuple[Tensor, Tensor]:
    """(N, 1, H, W) masks of one ellipse each (axes 6–20 % of the crop's short side, at a random angle, its centre
    inside the crop's middle three fifths) and (N, 3, 1, 1) flat colours, mostly dark (each channel 255·u²).
    Drawn on the CPU from `seed` alone, so a run pastes the same shapes on every device and after a resume."""
    generator = torch.Generator().manual_seed(seed)
    y = torch.arange(h, dtype=torch.float32).view(h, 1)
    x = torch.arange(w, dtype=torch.float32).view(1, w)
    side = min(h, w)
    masks, colours = [], []
    for _ in range(n):
        cy, cx, ay, ax, angle = torch.rand(5, generator=generator).tolist()
        cy, cx = (0.2 + 0.6 * cy) * h, (0.2 + 0.6 * cx) * w
        ay, ax = (0.06 + 0.14 * ay) * side, (0.06 + 0.14 * ax) * side
        cos, sin = math.cos(math.pi * angle), math.sin(math.pi * angle)
        u = (x - cx) * cos + (y - cy) * sin
        v = -(x - cx) * sin + (y - cy) * cos
        masks.append(((u / ax) ** 2 + (v / ay) ** 2 <= 1).float())
        colours.append(255 * torch.rand(3, generator=generator) ** 2)
    return torch.stack(masks).unsqueeze(1).to(device), torch.stack(colours).view(n, 3, 1, 1).to(device)


def paste(images: Tensor, masks: Tensor, colours: Tensor) -> Tensor:
    """Photos (RGB 0–255) with each mask's shape filled with its flat colour."""
    masks = masks.to(images.dtype)
    return images * (1 - masks) + colours.to(images.dtype) * masks


def change_round_shapes(
    output: Tensor, pasted_output: Tensor, masks: Tensor, scale: int = 8, band: int = BAND
) -> Tensor:
    """Mean squared change (0–1 units) of the output, seen through a `scale`-px box blur (stride scale/2), over the
    blurred cells that lie wholly outside each shape and its `band`-px band, each picture's and channel's mean
    change there removed: where the ground's layout moved because a shape appeared near it. A crop whose cells all
    touch the band counts nothing."""
    stride = max(1, scale // 2)
    near = F.max_pool2d(masks.float(), 2 * band + 1, stride=1, padding=band)  # the shape and its band (0: itself)
    outside = (F.avg_pool2d(near, scale, stride) == 0).float()  # (N, 1, h, w): cells that do not touch it
    change = F.avg_pool2d((pasted_output - output).float() / 255.0, scale, stride)
    count = outside.sum(dim=(2, 3), keepdim=True)
    mean = (change * outside).sum(dim=(2, 3), keepdim=True) / count.clamp_min(1)
    squared = ((change - mean) * outside).pow(2).sum(dim=(1, 2, 3))
    return (squared / (count.flatten() * change.shape[1]).clamp_min(1)).mean()
