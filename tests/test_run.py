import io
import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
from PIL import Image
from typer.testing import CliRunner

from tests.helpers import assert_one_line_error, photo_like
from toolkit.cli import app

runner = CliRunner()


def make_folder(root):
    (root / "trip" / "day2").mkdir(parents=True)
    Image.fromarray(photo_like((30, 40), 1)).save(root / "trip" / "a.jpg", quality=95)
    Image.fromarray(photo_like((30, 40), 2)).save(root / "trip" / "b.png")
    Image.fromarray(photo_like((17, 23), 3)).save(root / "trip" / "day2" / "c.webp")
    rgba = np.dstack([photo_like((12, 9), 4), np.full((12, 9), 77, np.uint8)])
    Image.fromarray(rgba, "RGBA").save(root / "trip" / "day2" / "d.png")
    return root / "trip"


def run_cli(*args):
    return runner.invoke(app, ["run", *map(str, args)])


def test_a_folder_keeps_its_layout_sizes_formats_and_alpha(exported_style, tmp_path):
    _, model = exported_style
    folder = make_folder(tmp_path)
    result = run_cli(folder, "-o", tmp_path / "out", "--model", model, "--json")
    assert result.exit_code == 0, result.output
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    assert lines[-1] == {
        "summary": True,
        "done": 4,
        "skipped": 0,
        "failed": 0,
        "backend": "onnxruntime",
        "device": "cpu",
    }
    out = tmp_path / "out"
    written = sorted(str(p.relative_to(out)) for p in out.rglob("*") if p.is_file())
    assert written == ["a.jpg", "b.png", "day2/c.webp", "day2/d.png"]
    assert Image.open(out / "a.jpg").format == "JPEG" and Image.open(out / "day2" / "c.webp").size == (23, 17)
    d = Image.open(out / "day2" / "d.png")
    assert d.mode == "RGBA" and d.size == (9, 12) and (np.asarray(d)[..., 3] == 77).all()

    again = run_cli(folder, "-o", out, "--model", model, "--json")
    assert json.loads(again.stdout.splitlines()[-1])["skipped"] == 4
    converted = run_cli(
        folder / "a.jpg", "-o", tmp_path / "png", "--model", model, "--format", "png", "--max-size", "20"
    )
    assert converted.exit_code == 0 and Image.open(tmp_path / "png" / "a.png").size == (20, 15)


def test_bad_inputs_fail_alone_with_one_line_each(exported_style, tmp_path):
    _, model = exported_style
    folder = tmp_path / "in"
    folder.mkdir()
    Image.fromarray(photo_like((20, 20), 1)).save(folder / "good.png")
    (folder / "empty.png").write_bytes(b"")
    (folder / "text.jpg").write_text("hello")
    buffer = io.BytesIO()
    Image.fromarray(photo_like((64, 64), 2)).save(buffer, "JPEG")
    (folder / "truncated.jpg").write_bytes(buffer.getvalue()[: len(buffer.getvalue()) // 3])
    Image.new("RGB", (300, 300)).save(folder / "bomb.png")
    (folder / "notes.txt").write_text("not an image")
    os.symlink(folder / "gone.png", folder / "dangling.png")
    result = run_cli(folder, folder / "notes.txt", folder / "dangling.png", "-o", tmp_path / "out", "--model", model,
                     "--max-pixels", "50000")  # fmt: skip
    assert result.exit_code == 1
    failures = [line for line in result.stderr.splitlines() if line.startswith("failed:")]
    expected = {"empty.png": "empty file", "text.jpg": "not an image", "truncated.jpg": "cannot decode image",
                "bomb.png": "too large", "notes.txt": "not an image", "dangling.png": "no such file"}  # fmt: skip
    assert len(failures) == len(expected)
    for name, fragment in expected.items():
        assert any(name in line and fragment in line for line in failures), (name, failures)
    assert "done 1, skipped 0, failed 6" in result.stderr
    assert [p.name for p in (tmp_path / "out").iterdir()] == ["good.png"]


def test_errors_that_stop_the_job(exported_style, tmp_path, monkeypatch):
    import runtime.bundled

    _, model = exported_style
    monkeypatch.setattr(runtime.bundled, "styles_folder", lambda: tmp_path / "no-styles")
    Image.fromarray(photo_like((20, 20), 1)).save(tmp_path / "x.png")
    blocker = tmp_path / "file"
    blocker.write_text("")
    assert_one_line_error(run_cli(tmp_path / "x.png", "-o", blocker / "out", "--model", model), "cannot write")
    (tmp_path / "bad.onnx").write_bytes(b"garbage")
    assert_one_line_error(
        run_cli(tmp_path / "x.png", "-o", tmp_path / "o", "--model", tmp_path / "bad.onnx"), "bad.onnx"
    )
    assert_one_line_error(
        run_cli(tmp_path / "x.png", "-o", tmp_path / "o"), "no bundled styles are installed", "--model"
    )
    assert_one_line_error(
        run_cli(tmp_path / "x.png", "-o", tmp_path / "o", "--model", model, "--backend", "x"), "backend"
    )


def test_stdin_to_stdout(exported_style, tmp_path):
    _, model = exported_style
    buffer = io.BytesIO()
    Image.fromarray(photo_like((21, 34), 5)).save(buffer, "PNG")
    result = runner.invoke(app, ["run", "-", "-o", "-", "--model", str(model)], input=buffer.getvalue())
    assert result.exit_code == 0, result.stderr
    image = Image.open(io.BytesIO(result.stdout_bytes))
    assert image.format == "PNG" and image.size == (34, 21)


def test_a_killed_run_leaves_no_partial_output_and_resumes(exported_style, tmp_path):
    _, model = exported_style
    folder = tmp_path / "many"
    folder.mkdir()
    for i in range(40):
        Image.fromarray(photo_like((160, 200), i)).save(folder / f"{i:02d}.png")
    out = tmp_path / "out"
    command = [sys.executable, "-m", "toolkit", "run", str(folder), "-o", str(out), "--model", str(model),
               "--batch-size", "1", "-q"]  # fmt: skip
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 60
    while time.time() < deadline and len(list(out.glob("*.png"))) < 3:
        time.sleep(0.05)
    process.send_signal(signal.SIGKILL)
    process.wait()
    finished = sorted(p.name for p in out.glob("*.png"))
    assert 3 <= len(finished) < 40
    for name in finished:  # every output under its final name is complete
        Image.open(out / name).load()
    result = run_cli(folder, "-o", out, "--model", model, "--json")
    summary = json.loads(result.stdout.splitlines()[-1])
    assert summary["skipped"] == len(finished) and summary["done"] == 40 - len(finished)
    assert not [p for p in out.iterdir() if p.name.startswith(".")]


def test_outputs_never_replace_inputs_or_each_other(exported_style, tmp_path):
    _, model = exported_style
    for folder in ("a", "b"):
        (tmp_path / folder).mkdir()
        Image.fromarray(photo_like((16, 16), 1)).save(tmp_path / folder / "x.png")
    Image.fromarray(photo_like((16, 16), 2)).save(tmp_path / "a" / "x.jpg")
    before = (tmp_path / "a" / "x.png").read_bytes()
    clash = run_cli(tmp_path / "a" / "x.png", tmp_path / "b" / "x.png", "-o", tmp_path / "out", "--model", model)
    assert clash.exit_code == 1 and "same output" in clash.stderr and "b/x.png" in clash.stderr
    converted = run_cli(tmp_path / "a", "-o", tmp_path / "png", "--model", model, "--format", "png")
    assert converted.exit_code == 1 and "same output" in converted.stderr  # x.jpg and x.png both → x.png
    in_place = run_cli(tmp_path / "a", "-o", tmp_path / "a", "--model", model, "--overwrite")
    assert in_place.exit_code == 1 and "would replace an input" in in_place.stderr
    assert (tmp_path / "a" / "x.png").read_bytes() == before


def test_format_in_capitals_and_an_output_folder_inside_the_input_folder(exported_style, tmp_path):
    _, model = exported_style
    folder = tmp_path / "photos"
    folder.mkdir()
    Image.fromarray(photo_like((16, 20), 1)).save(folder / "a.jpg")
    for _ in range(2):
        result = run_cli(folder, "-o", folder / "styled", "--model", model, "--format", "PNG", "--json")
        assert result.exit_code == 0, result.output
    assert json.loads(result.stdout.splitlines()[-1])["skipped"] == 1
    assert sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file()) == ["a.jpg", "styled/a.png"]


def test_a_single_output_file_must_agree_with_the_input_and_format(exported_style, tmp_path):
    _, model = exported_style
    Image.fromarray(photo_like((16, 16), 1)).save(tmp_path / "x.png")
    assert_one_line_error(run_cli(tmp_path / "x.png", "-o", tmp_path / "y.jpg", "--model", model, "--format", "png"),
                          "disagree")  # fmt: skip
    assert_one_line_error(run_cli(tmp_path / "x.png", "-o", tmp_path / "y.mp4", "--model", model), "image input")
    ok = run_cli(tmp_path / "x.png", "-o", tmp_path / "y.jpeg", "--model", model, "--format", "jpg")
    assert ok.exit_code == 0 and Image.open(tmp_path / "y.jpeg").format == "JPEG"
