"""`toolkit demo`: the first run. Sample photos stylized with every bundled style, and a contact sheet."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import typer

from toolkit.contact_sheet import contact_sheet
from toolkit.reporting import stderr, user_errors

DEMO_PHOTOS = ("astronaut", "chelsea", "coffee", "rocket")


def demo(
    out: Path = typer.Argument(Path("demo"), help="Folder for the stylized photos and contact-sheet.jpg."),
    styles: str = typer.Option(None, "--styles", help="Comma-separated bundled styles (default: all)."),
) -> None:
    """Stylize sample photos with the bundled styles, on the CPU, with no download and no file of yours."""
    from runtime.atomic import write_atomic
    from runtime.bundled import bundled_styles, find_style
    from runtime.images import Photo, encode
    from runtime.stylizer import ModelError, Stylizer
    from toolkit.sample_data import sample_photos

    with user_errors():
        photos = sample_photos(DEMO_PHOTOS)
        try:
            # the default style first: it is what `toolkit run` uses when no model is named
            chosen = (
                [find_style(n.strip()) for n in styles.split(",")]
                if styles
                else sorted(bundled_styles(), key=lambda s: not s.is_default)
            )
        except ValueError as exc:
            raise ModelError(str(exc)) from None
        if not chosen:
            raise ModelError("no bundled styles are installed; give a model to `toolkit run --model`")
        rgb = {n: np.repeat(a[..., None], 3, 2) if a.ndim == 2 else a[..., :3] for n, a in photos.items()}
        columns = {name: [image] for name, image in rgb.items()}
        for style in chosen:
            folder = out / style.name
            folder.mkdir(parents=True, exist_ok=True)
            with Stylizer.load(style.path, device="cpu") as stylizer:
                for name, image in rgb.items():
                    styled = stylizer(image)
                    write_atomic(encode(Photo(styled), "JPEG"), folder / f"{name}.jpg")
                    columns[name].append(styled)
        sheet = contact_sheet(list(columns.values()), ["photo", *(s.name for s in chosen)])
        write_atomic(encode(Photo(np.asarray(sheet)), "JPEG"), out / "contact-sheet.jpg")
    stderr.print(
        f"stylized {len(rgb)} photos with {len(chosen)} styles into {out}/; overview: {out / 'contact-sheet.jpg'}"
    )
    suggested = next((s for s in chosen if s.is_default), chosen[0])
    stderr.print(f"your own photos: toolkit run PHOTOS_FOLDER -o {out}/mine --model {suggested.name}")
