"""`toolkit run --ray` on a cluster with GPUs, simulated: a local Ray that declares two GPUs this machine lacks.

Ray schedules by declared resources, so the GPU path runs (one GPU per actor, its own CUDA_VISIBLE_DEVICES, the
Stylizer asked for CUDA) up to the point where CUDA itself is needed; there it must stop with one clear line.
"""

import os

import pytest
from PIL import Image
from typer.testing import CliRunner

from tests.helpers import assert_one_line_error, descendants, listening_addresses, photo_like, ray_sandbox
from toolkit.cli import app

ray = pytest.importorskip("ray")
onnxruntime = pytest.importorskip("onnxruntime")
pytestmark = [pytest.mark.timeout(300), pytest.mark.own_interpreter]  # Ray: see test_ray.py
runner = CliRunner()


@pytest.fixture(scope="module")
def gpu_cluster():
    with ray_sandbox(), pytest.MonkeyPatch.context() as patch:
        patch.setattr(ray._private.ray_constants, "ENABLE_RAY_CLUSTER", False)  # loopback, as `--ray local` does
        ray.init(num_cpus=2, num_gpus=2, include_dashboard=False, log_to_driver=False,
                 object_store_memory=256 * 2**20)  # fmt: skip
        listeners = listening_addresses(descendants(os.getpid()) | {os.getpid()})
        assert {address for address, _, _ in listeners} <= {"127.0.0.1", "::1", "::ffff:127.0.0.1"}, listeners
        yield
        ray.shutdown()


def test_gpu_actors_without_a_cuda_backend_stop_with_one_line_and_cpu_actors_still_work(
    gpu_cluster, exported_style, tmp_path
):
    if "CUDAExecutionProvider" in onnxruntime.get_available_providers():
        pytest.skip("this machine has a CUDA backend: the declared GPUs would be used for real")
    _, model = exported_style
    (tmp_path / "in").mkdir()
    for i, shape in enumerate([(40, 56), (40, 56), (33, 21), (40, 56)]):
        Image.fromarray(photo_like(shape, i)).save(tmp_path / "in" / f"{i}.png")
    args = ["run", str(tmp_path / "in"), "--model", str(model), "--ray", "auto", "--quiet"]
    result = runner.invoke(app, [*args, "-o", str(tmp_path / "gpu")])
    assert_one_line_error(result, "--ray: the Stylizer actor on ", " with GPU ", "cannot run the model",
                          "no CUDA provider", "install a CUDA backend there or pass --device cpu")  # fmt: skip
    assert not list((tmp_path / "gpu").rglob("*.*"))

    on_cpu = runner.invoke(app, [*args, "-o", str(tmp_path / "cpu"), "--device", "cpu"])
    local = runner.invoke(app, ["run", str(tmp_path / "in"), "--model", str(model), "-o", str(tmp_path / "local")])
    assert on_cpu.exit_code == local.exit_code == 0, on_cpu.output
    for path in (tmp_path / "local").iterdir():
        assert (tmp_path / "cpu" / path.name).read_bytes() == path.read_bytes()
