"""`toolkit`: the command line of the fast style transfer toolkit."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("fast-style-toolkit")
except PackageNotFoundError:  # running from a source tree that was not installed
    __version__ = "0+unknown"
