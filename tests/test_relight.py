import math

import pytest
import torch

from train.relight import random_relighting, relight, relighting_change

CPU = torch.device("cpu")


def test_relighting_is_a_smooth_gain_within_the_amount_and_reproducible():
    gains = random_relighting(32, 48, 64, 0.5, seed=3, device=CPU)
    assert gains.shape == (32, 1, 48, 64)
    assert gains.min() >= 1 / 1.5 - 1e-5 and gains.max() <= 1.5 + 1e-5
    assert (gains.amax(dim=(1, 2, 3)) / gains.amin(dim=(1, 2, 3))).max() > 1.8  # some use most of the range
    # smooth: neighbouring pixels differ by a small fraction of the range
    assert (gains[..., 1:] - gains[..., :-1]).abs().max() < 0.05
    assert (gains[..., 1:, :] - gains[..., :-1, :]).abs().max() < 0.05
    assert torch.equal(gains, random_relighting(32, 48, 64, 0.5, seed=3, device=CPU))
    assert not torch.equal(gains, random_relighting(32, 48, 64, 0.5, seed=4, device=CPU))
    # both kinds: a ramp is brightest on the crop's border, a vignette may peak inside it
    inner = gains[..., 2:-2, 2:-2].amax(dim=(1, 2, 3)) > gains.amax(dim=(1, 2, 3)) - 1e-6
    assert 0 < int(inner.sum()) < 32


def test_relit_photos_are_clipped_like_a_camera():
    images = torch.full((1, 3, 4, 4), 200.0)
    gains = torch.tensor([1.5, 0.5]).repeat(8).view(1, 1, 4, 4)
    lit = relight(images, gains)
    assert lit.max() == 255 and lit.min() == 100


def night_sky(n: int = 1, size: int = 96) -> torch.Tensor:
    """A dark sky brightening towards the bottom, RGB 0–255."""
    y = torch.linspace(0, 1, size).view(1, 1, size, 1).expand(n, 3, size, size)
    return 20 + 60 * y * torch.tensor([0.5, 0.7, 1.0]).view(1, 3, 1, 1)


def contour_painter(photo: torch.Tensor) -> torch.Tensor:
    """A stylizer that paints one colour above a brightness level and another below: a band along the contour."""
    luma = photo.mean(dim=1, keepdim=True)
    return torch.where(
        luma > 40, torch.tensor([250.0, 220, 40]).view(1, 3, 1, 1), torch.tensor([200.0, 20, 40]).view(1, 3, 1, 1)
    )


def fine_painter(photo: torch.Tensor) -> torch.Tensor:
    """A stylizer that paints 4-px stripes whose phase follows the photo's brightness: the light moves only
    texture finer than the blur."""
    texture = (torch.arange(photo.shape[-1]) % 4 < 2).float() * 200
    shifts = [int(p.mean()) % 4 for p in photo]
    return torch.stack([texture.roll(s).view(1, 1, -1).expand(photo.shape[1:]) for s in shifts])


def test_the_change_counts_a_band_moved_by_the_light_and_not_fine_texture():
    sky = night_sky(4)
    gains = random_relighting(4, 96, 96, 0.5, seed=1, device=CPU)
    moved = relighting_change(contour_painter(sky), contour_painter(relight(sky, gains)))
    assert moved > 1e-3  # the band follows the brightness contour, which the light moves
    relit = relight(sky, gains)
    assert (fine_painter(sky) != fine_painter(relit)).any()  # the light did move the stripes ...
    assert relighting_change(fine_painter(sky), fine_painter(relit)) == pytest.approx(0, abs=1e-9)  # ... unseen
    assert relighting_change(fine_painter(sky), fine_painter(relit), scale=1) > 0.1  # a 1-px "blur" sees them
    assert relighting_change(sky, sky) == 0


def test_the_gradient_reaches_both_outputs():
    first = night_sky(2).requires_grad_()
    second = (night_sky(2) * 1.2).requires_grad_()
    relighting_change(first, second).backward()
    assert first.grad is not None and second.grad is not None
    assert first.grad.abs().sum() > 0 and second.grad.abs().sum() > 0
    assert torch.allclose(first.grad, -second.grad)


def test_strength_follows_the_amount():
    small = random_relighting(64, 32, 32, 0.1, seed=0, device=CPU)
    large = random_relighting(64, 32, 32, 1.0, seed=0, device=CPU)
    assert small.log().abs().max() <= math.log(1.1) + 1e-5
    assert large.log().abs().max() > 5 * small.log().abs().max() * 0.9
