"""The doors of `toolkit serve`: every inference request is checked before tritonserver sees it.

tritonserver 2.51 allocates what a request's JSON header announces before it reads the data: one 104-byte HTTP
request that announces a 1×100000×100000×3 image makes it throw std::bad_alloc and abort, and the server is gone.
And PyTriton's proxy cannot carry an empty tensor (a 1×0×64×3 image): the client gets a 500 whose body is a Python
traceback. So the public ports belong to two small proxies, HTTP and gRPC, which refuse requests that announce more
than the limits below, or an empty image, or what our model does not take (HTTP 400 or gRPC INVALID_ARGUMENT, with a
one-line message), and forward everything else unchanged to tritonserver's own ports on loopback.
"""

from __future__ import annotations

import http.client
import json
import re
import threading
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

REQUEST_MAX_PIXELS = 40_000_000  # per image: a 40 Mpx photo (7680×5120) and then some
INFER_PATH = re.compile(r"^/v2/models/[^/]+(/versions/[^/]+)?/infer$")
HOP_BY_HOP = {"connection", "keep-alive", "proxy-authenticate", "proxy-authorization", "te", "trailers",
              "transfer-encoding", "upgrade", "host", "content-length"}  # fmt: skip


@dataclass(frozen=True)
class Limits:
    max_batch: int = 8
    max_pixels: int = REQUEST_MAX_PIXELS
    max_request_bytes: int = 512 * 1024 * 1024


def problem_with(header: object, limits: Limits) -> str | None:
    """Why an inference request's JSON header must not reach tritonserver, or None."""
    if not isinstance(header, dict) or not isinstance(header.get("inputs"), list):
        return "the request has no 'inputs' list"
    for tensor in header["inputs"]:
        if not isinstance(tensor, dict):
            return "each input must be an object"
        shape, name = tensor.get("shape"), tensor.get("name")
        if not isinstance(shape, list) or not all(isinstance(d, int) and not isinstance(d, bool) for d in shape):
            return f"input {name!r}: shape must be a list of integers"
        if len(shape) != 4 or shape[3] != 3 or min(shape) < 0:
            return f"input {name!r}: shape {shape} is not N×H×W×3"
        if tensor.get("datatype") != "UINT8":
            return f"input {name!r}: datatype must be UINT8 (image bytes), not {tensor.get('datatype')!r}"
        n, h, w, _ = shape
        if 0 in (n, h, w):
            return f"input {name!r}: an empty image ({n}×{h}×{w}×3): nothing to stylize"
        if n > limits.max_batch:
            return f"input {name!r}: a batch of {n} is more than this server's {limits.max_batch}"
        if h * w > limits.max_pixels:
            return f"input {name!r}: {h}×{w} is more than this server's {limits.max_pixels:,} pixels per image"
        if n * h * w * 3 > limits.max_request_bytes:
            return f"input {name!r}: {n * h * w * 3:,} bytes is more than this server's {limits.max_request_bytes:,}"
    return None


class RequestGuard(ThreadingHTTPServer):
    """Listens on (host, port) and forwards to tritonserver's HTTP port on 127.0.0.1:`upstream_port`."""

    daemon_threads = True

    def __init__(self, host: str, port: int, upstream_port: int, limits: Limits):
        self.upstream_port, self.limits = upstream_port, limits
        super().__init__((host, port), _Handler)

    def start(self) -> threading.Thread:
        thread = threading.Thread(target=self.serve_forever, name="request-guard", daemon=True)
        thread.start()
        return thread


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: RequestGuard

    def log_message(self, format, *args) -> None:
        pass  # tritonserver logs what it serves

    def _answer(self, status: int, message: str) -> None:
        body = json.dumps({"error": message}).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _forward(self) -> None:
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            self.close_connection = True
            return self._answer(411, "send the request with a Content-Length")
        try:
            length = int(self.headers.get("Content-Length") or 0)
        except ValueError:
            length = -1
        if not 0 <= length <= self.server.limits.max_request_bytes:
            self.close_connection = True
            return self._answer(413, f"the request must be at most {self.server.limits.max_request_bytes:,} bytes")
        body = self.rfile.read(length) if length else b""
        if self.command == "POST" and INFER_PATH.match(self.path.split("?")[0]):
            try:
                size = int(self.headers.get("Inference-Header-Content-Length") or len(body))
                header = json.loads(body[:size])
            except ValueError:
                return self._answer(400, "the request's JSON header cannot be read")
            problem = problem_with(header, self.server.limits)
            if problem:
                return self._answer(400, problem)
        upstream = http.client.HTTPConnection("127.0.0.1", self.server.upstream_port, timeout=600)
        try:
            headers = {k: v for k, v in self.headers.items() if k.lower() not in HOP_BY_HOP}
            upstream.request(self.command, self.path, body=body, headers=headers)
            response = upstream.getresponse()
            data = response.read()
        except OSError:
            self.close_connection = True
            return self._answer(503, "the inference server is not answering")
        finally:
            upstream.close()
        self.send_response(response.status, response.reason)
        for key, value in response.getheaders():
            if key.lower() not in HOP_BY_HOP:
                self.send_header(key, value)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)

    do_GET = do_POST = do_HEAD = do_PUT = do_DELETE = _forward


class GrpcGuard:
    """A gRPC server on (host, port) that forwards every call of Triton's service to 127.0.0.1:`upstream_port`,
    checking each ModelInfer request first."""

    def __init__(self, host: str, port: int, upstream_port: int, limits: Limits, workers: int = 8):
        from concurrent.futures import ThreadPoolExecutor

        import grpc

        self.limits = limits
        options = [("grpc.max_send_message_length", -1), ("grpc.max_receive_message_length", limits.max_request_bytes)]
        self.channel = grpc.insecure_channel(f"127.0.0.1:{upstream_port}", options=options)
        self.server = grpc.server(ThreadPoolExecutor(workers), handlers=[_grpc_handler(self)], options=options)
        address = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
        if not self.server.add_insecure_port(address):
            raise OSError(f"cannot listen on {address}")

    def start(self) -> None:
        self.server.start()

    def stop(self) -> None:
        self.server.stop(grace=1).wait()
        self.channel.close()

    def check(self, raw: bytes) -> str | None:
        from tritonclient.grpc import service_pb2

        request = service_pb2.ModelInferRequest()
        try:
            request.ParseFromString(raw)
        except Exception:  # protobuf's DecodeError
            return "the request cannot be read"
        header = {"inputs": [{"name": t.name, "shape": list(t.shape), "datatype": t.datatype} for t in request.inputs]}
        return problem_with(header, self.limits)


def _grpc_handler_class():
    import grpc

    class Handler(grpc.GenericRpcHandler):
        def __init__(self, guard: GrpcGuard):
            self.guard = guard
            self.handlers: dict[str, grpc.RpcMethodHandler] = {}  # one per method, made on its first call

        def service(self, handler_call_details):
            method = handler_call_details.method
            if method not in self.handlers:
                if method.endswith("/ModelStreamInfer"):
                    self.handlers[method] = grpc.stream_stream_rpc_method_handler(self._stream(method))
                else:
                    self.handlers[method] = grpc.unary_unary_rpc_method_handler(self._unary(method))
            return self.handlers[method]

        def _unary(self, method: str):
            forward = self.guard.channel.unary_unary(method)

            def handle(request: bytes, context):
                if method.endswith("/ModelInfer"):
                    problem = self.guard.check(request)
                    if problem:
                        context.abort(grpc.StatusCode.INVALID_ARGUMENT, problem)
                remaining = context.time_remaining()  # about 9e18 s when the client set no deadline
                timeout = remaining if remaining is not None and remaining < 10**6 else None
                try:
                    return forward(request, metadata=context.invocation_metadata(), timeout=timeout)
                except grpc.RpcError as exc:
                    context.abort(exc.code(), exc.details())

            return handle

        def _stream(self, method: str):
            forward = self.guard.channel.stream_stream(method)

            def handle(requests, context):
                def checked():
                    for request in requests:
                        problem = self.guard.check(request)
                        if problem:
                            context.abort(grpc.StatusCode.INVALID_ARGUMENT, problem)
                        yield request

                try:
                    yield from forward(checked(), metadata=context.invocation_metadata())
                except grpc.RpcError as exc:
                    context.abort(exc.code(), exc.details())

            return handle

    return Handler


def _grpc_handler(guard: GrpcGuard):
    return _grpc_handler_class()(guard)  # the class is made on first use: grpc is an optional dependency
