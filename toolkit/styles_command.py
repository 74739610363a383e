"""`toolkit styles`: the styles that ship with the package."""

from __future__ import annotations

import json
import re

import typer


def trained_on(record: dict) -> str:
    """Where a style was trained, in a few words: the record names each machine in full (CPU model, cores, torch), and
    a style trained over several sessions names several; `--json` keeps that."""
    machine = str(record.get("machine", "?"))
    if "CPU only" in machine and "NVIDIA" not in machine:  # machine() writes the GPU's name when there is one
        cores = sorted(set(re.findall(r"CPU only, (\d+) cores", machine)))
        return f"CPU ({' or '.join(cores)} cores)" if cores else "CPU"
    return machine


def styles(json_output: bool = typer.Option(False, "--json", help="One JSON object per style.")) -> None:
    """List the bundled styles (use one with --model NAME; the default is used when no model is named)."""
    from runtime.bundled import bundled_styles

    found = bundled_styles()
    for style in found:
        record = style.provenance
        if json_output:
            typer.echo(json.dumps({"name": style.name, "default": style.is_default, "path": str(style.path), **record}))
            continue
        mark = " (default)" if style.is_default else ""
        trained = record.get("training", {})
        image = str(record.get("style_image", "?")).split(" ")[0]  # the file's name only: users do not have it
        painting = f" ({record['painting']})" if record.get("painting") else ""
        hours = f" ({trained['wall_seconds'] / 3600:.1f} h)" if trained.get("wall_seconds") else ""
        detail = f"after {image}{painting}; {trained.get('steps', '?')} training steps{hours} on {trained_on(record)}"
        typer.echo(f"{style.name}{mark}: {detail}")
    if not found and not json_output:
        typer.echo("no bundled styles are installed")
