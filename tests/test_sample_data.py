import numpy as np
from PIL import Image
from typer.testing import CliRunner

from toolkit.cli import app
from toolkit.sample_data import SKIMAGE_PHOTOS


def test_sample_data_writes_photos_and_a_style_image_that_train_can_read(tmp_path):
    result = CliRunner().invoke(app, ["sample-data", str(tmp_path / "demo")])
    assert result.exit_code == 0, result.output
    photos = sorted((tmp_path / "demo" / "photos").iterdir())
    assert [p.stem for p in photos] == sorted(SKIMAGE_PHOTOS)
    style = np.asarray(Image.open(tmp_path / "demo" / "style.png"))
    assert style.shape == (384, 384, 3)
    assert (style.reshape(-1, 3).std(axis=0) > 30).all()  # colourful, not flat
    assert (style < 40).all(axis=-1).mean() > 0.03  # dark leading between the cells
