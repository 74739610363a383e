"""Adjustments applied after the network: strength (blend with the original) and colour preservation."""

from __future__ import annotations

import numpy as np
from PIL import Image


def blend(original: np.ndarray, stylized: np.ndarray, strength: float) -> np.ndarray:
    """strength 1 = the stylized image, 0 = the original."""
    if strength >= 1.0:
        return stylized
    mixed = strength * stylized.astype(np.float32) + (1.0 - strength) * original.astype(np.float32)
    return np.clip(mixed + 0.5, 0, 255).astype(np.uint8)


def preserve_colors(original: np.ndarray, stylized: np.ndarray) -> np.ndarray:
    """The stylized image's luminance with the original's chroma (YCbCr), as Gatys et al. 2016 suggest."""
    luma = np.asarray(Image.fromarray(stylized, "RGB").convert("YCbCr"))[..., 0]
    chroma = np.asarray(Image.fromarray(original, "RGB").convert("YCbCr"))[..., 1:]
    return np.asarray(Image.fromarray(np.dstack([luma, chroma]), "YCbCr").convert("RGB"))
