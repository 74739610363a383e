"""The quality yardstick's metrics on small synthetic cases whose answer is known."""

from pathlib import Path

import numpy as np
import pytest
import torch
from skimage.metrics import structural_similarity

from tests.helpers import photo_like, random_vgg_state
from train.quality import (
    GramCloseness,
    box_mean,
    echo,
    figure_change,
    halo,
    hatching_share,
    light_change,
    palette_distance,
    pasted_figures,
    periodicity,
    relighting_fields,
    ssim,
    stripe_share,
)


def grey(size=(128, 128), level=128) -> np.ndarray:
    return np.full((*size, 3), level, np.uint8)


def stripes(size=(128, 128), period=7.0, amplitude=20.0, angle=45.0) -> np.ndarray:
    yy, xx = np.mgrid[: size[0], : size[1]]
    t = np.deg2rad(angle)
    wave = 128 + amplitude * np.sin(2 * np.pi * (xx * np.cos(t) + yy * np.sin(t)) / period)
    return np.repeat(wave[..., None], 3, 2).astype(np.uint8)


def test_ssim_is_skimages_and_an_identity_model_keeps_ssim_1():
    photo = photo_like((90, 120), 0)
    noisy = np.clip(photo.astype(int) + np.random.default_rng(1).integers(-40, 40, photo.shape), 0, 255)
    noisy = noisy.astype(np.uint8)
    luma = lambda x: x.astype(np.float64) @ [0.299, 0.587, 0.114]  # noqa: E731
    assert ssim(photo, noisy) == pytest.approx(structural_similarity(luma(photo), luma(noisy), data_range=255))
    assert ssim(photo, photo) == pytest.approx(1.0)
    assert ssim(photo, noisy) < 0.9


def test_palette_distance_zero_for_the_same_colours_and_far_for_other_ones():
    photo = photo_like((80, 80), 2)
    shuffled = np.random.default_rng(0).permutation(photo.reshape(-1, 3)).reshape(photo.shape)
    assert palette_distance(photo, shuffled) < 1.5  # same colours, other places: the palette is the same
    red = np.zeros_like(photo)
    red[..., 0] = 220
    assert palette_distance(photo, red) > 40
    mask = np.zeros(photo.shape[:2], bool)
    mask[:10] = True
    assert palette_distance(red, red, mask_a=mask) == 0


def test_stripes_in_flat_regions_are_detected_and_noise_or_strokes_are_not():
    flat = grey()
    assert stripe_share(flat, stripes()).share == 1.0
    assert stripe_share(flat, stripes(period=12, angle=0)).share == 1.0
    noise = np.clip(128 + 20 * np.random.default_rng(0).normal(size=(128, 128, 1)), 0, 255).astype(np.uint8)
    assert stripe_share(flat, np.repeat(noise, 3, 2)).share == 0.0
    assert stripe_share(flat, flat).share == 0.0  # no pattern at all
    faint = stripes(amplitude=1.0)
    assert stripe_share(flat, faint).share == 0.0  # too faint to see
    # a photo with no flat region has nothing to judge
    busy = photo_like((128, 128), 3)
    busy = np.clip(busy.astype(int) + np.random.default_rng(2).integers(-30, 30, busy.shape), 0, 255).astype(np.uint8)
    report = stripe_share(busy, stripes())
    assert report.flat_tiles == 0 and np.isnan(report.share)
    assert periodicity(stripes()[:32, :32, 0].astype(float)) > 0.8
    # a faint pattern of the photo's own (JPEG blocks, a weave) that the output keeps is not the model's doing
    woven = stripes(period=8, amplitude=4.0, angle=0)
    assert stripe_share(woven, woven).flat_tiles > 0 and stripe_share(woven, woven).share == 0.0
    assert stripe_share(woven, stripes(period=7, amplitude=20)).share == 1.0


def hue_stripes(size=(128, 128), period=7.5, amplitude=12.0, angle=45.0, base=(200, 190, 185)) -> np.ndarray:
    """Pink and blue stripes at one brightness: a wave along a direction of colour that leaves the luma alone."""
    yy, xx = np.mgrid[: size[0], : size[1]]
    t = np.deg2rad(angle)
    wave = np.sin(2 * np.pi * (xx * np.cos(t) + yy * np.sin(t)) / period)
    pink_minus_blue = np.array([1.0, -0.3, -1.0])
    pink_minus_blue -= pink_minus_blue @ [0.299, 0.587, 0.114]  # the luma weights sum to 1: the direction's luma is 0
    return np.clip(np.array(base) + amplitude * wave[..., None] * pink_minus_blue, 0, 255).round().astype(np.uint8)


def test_a_fine_hatching_of_two_hues_is_counted_where_the_luma_test_misses_it():
    sky = np.full((128, 128, 3), (200, 190, 185), np.uint8)
    hatched = hue_stripes()
    luma = lambda x: x.astype(np.float64) @ [0.299, 0.587, 0.114]  # noqa: E731
    assert np.abs(luma(hatched) - luma(sky)).max() < 1
    assert stripe_share(sky, hatched).share == 0.0  # the luma does not move
    assert hatching_share(sky, hatched).share == 1.0
    assert hatching_share(sky, hue_stripes(period=4, angle=0)).share == 1.0
    # slow undulation of colour (a 16-px period) and irregular colour noise are not hatching
    assert hatching_share(sky, hue_stripes(period=16)).share == 0.0
    assert stripe_share(sky, stripes(period=12, angle=0)).share == 1.0  # (the luma test counts 12 px)
    noise = np.random.default_rng(0).normal(size=(128, 128, 1)) * 12 * np.array([1.0, -0.3, -1.0])
    assert hatching_share(sky, np.clip(sky + noise, 0, 255).astype(np.uint8)).share == 0.0
    assert hatching_share(sky, hue_stripes(amplitude=1.0)).share == 0.0  # too faint to see
    assert hatching_share(sky, sky).share == 0.0
    # the photo's own hatching kept by the model is not the model's doing
    assert hatching_share(hatched, hatched).flat_tiles > 0 and hatching_share(hatched, hatched).share == 0.0


def test_a_white_outline_round_a_figure_is_a_halo_and_a_dark_one_is_not():
    photo = grey((160, 160), 170)
    yy, xx = np.mgrid[:160, :160]
    r = np.hypot(yy - 80, xx - 80)
    photo[r < 35] = 40  # a dark figure on a light backdrop
    assert halo(photo, photo) == pytest.approx(0.0)
    bright = photo.copy()
    bright[(r >= 37) & (r <= 41)] = 250
    assert halo(photo, bright) > 20
    dark = photo.copy()
    dark[(r >= 37) & (r <= 41)] = 60
    assert halo(photo, dark) < -20
    # a global brightening is not a halo
    assert halo(photo, np.clip(photo.astype(int) + 30, 0, 255).astype(np.uint8)) == pytest.approx(0.0, abs=0.5)


def test_a_ghost_outline_round_a_figure_is_an_echo_and_even_cells_are_not():
    photo = grey((200, 200), 170)
    yy, xx = np.mgrid[:200, :200]
    r = np.hypot(yy - 100, xx - 100)
    photo[r < 30] = 40  # a dark figure on a light backdrop: flat pixels up to ~70 px from its edge
    assert echo(photo, photo) == pytest.approx(0.0)
    ghost = photo.copy()
    ghost[(r >= 48) & (r <= 50)] = 30  # a dark line 18 px out, open backdrop beyond it
    assert echo(photo, ghost) > 10
    cells = photo.copy()
    lines = (yy % 12 < 2) | (xx % 12 < 2)  # lead lines everywhere, as evenly near the figure as far from it
    cells[lines] = 255 - photo[lines]  # (light on the dark figure, dark on the backdrop)
    assert abs(echo(photo, cells)) < 5
    assert np.isnan(echo(grey((200, 200), 170), cells))  # no edge in the photo: nothing to be near to


def test_the_report_scores_an_identity_model_as_the_photo_itself(tmp_path):
    """docs/quality.py's `evaluate` on an identity "model" (outputs = photos): SSIM 1, nothing added (no stripes,
    hatching, halo or echo), and a palette as far from the painting as the photos' own; a real change scores less."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("quality_report", Path(__file__).parents[1] / "docs" / "quality.py")
    report = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(report)
    weights = tmp_path / "vgg19_r31.pth"
    torch.save(random_vgg_state(5, "vgg19"), weights)
    judge = GramCloseness(str(weights))  # the report's scales, 512 and 256 px
    painting = np.zeros((96, 96, 3), np.uint8)
    painting[..., 0] = 220  # a red painting
    judge.set_painting(painting)
    photos = {"a.png": photo_like((96, 128), 3), "b.png": np.concatenate([grey((64, 128)), photo_like((64, 128), 4)])}
    same = report.evaluate(dict(photos), photos, judge, painting)
    assert same["ssim"] == pytest.approx(1.0)
    assert same["stripes"] == same["hatching"] == same["halo"] == same["echo"] == 0.0
    palettes = [palette_distance(photo, painting) for photo in photos.values()]
    assert same["palette"] == pytest.approx(np.mean(palettes)) and same["palette"] > 40
    shift = np.array([90, -60, -60])
    reddened = {k: np.clip(v.astype(int) + shift, 0, 255).astype(np.uint8) for k, v in photos.items()}
    changed = report.evaluate(reddened, photos, judge, painting)
    assert changed["palette"] < same["palette"] - 10 and changed["ssim"] < 1


def test_gram_closeness_is_zero_for_the_painting_and_larger_for_a_photo(tmp_path):
    weights = tmp_path / "vgg19_r31.pth"
    torch.save(random_vgg_state(5, "vgg19"), weights)
    judge = GramCloseness(str(weights), scales=(96, 48))
    painting = photo_like((96, 80), 7)
    judge.set_painting(painting)
    assert judge(painting) == pytest.approx(0.0, abs=1e-6)
    assert judge(photo_like((64, 96), 8)) > 0.05
    assert set(judge.per_scale(painting)) == {96, 48}


def test_light_change_is_the_photos_own_for_identity_zero_for_a_fixed_texture_and_large_for_contour_bands():
    y = np.linspace(0, 1, 96)[:, None, None] * np.ones((96, 128, 1))
    sky = np.clip(20 + 60 * y * np.array([0.5, 0.7, 1.0]), 0, 255).astype(np.uint8)  # dark, brighter downwards
    for field in relighting_fields(96, 128):
        assert 0.8 < field.min() < field.max() < 1.2 and field.max() / field.min() > 1.25

    def contour_bands(photo):  # yellow above a brightness level, red below: a band along the sky's contour
        bright = photo.astype(float).mean(axis=2, keepdims=True) > 40
        return np.where(bright, [250, 220, 40], [200, 20, 40]).astype(np.uint8)

    own = light_change(lambda rgb: rgb, sky)
    assert 0.5 < own < 10
    # texture finer than the blur may move with the light: 4-px stripes whose phase follows the brightness
    stripes4 = (np.arange(128) % 4 < 2)[None, :, None] * np.full((96, 128, 3), 200, np.uint8)
    assert light_change(lambda rgb: np.roll(stripes4, int(rgb.mean()) % 4, axis=1), sky) == pytest.approx(0)
    assert light_change(contour_bands, sky) > 1.4 * own  # redraws more than the light changed
    calls = []  # a caller that has the photo's output already saves one stylization, same answer
    counted = lambda rgb: calls.append(1) or contour_bands(rgb)  # noqa: E731
    assert light_change(counted, sky, styled=contour_bands(sky)) == light_change(contour_bands, sky)
    assert len(calls) == 3


def test_figure_change_sees_a_glow_round_a_pasted_figure_but_not_its_outline_nor_a_change_of_tone():
    sky = np.full((160, 192, 3), (180, 200, 230), np.uint8)
    figures = pasted_figures(160, 192)
    assert len(figures) == 3 and all(0.005 < mask.mean() < 0.06 for mask, _ in figures)
    assert all(np.all((colour >= 10) & (colour <= 40)) for _, colour in figures)

    def dark(photo):
        return photo.astype(float).mean(axis=2) < 100

    def within(mask, px):  # the mask grown by `px` px (a square neighbourhood)
        return box_mean(np.pad(mask.astype(float), px), 2 * px + 1) > 0

    def glow(photo):  # lightens the ground 12–30 px out from dark figures
        d = dark(photo)
        ring = within(d, 30) & ~within(d, 12)
        return np.clip(photo + 50.0 * ring[..., None], 0, 255).astype(np.uint8)

    def outline(photo):  # a black line just round dark figures
        d = dark(photo)
        return np.where((within(d, 4) & ~d)[..., None], 0, photo).astype(np.uint8)

    def tone(photo):  # the whole picture darker when a dark figure is in it
        return (photo * (0.8 if dark(photo).any() else 1.0)).astype(np.uint8)

    assert figure_change(lambda rgb: rgb, sky) == 0
    assert figure_change(outline, sky) == pytest.approx(0)
    assert figure_change(tone, sky) == pytest.approx(0, abs=0.5)  # rounding to uint8 only
    assert figure_change(glow, sky) > 10
    assert figure_change(glow, sky, styled=glow(sky)) == figure_change(glow, sky)
