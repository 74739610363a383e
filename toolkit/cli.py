"""The `toolkit` command: one typer app, one sub-command per stage."""

from __future__ import annotations

import typer

from toolkit import __version__
from toolkit.bench_command import bench
from toolkit.demo_command import demo
from toolkit.export_command import export
from toolkit.optimize_command import optimize
from toolkit.run_command import run
from toolkit.sample_data import sample_data
from toolkit.serve_command import serve
from toolkit.styles_command import styles
from toolkit.train_command import train

app = typer.Typer(
    help="Train instance-normalization style-transfer generators, export them, and run them.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"toolkit {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True, help="Print the version."),
) -> None:
    pass


app.command("train", no_args_is_help=True)(train)
app.command("export", no_args_is_help=True)(export)
app.command("run", no_args_is_help=True)(run)
app.command("sample-data", no_args_is_help=True)(sample_data)
app.command("styles")(styles)
app.command("demo")(demo)
app.command("optimize", no_args_is_help=True)(optimize)
app.command("bench")(bench)
app.command("serve")(serve)


def main() -> None:
    app()


if __name__ == "__main__":
    main()
