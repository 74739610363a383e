"""`toolkit run --ray`: the folder job on a local Ray cluster gives the same files as a local run."""

import os

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from runtime.ray_jobs import connect
from tests.helpers import descendants, listening_addresses, nchw_model, photo_like, ray_sandbox
from toolkit.cli import app

ray = pytest.importorskip("ray")
runner = CliRunner()
pytestmark = [
    pytest.mark.timeout(300),  # a Ray scheduling mistake waits forever instead of failing
    pytest.mark.own_interpreter,  # Ray leaves threads and its crash handler in the process: conftest.py
]


@pytest.fixture(scope="module")
def cluster():
    """The local Ray instance that `--ray local` starts, writing only under a temporary folder."""
    with ray_sandbox():
        connect("local")
        yield
        ray.shutdown()


def test_a_local_ray_listens_on_loopback_only(cluster):
    ray.data.range(4).map_batches(lambda b: b, batch_size=2).take_all()  # bring up workers as a job would
    listeners = listening_addresses(descendants(os.getpid()) | {os.getpid()})
    assert len({pid for _, _, pid in listeners}) >= 3  # GCS, raylet and workers were found (the check can fail)
    assert {address for address, _, _ in listeners} <= {"127.0.0.1", "::1", "::ffff:127.0.0.1"}, listeners


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
    assert all(line.startswith(("failed: ", "images ", "done ")) for line in remote.stderr.splitlines()), remote.stderr
    files = sorted(p.relative_to(tmp_path / "local") for p in (tmp_path / "local").rglob("*.*"))
    assert len(files) == 5
    for f in files:
        assert (tmp_path / "ray" / f).read_bytes() == (tmp_path / "local" / f).read_bytes()
    assert not list((tmp_path / "ray").rglob(".*"))  # no temporary file left behind
    (tmp_path / "ray" / "a.png").unlink()
    again = runner.invoke(app, ["run", str(tmp_path / "in"), "-o", str(tmp_path / "ray"), "--ray", "local", *args])
    assert "done 1, skipped 4, failed 1" in again.stderr
    assert (tmp_path / "ray" / "a.png").read_bytes() == (tmp_path / "local" / "a.png").read_bytes()


def test_the_actors_notes_are_shown_once_each_as_a_local_run_shows_them(cluster, tmp_path):
    """A foreign model of one fixed size: loading it gives a note (the channel order), and a cut-out gives another
    (its statistics cannot come from the subject alone). Two actors each load the model and say the same."""
    import onnx.helper as h

    nchw_model(tmp_path / "fixed.onnx", [h.make_node("Identity", ["x"], ["y"])], shape=(1, 3, 8, 8),
               out_shape=(1, 3, 8, 8))  # fmt: skip
    (tmp_path / "in").mkdir()
    cut = np.dstack([photo_like((24, 30), 1), np.zeros((24, 30), np.uint8)])
    cut[6:18, 8:22, 3] = 255  # an opaque subject on a transparent ground
    Image.fromarray(cut, "RGBA").save(tmp_path / "in" / "cut.png")
    for i in range(9):  # ten one-file batches: both actors get some, load the model, and say the same
        Image.fromarray(photo_like((20, 28), i + 2)).save(tmp_path / "in" / f"p{i}.png")
    args = ["--model", str(tmp_path / "fixed.onnx"), "--batch-size", "1"]
    local = runner.invoke(app, ["run", str(tmp_path / "in"), "-o", str(tmp_path / "local"), *args])
    remote = runner.invoke(app, ["run", str(tmp_path / "in"), "-o", str(tmp_path / "ray"), "--ray", "local",
                                 "--ray-actors", "2", *args])  # fmt: skip
    assert local.exit_code == remote.exit_code == 0, remote.output

    def notes(result) -> list[str]:
        return [line for line in result.stderr.splitlines() if line.startswith("note: ")]

    assert any("cut-outs ran pasted on mid-grey" in n for n in notes(local)) and len(notes(local)) >= 2
    assert sorted(notes(remote)) == sorted(notes(local))  # each once, though every actor said them
    for name in ["cut.png", *(f"p{i}.png" for i in range(9))]:
        assert (tmp_path / "ray" / name).read_bytes() == (tmp_path / "local" / name).read_bytes()


def test_ray_refuses_videos_and_a_missing_model(cluster, tmp_path):
    (tmp_path / "clip.mp4").write_bytes(b"")
    result = runner.invoke(app, ["run", str(tmp_path / "clip.mp4"), "-o", str(tmp_path / "o"), "--ray", "local"])
    assert result.exit_code == 2 and "--ray runs image files" in result.stderr
    Image.fromarray(photo_like((9, 9), 1)).save(tmp_path / "x.png")
    result = runner.invoke(app, ["run", str(tmp_path / "x.png"), "-o", str(tmp_path / "o"), "--ray", "local",
                                 "--model", str(tmp_path / "none.onnx")])  # fmt: skip
    assert result.exit_code == 2 and "model not found" in result.stderr


def test_a_cluster_address_nobody_listens_on_is_one_line_and_quick(tmp_path):
    import subprocess
    import sys
    import time

    from tests.helpers import free_port

    Image.fromarray(photo_like((9, 9), 1)).save(tmp_path / "x.png")
    start = time.monotonic()
    result = subprocess.run([sys.executable, "-m", "toolkit.cli", "run", str(tmp_path / "x.png"), "-o",
                             str(tmp_path / "o"), "--ray", f"127.0.0.1:{free_port()}"],
                            capture_output=True, text=True, timeout=120)  # fmt: skip
    assert time.monotonic() - start < 60  # Ray alone retries for minutes
    assert result.returncode == 2 and result.stderr.strip().splitlines() == [
        f"error: --ray {result.args[-1]}: cannot reach the Ray cluster (Connection refused); is it running?"
    ], result.stderr
    (tmp_path / "o").mkdir(exist_ok=True)
    Image.fromarray(photo_like((9, 9), 2)).save(tmp_path / "o" / "x.png")  # nothing left to do: no cluster needed
    finished = subprocess.run(result.args, capture_output=True, text=True, timeout=120)
    assert finished.returncode == 0 and "done 0, skipped 1, failed 0" in finished.stderr, finished.stderr
    auto = subprocess.run([*result.args[:6], str(tmp_path / "o2"), "--ray", "auto"], capture_output=True, text=True,
                          timeout=120, env={**os.environ, "RAY_ADDRESS": result.args[-1]})  # fmt: skip
    assert auto.returncode == 2 and f"--ray auto (RAY_ADDRESS={result.args[-1]}): cannot reach" in auto.stderr
