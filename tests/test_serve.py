"""`toolkit serve` (a real Triton server through PyTriton) and `toolkit run --server`, end to end on loopback."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from tests.helpers import assert_one_line_error, free_port, photo_like, processes_mentioning
from toolkit.cli import app

pytest.importorskip("pytriton")
pytest.importorskip("tritonclient.http")
runner = CliRunner()


def start_server(model: Path, port: int, log: Path) -> subprocess.Popen:
    """`toolkit serve` in a subprocess, logging to `log`; returns once it says it is serving."""
    with log.open("w") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "toolkit.cli", "serve", "--model", str(model), "--port", str(port)],
            stdout=out, stderr=subprocess.STDOUT,
        )  # fmt: skip
    deadline = time.monotonic() + 90
    while "serving" not in log.read_text():
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            pytest.fail(f"toolkit serve did not start:\n{log.read_text()[-3000:]}")
        time.sleep(0.5)
    return process


@pytest.fixture(scope="module")
def server(exported_style, tmp_path_factory):
    _, model = exported_style
    port = free_port()
    log = tmp_path_factory.mktemp("serve") / "serve.log"
    shm_before = set(os.listdir("/dev/shm"))
    process = start_server(model, port, log)
    yield f"127.0.0.1:{port}"
    process.send_signal(signal.SIGTERM)
    assert process.wait(timeout=60) == 0, log.read_text()[-3000:]
    assert processes_mentioning(f"--metrics-port {port + 2}") == []  # tritonserver is gone
    assert processes_mentioning("triton_python_backend_stub") == []  # and its Python stub
    assert set(os.listdir("/dev/shm")) <= shm_before  # and their shared memory with them


def test_a_remote_run_writes_the_same_files_as_a_local_one_and_resumes(server, exported_style, tmp_path):
    _, model = exported_style
    (tmp_path / "in" / "sub").mkdir(parents=True)
    for name, shape, seed in [("a.png", (60, 80), 1), ("b.png", (60, 80), 2), ("sub/c.jpg", (45, 33), 3),
                              ("tiny.png", (3, 5), 4)]:  # fmt: skip
        Image.fromarray(photo_like(shape, seed)).save(tmp_path / "in" / name)
    alpha = np.zeros((60, 80), np.uint8)
    alpha[10:50, 20:60] = 255  # a cut-out: the server cannot take its statistics from the opaque pixels
    Image.fromarray(np.dstack([photo_like((60, 80), 5), alpha]), "RGBA").save(tmp_path / "in" / "cut.png")
    remote = runner.invoke(app, ["run", str(tmp_path / "in"), "-o", str(tmp_path / "remote"), "--server", server])
    assert remote.exit_code == 0, remote.output
    assert "note: cut-outs ran pasted on mid-grey (--cutouts on-grey): triton cannot" in remote.stderr
    local = runner.invoke(app, ["run", str(tmp_path / "in"), "-o", str(tmp_path / "local"), "--model", str(model),
                                "--cutouts", "on-grey"])  # fmt: skip
    assert local.exit_code == 0, local.output
    files = sorted(p.relative_to(tmp_path / "local") for p in (tmp_path / "local").rglob("*.*"))
    assert [str(f) for f in files] == ["a.png", "b.png", "cut.png", "sub/c.jpg", "tiny.png"]
    for f in files:
        assert (tmp_path / "remote" / f).read_bytes() == (tmp_path / "local" / f).read_bytes()
    again = runner.invoke(app, ["run", str(tmp_path / "in"), "-o", str(tmp_path / "remote"), "--server", server])
    assert "done 0, skipped 5" in again.stderr
    host, port = server.rsplit(":", 1)
    grpc = runner.invoke(app, ["run", str(tmp_path / "in"), "-o", str(tmp_path / "grpc"), "--server",
                               f"grpc://{host}:{int(port) + 1}", "--batch-size", "2"])  # fmt: skip
    assert grpc.exit_code == 0 and f"triton on server grpc://{host}:{int(port) + 1}" in grpc.stderr, grpc.output
    for f in files:
        assert (tmp_path / "grpc" / f).read_bytes() == (tmp_path / "local" / f).read_bytes()


def test_the_server_batches_images_of_one_size(server):
    import tritonclient.http as http

    client = http.InferenceServerClient(server)
    batch = np.stack([photo_like((40, 56), s) for s in range(3)])
    request = http.InferInput("image", list(batch.shape), "UINT8")
    request.set_data_from_numpy(batch)
    out = client.infer("stylize", [request]).as_numpy("stylized")
    assert out.shape == batch.shape and out.dtype == np.uint8
    config = client.get_model_config("stylize")
    assert config["max_batch_size"] == 8 and "dynamic_batching" in config


def test_a_wrong_model_name_or_no_server_is_one_line(server, tmp_path):
    Image.fromarray(photo_like((20, 20), 1)).save(tmp_path / "x.png")
    result = runner.invoke(app, ["run", str(tmp_path / "x.png"), "-o", str(tmp_path / "o"), "--server", server,
                                 "--model-name", "nope"])  # fmt: skip
    assert_one_line_error(result, "no ready model 'nope' (--model-name)")
    result = runner.invoke(app, ["run", str(tmp_path / "x.png"), "-o", str(tmp_path / "o"), "--server",
                                 f"127.0.0.1:{free_port()}"])  # fmt: skip
    assert_one_line_error(result, "cannot reach a Triton server")
    result = runner.invoke(app, ["run", str(tmp_path / "x.png"), "-o", str(tmp_path / "o"), "--server",
                                 f"grpc://127.0.0.1:{free_port()}"])  # fmt: skip
    assert_one_line_error(result, "cannot reach a Triton server at grpc://127.0.0.1:")
    result = runner.invoke(app, ["run", str(tmp_path / "x.png"), "-o", str(tmp_path / "o"), "--server",
                                 "ftp://127.0.0.1:1"])  # fmt: skip
    assert_one_line_error(result, "give HOST:PORT, http://HOST:PORT or grpc://HOST:PORT")
    result = runner.invoke(app, ["run", str(tmp_path / "x.png"), "-o", str(tmp_path / "o"), "--server", server,
                                 "--model", "mosaic"])  # fmt: skip
    assert_one_line_error(result, "--server runs the server's model")


def test_requests_no_picture_needs_are_refused_at_the_door_and_the_server_keeps_serving(server):
    """104 bytes announcing a 1×100000×100000×3 image made tritonserver abort (std::bad_alloc); an empty image gave a
    500 carrying a Python traceback. Both are refused before tritonserver, in one line, over HTTP and gRPC."""
    import json
    import urllib.error
    import urllib.request

    import tritonclient.grpc as grpc
    import tritonclient.http as http
    from tritonclient.utils import InferenceServerException

    bomb = {"inputs": [{"name": "image", "shape": [1, 100000, 100000, 3], "datatype": "UINT8", "data": [1, 2, 3]}]}
    request = urllib.request.Request(f"http://{server}/v2/models/stylize/infer", json.dumps(bomb).encode())
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(request, timeout=30)
    assert refused.value.code == 400
    assert "100000×100000 is more than this server's 40,000,000 pixels" in json.loads(refused.value.read())["error"]
    host, port = server.rsplit(":", 1)
    for module, url in ((http, server), (grpc, f"{host}:{int(port) + 1}")):
        client = module.InferenceServerClient(url)
        empty = module.InferInput("image", [1, 0, 64, 3], "UINT8")
        empty.set_data_from_numpy(np.zeros((1, 0, 64, 3), np.uint8))
        with pytest.raises(InferenceServerException) as error:
            client.infer("stylize", [empty])
        assert "an empty image (1×0×64×3): nothing to stylize" in str(error.value)
        assert "Traceback" not in str(error.value) and "/" not in str(error.value).split("nothing")[0][-60:]
        many = np.zeros((9, 8, 8, 3), np.uint8)  # more than --max-batch
        too_many = module.InferInput("image", list(many.shape), "UINT8")
        too_many.set_data_from_numpy(many)
        with pytest.raises(InferenceServerException, match="a batch of 9 is more than this server's 8"):
            client.infer("stylize", [too_many])
        photo = photo_like((40, 56), 1)[None]
        fine = module.InferInput("image", list(photo.shape), "UINT8")
        fine.set_data_from_numpy(photo)
        assert client.infer("stylize", [fine]).as_numpy("stylized").shape == photo.shape  # still serving


def tritonserver_pid(port: int) -> int:
    for proc in Path("/proc").iterdir():
        try:
            cmdline = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if "bin/tritonserver" in cmdline and f"--metrics-port {port + 2}" in cmdline:
            return int(proc.name)
    raise AssertionError("no tritonserver found")


def test_a_server_that_crashes_exits_non_zero_and_leaves_nothing_behind(exported_style, tmp_path):
    from runtime.serving import _backend_scratch

    _, model = exported_style
    port = free_port()
    scratch_before, workspaces_before = _backend_scratch(), set(os.listdir("/tmp"))
    log = tmp_path / "serve.log"
    process = start_server(model, port, log)
    os.kill(tritonserver_pid(port), signal.SIGKILL)  # what an abort looks like from outside
    assert process.wait(timeout=60) == 1, log.read_text()[-3000:]
    assert "error: tritonserver stopped on its own" in log.read_text()
    assert _backend_scratch() <= scratch_before
    assert not [n for n in set(os.listdir("/tmp")) - workspaces_before if n.startswith("toolkit-serve-")]


def test_serve_refuses_a_numpy_that_pytriton_cannot_use(monkeypatch):
    from importlib.metadata import requires

    import runtime.serving

    if not any(r.startswith("numpy<2") for r in requires("nvidia-pytriton") or []):
        pytest.skip("this PyTriton does not pin numpy < 2")

    monkeypatch.setattr(runtime.serving.np, "__version__", "2.4.6")
    with pytest.raises(RuntimeError, match="needs numpy < 2"):
        runtime.serving._check_numpy()
