"""Shared CLI output: one-line errors with exit code 2, progress bars on stderr."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager

import typer
from rich.console import Console

stderr = Console(stderr=True, highlight=False, soft_wrap=True)


@contextmanager
def user_errors() -> Iterator[None]:
    """Turn the stages' errors (runtime.errors.ToolkitError, and Ctrl-C) into a one-line message and an exit code."""
    from runtime.errors import ToolkitError

    try:
        yield
    except ToolkitError as exc:
        message = " ".join(str(exc).split())
        print(f"error: {message}", file=sys.stderr)
        raise typer.Exit(exc.exit_code) from None
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        raise typer.Exit(130) from None
