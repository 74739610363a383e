"""A contact sheet: photos down, versions across (the photo, then each style or model), with readable titles.

Every picture keeps its aspect ratio and the sheet has no white gaps: all columns are one width, and each row is as
tall as its photo is at that width (the versions of one photo share its shape). A picture of another shape in a row
(a painting beside the photo, say) is fitted inside its cell on the dark background.
"""

from __future__ import annotations

import numpy as np
from PIL import Image, ImageDraw, ImageFont

BACKGROUND = (32, 32, 32)
TEXT = (240, 240, 240)


def _font(size: int) -> ImageFont.ImageFont | ImageFont.FreeTypeFont:
    try:
        return ImageFont.load_default(size=size)  # Pillow's scalable built-in font (needs FreeType)
    except (TypeError, OSError, ImportError):
        return ImageFont.load_default()


def _fit_text(draw: ImageDraw.ImageDraw, text: str, font, width: int) -> str:
    """`text`, shortened with an ellipsis until it fits in `width` pixels."""
    if draw.textlength(text, font=font) <= width:
        return text
    while text and draw.textlength(text + "…", font=font) > width:
        text = text[:-1]
    return text + "…"


def contact_sheet(rows: list[list[np.ndarray]], titles: list[str], width: int = 256, gap: int = 4) -> Image.Image:
    """One row per photo (`rows[i]` = the photo and its versions, each H×W×3 uint8 of one shape), one column per
    title. Columns are `width` pixels wide; a row is as tall as its first picture at that width."""
    font = _font(max(12, width // 14))
    header = int(font.size * 1.6) if hasattr(font, "size") else 20
    heights = [max(1, round(width * images[0].shape[0] / images[0].shape[1])) for images in rows]
    columns = max([len(titles)] + [len(images) for images in rows])
    sheet = Image.new(
        "RGB", (columns * width + (columns + 1) * gap, header + sum(heights) + (len(rows) + 1) * gap), BACKGROUND
    )
    draw = ImageDraw.Draw(sheet)
    for col, title in enumerate(titles):
        x = gap + col * (width + gap)
        text = _fit_text(draw, title, font, width - 8)
        draw.text((x + 4, gap + header // 2), text, fill=TEXT, font=font, anchor="lm")
    y = header + gap
    for images, height in zip(rows, heights, strict=True):
        for col, rgb in enumerate(images):
            picture = Image.fromarray(np.asarray(rgb)).convert("RGB")
            scale = min(width / picture.width, height / picture.height)
            size = (max(1, round(picture.width * scale)), max(1, round(picture.height * scale)))
            picture = picture.resize(size, Image.Resampling.LANCZOS)
            x = gap + col * (width + gap) + (width - size[0]) // 2
            sheet.paste(picture, (x, y + (height - size[1]) // 2))
        y += height + gap
    return sheet
