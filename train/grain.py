"""Sensor grain should not draw texture: a training term that compares the generator's output for a crop with its
output for the same crop with a little grain added: the noise-resilience idea of Rainy and de Berker, "Stabilizing
neural style-transfer for video" (Element AI, 2018), here as a squared difference of the two outputs.

Why: the style loss asks for the painting's texture everywhere, and in a flat sky the only thing a generator can
build it from is what little the photo has there, mostly grain. Measured on the cameraman's sky at 512 px
(docs/recipe.md): set to its mean colour, the bundled mosaic paints it bare; with grain of σ 3 levels added, it draws
a network of diagonal lines across it, and the output there moves by 6.4 levels on average where the input moved
by 2.4. Johnson's 2016 model draws its cells out of the grain in the same way, only a richer texture. On video the
same amplification makes texture crawl over a still sky (docs/video.md). Penalising the output's change under grain
teaches the generator not to draw from it: on mosaic at weight 2000 the hatching halved and the crawl over still
areas fell to less than half, but skies came out bare and the style thinner (closeness 0.29 → 0.33–0.34), so
mosaic does not use it. rain-princess's stage 9 does: it took most of the diagonal weave out of its skies (the
yardstick's `hatching` 66 → 20 %).
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
