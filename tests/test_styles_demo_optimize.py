import json
import sys

import pytest
from PIL import Image
from typer.testing import CliRunner

import runtime.bundled
from runtime import ModelError, Stylizer
from tests.helpers import assert_one_line_error, photo_like, write_vgg
from toolkit.cli import app

runner = CliRunner()


@pytest.fixture
def bundled(exported_style, tmp_path, monkeypatch):
    """A styles folder holding two styles made from the test model, in place of the package's own."""
    _, onnx_path = exported_style
    folder = tmp_path / "styles"
    folder.mkdir()
    for name in ("mosaic", "wave"):
        (folder / f"{name}.onnx").write_bytes(onnx_path.read_bytes())
        record = {"style_image": f"{name}.jpg", "training": {"steps": 123}, "machine": "test CPU"}
        (folder / f"{name}.json").write_text(json.dumps(record))
    monkeypatch.setattr(runtime.bundled, "styles_folder", lambda: folder)
    return folder


def test_bundled_styles_are_listed_picked_by_name_and_the_default_is_used(bundled):
    result = runner.invoke(app, ["styles"])
    assert result.stdout.splitlines() == ["mosaic (default): mosaic.jpg, 123 steps on test CPU",
                                          "wave: wave.jpg, 123 steps on test CPU"]  # fmt: skip
    assert Stylizer.load().backend.session is not None
    assert Stylizer.load("wave")(photo_like((9, 13), 1)).shape == (9, 13, 3)
    with pytest.raises(ModelError, match="no bundled style 'candy'; bundled styles: mosaic, wave"):
        Stylizer.load("candy")


def test_toolkit_run_uses_the_default_style_without_model(bundled, tmp_path):
    Image.fromarray(photo_like((20, 30), 2)).save(tmp_path / "x.png")
    result = runner.invoke(app, ["run", str(tmp_path / "x.png"), "-o", str(tmp_path / "out")])
    assert result.exit_code == 0, result.output
    assert Image.open(tmp_path / "out" / "x.png").size == (30, 20)


def test_demo_writes_every_style_and_a_contact_sheet(bundled, tmp_path):
    result = runner.invoke(app, ["demo", str(tmp_path / "demo")])
    assert result.exit_code == 0, result.output
    for style in ("mosaic", "wave"):
        assert sorted(p.stem for p in (tmp_path / "demo" / style).iterdir()) == [
            "astronaut",
            "chelsea",
            "coffee",
            "rocket",
        ]
    sheet = Image.open(tmp_path / "demo" / "contact-sheet.jpg")
    assert sheet.size == (3 * 256, 24 + 4 * 256)  # photo + 2 styles across, 4 photos down
    assert "contact-sheet.jpg" in result.stderr


def test_demo_without_scikit_image_names_the_extra(bundled, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "skimage", None)
    assert_one_line_error(runner.invoke(app, ["demo", str(tmp_path / "d")]), "fast-style-toolkit[samples]")


def test_without_bundled_styles_the_error_says_so(tmp_path, monkeypatch):
    monkeypatch.setattr(runtime.bundled, "styles_folder", lambda: tmp_path)
    with pytest.raises(ModelError, match="no bundled styles are installed"):
        Stylizer.load()


def test_optimize_lowers_the_loss_on_a_tiny_image(tmp_path):
    Image.fromarray(photo_like((24, 32), 3)).save(tmp_path / "photo.png")
    Image.fromarray(photo_like((32, 32), 4)).save(tmp_path / "style.png")
    write_vgg(tmp_path / "vgg.pth", num_convs=4)
    result = runner.invoke(app, [
        "optimize", str(tmp_path / "photo.png"), "--style", str(tmp_path / "style.png"), "-o", str(tmp_path / "o.png"),
        "--vgg-weights", str(tmp_path / "vgg.pth"), "--loss-net", "vgg16", "--content-layers", "relu2_2",
        "--style-layers", "relu1_2,relu2_2", "--content-weight", "1", "--style-weight", "1e4", "--steps", "8", "--json",
    ])  # fmt: skip
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout.strip().splitlines()[-1])
    assert summary["last"]["total"] < 0.7 * summary["first"]["total"]
    assert Image.open(tmp_path / "o.png").size == (32, 24)
