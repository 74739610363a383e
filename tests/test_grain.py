import pytest
import torch
import torch.nn.functional as F

from train.grain import add_grain, grain_change, random_grain

CPU = torch.device("cpu")


def test_grain_is_zero_mean_noise_of_the_given_sigma_and_reproducible():
    grain = random_grain((4, 3, 64, 64), 4.0, seed=7, device=CPU)
    assert grain.shape == (4, 3, 64, 64)
    assert abs(float(grain.mean())) < 0.1
    assert float(grain.std()) == pytest.approx(4.0, rel=0.03)
    assert torch.equal(grain, random_grain((4, 3, 64, 64), 4.0, seed=7, device=CPU))
    assert not torch.equal(grain, random_grain((4, 3, 64, 64), 4.0, seed=8, device=CPU))
    # independent per pixel: neighbours are uncorrelated (a blurred field would correlate strongly)
    correlation = torch.corrcoef(torch.stack([grain[..., 1:].flatten(), grain[..., :-1].flatten()]))[0, 1]
    assert abs(float(correlation)) < 0.05


def test_grainy_photos_are_clipped_like_a_camera():
    images = torch.tensor([0.0, 128.0, 255.0]).view(1, 3, 1, 1).expand(1, 3, 4, 4)
    grainy = add_grain(images, torch.full((1, 3, 4, 4), 10.0))
    assert grainy[0, 0].eq(10).all() and grainy[0, 1].eq(138).all() and grainy[0, 2].eq(255).all()
    assert add_grain(images, -torch.full((1, 3, 4, 4), 10.0))[0, 0].eq(0).all()


def sky(n: int = 2, size: int = 64) -> torch.Tensor:
    """A light sky brightening slowly to the right, RGB 0–255."""
    x = torch.linspace(0, 1, size).view(1, 1, 1, size).expand(n, 3, size, size)
    return 170 + 30 * x


def amplifier(photo: torch.Tensor) -> torch.Tensor:
    """A stylizer that draws texture out of whatever detail the photo has: ten times its high frequencies."""
    smooth = F.avg_pool2d(F.pad(photo, (2, 2, 2, 2), mode="replicate"), 5, stride=1)
    return photo + 10 * (photo - smooth)


def smoother(photo: torch.Tensor) -> torch.Tensor:
    """A stylizer that paints the picture's large shapes only."""
    return F.avg_pool2d(F.pad(photo, (4, 4, 4, 4), mode="replicate"), 9, stride=1)


def test_the_change_is_large_for_a_stylizer_that_amplifies_grain_and_small_for_one_that_does_not():
    photo = sky()
    grainy = add_grain(photo, random_grain(photo.shape, 4.0, seed=1, device=CPU))
    amplified = grain_change(amplifier(photo), amplifier(grainy))
    plain = grain_change(photo, grainy)  # the identity: the grain itself, (4/255)² ≈ 2.5e-4
    smoothed = grain_change(smoother(photo), smoother(grainy))
    assert plain == pytest.approx((4 / 255) ** 2, rel=0.05)
    assert amplified > 50 * plain
    assert smoothed < plain / 20
    assert grain_change(photo, photo) == 0


def test_the_gradient_reaches_both_outputs():
    first = sky().requires_grad_()
    second = (sky() + 3).requires_grad_()
    grain_change(first, second).backward()
    assert first.grad is not None and second.grad is not None
    assert first.grad.abs().sum() > 0 and torch.allclose(first.grad, -second.grad)
