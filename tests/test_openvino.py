"""The optional OpenVINO backend: the same pixels as ONNX Runtime (within 1), any size, only when named."""

import numpy as np
import pytest
from typer.testing import CliRunner

from runtime import Stylizer
from tests.helpers import photo_like
from toolkit.cli import app

pytest.importorskip("openvino")


def test_openvino_matches_onnxruntime_at_any_size(exported_style):
    _, model = exported_style
    with (Stylizer.load(model, backend="openvino") as ov, Stylizer.load(model, backend="onnxruntime",
                                                                         device="cpu", tile="off") as ort):  # fmt: skip
        assert ov.backend_name == "openvino" and ov.contract == ort.contract
        for shape in [(1, 1), (7, 13), (67, 93), (96, 128)]:
            image = photo_like(shape, 1)
            assert np.abs(ov(image).astype(int) - ort(image)).max() <= 1
        batch = np.stack([photo_like((40, 56), s) for s in range(3)])
        assert np.abs(ov(batch).astype(int) - ort(batch)).max() <= 1


def test_compiled_shapes_are_kept_up_to_a_limit(exported_style):
    _, model = exported_style
    with Stylizer.load(model, backend="openvino") as ov:
        for side in (16, 20, 24, 28, 32, 16):
            ov(photo_like((side, side), 2))
        inner = ov.backend.inner  # tiled: OpenVINO takes statistics from outside (cut-outs, large photos)
        shapes = inner._compiled.shapes()
        assert len(shapes) == inner.shapes_kept == 4
        assert list(shapes[-1].values()) == [(1, 16, 16, 3)]


def test_auto_picks_openvino_only_for_an_int8_file_and_the_cli_can_name_it(exported_style, tmp_path):
    from PIL import Image

    _, model = exported_style  # no NAME.int8.onnx beside it (tests/test_int8.py covers one that has)
    with Stylizer.load(model) as auto:
        assert auto.backend_name == "onnxruntime"
    Image.fromarray(photo_like((30, 40), 3)).save(tmp_path / "p.png")
    result = CliRunner().invoke(app, ["run", str(tmp_path / "p.png"), "-o", str(tmp_path / "o"), "--model",
                                      str(model), "--backend", "openvino"])  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "(openvino on cpu)" in result.stderr
