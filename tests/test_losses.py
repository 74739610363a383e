import pytest
import torch

from tests.helpers import random_vgg_state
from train.losses import PerceptualLoss, gram_matrix, total_variation
from train.vgg_weights import build_loss_network, parse_vgg_state


def test_gram_matrix_is_normalised_by_c_h_w():
    f = torch.arange(2 * 3 * 2 * 2, dtype=torch.float32).reshape(2, 3, 2, 2)
    g = gram_matrix(f)
    flat = f.reshape(2, 3, 4)
    assert g.shape == (2, 3, 3)
    torch.testing.assert_close(g[1, 0, 2], (flat[1, 0] * flat[1, 2]).sum() / 12)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_gram_matrix_of_half_precision_features_does_not_overflow_even_under_autocast(dtype):
    f = torch.full((1, 4, 64, 64), 300.0, dtype=dtype)  # 300² × 4096 > fp16 max before normalising
    f[0, 1] = 1.0 + 1 / 64  # needs more mantissa than bf16 has, in a product of 4096 terms
    with torch.autocast("cpu", dtype=dtype):
        g = gram_matrix(f)
    assert g.dtype == torch.float32 and torch.isfinite(g).all()
    torch.testing.assert_close(g[0, 0, 0], torch.tensor(300.0**2 / 4))
    torch.testing.assert_close(g[0, 1, 1], torch.tensor(f[0, 1, 0, 0].float().item() ** 2 / 4))


def test_total_variation_counts_squared_neighbour_differences_per_image():
    image = torch.zeros(2, 3, 4, 4)
    image[0, :, :, 2:] = 10.0  # one vertical edge of height 4, in 3 channels
    assert total_variation(image).item() == (3 * 4 * 100) / 2


def make_loss(style, content_weight=1.0, style_weight=1.0, tv_weight=0.0):
    vgg = build_loss_network(parse_vgg_state(random_vgg_state(4), "random"), "vgg16", ["relu1_2", "relu2_2"])
    return PerceptualLoss(
        vgg, style, {"relu2_2": 1.0}, {"relu1_2": 1.0, "relu2_2": 0.5}, content_weight, style_weight, tv_weight
    )


def test_losses_vanish_at_their_targets_and_weights_scale_them():
    torch.manual_seed(0)
    style = torch.rand(1, 3, 32, 32) * 255
    content = torch.rand(2, 3, 32, 32) * 255
    loss = make_loss(style, content_weight=3.0, style_weight=7.0)
    at_content = loss(content, content)
    assert at_content["content"].item() == 0
    assert at_content["style"].item() > 0
    at_style = loss(style.expand(2, -1, -1, -1), content)
    assert at_style["style"].item() < 1e-6 * at_content["style"].item() + 1e-12
    terms = loss(torch.rand(2, 3, 32, 32) * 255, content)
    weighted = 7.0 * (terms["style/relu1_2"] + 0.5 * terms["style/relu2_2"])
    torch.testing.assert_close(terms["style"], weighted)
    torch.testing.assert_close(terms["content"], 3.0 * terms["content/relu2_2"])
    torch.testing.assert_close(terms["total"], terms["content"] + terms["style"] + terms["tv"])
