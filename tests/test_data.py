import numpy as np
import pytest
from PIL import Image

from runtime.errors import UserError
from train.config import resolve
from train.data import CropDataset, crop_to_square, load_style_image, open_rgb, scan_folder


def test_exif_orientation_is_applied(tmp_path):
    array = np.zeros((20, 40, 3), np.uint8)
    array[:, :10] = 255  # white band on the left of the stored pixels
    image = Image.fromarray(array)
    exif = image.getexif()
    exif[0x0112] = 6  # "rotate 90° clockwise to display"
    image.save(tmp_path / "rotated.jpg", exif=exif, quality=95)
    upright = np.asarray(open_rgb(tmp_path / "rotated.jpg"))
    assert upright.shape == (40, 20, 3)
    assert upright[:10].mean() > 200 and upright[-10:].mean() < 50  # the band is now at the top


def test_sixteen_bit_grey_alpha_and_palette_become_8_bit_rgb(tmp_path):
    Image.fromarray(np.full((8, 8), 65535 // 2, np.uint16)).save(tmp_path / "deep.png")
    Image.fromarray(np.full((8, 8), 77, np.uint8), "L").save(tmp_path / "grey.png")
    rgba = np.zeros((8, 8, 4), np.uint8)
    rgba[..., 0] = 255
    rgba[:, 4:, 3] = 255  # left half transparent
    Image.fromarray(rgba, "RGBA").save(tmp_path / "alpha.png")
    deep = np.asarray(open_rgb(tmp_path / "deep.png"))
    assert deep.dtype == np.uint8 and deep.shape == (8, 8, 3) and abs(int(deep[0, 0, 0]) - 128) <= 1
    assert (np.asarray(open_rgb(tmp_path / "grey.png")) == 77).all()
    alpha = np.asarray(open_rgb(tmp_path / "alpha.png"))
    assert (alpha[:, :4] == 255).all()  # transparent shows the white background
    assert (alpha[:, 4:] == [255, 0, 0]).all()


def test_crops_are_square_and_a_pure_function_of_seed_and_index(tmp_path):
    for i in range(3):
        Image.fromarray(np.random.default_rng(i).integers(0, 255, (30 + 7 * i, 50, 3), np.uint8)).save(
            tmp_path / f"{i}.png"
        )
    files = scan_folder(tmp_path).files
    a, b = CropDataset(files, 24, "random", seed=5), CropDataset(files, 24, "random", seed=5)
    for index in (0, 4, 10):
        assert a[index][0].shape == (3, 24, 24)
        assert (a[index][0] == b[index][0]).all()
    assert sorted(a.order(0)) == [0, 1, 2] and sorted(a.order(1)) == [0, 1, 2]
    other_seed = CropDataset(files, 24, "random", seed=6)
    assert any(not (a[i][0] == other_seed[i][0]).all() for i in range(6))


def test_center_crop_of_a_landscape_takes_the_middle():
    array = np.zeros((10, 30, 3), np.uint8)
    array[:, 10:20] = 200
    crop = np.asarray(crop_to_square(Image.fromarray(array), 10, "center", None))
    assert crop.shape == (10, 10, 3) and (crop == 200).all()


def test_style_image_long_side_is_resized(tmp_path):
    Image.fromarray(np.zeros((50, 100, 3), np.uint8)).save(tmp_path / "s.png")
    assert load_style_image(tmp_path / "s.png", 40).shape == (1, 3, 20, 40)
    assert load_style_image(tmp_path / "s.png", None).shape == (1, 3, 50, 100)
    with pytest.raises(UserError, match="style image not found"):
        load_style_image(tmp_path / "missing.png", None)


def _ramp(width: int, height: int) -> Image.Image:
    """Red channel = x * 255 / (width - 1): a crop's red span tells which share of the photo's width it shows."""
    red = np.linspace(0, 255, width)[None, :].repeat(height, 0)
    return Image.fromarray(np.stack([red, red, red], -1).round().astype(np.uint8))


def test_zoom_one_crops_the_whole_short_side_as_before():
    photo = _ramp(90, 60)
    for seed in range(5):
        plain = np.asarray(crop_to_square(photo, 30, "random", np.random.default_rng(seed)))
        zoom1 = np.asarray(crop_to_square(photo, 30, "random", np.random.default_rng(seed), zoom=1.0))
        assert (plain == zoom1).all()
        span = int(plain[..., 0].max()) - int(plain[..., 0].min())
        assert 160 <= span <= 175  # a 30-px crop of the 45 × 30 resize shows two thirds of the width


def test_zoom_crops_smaller_parts_of_the_photo_but_never_beyond_its_own_pixels():
    photo = _ramp(300, 200)  # short side 200; crops of 20 px, zoom up to 8 (capped at 200 / 20 = 10)
    spans = []
    for seed in range(40):
        crop = np.asarray(crop_to_square(photo, 20, "random", np.random.default_rng(seed), zoom=8.0))
        assert crop.shape == (20, 20, 3)
        spans.append(int(crop[..., 0].max()) - int(crop[..., 0].min()))
    # zoom 1 would show 20 / 30 of the width (span 170); zoom 8 shows 20 / 240 (span ~21)
    assert min(spans) < 40 and max(spans) <= 175 and np.median(spans) < 100
    small = _ramp(40, 25)  # short side 25: zoom 8 may enlarge a 20-px crop's source to 25 px at most
    for seed in range(20):
        crop = np.asarray(crop_to_square(small, 20, "random", np.random.default_rng(seed), zoom=8.0))
        span = int(crop[..., 0].max()) - int(crop[..., 0].min())
        assert span >= 255 * 19 / 39 - 8  # at least the 20 / 40 of the width a 25-px short side shows


def test_zoom_is_checked():
    with pytest.raises(UserError, match="--zoom must be 1 or more"):
        resolve({"zoom": 0.5})
    with pytest.raises(UserError, match="--zoom needs --crop random"):
        resolve({"zoom": 2.0, "crop": "center"})
    assert resolve({"zoom": 2.0, "crop": "random"}).zoom == 2.0


def test_a_sky_smooths_part_of_some_crops_and_leaves_the_crops_themselves_alone(tmp_path):
    for i in range(3):  # noise photos: every pixel differs from its neighbours by ~85 on average
        Image.fromarray(np.random.default_rng(i).integers(0, 255, (60, 70 + 9 * i, 3), np.uint8)).save(
            tmp_path / f"{i}.png"
        )
    files = scan_folder(tmp_path).files
    plain = CropDataset(files, 48, "random", seed=5, zoom=2.0)
    skies = {share: CropDataset(files, 48, "random", seed=5, zoom=2.0, sky=share) for share in (0.0, 0.5, 1.0)}
    with_sky = []
    for index in range(24):
        crop = plain[index][0].numpy()
        assert (skies[0.0][index][0].numpy() == crop).all()
        for share in (0.5, 1.0):
            painted = skies[share][index][0].numpy()
            changed = (painted != crop).any(axis=0)
            if share == 0.5:
                with_sky.append(changed.any())
                continue
            assert 0.15 <= changed.mean() <= 0.85  # beyond a line leaving 20–80 % of the crop (± its soft edge)
            steps = np.abs(np.diff(painted, axis=2))[:, changed[:, 1:] & changed[:, :-1]]
            assert np.median(steps) < 4  # a smooth gradient with a little grain, not the photo's noise
            assert painted.min() >= 0 and painted.max() <= 255
    assert 6 <= sum(with_sky) <= 18  # about half of the crops
    assert (skies[1.0][3][0] == CropDataset(files, 48, "random", seed=5, zoom=2.0, sky=1.0)[3][0]).all()


def test_sky_is_checked():
    with pytest.raises(UserError, match="--sky must be a fraction"):
        resolve({"sky": 1.5})
    assert resolve({"sky": 0.25}).sky == 0.25
