"""Training images: folder scan, decoding as a photo editor would, and crops whose randomness is a pure
function of (seed, sample index), so that a resumed run sees exactly the batches an uninterrupted one would."""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageOps, UnidentifiedImageError

from runtime.errors import UserError

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff", ".ppm", ".pgm", ".gif"}

# Decoding errors that mean "this file is not a usable image" (as opposed to a bug of ours).
DECODE_ERRORS = (UnidentifiedImageError, OSError, ValueError, SyntaxError, Image.DecompressionBombError)


def to_rgb8(image: Image.Image) -> Image.Image:
    """Upright 8-bit RGB: EXIF orientation applied, alpha composited on white, 16-bit and grey expanded."""
    image = ImageOps.exif_transpose(image)
    if image.mode in ("I;16", "I;16B", "I;16L", "I"):
        array = np.asarray(image, dtype=np.float64)
        peak = 65535.0 if image.mode.startswith("I;16") or array.max() > 255 else 255.0
        image = Image.fromarray(np.clip(array / peak * 255.0 + 0.5, 0, 255).astype(np.uint8), "L")
    elif image.mode == "F":
        image = Image.fromarray(np.clip(np.asarray(image) * 255.0 + 0.5, 0, 255).astype(np.uint8), "L")
    if image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info):
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        image = Image.alpha_composite(background, rgba)
    return image.convert("RGB")


def open_rgb(path: Path, min_side: int | None = None) -> Image.Image:
    """Decode `path` to RGB. With `min_side`, JPEGs are decoded at a reduced scale no smaller than that."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        with Image.open(path) as image:
            if min_side and image.format == "JPEG":
                w, h = image.size
                scale = min_side / min(w, h)
                if scale < 1:
                    image.draft("RGB", (max(1, int(w * scale) + 1), max(1, int(h * scale) + 1)))
            image.load()
            return to_rgb8(image)


def image_to_tensor(image: Image.Image | np.ndarray) -> torch.Tensor:
    """RGB PIL image (or H×W×3 array) → float32 CHW in 0–255."""
    return torch.from_numpy(np.array(image, dtype=np.float32)).permute(2, 0, 1).contiguous()


def load_style_image(path: str | Path, size: int | None) -> torch.Tensor:
    """The style image as a 1×3×H×W tensor in 0–255, its long side resized to `size` if given."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"style image not found: {path}")
    try:
        image = open_rgb(path)
    except DECODE_ERRORS as exc:
        raise UserError(f"cannot read style image {path}: {exc}; give a JPEG or PNG file") from None
    if size:
        scale = size / max(image.size)
        image = image.resize(
            (max(1, round(image.width * scale)), max(1, round(image.height * scale))),
            Image.Resampling.LANCZOS,
        )
    return image_to_tensor(image)[None]


@dataclass
class ImageFolder:
    root: Path
    files: list[Path]
    unreadable: list[tuple[Path, str]] = field(default_factory=list)


def scan_folder(root: str | Path) -> ImageFolder:
    """All images under `root`, recursively, sorted. Files that are not images are listed as unreadable."""
    root = Path(root)
    if not root.exists():
        raise UserError(f"data folder not found: {root}")
    if not root.is_dir():
        raise UserError(f"--data must be a folder of images, {root} is a file")
    candidates = sorted(p for p in root.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
    files, unreadable = [], []
    for path in candidates:
        try:
            with Image.open(path) as image:
                image.size  # noqa: B018 - the header parse is the check
            files.append(path)
        except DECODE_ERRORS as exc:
            unreadable.append((path, str(exc) or type(exc).__name__))
    if not files:
        what = f"{len(unreadable)} unreadable image files" if unreadable else "no image files"
        raise UserError(
            f"data folder {root} holds {what} ({', '.join(sorted(IMAGE_SUFFIXES))}); point --data at a folder of photos"
        )
    return ImageFolder(root, files, unreadable)


def crop_to_square(
    image: Image.Image, size: int, mode: str, rng: np.random.Generator | None, zoom: float = 1.0
) -> Image.Image:
    """Resize the short side to `size`, then take a `size`×`size` crop (random or centred; `rng` for random ones).

    `zoom` > 1 (random crops only): resize the short side to `size` × a factor drawn log-uniformly from [1, zoom]
    instead, never above the photo's own short side, so that the crops show the photo's structure at the scales
    the model will be used at (a 512-px photo's sky spans more pixels than a 192-px one's)."""
    w, h = image.size
    target = size
    if zoom > 1 and mode == "random":
        assert rng is not None
        factor = float(np.exp(rng.uniform(0.0, np.log(zoom))))
        target = max(size, min(round(size * factor), min(w, h)))
    scale = target / min(w, h)
    new_w, new_h = max(size, round(w * scale)), max(size, round(h * scale))
    image = image.resize((new_w, new_h), Image.Resampling.BILINEAR, reducing_gap=2.0)
    if mode == "center":
        left, top = (new_w - size) // 2, (new_h - size) // 2
    else:
        assert rng is not None
        left, top = int(rng.integers(0, new_w - size + 1)), int(rng.integers(0, new_h - size + 1))
    return image.crop((left, top, left + size, top + size))


def paint_sky(crop: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """The part of an H×W×3 float crop beyond a random straight line (a horizon at any angle, leaving 20–80 % of the
    crop) replaced by a smooth gradient between two of the crop's own colours, with a photo's grain (σ 1.5).

    Why: 16 training photos have few large flat areas, and none dark, so the generator never learns to paint in
    them; on held-out skies it leaves bare bands, draws outlines that echo the figures' edges, or maps the sky's
    gradient to the painting's colours as arcs. A style loss per grid cell (`--style-grid`) then has flat areas to
    fill. The line's edge is antialiased over about 2 px."""
    h, w, _ = crop.shape
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    yy, xx = yy - (h - 1) / 2, xx - (w - 1) / 2

    def along(angle: float) -> np.ndarray:
        return xx * np.cos(angle) + yy * np.sin(angle)

    side = along(rng.uniform(0, 2 * np.pi))
    lo, hi = np.quantile(side, [0.2, 0.8])
    inside = np.clip(side - rng.uniform(lo, hi) + 0.5, 0.0, 1.0)[..., None]
    ramp = along(rng.uniform(0, 2 * np.pi))
    t = ((ramp - ramp.min()) / max(float(np.ptp(ramp)), 1e-6))[..., None]
    pixels = crop.reshape(-1, 3)
    first, last = pixels[rng.integers(0, len(pixels), 2)]
    sky = first + (last - first) * t + rng.normal(0.0, 1.5, crop.shape)
    return np.clip(crop * (1 - inside) + sky * inside, 0.0, 255.0).astype(np.float32)


class CropDataset(torch.utils.data.Dataset):
    """Item g is the g-th sample of an endless stream: epoch g // n, shuffled by (seed, epoch).

    A file that fails to decode is replaced by the next file of that epoch's order (the same one every time), and
    its name is returned so the trainer can report it once. A `sky` fraction of the crops get a synthetic sky
    (`paint_sky`), drawn from a random stream of their own, so the crops themselves do not change with it.
    """

    def __init__(self, files: list[Path], size: int, crop: str, seed: int, zoom: float = 1.0, sky: float = 0.0):
        self.files = files
        self.size = size
        self.crop = crop
        self.seed = seed
        self.zoom = zoom
        self.sky = sky

    def __len__(self) -> int:  # the stream is endless; the sampler decides how much of it is read
        return 2**62

    def order(self, epoch: int) -> np.ndarray:
        return np.random.default_rng([self.seed, 0, epoch]).permutation(len(self.files))

    def __getitem__(self, index: int) -> tuple[torch.Tensor, str]:
        n = len(self.files)
        epoch, position = divmod(index, n)
        order = self.order(epoch)
        failed = []
        for attempt in range(n):
            path = self.files[order[(position + attempt) % n]]
            try:
                image = open_rgb(path, min_side=self.size)
            except DECODE_ERRORS as exc:
                failed.append(f"{path}\t{exc}")
                continue
            rng = np.random.default_rng([self.seed, 1, index])
            crop = np.asarray(crop_to_square(image, self.size, self.crop, rng, self.zoom), dtype=np.float32)
            sky_rng = np.random.default_rng([self.seed, 2, index])
            if sky_rng.random() < self.sky:
                crop = paint_sky(crop, sky_rng)
            return image_to_tensor(crop), "\n".join(failed)
        raise UserError(f"none of the {n} images in the data folder could be decoded")


class StreamSampler(torch.utils.data.Sampler):
    """Indices start, start+1, …, stop-1 of the endless stream."""

    def __init__(self, start: int, stop: int):
        self.start, self.stop = start, stop

    def __iter__(self):
        return iter(range(self.start, self.stop))

    def __len__(self) -> int:
        return self.stop - self.start
