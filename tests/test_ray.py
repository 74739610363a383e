"""`toolkit run --ray`: the folder job on a local Ray cluster gives the same files as a local run."""

import os
import shutil
import tempfile
from pathlib import Path

import pytest
from PIL import Image
from typer.testing import CliRunner

from tests.helpers import photo_like
from toolkit.cli import app

ray = pytest.importorskip("ray")
runner = CliRunner()
pytestmark = pytest.mark.timeout(300)  # a Ray scheduling mistake waits forever instead of failing


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    """A local Ray instance on loopback that writes only under a temporary folder (a short one: Ray's sockets live
    there and AF_UNIX paths are limited to 107 characters)."""
    temp = tempfile.mkdtemp(prefix="ray", dir="/tmp")
    env = {"RAY_USAGE_STATS_ENABLED": "0", "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0", "RAY_AUTH_MODE": "disabled"}
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    home_ray = Path.home() / ".ray"
    had_home_ray = home_ray.exists()
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, object_store_memory=256 * 2**20,
             _temp_dir=temp)  # fmt: skip
    yield
    ray.shutdown()
    assert home_ray.exists() == had_home_ray  # nothing written into the home folder
    shutil.rmtree(temp, ignore_errors=True)
    for key, value in saved.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value


def test_ray_writes_the_same_bytes_as_a_local_run_resumes_and_names_failures(cluster, exported_style, tmp_path):
    _, model = exported_style
    (tmp_path / "in" / "sub").mkdir(parents=True)
    for name, shape, seed in [("a.png", (60, 80), 1), ("b.png", (60, 80), 2), ("sub/c.jpg", (45, 33), 3),
                              ("d.png", (31, 17), 4), ("e.png", (60, 80), 5)]:  # fmt: skip
        Image.fromarray(photo_like(shape, seed)).save(tmp_path / "in" / name)
    (tmp_path / "in" / "broken.jpg").write_bytes(b"not a jpeg")
    args = ["--model", str(model), "--batch-size", "2"]
    local = runner.invoke(app, ["run", str(tmp_path / "in"), "-o", str(tmp_path / "local"), *args])
    remote = runner.invoke(app, ["run", str(tmp_path / "in"), "-o", str(tmp_path / "ray"), "--ray", "local", *args])
    assert local.exit_code == remote.exit_code == 1  # the broken file fails in both, the rest is written
    assert "broken.jpg" in remote.stderr and "done 5, skipped 0, failed 1" in remote.stderr
    files = sorted(p.relative_to(tmp_path / "local") for p in (tmp_path / "local").rglob("*.*"))
    assert len(files) == 5
    for f in files:
        assert (tmp_path / "ray" / f).read_bytes() == (tmp_path / "local" / f).read_bytes()
    assert not list((tmp_path / "ray").rglob(".*"))  # no temporary file left behind
    (tmp_path / "ray" / "a.png").unlink()
    again = runner.invoke(app, ["run", str(tmp_path / "in"), "-o", str(tmp_path / "ray"), "--ray", "local", *args])
    assert "done 1, skipped 4, failed 1" in again.stderr
    assert (tmp_path / "ray" / "a.png").read_bytes() == (tmp_path / "local" / "a.png").read_bytes()


def test_ray_refuses_videos_and_a_missing_model(cluster, tmp_path):
    (tmp_path / "clip.mp4").write_bytes(b"")
    result = runner.invoke(app, ["run", str(tmp_path / "clip.mp4"), "-o", str(tmp_path / "o"), "--ray", "local"])
    assert result.exit_code == 2 and "--ray runs image files" in result.stderr
    Image.fromarray(photo_like((9, 9), 1)).save(tmp_path / "x.png")
    result = runner.invoke(app, ["run", str(tmp_path / "x.png"), "-o", str(tmp_path / "o"), "--ray", "local",
                                 "--model", str(tmp_path / "none.onnx")])  # fmt: skip
    assert result.exit_code == 2 and "model not found" in result.stderr
