"""The errors a user can fix (torch-free; every stage uses them).

Each carries a message that names the file or setting at fault and says how to fix it; the CLI prints it on one line
and exits with the error's `exit_code`. Anything else that escapes is a bug of ours.
"""

from __future__ import annotations


class ToolkitError(Exception):
    """A problem with the user's input or setup, not a bug: one line, exit code `exit_code`."""

    exit_code = 2


class UserError(ToolkitError):
    """Bad settings or input files for training, export or optimization."""


class ModelError(ToolkitError):
    """The model cannot be loaded or run as asked."""


class JobError(ToolkitError):
    """The job cannot start (bad arguments, an output folder that cannot be written)."""


class InputError(ToolkitError):
    """One input of a job cannot be used (not an image, truncated, too large): it fails alone and the job goes on,
    ending with exit code 1."""

    exit_code = 1
