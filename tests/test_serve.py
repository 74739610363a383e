"""`toolkit serve` (a real Triton server through PyTriton) and `toolkit run --server`, end to end on loopback."""

import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from tests.helpers import assert_one_line_error, free_port, photo_like, processes_mentioning
from toolkit.cli import app

pytest.importorskip("pytriton")
pytest.importorskip("tritonclient.http")
runner = CliRunner()


@pytest.fixture(scope="module")
def server(exported_style, tmp_path_factory):
    _, model = exported_style
    port = free_port()
    log = tmp_path_factory.mktemp("serve") / "serve.log"
    shm_before = set(os.listdir("/dev/shm"))
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
    yield f"127.0.0.1:{port}"
    process.send_signal(signal.SIGTERM)
    assert process.wait(timeout=60) == 0, log.read_text()[-3000:]
    assert processes_mentioning(f"--http-port {port}") == []  # tritonserver and its Python stub are gone
    assert set(os.listdir("/dev/shm")) <= shm_before  # and their shared memory with them


def test_a_remote_run_writes_the_same_files_as_a_local_one_and_resumes(server, exported_style, tmp_path):
    _, model = exported_style
    (tmp_path / "in" / "sub").mkdir(parents=True)
    for name, shape, seed in [("a.png", (60, 80), 1), ("b.png", (60, 80), 2), ("sub/c.jpg", (45, 33), 3),
                              ("tiny.png", (3, 5), 4)]:  # fmt: skip
        Image.fromarray(photo_like(shape, seed)).save(tmp_path / "in" / name)
    remote = runner.invoke(app, ["run", str(tmp_path / "in"), "-o", str(tmp_path / "remote"), "--server", server])
    assert remote.exit_code == 0, remote.output
    local = runner.invoke(app, ["run", str(tmp_path / "in"), "-o", str(tmp_path / "local"), "--model", str(model)])
    assert local.exit_code == 0, local.output
    files = sorted(p.relative_to(tmp_path / "local") for p in (tmp_path / "local").rglob("*.*"))
    assert [str(f) for f in files] == ["a.png", "b.png", "sub/c.jpg", "tiny.png"]
    for f in files:
        assert (tmp_path / "remote" / f).read_bytes() == (tmp_path / "local" / f).read_bytes()
    again = runner.invoke(app, ["run", str(tmp_path / "in"), "-o", str(tmp_path / "remote"), "--server", server])
    assert "done 0, skipped 4" in again.stderr
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


def test_serve_refuses_a_numpy_that_pytriton_cannot_use(monkeypatch):
    from importlib.metadata import requires

    import runtime.serving

    if not any(r.startswith("numpy<2") for r in requires("nvidia-pytriton") or []):
        pytest.skip("this PyTriton does not pin numpy < 2")

    monkeypatch.setattr(runtime.serving.np, "__version__", "2.4.6")
    with pytest.raises(RuntimeError, match="needs numpy < 2"):
        runtime.serving._check_numpy()
