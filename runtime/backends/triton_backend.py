"""A Triton Inference Server as a backend: batches go over HTTP or gRPC to a model with our tensors (`toolkit serve`,
or a repository written by `toolkit export --triton`). Everything else (reading, EXIF, alpha, resizing, writing,
resume) stays on the client, so a remote run gives the same files as a local one."""

from __future__ import annotations

import importlib
import threading

import numpy as np

from runtime.backends.base import Backend, BackendUnavailable
from runtime.contract import Contract

PROTOCOLS = ("http", "grpc")  # tritonclient.http / tritonclient.grpc
TIMEOUT_S = 600.0  # one request: a large batch on a busy CPU server takes a while


def parse_server(url: str) -> tuple[str, str]:
    """`HOST:PORT` or `http://HOST:PORT` (HTTP), `grpc://HOST:PORT` (gRPC) → (protocol, HOST:PORT)."""
    protocol, _, address = url.rpartition("://")
    protocol = protocol or "http"
    if protocol not in PROTOCOLS or not address.strip("/"):
        raise ValueError(f"--server {url}: give HOST:PORT, http://HOST:PORT or grpc://HOST:PORT")
    return protocol, address.rstrip("/")


class TritonBackend(Backend):
    name = "triton"
    max_in_flight = 4  # requests a folder job keeps open; the HTTP client is not thread-safe: one per thread

    def __init__(self, url: str, model_name: str = "stylize"):
        protocol, address = parse_server(url)
        try:
            self._api = importlib.import_module(f"tritonclient.{protocol}")
            from tritonclient.utils import InferenceServerException
        except ImportError:
            raise BackendUnavailable(
                f"--server needs tritonclient[{protocol}] (pip install 'fast-style-toolkit[triton]')"
            ) from None
        self.protocol, self.model_name = protocol, model_name
        self._address, self._local = address, threading.local()
        self.device = f"server {url if protocol == 'grpc' else address}"
        try:
            self.client = self._new_client(connection_timeout=10.0)
            ready = {"client_timeout": 10.0} if protocol == "grpc" else {}  # HTTP: connection_timeout above
            if not self.client.is_model_ready(model_name, **ready):
                raise ValueError(f"the Triton server at {address} has no ready model {model_name!r} (--model-name)")
            meta, config = self._model_description()
        except InferenceServerException as exc:
            if protocol == "grpc" and "StatusCode.UNAVAILABLE" in str(exc):  # gRPC says "refused" this way
                raise ValueError(f"cannot reach a Triton server at {url}: {exc.message()}") from None
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

    def _new_client(self, connection_timeout: float = 60.0):
        if self.protocol == "http":
            return self._api.InferenceServerClient(
                self._address, connection_timeout=connection_timeout, network_timeout=TIMEOUT_S
            )
        return self._api.InferenceServerClient(self._address)

    def _model_description(self) -> tuple[dict, dict]:
        """The model's metadata and config as the HTTP API gives them (gRPC's JSON writes int64 as strings)."""
        if self.protocol == "http":
            return self.client.get_model_metadata(self.model_name), self.client.get_model_config(self.model_name)
        timeout = {"client_timeout": 10.0}
        meta = self.client.get_model_metadata(self.model_name, as_json=True, **timeout)
        for tensor in meta["inputs"] + meta["outputs"]:
            tensor["shape"] = [int(d) for d in tensor["shape"]]
        return meta, self.client.get_model_config(self.model_name, as_json=True, **timeout)["config"]

    def _client(self):
        client = getattr(self._local, "client", None)
        if client is None:
            client = self._local.client = self._new_client()
            self._clients.append(client)
        return client

    def run(self, batch: np.ndarray) -> np.ndarray:
        api = self._api
        request = api.InferInput(self.contract.input_name, list(batch.shape), "UINT8")
        request.set_data_from_numpy(np.ascontiguousarray(batch))
        if self.protocol == "http":
            wanted = [api.InferRequestedOutput(self.contract.output_name, binary_data=True)]
            result = self._client().infer(self.model_name, [request], outputs=wanted)
        else:
            wanted = [api.InferRequestedOutput(self.contract.output_name)]
            result = self._client().infer(self.model_name, [request], outputs=wanted, client_timeout=TIMEOUT_S)
        return result.as_numpy(self.contract.output_name)

    def close(self) -> None:
        for client in [getattr(self, "client", None), *getattr(self, "_clients", [])]:
            if client is not None:
                client.close()
        self.client, self._clients = None, []
