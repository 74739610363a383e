"""Reading and writing photos as a photo editor would, with numpy and Pillow only.

Reading: EXIF orientation applied (and the tag cleared so no viewer applies it again), alpha split off and kept,
grey, palette and 16-bit images turned into 8-bit RGB, the ICC profile kept, a pixel limit against decompression
bombs. Writing: to a temporary name in the target folder, then renamed, so there is never a partial file.
"""

from __future__ import annotations

import io
import threading
import warnings
from dataclasses import dataclass, replace
from pathlib import Path
from typing import cast

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from runtime.errors import InputError

# Pillow refuses images over 2 × Image.MAX_IMAGE_PIXELS (≈ 179 Mpx) as likely decompression bombs; so do we.
DEFAULT_MAX_PIXELS = 2 * cast(int, Image.MAX_IMAGE_PIXELS)  # None only if someone turned Pillow's check off
_PILLOW_LIMIT_LOCK = threading.Lock()
ORIENTATION_TAG = 0x0112


# Our own pixel limit applies (decode); Pillow's warning below its error threshold is noise. A module-level filter,
# because warnings.catch_warnings is not thread-safe and images decode in worker threads.
warnings.filterwarnings("ignore", category=Image.DecompressionBombWarning)


class ImageError(InputError):
    """An input or output image problem; the message names the file and the fix."""


@dataclass
class Photo:
    rgb: np.ndarray  # H×W×3 uint8
    alpha: np.ndarray | None = None  # H×W uint8, or None
    icc_profile: bytes | None = None
    exif: bytes | None = None  # orientation already applied and reset
    format: str | None = None  # PIL format name of the source ("JPEG", "PNG", …)
    frames: int = 1  # an animated GIF/WebP or a multi-page TIFF holds more: only the first is decoded

    def with_rgb(self, rgb: np.ndarray) -> Photo:
        return replace(self, rgb=rgb)


def _to_8bit(image: Image.Image) -> Image.Image:
    if image.mode in ("I;16", "I;16B", "I;16L", "I"):
        array = np.asarray(image, dtype=np.float64)
        peak = 65535.0 if image.mode.startswith("I;16") or array.max() > 255 else 255.0
        return Image.fromarray(np.clip(array / peak * 255.0 + 0.5, 0, 255).astype(np.uint8), "L")
    if image.mode == "F":
        return Image.fromarray(np.clip(np.asarray(image) * 255.0 + 0.5, 0, 255).astype(np.uint8), "L")
    return image


def decode(data: bytes | Path, name: str, max_pixels: int = DEFAULT_MAX_PIXELS) -> Photo:
    """Decode an image file (path or bytes); `name` is used in error messages. Thread-safe."""
    too_large = ImageError(
        f"{name}: image is too large (over {max_pixels:,} pixels, a possible decompression bomb); "
        "raise --max-pixels if you trust it"
    )
    if max_pixels > DEFAULT_MAX_PIXELS:
        # Pillow refuses at open above 2 × its own limit, below the one asked for. That limit is process-wide:
        # it is raised for the rest of the process (never lowered), and only for a caller who asks for more than
        # the default; every decode still checks against its own max_pixels below.
        with _PILLOW_LIMIT_LOCK:
            if Image.MAX_IMAGE_PIXELS is not None:
                Image.MAX_IMAGE_PIXELS = max(Image.MAX_IMAGE_PIXELS, max_pixels // 2 + 1)
    try:
        source = io.BytesIO(data) if isinstance(data, bytes) else data
        with Image.open(source) as image:
            if image.width * image.height > max_pixels:
                raise too_large
            image.load()
            photo = photo_from_pil(image)
            return replace(photo, frames=int(getattr(image, "n_frames", 1) or 1))
    except Image.DecompressionBombError:  # Pillow's own, lower, limit
        raise too_large from None
    except UnidentifiedImageError:
        raise ImageError(f"{name}: not an image Pillow can read (unsupported format or not an image)") from None
    except (OSError, SyntaxError, ValueError) as exc:
        detail = str(exc) or type(exc).__name__
        raise ImageError(f"{name}: cannot decode image ({detail}); the file may be truncated or corrupt") from None


def photo_from_pil(image: Image.Image) -> Photo:
    """A decoded PIL image as a Photo: upright 8-bit RGB, alpha split off, ICC and EXIF kept."""
    source_format = image.format
    icc = image.info.get("icc_profile")
    try:
        image = ImageOps.exif_transpose(image)
        exif = image.getexif()
        exif.pop(ORIENTATION_TAG, None)
        exif_bytes = exif.tobytes() if len(exif) else None
    except Exception:  # malformed EXIF: keep the pixels as stored, drop the metadata
        exif_bytes = None
    image = _to_8bit(image)
    alpha = None
    if image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info):
        rgba = image.convert("RGBA")
        alpha = np.asarray(rgba)[..., 3].copy()
        if alpha.min() == 255:
            alpha = None
        image = rgba
    rgb = np.ascontiguousarray(np.asarray(image.convert("RGB")))
    return Photo(rgb, alpha, icc, exif_bytes, source_format)


def read_photo(path: str | Path, max_pixels: int = DEFAULT_MAX_PIXELS) -> Photo:
    path = Path(path)
    try:
        if path.stat().st_size == 0:
            raise ImageError(f"{path}: empty file (0 bytes)")
    except OSError as exc:
        raise ImageError(f"{path}: cannot read ({exc.strerror or exc})") from None
    return decode(path, str(path), max_pixels)


FORMAT_BY_SUFFIX = {".jpg": "JPEG", ".jpeg": "JPEG", ".png": "PNG", ".webp": "WEBP", ".tif": "TIFF",
                    ".tiff": "TIFF", ".bmp": "BMP"}  # fmt: skip
ALPHA_FORMATS = {"PNG", "WEBP", "TIFF"}


def encode(photo: Photo, format: str) -> bytes:
    """The photo in `format` (JPEG, PNG, WEBP, TIFF, BMP), alpha put back where the format can hold it."""
    image = Image.fromarray(photo.rgb, "RGB")
    if photo.alpha is not None and format in ALPHA_FORMATS:
        image = Image.fromarray(np.dstack([photo.rgb, photo.alpha]), "RGBA")
    options: dict = {}
    if photo.icc_profile:
        options["icc_profile"] = photo.icc_profile
    if photo.exif and format in ("JPEG", "PNG", "WEBP", "TIFF"):
        options["exif"] = photo.exif
    if format == "JPEG":
        options.update(quality=95, subsampling=0)
    buffer = io.BytesIO()
    image.save(buffer, format=format, **options)
    return buffer.getvalue()
