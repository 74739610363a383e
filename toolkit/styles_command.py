"""`toolkit styles`: the styles that ship with the package."""

from __future__ import annotations

import json

import typer


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
        detail = f"after {image}{painting}; {trained.get('steps', '?')} training steps on {record.get('machine', '?')}"
        typer.echo(f"{style.name}{mark}: {detail}")
    if not found and not json_output:
        typer.echo("no bundled styles are installed")
