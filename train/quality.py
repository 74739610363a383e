"""The quality yardstick: how much a stylized picture looks like its painting, keeps its photo, and is free of
the two artefacts fast generators are known for. Used by `docs/quality.py` and to pick training recipes.

All images are H×W×3 uint8 RGB arrays. Everything except `GramCloseness` is numpy only.

- `palette_distance`: sliced Wasserstein-1 distance between two images' RGB colour distributions (0–255 units).
- `ssim`: Wang et al.'s structural similarity of the luma, skimage's defaults (7×7 uniform window).
- `stripe_share`: share of the photo's flat regions in which the stylized picture has a periodic pattern it added.
- `hatching_share`: the same for a fine pattern of colour (periods of 8 px or less in what the model added to the
  chroma): a hatching of two hues at one brightness, which the luma hardly shows.
- `halo`: how much brighter the stylized picture gets in a band just outside the photo's strong edges.
- `echo`: how much more of the stylized picture's line work sits in a band around the photo's figures than far from
  them (ghost outlines echoing a figure, with a light band between).
- `light_change`: how much a stylizer redraws the picture's large-scale layout when the photo's light changes
  smoothly (a ramp, a vignette): an arc of colour following a night sky's gradient moves with the light.
- `figure_change`: how much a stylizer redraws the ground round a dark figure pasted into the photo (a glow, a
  second outline), beyond the figure's own outline.
- `GramCloseness`: Gram-matrix distance to the painting measured by a VGG that did not train the model, at several
  image scales so that structures larger than a VGG receptive field count too.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from torch import Tensor

LUMA = np.array([0.299, 0.587, 0.114], np.float64)


def luma(rgb: np.ndarray) -> np.ndarray:
    """BT.601 luma in 0–255, float64."""
    return np.asarray(rgb, np.float64)[..., :3] @ LUMA


CHROMA = np.array([[-0.168736, -0.331264, 0.5], [0.5, -0.418688, -0.081312]], np.float64)


def chroma(rgb: np.ndarray) -> np.ndarray:
    """BT.601 Cb and Cr (without the 128 offset), 2×H×W float64."""
    return np.moveaxis(np.asarray(rgb, np.float64)[..., :3] @ CHROMA.T, -1, 0)


def box_mean(image: np.ndarray, size: int) -> np.ndarray:
    """Mean over size×size windows, only where the window fits ('valid'): (H-size+1)×(W-size+1)."""
    c = np.cumsum(np.cumsum(np.pad(image, ((1, 0), (1, 0))), axis=0), axis=1)
    return (c[size:, size:] - c[:-size, size:] - c[size:, :-size] + c[:-size, :-size]) / (size * size)


def palette_distance(
    a: np.ndarray, b: np.ndarray, mask_a: np.ndarray | None = None, directions: int = 64, samples: int = 20000
) -> float:
    """Sliced Wasserstein-1 distance between the RGB colours of `a` and `b` (0–255 units; 0 = same palette).

    The colours are projected onto `directions` fixed random unit vectors; in one dimension the Wasserstein-1
    distance is the mean gap between sorted samples. `mask_a` restricts `a` to some pixels (e.g. opaque ones).
    Deterministic: the directions and the pixel samples come from a fixed seed.
    """
    rng = np.random.default_rng(0)
    pa = np.asarray(a, np.float64).reshape(-1, 3)
    if mask_a is not None:
        pa = pa[np.asarray(mask_a, bool).reshape(-1)]
    pb = np.asarray(b, np.float64).reshape(-1, 3)
    if not len(pa) or not len(pb):
        raise ValueError("palette_distance needs at least one pixel on each side")
    pa = pa[rng.integers(0, len(pa), samples)]
    pb = pb[rng.integers(0, len(pb), samples)]
    dirs = rng.normal(size=(3, directions))
    dirs /= np.linalg.norm(dirs, axis=0)
    return float(np.abs(np.sort(pa @ dirs, axis=0) - np.sort(pb @ dirs, axis=0)).mean())


def ssim(a: np.ndarray, b: np.ndarray) -> float:
    """Mean SSIM of the two images' luma, as skimage's `structural_similarity` computes it by default
    (7×7 uniform window, sample covariances, K1 = 0.01, K2 = 0.03, range 255, borders left out)."""
    x, y = luma(a), luma(b)
    if x.shape != y.shape:
        raise ValueError(f"ssim needs images of one size, not {x.shape} and {y.shape}")
    win = 7
    if min(x.shape) < win:
        raise ValueError(f"ssim needs images of at least {win}×{win} pixels")
    n = win * win
    cov = n / (n - 1)
    ux, uy = box_mean(x, win), box_mean(y, win)
    vx = cov * (box_mean(x * x, win) - ux * ux)
    vy = cov * (box_mean(y * y, win) - uy * uy)
    vxy = cov * (box_mean(x * y, win) - ux * uy)
    c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2
    s = ((2 * ux * uy + c1) * (2 * vxy + c2)) / ((ux * ux + uy * uy + c1) * (vx + vy + c2))
    # skimage leaves out a border of (win-1)//2 pixels; box_mean's 'valid' windows already do.
    return float(s.mean())


def flat_mask(photo: np.ndarray, window: int = 9, max_std: float = 3.0) -> np.ndarray:
    """Pixels of the photo whose window×window neighbourhood is flat (luma std ≤ max_std): sky, walls, studio
    backdrops, where a painting-like texture is welcome but a regular pattern is an artefact."""
    y = luma(photo)
    mean = box_mean(y, window)
    std = np.sqrt(np.maximum(box_mean(y * y, window) - mean * mean, 0))
    mask = np.zeros(y.shape, bool)
    r = window // 2
    mask[r : r + std.shape[0], r : r + std.shape[1]] = std <= max_std
    return mask


def periodicity(tile: np.ndarray, min_radius: float = 2) -> float:
    """Share of a tile's AC energy in its strongest frequency (3×3 bins around the peak and around its mirror).

    Near 1 for stripes or a regular grid of dots, a few hundredths for noise or irregular strokes. Frequencies
    below `min_radius` cycles per tile are left out: at 2, shading and gradients; at 4 in a 32-px tile, every
    period longer than 8 px."""
    t = tile - tile.mean()
    n = t.shape[0]
    hann = np.hanning(n)
    power = np.abs(np.fft.fft2(t * np.outer(hann, hann))) ** 2
    f = np.fft.fftfreq(n) * n
    radius = np.hypot(*np.meshgrid(f, f, indexing="ij"))
    power[radius < min_radius] = 0
    total = power.sum()
    if total <= 0:
        return 0.0
    i, j = np.unravel_index(np.argmax(power), power.shape)
    rows, cols = (np.arange(i - 1, i + 2) % n), (np.arange(j - 1, j + 2) % n)
    peak = power[np.ix_(rows, cols)].sum()
    mirror_rows, mirror_cols = (-rows) % n, (-cols) % n
    peak += power[np.ix_(mirror_rows, mirror_cols)].sum()
    return float(min(peak / total, 1.0))


@dataclass
class StripeReport:
    share: float  # striped tiles / flat tiles (nan when the photo has no flat region)
    flat_tiles: int


def stripe_share(
    photo: np.ndarray, output: np.ndarray, tile: int = 32, min_periodicity: float = 0.5, min_amplitude: float = 2.0
) -> StripeReport:
    """Share of the photo's flat tile×tile regions in which `output` has a periodic pattern that the photo has not.

    A tile counts as flat when ≥ 95 % of its pixels are flat in the photo, and as striped when what the model added
    to the luma there (output − photo, so that the photo's own JPEG blocks or fine weave do not count) has a
    standard deviation above `min_amplitude` (a visible pattern) and `periodicity` ≥ `min_periodicity`.
    """
    y = luma(output) - luma(photo)
    striped = [y[where].std() > min_amplitude and periodicity(y[where]) >= min_periodicity
               for where in flat_tiles(photo, tile)]  # fmt: skip
    return StripeReport(sum(striped) / len(striped) if striped else float("nan"), len(striped))


def flat_tiles(photo: np.ndarray, tile: int = 32) -> list[tuple[slice, slice]]:
    """The photo's tile×tile regions, at half-tile steps, in which ≥ 95 % of the pixels are flat (`flat_mask`)."""
    flat = flat_mask(photo)
    steps = [range(0, size - tile + 1, tile // 2) for size in flat.shape[:2]]
    regions = [(slice(top, top + tile), slice(left, left + tile)) for top in steps[0] for left in steps[1]]
    return [where for where in regions if flat[where].mean() >= 0.95]


def hatching_share(
    photo: np.ndarray, output: np.ndarray, tile: int = 32, max_period: float = 8.0, min_periodicity: float = 0.5,
    min_amplitude: float = 2.0,
) -> StripeReport:  # fmt: skip
    """Share of the photo's flat tile×tile regions in which `output` has a fine periodic pattern of colour that the
    photo has not: `stripe_share`'s test on what the model added to Cb or to Cr, counting only periods of at most
    `max_period` px.

    Why apart from `stripe_share`: mosaic's stage 8 drew a diagonal pink-and-blue hatching 7–8 px apart in light
    skies, two hues at about one brightness, which the luma test counted in 2 % of flat tiles. The band limit
    matters: on chroma, an unlimited test counts smooth colour undulation (periods of 11–16 px) in most tiles of
    every model's skies, Johnson's too."""
    added = chroma(output) - chroma(photo)
    min_radius = tile / max_period
    hatched = [any(p.std() > min_amplitude and periodicity(p, min_radius) >= min_periodicity
                   for p in added[:, where[0], where[1]]) for where in flat_tiles(photo, tile)]  # fmt: skip
    return StripeReport(sum(hatched) / len(hatched) if hatched else float("nan"), len(hatched))


def _dilate(mask: np.ndarray) -> np.ndarray:
    grown = mask.copy()
    grown[1:] |= mask[:-1]
    grown[:-1] |= mask[1:]
    grown[:, 1:] |= mask[:, :-1]
    grown[:, :-1] |= mask[:, 1:]
    return grown


def gradient_magnitude(y: np.ndarray) -> np.ndarray:
    """Central-difference gradient magnitude (units per 2 pixels; 0 on the border)."""
    gy, gx = np.zeros_like(y), np.zeros_like(y)
    gy[1:-1] = y[2:] - y[:-2]
    gx[:, 1:-1] = y[:, 2:] - y[:, :-2]
    return np.hypot(gx, gy)


def edge_distance(photo: np.ndarray, threshold: float = 40.0, limit: int = 32) -> np.ndarray:
    """City-block distance (pixels, capped at `limit`) to the nearest strong edge of the photo's luma, where a
    strong edge is a central-difference gradient above `threshold` (0–255 units per 2 pixels)."""
    reached = gradient_magnitude(luma(photo)) > threshold
    distance = np.full(reached.shape, limit, np.int32)
    distance[reached] = 0
    for d in range(1, limit):
        grown = _dilate(reached)
        distance[grown & ~reached] = d
        reached = grown
    return distance


def halo(
    photo: np.ndarray, output: np.ndarray, near: tuple[int, int] = (2, 6), far: tuple[int, int] = (12, 24)
) -> float:
    """Brightening next to the photo's strong edges, in luma units (0–255): the mean change of luma (output −
    photo) over flat pixels `near` pixels from an edge, minus the same over flat pixels `far` from one.

    A white outline around every figure, a known artefact of instance-norm generators, scores tens; a style
    that darkens outlines (lead lines) scores below 0; 0 when the flat pixels change alike near and far.
    nan when the photo has no flat pixels in one of the bands."""
    distance = edge_distance(photo)
    flat = flat_mask(photo, window=5, max_std=6.0)
    change = luma(output) - luma(photo)
    near_px = flat & (distance >= near[0]) & (distance <= near[1])
    far_px = flat & (distance >= far[0]) & (distance <= far[1])
    if near_px.sum() < 50 or far_px.sum() < 50:
        return float("nan")
    return float(change[near_px].mean() - change[far_px].mean())


def echo(
    photo: np.ndarray, output: np.ndarray, near: tuple[int, int] = (9, 28), far: tuple[int, int] = (41, 63),
    threshold: float = 60.0,
) -> float:  # fmt: skip
    """Line work concentrated around the photo's figures, in percentage points: the share of the photo's flat
    pixels `near` pixels from a strong edge where the output has a strong edge (luma gradient > `threshold`), minus
    the same share `far` from one.

    A style that paints flat regions evenly (cells across a whole sky) scores about 0 or below; one that echoes
    each figure's outline a few pixels out, with a light band between, and leaves open sky bare scores several
    points. nan when the photo has no flat pixels in one of the bands."""
    distance = edge_distance(photo, limit=far[1] + 1)
    flat = flat_mask(photo)
    lines = gradient_magnitude(luma(output)) > threshold
    near_px = flat & (distance >= near[0]) & (distance <= near[1])
    far_px = flat & (distance >= far[0]) & (distance <= far[1])
    if near_px.sum() < 50 or far_px.sum() < 50:
        return float("nan")
    return float(100 * (lines[near_px].mean() - lines[far_px].mean()))


def blurred_rgb(image: np.ndarray, blur: int) -> np.ndarray:
    """An RGB picture through a `blur`-px box, each channel as `box_mean` ('valid': (H-blur+1)×(W-blur+1)×3)."""
    rgb = np.asarray(image, np.float64)
    return np.stack([box_mean(rgb[..., c], blur) for c in range(3)], axis=-1)


def relighting_fields(h: int, w: int, amount: float = 0.15) -> list[np.ndarray]:
    """Three smooth changes of light, H×W gains of mean 1: left to right and top to bottom ramps of ±`amount`, and
    a vignette (bright centre, corners `2 × amount` darker)."""
    y, x = np.mgrid[0:h, 0:w].astype(np.float64)
    x, y = x / max(w - 1, 1) - 0.5, y / max(h - 1, 1) - 0.5  # −0.5 … 0.5
    fields = [1 + 2 * amount * x, 1 + 2 * amount * y, 1 - 2 * amount * np.hypot(x, y) / np.hypot(0.5, 0.5)]
    return [f / f.mean() for f in fields]


def light_change(
    stylize: Callable[[np.ndarray], np.ndarray], photo: np.ndarray, blur: int = 16, styled: np.ndarray | None = None
) -> float:
    """Mean absolute change (0–255, over pixels and RGB) of the stylized picture seen through a `blur`-px box when
    the photo is relit by each of `relighting_fields` (clipped to 0–255), averaged over the three.

    Instance norm makes a generator ignore the photo's overall brightness, not a slow change of light across it.
    The photo itself changes by about 5–7 on the yardstick's photos; Johnson's 2016 models change less than their
    photos (they paint a sky alike wherever its light is); a stylizer that maps brightness to the painting's colours
    redraws more, as bands along the light's contours. `styled`: the photo stylized already, if the caller has it."""

    base = blurred_rgb(stylize(photo) if styled is None else styled, blur)
    changes = []
    for gain in relighting_fields(*photo.shape[:2]):
        relit = np.clip(np.rint(photo.astype(np.float64) * gain[..., None]), 0, 255).astype(np.uint8)
        changes.append(float(np.abs(blurred_rgb(stylize(relit), blur) - base).mean()))
    return float(np.mean(changes))


def pasted_figures(h: int, w: int, count: int = 3, seed: int = 0) -> list[tuple[np.ndarray, np.ndarray]]:
    """`count` dark figures for an H×W photo, each a (mask, RGB colour): an upright ellipse with axes 5–13 % of the
    short side, its centre in the middle half, a colour 10–40 in each channel. The same for every photo size."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:h, 0:w].astype(np.float64)
    side = min(h, w)
    figures = []
    for _ in range(count):
        cy, cx = rng.uniform(0.25, 0.75) * h, rng.uniform(0.25, 0.75) * w
        ry, rx = rng.uniform(0.05, 0.13) * side, rng.uniform(0.04, 0.10) * side
        mask = ((y - cy) / ry) ** 2 + ((x - cx) / rx) ** 2 <= 1
        figures.append((mask, rng.uniform(10, 40, 3)))
    return figures


def figure_change(
    stylize: Callable[[np.ndarray], np.ndarray], photo: np.ndarray, blur: int = 8, ring: tuple[int, int] = (10, 48),
    styled: np.ndarray | None = None,
) -> float:  # fmt: skip
    """Root-mean-square change (0–255, over RGB) of the stylized picture, seen through a `blur`-px box, in a `ring`
    of pixels round a dark figure pasted into the photo (city-block distance from it), the change's mean over the
    ring removed; one figure at a time (`pasted_figures`), averaged over them.

    What it sees: a glow or a second outline that a figure draws on the ground round it. What it leaves out: the
    figure's own outline (nearer than the ring), texture finer than the blur, and a change of the whole picture's
    tone (instance norm's statistics move when a dark figure enters the photo). The photo itself scores 0.
    `styled`: the photo stylized already, if the caller has it."""

    base = blurred_rgb(stylize(photo) if styled is None else styled, blur)
    changes = []
    for mask, colour in pasted_figures(*photo.shape[:2]):
        pasted = photo.copy()
        pasted[mask] = np.rint(colour).astype(np.uint8)
        near, far = mask.copy(), mask.copy()
        for d in range(ring[1]):
            far = _dilate(far)
            if d < ring[0]:
                near = far.copy()
        zone = box_mean((far & ~near).astype(np.float64), blur) > 1 - 1e-9  # windows wholly inside the ring
        change = (blurred_rgb(stylize(pasted), blur) - base)[zone]
        changes.append(float(np.sqrt(((change - change.mean(axis=0)) ** 2).mean())))
    return float(np.mean(changes))


class GramCloseness:
    """Relative Gram-matrix distance to a painting, ‖G(x) − G(painting)‖ / ‖G(painting)‖, averaged over VGG
    layers and image scales (0 = the painting's statistics; an untouched photo is about 1).

    `weights` is a VGG file for `train.vgg_weights.read_vgg_weights` (for an independent judge, not the network the
    model was trained with). Each scale resizes both pictures so that their long side is that many pixels: at
    256 px a relu3_1 unit sees a sixth of the picture, so cells and brush strokes count, not only fine texture."""

    def __init__(self, weights: str, layers: tuple[str, ...] = ("relu1_1", "relu2_1", "relu3_1"),
                 scales: tuple[int, ...] = (512, 256)):  # fmt: skip
        import torch

        from train.vgg_weights import build_loss_network, read_vgg_weights

        loaded = read_vgg_weights(weights)
        self.layers = list(layers)
        self.scales = scales
        self.vgg = build_loss_network(loaded, loaded.arch or "vgg19", self.layers)
        self.torch = torch
        self._targets: dict[int, dict[str, Tensor]] = {}  # side → layer → Gram matrix

    def _grams(self, rgb: np.ndarray, side: int) -> dict[str, Tensor]:
        from PIL import Image

        from train.losses import gram_matrix

        image = Image.fromarray(np.asarray(rgb, np.uint8))
        scale = side / max(image.size)
        image = image.resize((max(1, round(image.width * scale)), max(1, round(image.height * scale))),
                             Image.Resampling.LANCZOS)  # fmt: skip
        x = self.torch.from_numpy(np.asarray(image, np.float32)).permute(2, 0, 1)[None]
        with self.torch.no_grad():
            features = self.vgg(x, self.layers)
        return {name: gram_matrix(features[name])[0] for name in self.layers}

    def set_painting(self, painting: np.ndarray) -> None:
        self._targets = {side: self._grams(painting, side) for side in self.scales}

    def per_scale(self, rgb: np.ndarray) -> dict[int, float]:
        """The distance at each scale, averaged over layers."""
        if not self._targets:
            raise RuntimeError("call set_painting first")
        result = {}
        for side, targets in self._targets.items():
            grams = self._grams(rgb, side)
            result[side] = float(
                np.mean([float((grams[n] - targets[n]).norm() / targets[n].norm()) for n in self.layers])
            )
        return result

    def __call__(self, rgb: np.ndarray) -> float:
        return float(np.mean(list(self.per_scale(rgb).values())))
