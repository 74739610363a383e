import pytest
import torch
import torch.nn.functional as F

from train.paste import BAND, change_round_shapes, paste, random_shapes

CPU = torch.device("cpu")


def test_shapes_are_ellipses_inside_the_crop_mostly_dark_and_reproducible():
    masks, colours = random_shapes(64, 96, 128, seed=3, device=CPU)
    assert masks.shape == (64, 1, 96, 128) and colours.shape == (64, 3, 1, 1)
    assert set(masks.unique().tolist()) == {0.0, 1.0}
    area = masks.mean(dim=(1, 2, 3))
    assert area.min() > 0.005 and area.max() < 0.15  # axes 6–20 % of the short side
    rows, cols = torch.arange(96.0).view(96, 1), torch.arange(128.0).view(1, 128)
    centre_y = (masks * rows).sum(dim=(1, 2, 3)) / masks.sum(dim=(1, 2, 3))
    centre_x = (masks * cols).sum(dim=(1, 2, 3)) / masks.sum(dim=(1, 2, 3))
    assert centre_y.min() > 0.2 * 96 - 1 and centre_y.max() < 0.8 * 96 + 1  # away from the crop's border,
    assert centre_x.min() > 0.2 * 128 - 1 and centre_x.max() < 0.8 * 128 + 1  # so the ground shows round it
    assert colours.min() >= 0 and colours.max() <= 255 and colours.median() < 100  # mostly dark figures
    again = random_shapes(64, 96, 128, seed=3, device=CPU)
    assert torch.equal(masks, again[0]) and torch.equal(colours, again[1])
    assert not torch.equal(masks, random_shapes(64, 96, 128, seed=4, device=CPU)[0])


def test_paste_fills_the_shape_and_keeps_the_rest():
    images = torch.rand(2, 3, 32, 32) * 255
    masks, colours = random_shapes(2, 32, 32, seed=0, device=CPU)
    pasted = paste(images, masks, colours)
    inside = masks.expand_as(images).bool()
    assert torch.equal(pasted[~inside], images[~inside])
    assert torch.allclose(pasted, colours.expand_as(images).where(inside, images))


def sky(n: int = 4, size: int = 96) -> torch.Tensor:
    """A light, even sky, RGB 0–255."""
    return torch.tensor([180.0, 200, 230]).view(1, 3, 1, 1).expand(n, 3, size, size).clone()


def within(dark: torch.Tensor, px: int) -> torch.Tensor:
    """1 where a dark pixel is at most `px` px away (a square neighbourhood)."""
    return F.max_pool2d(dark, 2 * px + 1, stride=1, padding=px)


def dark_of(photo: torch.Tensor) -> torch.Tensor:
    return (photo.mean(dim=1, keepdim=True) < 100).float()


def glow_painter(photo: torch.Tensor) -> torch.Tensor:
    """A stylizer that lightens the ground 10–30 px out from dark figures: a glow (or an echo) round them."""
    dark = dark_of(photo)
    return photo + 60 * (within(dark, 30) - within(dark, 10))


def outline_painter(photo: torch.Tensor) -> torch.Tensor:
    """A stylizer that draws a black outline just round dark figures, inside the band where change is free."""
    dark = dark_of(photo)
    return photo * (1 - (within(dark, BAND - 2) - dark))


def global_painter(photo: torch.Tensor) -> torch.Tensor:
    """A stylizer whose whole picture darkens when a dark figure enters it, as instance norm's statistics move."""
    return photo - 40 * dark_of(photo).amax(dim=(1, 2, 3), keepdim=True)


def test_a_glow_round_the_shape_counts_and_an_outline_or_a_global_change_does_not():
    ground = sky()
    masks, colours = random_shapes(4, 96, 96, seed=1, device=CPU)
    colours = colours * 0  # black figures, so the painters see them as dark
    pasted = paste(ground, masks, colours)
    assert change_round_shapes(glow_painter(ground), glow_painter(pasted), masks) > 1e-3
    for painter in (lambda x: x, outline_painter, global_painter):
        assert (painter(pasted) != painter(ground)).any()
        assert change_round_shapes(painter(ground), painter(pasted), masks) == pytest.approx(0, abs=1e-9)
    # a figure so big that every blurred cell touches its band: nothing to compare, no cost
    everywhere = torch.ones(4, 1, 96, 96)
    assert change_round_shapes(ground, glow_painter(paste(ground, everywhere, colours)), everywhere) == 0


def test_the_gradient_reaches_both_outputs():
    masks, _ = random_shapes(2, 64, 64, seed=2, device=CPU)
    first = sky(2, 64).requires_grad_()
    second = (sky(2, 64) * torch.linspace(0.5, 1.5, 64)).requires_grad_()
    change_round_shapes(first, second, masks).backward()
    assert first.grad is not None and second.grad is not None
    assert first.grad.abs().sum() > 0 and torch.allclose(first.grad, -second.grad)


def band_painter(photo: torch.Tensor) -> torch.Tensor:
    """A stylizer that lightens a band 2–6 px out from dark figures: the light rim right round them."""
    dark = dark_of(photo)
    return photo + 60 * (within(dark, 6) - within(dark, 2))


def test_a_narrower_band_counts_a_light_rim_right_round_the_shape():
    ground = sky()
    masks, colours = random_shapes(4, 96, 96, seed=1, device=CPU)
    pasted = paste(ground, masks, colours * 0)
    before, after = band_painter(ground), band_painter(pasted)
    assert change_round_shapes(before, after, masks, scale=4) == pytest.approx(0, abs=1e-9)  # inside the 6-px band
    assert change_round_shapes(before, after, masks, scale=4, band=1) > 1e-3
    # the shape's own pixels stay free at any band
    assert change_round_shapes(outline_inside(ground), outline_inside(pasted), masks, scale=4, band=0) == 0


def outline_inside(photo: torch.Tensor) -> torch.Tensor:
    """A stylizer that changes dark figures themselves (a fill), nothing round them."""
    return photo * (1 - 0.5 * dark_of(photo))
