from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

import numpy as np

from runtime.contract import Contract


class BackendUnavailable(Exception):
    """This backend cannot run the model here; the message says why (and `auto` tries the next one)."""


class Backend:
    """Runs a batch already in the model's input layout and dtype; returns the model's raw output batch.

    What callers read: `name`, `device` ("cpu" or "cuda"), `contract` (the model's I/O), `notes` (one line each on
    how the model is run), `max_in_flight` (how many batches a job may have running at once: 1 here, more for a
    remote server), `metadata` (the model file's key/value metadata), `takes_statistics` (whether the backend can
    run the model's graph with instance-norm statistics supplied from outside, which large photos in tiles and
    cut-outs need; see runtime.tiling). A backend is a context manager: leaving the block releases its resources.
    """

    name = "base"
    contract: Contract
    device = "cpu"
    notes: tuple[str, ...] = ()
    max_in_flight = 1
    takes_statistics = False
    metadata: Mapping[str, str] = MappingProxyType({})  # per instance where the backend reads its model's metadata

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

    def __enter__(self) -> Backend:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
