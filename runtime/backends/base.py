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
    notes: tuple[str, ...] = ()  # one line each about how the model is run (e.g. a guessed channel order)

    def run(self, batch: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def guess_channel_order(self, path) -> None:
        """For a model with no toolkit metadata: take the channel order its graph shows, and say so."""
        import dataclasses

        from runtime.channel_order import channel_order_note

        order, note = channel_order_note(path)
        self.contract = dataclasses.replace(self.contract, channels=order)
        self.notes = (*self.notes, note)

    def close(self) -> None:
        """Release device resources (GPU buffers, streams). Idempotent."""
