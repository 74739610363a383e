"""A Triton Inference Server as a backend: batches go over HTTP to a model with our tensors (`toolkit serve`, or a
repository written by `toolkit export --triton`). Everything else (reading, EXIF, alpha, resizing, writing, resume)
stays on the client, so a remote run gives the same files as a local one."""

from __future__ import annotations

import threading

import numpy as np

from runtime.backends.base import Backend, BackendUnavailable
from runtime.contract import Contract


class TritonBackend(Backend):
    name = "triton"
    max_in_flight = 4  # requests a folder job keeps open; the HTTP client is not thread-safe: one per thread

    def __init__(self, url: str, model_name: str = "stylize"):
        try:
            import tritonclient.http as http
            from tritonclient.utils import InferenceServerException
        except ImportError:
            raise BackendUnavailable("--server needs tritonclient (pip install 'fast-style-toolkit[triton]')") from None
        self._http, self.model_name = http, model_name
        address = url.split("://", 1)[-1].rstrip("/")
        self._address, self._local = address, threading.local()
        self.device = f"server {address}"
        try:
            self.client = http.InferenceServerClient(address, connection_timeout=10.0, network_timeout=600.0)
            if not self.client.is_model_ready(model_name):
                raise ValueError(f"the Triton server at {address} has no ready model {model_name!r} (--model-name)")
            meta = self.client.get_model_metadata(model_name)
            config = self.client.get_model_config(model_name)
        except InferenceServerException as exc:
            raise ValueError(f"Triton server at {address}: {exc.message()}") from None
        except OSError as exc:  # connection refused, unknown host
            raise ValueError(f"cannot reach a Triton server at {address}: {exc}") from None
        inputs, outputs = meta["inputs"], meta["outputs"]
        if len(inputs) != 1 or len(outputs) != 1 or inputs[0]["datatype"] != "UINT8" or inputs[0]["shape"][-1] != 3:
            raise ValueError(f"model {model_name!r} on {address} does not take one uint8 N×H×W×3 image")
        max_batch = int(config.get("max_batch_size", 0))
        if max_batch < 1:
            raise ValueError(f"model {model_name!r} on {address} has no batch dimension (max_batch_size 0)")
        self.contract = Contract(inputs[0]["name"], outputs[0]["name"], "NHWC", "uint8", max_batch=max_batch)
        self._clients: list = []

    def _client(self):
        client = getattr(self._local, "client", None)
        if client is None:
            client = self._local.client = self._http.InferenceServerClient(self._address, network_timeout=600.0)
            self._clients.append(client)
        return client

    def run(self, batch: np.ndarray) -> np.ndarray:
        http = self._http
        request = http.InferInput(self.contract.input_name, list(batch.shape), "UINT8")
        request.set_data_from_numpy(np.ascontiguousarray(batch))
        wanted = [http.InferRequestedOutput(self.contract.output_name, binary_data=True)]
        result = self._client().infer(self.model_name, [request], outputs=wanted)
        return result.as_numpy(self.contract.output_name)

    def close(self) -> None:
        for client in [getattr(self, "client", None), *getattr(self, "_clients", [])]:
            if client is not None:
                client.close()
        self.client, self._clients = None, []
