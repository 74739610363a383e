"""Serve a Stylizer as a Triton Inference Server model (PyTriton: a real tritonserver from a pip wheel).

Same tensors as the model repository that `toolkit export --triton` writes: `image` uint8 N×H×W×3 in, `stylized`
uint8 N×H×W×3 out, any H and W; so a client cannot tell this server from NVIDIA's container serving that
repository. Triton's dynamic batcher merges only requests of the same shape; clients send images grouped by size.
"""

from __future__ import annotations

import os
import shutil
import sysconfig
import tempfile
import threading
from collections.abc import Callable

import numpy as np

from runtime.request_guard import REQUEST_MAX_PIXELS
from runtime.stylizer import Stylizer

INPUT, OUTPUT = "image", "stylized"


class ServerStopped(RuntimeError):
    """tritonserver ended without being asked to (it crashed): `toolkit serve` exits non-zero so that a supervisor
    restarts it."""


def _backend_scratch() -> set[str]:
    """The folders tritonserver's Python backend makes for a model, at paths hard-coded in its C++ (/tmp/folderXXXXXX
    for the model, /tmp/python_env_XXXXXX for its environment; TMPDIR is not read). It removes them when it stops
    cleanly, not when it crashes: the ones that appear while our server starts are ours to remove."""
    import glob

    return set(glob.glob("/tmp/folder??????")) | set(glob.glob("/tmp/python_env_??????"))


def _free_loopback_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def own_libpython_first(library_path: str) -> str:
    """An LD_LIBRARY_PATH that finds the running interpreter's libpython first. Triton's Python-backend stub loads
    libpython through the dynamic linker, and a different libpython 3.11 on the system breaks it at load time."""
    libdir = sysconfig.get_config_var("LIBDIR")
    if not libdir or libdir in library_path.split(":"):
        return library_path
    return f"{libdir}:{library_path}" if library_path else libdir


def _with_own_libpython() -> None:
    os.environ["LD_LIBRARY_PATH"] = own_libpython_first(os.environ.get("LD_LIBRARY_PATH", ""))


def _check_numpy() -> None:
    """PyTriton 0.7 pins numpy < 2; with numpy 2 installed anyway (by another package) the server starts and answers
    every request with an empty tensor. Refuse up front instead."""
    from importlib.metadata import requires

    pinned = any(r.replace(" ", "").startswith("numpy<2") for r in requires("nvidia-pytriton") or [])
    if pinned and int(np.__version__.split(".")[0]) >= 2:
        raise RuntimeError(f"this PyTriton needs numpy < 2 (found {np.__version__}): pip install 'numpy<2'")


def _stop_on_signals() -> threading.Event:
    """SIGINT and SIGTERM both stop the server cleanly (a shell's `cmd &` starts it with SIGINT ignored, and a bare
    SIGTERM would orphan tritonserver and leak its shared memory). The event says that a stop was asked for:
    PyTriton may catch the KeyboardInterrupt itself and return as it does when tritonserver dies."""
    import signal

    asked = threading.Event()

    def stop(signum, frame):
        asked.set()
        raise KeyboardInterrupt

    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGTERM, stop)
    return asked


def serve(stylizer: Stylizer, name: str = "stylize", host: str = "127.0.0.1", port: int = 8000,
          max_batch: int = 8, on_ready: Callable[[], None] = lambda: None,
          max_pixels: int = REQUEST_MAX_PIXELS) -> None:  # fmt: skip
    """Run until interrupted (Ctrl-C / SIGINT); HTTP on `port`, gRPC on `port` + 1, metrics on `port` + 2.

    HTTP requests pass runtime.request_guard first (at most `max_batch` images of `max_pixels` each), which forwards
    them to tritonserver's own HTTP port on loopback. Raises ServerStopped when tritonserver ends on its own."""
    from runtime.request_guard import GrpcGuard, Limits, RequestGuard

    try:
        from pytriton.decorators import batch
        from pytriton.model_config import DynamicBatcher, ModelConfig, Tensor
        from pytriton.triton import Triton, TritonConfig
    except ImportError:
        raise RuntimeError("toolkit serve needs PyTriton (pip install 'fast-style-toolkit[serve]')") from None

    _check_numpy()

    @batch
    def infer(image: np.ndarray) -> dict[str, np.ndarray]:
        return {OUTPUT: np.stack(stylizer.stylize_arrays(list(image), batch_size=max_batch))}

    stop_asked = _stop_on_signals()
    _with_own_libpython()
    http_upstream, grpc_upstream = _free_loopback_port(), _free_loopback_port()
    config = TritonConfig(
        http_address="127.0.0.1", http_port=http_upstream, grpc_address="127.0.0.1", grpc_port=grpc_upstream,
        metrics_address=host, metrics_port=port + 2, allow_gpu_metrics=False, exit_timeout_secs=5,
    )  # fmt: skip
    limits = Limits(max_batch=max_batch, max_pixels=max_pixels)
    guard = RequestGuard(host, port, http_upstream, limits)
    grpc_guard = GrpcGuard(host, port + 1, grpc_upstream, limits)
    before = _backend_scratch()
    with tempfile.TemporaryDirectory(prefix="toolkit-serve-") as workspace:
        ours: set[str] = set()
        try:
            with Triton(config=config, workspace=os.path.join(workspace, "w")) as triton:
                triton.bind(
                    model_name=name, infer_func=infer,
                    inputs=[Tensor(name=INPUT, dtype=np.uint8, shape=(-1, -1, 3))],
                    outputs=[Tensor(name=OUTPUT, dtype=np.uint8, shape=(-1, -1, 3))],
                    config=ModelConfig(
                        max_batch_size=max_batch, batcher=DynamicBatcher(max_queue_delay_microseconds=2000)
                    ),
                    strict=True,
                )  # fmt: skip
                triton.run()
                ours = _backend_scratch() - before  # made while our server started (see _backend_scratch)
                guard.start()
                grpc_guard.start()
                on_ready()
                try:
                    triton.serve()
                finally:
                    guard.shutdown()
                    grpc_guard.stop()
            if not stop_asked.is_set():  # serve() returned without being asked to: tritonserver is gone
                raise ServerStopped("tritonserver stopped on its own (its log is above); the server is down")
            raise KeyboardInterrupt
        finally:
            guard.server_close()
            grpc_guard.stop()
            for folder in ours:  # a tritonserver that crashed left them; after a clean stop they are gone already
                shutil.rmtree(folder, ignore_errors=True)
