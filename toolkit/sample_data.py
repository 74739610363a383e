"""`toolkit sample-data`: a few photos and a style image to try the toolkit with, without downloads.

The photos come from scikit-image, whose wheel ships them (public domain or CC0, see skimage/data/README.txt);
the style image is a stained-glass pattern drawn here, since no installable package ships paintings.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import typer
from PIL import Image, ImageFilter

from toolkit.reporting import stderr, user_errors

SKIMAGE_PHOTOS = ("astronaut", "chelsea", "coffee", "rocket", "hubble_deep_field", "retina", "camera", "coins")


def stained_glass(size: int = 384, cells: int = 70, seed: int = 0) -> Image.Image:
    """Voronoi cells in saturated colours with dark leading between them."""
    rng = np.random.default_rng(seed)
    points = rng.uniform(0, size, (cells, 2))
    palette = np.array(
        [[220, 40, 40], [240, 180, 30], [40, 90, 200], [30, 150, 80], [150, 50, 170], [250, 120, 20], [20, 170, 200]]
    )
    colours = palette[rng.integers(0, len(palette), cells)] * rng.uniform(0.7, 1.0, (cells, 1))
    yy, xx = np.mgrid[0:size, 0:size]
    distance = (xx[..., None] - points[:, 0]) ** 2 + (yy[..., None] - points[:, 1]) ** 2
    nearest = np.argsort(distance, axis=-1)[..., :2]
    d = np.take_along_axis(distance, nearest, axis=-1)
    image = colours[nearest[..., 0]]
    border = np.sqrt(d[..., 1]) - np.sqrt(d[..., 0]) < 3.0
    image[border] = 25
    image += rng.normal(0, 8, image.shape)  # glass texture
    return Image.fromarray(np.clip(image, 0, 255).astype(np.uint8)).filter(ImageFilter.SMOOTH)


def sample_photos(names=SKIMAGE_PHOTOS) -> dict[str, np.ndarray]:
    """scikit-image's sample photos by name (grey ones as they are); a UserError naming the extra without it."""
    from runtime.errors import UserError

    try:
        from skimage import data
    except ImportError:
        raise UserError("the sample photos come from scikit-image: pip install 'fast-style-toolkit[samples]'") from None
    return {name: getattr(data, name)() for name in names}


def write_sample_data(folder: Path) -> tuple[list[Path], Path]:
    photos = folder / "photos"
    photos.mkdir(parents=True, exist_ok=True)
    written = []
    for name, array in sample_photos().items():
        path = photos / f"{name}.png"
        Image.fromarray(array).save(path)
        written.append(path)
    style = folder / "style.png"
    stained_glass().save(style)
    return written, style


def sample_data(folder: Path = typer.Argument(..., help="Folder to write photos/ and style.png into.")) -> None:
    """Write sample photos (from scikit-image) and a stained-glass style image to try `toolkit train` with."""
    with user_errors():
        photos, style = write_sample_data(folder)
    stderr.print(f"wrote {len(photos)} photos to {folder / 'photos'} and a style image {style}")
