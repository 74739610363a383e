"""Styles that ship inside the package: `runtime/styles/NAME.onnx` with its provenance in `NAME.json`."""

from __future__ import annotations

import json
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from runtime.precision import precision_of

DEFAULT_STYLE = "mosaic"


@dataclass(frozen=True)
class BundledStyle:
    name: str
    path: Path
    provenance: dict

    @property
    def is_default(self) -> bool:
        return self.name == DEFAULT_STYLE


def styles_folder() -> Path:
    return Path(str(resources.files("runtime") / "styles"))


def bundled_styles() -> list[BundledStyle]:
    folder = styles_folder()
    styles = []
    for model in sorted(folder.glob("*.onnx")):
        if precision_of(model) != "fp32":  # NAME.int8.onnx is a file of style NAME (runtime.precision)
            continue
        record = model.with_suffix(".json")
        provenance = json.loads(record.read_text()) if record.is_file() else {}
        styles.append(BundledStyle(model.stem, model, provenance))
    return styles


def is_style_name(text: str) -> bool:
    """Whether a model argument is a bundled style's name rather than a path: no folder, no suffix, no such file."""
    path = Path(text)
    return len(path.parts) == 1 and not path.suffix and not path.exists()


def find_style(name: str | None) -> BundledStyle:
    """The bundled style called `name` (None: the default); ValueError naming the choices otherwise."""
    styles = {style.name: style for style in bundled_styles()}
    wanted = name or DEFAULT_STYLE
    if wanted in styles:
        return styles[wanted]
    if not styles:
        raise ValueError("no bundled styles are installed; give an exported model (--model PATH, or a path in the API)")
    raise ValueError(f"no bundled style {wanted!r}; bundled styles: {', '.join(styles)} (or give a model path)")
