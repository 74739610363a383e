"""A `toolkit export --triton` repository handed to a real `tritonserver` (2.51, the binary inside PyTriton's wheel).

The server loads the repository as written, validates its config, serves it, and `toolkit run --server` gets the
same bytes as a local run. That binary has no onnxruntime backend (NVIDIA's container has), so a Python-based backend
of the same name (tests/tritonserver_backends/onnxruntime/model.py) runs the ONNX file in its place.
"""

import os
import shutil
import signal
import subprocess
import sysconfig
import time
from pathlib import Path

import pytest
from PIL import Image
from typer.testing import CliRunner

from export.triton import check_config
from runtime.serving import own_libpython_first
from tests.helpers import free_port, photo_like, processes_mentioning
from toolkit.cli import app

pytriton = pytest.importorskip("pytriton")
http = pytest.importorskip("tritonclient.http")
pytestmark = pytest.mark.timeout(300)
runner = CliRunner()

TRITON = Path(pytriton.__file__).parent / "tritonserver"
VENDORED_LIBS = Path(pytriton.__file__).parent.parent / "nvidia_pytriton.libs"
SHIM = Path(__file__).parent / "tritonserver_backends" / "onnxruntime" / "model.py"
# Edits that tritonserver itself refuses when it reads the repository, and the words of its refusal.
BROKEN = {
    "wrongname": (('name: "wrongname"', 'name: "other"'), "directory name must equal model name"),
    "toobig": (("preferred_batch_size: [ 4, 8 ]", "preferred_batch_size: [ 4, 16 ]"), "preferred size must be <="),
    "nobatch": (("max_batch_size: 8", "max_batch_size: 0"), "preferred size must be <="),
}


def backend_directory(root: Path) -> Path:
    """PyTriton's Python backend (its library, utils and the stub for this Python) plus the onnxruntime stand-in."""
    python = root / "python"
    python.mkdir(parents=True)
    stub = TRITON / "python_backend_stubs" / sysconfig.get_python_version() / "triton_python_backend_stub"
    if not stub.exists():
        pytest.skip(f"this PyTriton has no Python backend stub for Python {sysconfig.get_python_version()}")
    for source in [*(TRITON / "backends" / "python").glob("*.*"), stub]:
        shutil.copy2(source, python / source.name)
    (root / "onnxruntime").mkdir()
    shutil.copy2(SHIM, root / "onnxruntime" / "model.py")
    return root


@pytest.fixture(scope="module")
def repository(exported_style, tmp_path_factory):
    """`toolkit export --triton` writes REPO/mosaic; copies of it, each with one edit, sit beside it."""
    checkpoint, _ = exported_style
    root = tmp_path_factory.mktemp("triton")
    result = runner.invoke(app, ["export", str(checkpoint), "-o", str(root / "out"), "--name", "mosaic",
                                 "--no-check", "--triton", str(root / "repo")])  # fmt: skip
    assert result.exit_code == 0, result.output
    repo = root / "repo"
    for name, ((old, new), _) in BROKEN.items():
        shutil.copytree(repo / "mosaic", repo / name)
        config = repo / name / "config.pbtxt"
        text = config.read_text().replace('name: "mosaic"', f'name: "{name}"')
        assert old in text
        config.write_text(text.replace(old, new))
    return repo


@pytest.fixture(scope="module")
def tritonserver(repository, tmp_path_factory):
    root = tmp_path_factory.mktemp("tritonserver")
    port = free_port()
    env = dict(os.environ)
    env["LD_LIBRARY_PATH"] = own_libpython_first(
        ":".join(filter(None, [str(VENDORED_LIBS), env.get("LD_LIBRARY_PATH")]))
    )
    shm_before = set(os.listdir("/dev/shm"))
    log = root / "tritonserver.log"
    with log.open("w") as out:
        process = subprocess.Popen(
            [str(TRITON / "bin" / "tritonserver"), f"--model-repository={repository}",
             f"--backend-directory={backend_directory(root / 'backends')}", "--model-control-mode=explicit",
             "--load-model=mosaic", "--allow-gpu-metrics=false", "--exit-timeout-secs=10",
             "--http-address=127.0.0.1", f"--http-port={port}", "--grpc-address=127.0.0.1",
             f"--grpc-port={port + 1}", "--metrics-address=127.0.0.1", f"--metrics-port={port + 2}"],
            stdout=out, stderr=subprocess.STDOUT, env=env,
        )  # fmt: skip
    client = http.InferenceServerClient(f"127.0.0.1:{port}")
    try:
        deadline = time.monotonic() + 90
        while not _ready(client):
            if process.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"tritonserver did not start:\n{log.read_text()[-3000:]}")
            time.sleep(0.5)
        yield f"127.0.0.1:{port}", client, log
    finally:
        client.close()
        process.send_signal(signal.SIGTERM)  # SIGKILL would leave its stubs and their shared memory behind
        try:
            code = process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            process.kill()
            raise
    assert code == 0, log.read_text()[-3000:]
    assert processes_mentioning(str(root)) == []  # the backend stubs are gone with the server
    assert set(os.listdir("/dev/shm")) <= shm_before


def _ready(client) -> bool:
    try:
        return client.is_server_ready()
    except Exception:  # not listening yet
        return False


def test_tritonserver_loads_the_repository_with_its_config(tritonserver, repository):
    _, client, _ = tritonserver
    assert client.is_model_ready("mosaic")
    served = client.get_model_config("mosaic")
    assert served["platform"] == "onnxruntime_onnx" and served["backend"] == "onnxruntime"
    assert served["max_batch_size"] == 8 and served["dynamic_batching"]["preferred_batch_size"] == [4, 8]
    assert [(t["name"], t["data_type"], t["dims"]) for t in served["input"]] == [("image", "TYPE_UINT8", [-1, -1, 3])]
    assert [(t["name"], t["data_type"], t["dims"]) for t in served["output"]] == [
        ("stylized", "TYPE_UINT8", [-1, -1, 3])
    ]
    assert served["instance_group"][0]["kind"] == "KIND_CPU"


def test_tritonserver_and_our_check_refuse_the_same_broken_configs(tritonserver, repository):
    from tritonclient.utils import InferenceServerException

    _, client, log = tritonserver
    for name, (_, refusal) in BROKEN.items():
        assert check_config((repository / name / "config.pbtxt").read_text(), name) != []
        with pytest.raises(InferenceServerException, match=f"failed to load '{name}'"):
            client.load_model(name)
        why = [line for line in log.read_text().splitlines() if f"model directory '{name}'" in line]
        assert why and refusal in why[-1], why  # the server's log says what it refused


def test_a_run_against_the_repository_writes_the_same_files_as_a_local_one(tritonserver, exported_style, tmp_path):
    address, _, _ = tritonserver
    _, model = exported_style
    (tmp_path / "in").mkdir()
    for name, shape, seed in [("a.png", (60, 80), 1), ("b.png", (60, 80), 2), ("c.jpg", (45, 33), 3),
                              ("d.png", (60, 80), 4), ("e.png", (60, 80), 5), ("f.png", (60, 80), 6)]:  # fmt: skip
        Image.fromarray(photo_like(shape, seed)).save(tmp_path / "in" / name)
    remote = runner.invoke(app, ["run", str(tmp_path / "in"), "-o", str(tmp_path / "remote"), "--server", address,
                                 "--model-name", "mosaic", "--batch-size", "4"])  # fmt: skip
    assert remote.exit_code == 0, remote.output
    local = runner.invoke(app, ["run", str(tmp_path / "in"), "-o", str(tmp_path / "local"), "--model", str(model),
                                "--device", "cpu"])  # as the stand-in backend runs  # fmt: skip
    assert local.exit_code == 0, local.output
    files = sorted(p.name for p in (tmp_path / "local").iterdir())
    assert files == ["a.png", "b.png", "c.jpg", "d.png", "e.png", "f.png"]
    for name in files:
        assert (tmp_path / "remote" / name).read_bytes() == (tmp_path / "local" / name).read_bytes(), name
