"""Stand-in for the `cuda` namespace of cuda-python (tests only; see tests/standins/README.md)."""
