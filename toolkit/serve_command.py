"""`toolkit serve`: a Triton Inference Server (PyTriton) with a style model, for `toolkit run --server` and any
Triton client."""

from __future__ import annotations

import typer

from runtime.request_guard import REQUEST_MAX_PIXELS
from toolkit.reporting import stderr, user_errors


def serve(
    model: str = typer.Option(None, "--model", "-m", help="A bundled style's name or a model file (default style)."),
    host: str = typer.Option("127.0.0.1", "--host", help="Address to listen on (0.0.0.0 for every interface)."),
    port: int = typer.Option(8000, "--port", help="HTTP port; gRPC listens on PORT+1, metrics on PORT+2."),
    name: str = typer.Option("stylize", "--name", help="The model's name on the server."),
    backend: str = typer.Option(
        "auto", "--backend", help="auto (tensorrt, onnxruntime, torch), one of those, or openvino."
    ),
    device: str = typer.Option(None, "--device", help="cpu or cuda (default: the best available)."),
    max_batch: int = typer.Option(8, "--max-batch", help="Triton max_batch_size."),
    max_pixels: int = typer.Option(
        REQUEST_MAX_PIXELS, "--max-pixels", help="Largest image a request may carry (HTTP requests above are refused)."
    ),
) -> None:
    """Serve a style over HTTP and gRPC with the tensors `image` (uint8 N×H×W×3) → `stylized`. Ctrl-C stops it."""
    from runtime.serving import ServerStopped
    from runtime.serving import serve as run_server
    from runtime.stylizer import ModelError, Stylizer

    with user_errors():
        if max_batch < 1 or not 0 < port < 65534 or max_pixels < 1:
            raise ModelError("--max-batch and --max-pixels must be at least 1 and --port between 1 and 65533")
        stylizer = Stylizer.load(model, backend, device)
    with stylizer:
        try:
            run_server(stylizer, name, host, port, max_batch, max_pixels=max_pixels, on_ready=lambda: stderr.print(
                f"serving {name!r} ({stylizer.backend_name}) on http://{host}:{port} and grpc {host}:{port + 1}; "
                f"Ctrl-C stops", markup=False))  # fmt: skip
        except ServerStopped as exc:  # a crash: a non-zero exit, so that a supervisor restarts the server
            stderr.print(f"error: {exc}", markup=False)
            raise typer.Exit(1) from None
        except RuntimeError as exc:
            stderr.print(f"error: {exc}", markup=False)
            raise typer.Exit(2) from None
        except KeyboardInterrupt:
            pass
    stderr.print("server stopped", markup=False)
