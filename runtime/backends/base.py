from __future__ import annotations

import numpy as np

from runtime.contract import Contract


class BackendUnavailable(Exception):
    """This backend cannot run the model here; the message says why (and `auto` tries the next one)."""


class Backend:
    """Runs a batch already in the model's input layout and dtype; returns the model's raw output batch."""

    name = "base"
    contract: Contract
    device = "cpu"

    def run(self, batch: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def close(self) -> None:
        """Release device resources (GPU buffers, streams). Idempotent."""
