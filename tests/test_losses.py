import pytest
import torch

from tests.helpers import random_vgg_state
from train.losses import (
    PerceptualLoss,
    SlicedHistogram,
    gram_matrix,
    low_frequency_excess,
    out_of_range,
    structure_weights,
    tile_grams,
    total_variation,
)
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


def make_loss(style, content_weight=1.0, style_weight=1.0, tv_weight=0.0, range_weight=0.0):
    vgg = build_loss_network(parse_vgg_state(random_vgg_state(4), "random"), "vgg16", ["relu1_2", "relu2_2"])
    return PerceptualLoss(
        vgg, style, {"relu2_2": 1.0}, {"relu1_2": 1.0, "relu2_2": 0.5}, content_weight, style_weight, tv_weight,
        range_weight=range_weight,
    )  # fmt: skip


def test_out_of_range_measures_only_what_clipping_to_8_bits_removes():
    image = torch.full((1, 3, 2, 2), 128.0)
    assert out_of_range(image).item() == 0
    image[0, 0, 0, 0] = 255.0 + 51.0  # 0.2 above, in 0–1 units
    image[0, 1, 0, 0] = -25.5  # 0.1 below
    torch.testing.assert_close(out_of_range(image), torch.tensor((0.2**2 + 0.1**2) / 12))


def test_with_a_range_weight_the_loss_judges_the_clipped_picture_and_pulls_values_back_into_range():
    torch.manual_seed(0)
    style = torch.rand(1, 3, 32, 32) * 255
    content = torch.rand(2, 3, 32, 32) * 255
    output = content.clone()
    output[:, :, :8] += 200.0  # a band far above 255: white once saved
    clipped = output.clamp(0, 255)
    plain, ranged = make_loss(style), make_loss(style, range_weight=4.0)
    # The perceptual terms of the ranged loss are those of the picture as saved, not of the raw values.
    for key in ("content", "style"):
        torch.testing.assert_close(ranged(output, content)[key], plain(clipped, content)[key])
        assert ranged(output, content)[key].item() != pytest.approx(plain(output, content)[key].item(), rel=1e-3)
    terms = ranged(output, content)
    torch.testing.assert_close(terms["range"], 4.0 * out_of_range(output))
    torch.testing.assert_close(terms["total"], terms["content"] + terms["style"] + terms["tv"] + terms["range"])
    # Values above 255 get a gradient pointing down, from the range term alone.
    raw = output.clone().requires_grad_(True)
    ranged(raw, content)["total"].backward()
    above = output > 255
    assert (raw.grad[above] > 0).all()  # descending the gradient lowers them
    assert plain(content, content)["range"].item() == 0
    with pytest.raises(ValueError, match="range weight"):
        make_loss(style, range_weight=-1.0)


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


def _homogeneous_vgg(scale: float):
    """A random VGG-16 stack with zero biases, its first convolution multiplied by `scale`: every feature map is
    then exactly `scale` times the unscaled one (ReLU and max-pooling are positively homogeneous)."""
    state = random_vgg_state(7, "vgg16", seed=3)
    for key in state:
        if key.endswith("bias"):
            state[key] = torch.zeros_like(state[key])
    state["0.weight"] = state["0.weight"] * scale
    return build_loss_network(parse_vgg_state(state, "test"), "vgg16", ["relu2_2", "relu3_3"])


def test_relative_loss_terms_do_not_depend_on_the_loss_networks_feature_scale():
    torch.manual_seed(0)
    style, content, output = (torch.rand(1, 3, 48, 48) * 255 for _ in range(3))
    layers = {"relu2_2": 1.0, "relu3_3": 1.0}
    terms = {}
    for scale in (1.0, 10.0):
        for kind in ("absolute", "relative"):
            loss = PerceptualLoss(_homogeneous_vgg(scale), style, {"relu2_2": 1.0}, layers, 1.0, 1.0, 0.0, kind)
            terms[scale, kind] = loss(output, content)
    for name in ("content", "style/relu2_2", "style/relu3_3"):
        torch.testing.assert_close(terms[10.0, "relative"][name], terms[1.0, "relative"][name], rtol=1e-4, atol=0)
    power = {"content": 2, "style/relu2_2": 4, "style/relu3_3": 4}  # features scale by 10, Grams by 100
    for name, p in power.items():
        ratio = terms[10.0, "absolute"][name] / terms[1.0, "absolute"][name]
        torch.testing.assert_close(ratio, torch.tensor(10.0**p), rtol=1e-3, atol=0)
    # relative style terms are of order 1 for a picture unlike the style, and 0 for the style image itself
    loss = PerceptualLoss(_homogeneous_vgg(1.0), style, {"relu2_2": 1.0}, layers, 1.0, 1.0, 0.0, "relative")
    assert 0 < float(terms[1.0, "relative"]["style/relu3_3"]) < 10
    assert float(loss(style, style)["style"]) == pytest.approx(0.0, abs=1e-6)


def test_relative_total_variation_is_a_per_pixel_mean_in_unit_range():
    image = torch.zeros(1, 3, 8, 8)
    image[..., 4:] = 255.0  # one vertical edge of height 8 in 3 channels: 24 unit squared differences
    assert float(total_variation(image, relative=True)) == pytest.approx(24 / (3 * 8 * 8))
    big = torch.nn.functional.interpolate(image, scale_factor=2, mode="nearest")
    assert float(total_variation(big, relative=True)) == pytest.approx(48 / (3 * 16 * 16))


def test_the_sliced_histogram_sees_a_palette_that_gram_matrices_of_the_same_second_moments_miss():
    torch.manual_seed(0)
    painting = torch.rand(1, 3, 24, 24) * 2 - 1  # uniform values
    histogram = SlicedHistogram(painting, directions=8)
    assert histogram(painting).item() == pytest.approx(0, abs=1e-9)
    assert histogram(painting[..., torch.randperm(24)]).item() == pytest.approx(0, abs=1e-9)  # order is not asked
    # the same mean and second moments (Gram matrix) as the painting, another distribution: two values ±1/√3 … ±1
    signs = torch.sign(painting)
    two_valued = signs * painting.pow(2).mean(dim=(2, 3), keepdim=True).sqrt()
    torch.testing.assert_close(gram_matrix(two_valued), gram_matrix(painting), atol=0.02, rtol=0.05)
    assert histogram(two_valued).item() > 20 * histogram(painting + 0.01 * torch.randn_like(painting)).item()
    # per image: a batch of the painting and a dark copy is as far as the dark copy alone, halved
    both = torch.cat([painting, painting * 0.3])
    torch.testing.assert_close(histogram(both), histogram(painting * 0.3) / 2)


def test_the_histogram_term_is_weighted_summed_and_off_by_default():
    torch.manual_seed(0)
    style = torch.rand(1, 3, 32, 32) * 255
    content = torch.rand(2, 3, 32, 32) * 255
    vgg = build_loss_network(parse_vgg_state(random_vgg_state(4), "random"), "vgg16", ["relu1_1", "relu1_2", "relu2_2"])
    loss = PerceptualLoss(vgg, style, {"relu2_2": 1.0}, {"relu1_2": 1.0}, 1.0, 1.0, 0.0,
                          histogram_layers={"relu1_1": 2.0}, histogram_weight=3.0)  # fmt: skip
    terms = loss(content, content)
    assert terms["histogram/relu1_1"].item() > 0
    torch.testing.assert_close(terms["histogram"], 6.0 * terms["histogram/relu1_1"])
    torch.testing.assert_close(terms["total"], sum(terms[k] for k in ("content", "style", "tv", "range", "histogram")))
    assert loss(style.expand(2, -1, -1, -1), content)["histogram"].item() < 1e-9
    assert make_loss(style)(content, content)["histogram"].item() == 0


def test_the_sliced_histogram_lives_on_the_paintings_device():
    # The loss module is not moved after it is built (train.loop): its buffers must be made where the painting's
    # features are, or a CUDA run would multiply CPU directions with GPU features. "meta" stands in for a GPU here.
    histogram = SlicedHistogram(torch.rand(1, 4, 8, 8, device="meta"), directions=3)
    assert {buffer.device.type for buffer in histogram.buffers()} == {"meta"}


def test_tile_grams_split_the_picture_into_cells_whose_grams_average_to_the_whole():
    torch.manual_seed(0)
    features = torch.rand(2, 3, 10, 12)
    torch.testing.assert_close(tile_grams(features, 1), gram_matrix(features))
    cells = tile_grams(features, 2)  # 5×6 cells of equal size: their mean is the whole picture's Gram matrix
    assert cells.shape == (8, 3, 3)
    torch.testing.assert_close(cells.reshape(4, 2, 3, 3).mean(dim=0), gram_matrix(features))
    torch.testing.assert_close(cells[2:4], gram_matrix(features[:, :, :5, 6:]))  # cell by cell: the top right


class _PixelsAsFeatures(torch.nn.Module):
    """A 'loss network' whose every layer is the picture itself: Gram matrices of pixel values."""

    def forward(self, images, layers):
        return {name: images / 255.0 for name in layers}


def test_with_a_style_grid_texture_on_half_the_picture_no_longer_matches_the_painting():
    # The painting: random ±1 pixels all over. One output has such texture all over, the other has it twice as
    # strong (√2 × the amplitude) on its left half and is flat on the right: the same Gram matrix over the whole
    # picture, but its right-hand cells carry none of the painting's texture, which a style grid sees.
    generator = torch.Generator().manual_seed(0)

    def texture(height, width, amplitude=1.0):
        signs = torch.randint(0, 2, (1, 3, height, width), generator=generator) * 2.0 - 1.0
        return 255.0 * amplitude * signs

    painting, everywhere = texture(64, 64), texture(64, 64)
    half = torch.cat([texture(64, 32, 2**0.5), torch.zeros(1, 3, 64, 32)], dim=3)
    losses = {}
    for grid in (1, 2):
        loss = PerceptualLoss(_PixelsAsFeatures(), painting, {}, {"relu1_2": 1.0}, 0.0, 1.0, 0.0, "relative",
                              style_grid=grid)  # fmt: skip
        losses[grid] = {name: float(loss(out, out)["style"]) for name, out in (("all", everywhere), ("half", half))}
    assert losses[1]["half"] < 0.01 and losses[1]["all"] < 0.01  # the whole picture's Gram matrix: both match
    assert losses[2]["half"] > 0.4  # per cell: the flat half is far from the painting ...
    assert losses[2]["all"] < 0.02  # ... and texture everywhere still matches
    with pytest.raises(ValueError, match="style grid"):
        PerceptualLoss(_PixelsAsFeatures(), painting, {}, {"relu1_2": 1.0}, 0.0, 1.0, 0.0, style_grid=0)
    # only the layers named: relu2_2 per cell, relu1_2 over the whole picture
    two = {"relu1_2": 1.0, "relu2_2": 1.0}
    loss = PerceptualLoss(_PixelsAsFeatures(), painting, {}, two, 0.0, 1.0, 0.0, "relative", style_grid=2,
                          style_grid_layers=["relu2_2"])  # fmt: skip
    terms = loss(half, half)
    assert float(terms["style/relu1_2"]) < 0.01 and float(terms["style/relu2_2"]) > 0.4
    with pytest.raises(ValueError, match="relu3_3 are not style layers"):
        PerceptualLoss(_PixelsAsFeatures(), painting, {}, two, 0.0, 1.0, 0.0, style_grid=2,
                       style_grid_layers=["relu3_3"])  # fmt: skip


def _night_sky_with_a_figure(size=192):
    """A dark sky getting lighter downwards (20 → 50 of 255) with a light square figure: RGB 0–255, (1, 3, H, W)."""
    y = torch.linspace(0, 1, size)[:, None].expand(size, size)
    photo = (20 + 30 * y).expand(1, 3, size, size).clone()
    photo[..., 120:170, 60:110] = 220.0
    return photo, y


def test_the_low_frequency_term_sees_bands_across_a_smooth_sky_not_fine_texture_or_the_photos_own_structure():
    photo, y = _night_sky_with_a_figure()
    rows, cols = torch.meshgrid(torch.arange(192), torch.arange(192), indexing="ij")
    dots = photo + 150.0 * (((rows % 8 - 4) ** 2 + (cols % 8 - 4) ** 2) < 6).float()  # a painting's dots, 8 px apart
    grain = photo + 60 * (torch.rand(photo.shape, generator=torch.Generator().manual_seed(0)) * 2 - 1)  # fine strokes
    stronger = 2 * photo - 20  # the photo's own sky gradient and figure with twice the contrast
    phase = torch.tensor([0.0, 2.0, 4.0])[:, None, None]
    arc = (128 + 120 * torch.sin(6 * y + phase))[None]  # the sky's gradient redrawn as bands of colour
    blob = photo + 120 * torch.exp(-((rows - 50.0) ** 2 + (cols - 140.0) ** 2) / (2 * 25.0**2))  # a glow on the sky
    excess = {name: low_frequency_excess(out, photo, 32).item() for name, out in
              (("photo", photo), ("dots", dots), ("grain", grain), ("stronger", stronger), ("arc", arc),
               ("blob", blob))}  # fmt: skip
    assert excess["photo"] == excess["dots"] == excess["grain"] == excess["stronger"] == 0
    assert excess["arc"] > 0.01 and excess["blob"] > 0.001
    assert low_frequency_excess(stronger, photo, 32, gain=1.0).item() > 0.001  # twice the photo's contrast, gain 1
    # through a blur finer than their spacing the dots and the grain are large-scale change too
    assert low_frequency_excess(dots, photo, 4).item() > 0.01 and low_frequency_excess(grain, photo, 2).item() > 0.005
    arc.requires_grad_(True)
    low_frequency_excess(arc, photo, 32).backward()
    assert arc.grad is not None and arc.grad.abs().sum() > 0


def test_the_low_frequency_term_is_weighted_summed_and_off_by_default():
    photo, y = _night_sky_with_a_figure(64)
    arc = (128 + 120 * torch.sin(6 * y + torch.tensor([0.0, 2.0, 4.0])[:, None, None]))[None]
    loss = PerceptualLoss(_PixelsAsFeatures(), photo, {"relu2_2": 1.0}, {"relu1_2": 1.0}, 1.0, 1.0, 0.0, "relative",
                          lowfreq_weight=5.0, lowfreq_scale=16, lowfreq_gain=1.5)  # fmt: skip
    terms = loss(arc, photo)
    torch.testing.assert_close(terms["lowfreq"], 5.0 * low_frequency_excess(arc, photo, 16, 1.5))
    assert terms["lowfreq"].item() > 0
    parts = ("content", "style", "tv", "range", "histogram", "lowfreq")
    torch.testing.assert_close(terms["total"], sum(terms[k] for k in parts))
    off = PerceptualLoss(_PixelsAsFeatures(), photo, {"relu2_2": 1.0}, {"relu1_2": 1.0}, 1.0, 1.0, 0.0, "relative")
    assert off(arc, photo)["lowfreq"].item() == 0
    with pytest.raises(ValueError, match="low-frequency"):
        PerceptualLoss(_PixelsAsFeatures(), photo, {}, {"relu1_2": 1.0}, 0.0, 1.0, 0.0, lowfreq_weight=-1.0)
    with pytest.raises(ValueError, match="low-frequency"):
        PerceptualLoss(_PixelsAsFeatures(), photo, {}, {"relu1_2": 1.0}, 0.0, 1.0, 0.0, lowfreq_gain=-1.0)


def _sky_over_a_textured_ground(size=64):
    """A flat sky (top half) over a ground of strong random texture (bottom half), RGB 0–255."""
    generator = torch.Generator().manual_seed(1)
    photo = torch.full((1, 3, size, size), 180.0)
    photo[:, :, size // 2 :] = 60 + 80 * torch.rand(1, 1, size // 2, size, generator=generator)
    return photo


def test_structure_weights_leave_flat_areas_at_the_floor_and_textured_ones_at_one():
    photo = _sky_over_a_textured_ground()
    weights = structure_weights(photo, 8.0)
    assert weights.shape == (1, 1, 64, 64)
    assert torch.allclose(weights[..., :24, :], torch.tensor(0.1))  # the sky, away from the ground's window
    assert torch.allclose(weights[..., 40:, :], torch.tensor(1.0))  # the ground
    assert weights[..., 28:32, :].min() > 0.1  # the sky's edge above the ground: its window sees the change
    assert torch.allclose(structure_weights(photo, 1e6), torch.tensor(0.1))  # "structure" only from a huge std


def test_with_content_structure_the_content_term_leaves_flat_areas_to_the_style():
    photo = _sky_over_a_textured_ground()
    generator = torch.Generator().manual_seed(2)
    stripes = 40 * (torch.rand(1, 3, 24, 64, generator=generator) - 0.5)
    in_sky, in_ground = photo.clone(), photo.clone()
    in_sky[:, :, :24] += stripes  # the same change, in the flat sky or on the textured ground
    in_ground[:, :, 40:] += stripes
    costs = {}
    for structure in (0.0, 8.0):
        loss = PerceptualLoss(_PixelsAsFeatures(), photo, {"relu2_2": 1.0}, {"relu1_2": 1.0}, 1.0, 0.0, 0.0,
                              "relative", content_structure=structure)  # fmt: skip
        costs[structure] = {name: float(loss(out, photo)["content"]) for name, out in
                            (("sky", in_sky), ("ground", in_ground), ("photo", photo))}  # fmt: skip
    assert costs[0.0]["sky"] == pytest.approx(costs[0.0]["ground"], rel=1e-5)  # every place the same
    assert costs[8.0]["sky"] == pytest.approx(0.1 * costs[8.0]["ground"], rel=1e-4)  # the floor: a tenth
    assert costs[8.0]["photo"] == 0 and costs[0.0]["photo"] == 0
    with pytest.raises(ValueError, match="content structure"):
        PerceptualLoss(_PixelsAsFeatures(), photo, {"relu2_2": 1.0}, {}, 1.0, 0.0, 0.0, content_structure=-1)
