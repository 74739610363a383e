"""Stand-in for `cuda.bindings` (tests only; see tests/standins/README.md)."""
