"""Sensor grain should not draw texture: a training term that compares the generator's output for a crop with its
output for the same crop with a little grain added (Gupta et al. 2017, "Characterizing and Improving Stability in
Neural Style Transfer", train their generators so; their term is the same squared difference).

Why: the style loss asks for the painting's texture everywhere, and in a flat sky the only thing the generator can
build it from is what little the photo has there: grain, JPEG noise, a slow gradient. The bundled mosaic draws a
diagonal pink-and-blue hatching some 8 px apart in light skies, and 1000 more steps of its loss made it stronger
(docs/recipe.md). Measured on the cameraman's sky at 512 px: with the sky set to its mean colour the bundled mosaic
paints it flat (high-pass 0.5), as it is 8.2, with grain of σ 3 levels added 9.8, and the output there moves by 6.4
levels on average for the input's 2.4 (σ 3, folded). On video the same amplification is what makes texture crawl
over a still sky (docs/video.md: 7.4 levels of change per frame where the input changes by 0.2). Penalising the
output's change under grain teaches the generator not to draw from it; what it draws must come from the picture.
"""

from __future__ import annotations

import torch
from torch import Tensor


def random_grain(shape: torch.Size | tuple[int, ...], sigma: float, seed: int, device: torch.device) -> Tensor:
    """Gaussian grain of standard deviation `sigma` (0–255 units), independent per pixel and channel. Drawn on the
    CPU from `seed` alone, so a run gives the same grain on every device and after a resume."""
    generator = torch.Generator().manual_seed(seed)
    return (torch.randn(tuple(shape), generator=generator) * sigma).to(device)


def add_grain(images: Tensor, grain: Tensor) -> Tensor:
    """Photos (RGB 0–255) with grain added, clipped to 0–255 as a camera would."""
    return (images + grain.to(images.dtype)).clamp(0, 255)


def grain_change(output: Tensor, grainy_output: Tensor) -> Tensor:
    """Mean squared difference (0–1 units) between the two outputs, pixel by pixel: unlike train.relight's term,
    no blur, since the texture that grain seeds is fine (8 px)."""
    return ((output.float() - grainy_output.float()) / 255.0).pow(2).mean()
