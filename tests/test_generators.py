import numpy as np
import pytest
import torch

from runtime.errors import UserError
from tests.helpers import photo_like
from train.generators import GeneratorSpec, build_generator, load_generator_weights
from train.johnson import TransformerNet


def photo_batch(n: int, h: int, w: int) -> torch.Tensor:
    return torch.stack([torch.from_numpy(photo_like((h, w), seed=i)).permute(2, 0, 1).float() for i in range(n)])


ALL_SPECS = [
    GeneratorSpec("johnson", "instance", 1.0),
    GeneratorSpec("johnson", "batch", 0.5),
    GeneratorSpec("texture", "instance", 1.0),
    GeneratorSpec("texture", "batch", 1.0),
    GeneratorSpec("texture", "instance", 0.5, noise_channels=2),
]


@pytest.mark.parametrize("spec", ALL_SPECS, ids=lambda s: f"{s.arch}-{s.norm}-{s.width}-{s.noise_channels}")
@pytest.mark.parametrize("size", [(1, 1), (3, 2), (7, 5), (37, 53), (64, 31)])
def test_any_size_in_gives_the_same_size_out(spec, size):
    torch.manual_seed(0)
    model = build_generator(spec).eval()
    with torch.no_grad():
        out = model(torch.rand(2, 3, *size) * 255)
    assert out.shape == (2, 3, *size)
    assert torch.isfinite(out).all()


def test_johnson_has_the_pytorch_examples_size_and_half_width():
    def count(model):
        return sum(p.numel() for p in model.parameters())

    assert count(TransformerNet()) == 1_679_235  # pytorch/examples TransformerNet
    half = TransformerNet(width=0.5)
    assert half.conv1.conv2d.out_channels == 16 and half.conv3.conv2d.out_channels == 64
    assert count(half) < count(TransformerNet()) / 3


def pytorch_examples_keys() -> set[str]:
    """Key names of a pytorch/examples fast_neural_style checkpoint (saved with torch < 0.4)."""
    keys = set()

    def conv(name):
        keys.update({f"{name}.conv2d.weight", f"{name}.conv2d.bias"})

    def inorm(name):  # old InstanceNorm2d also saved (unused) running statistics
        keys.update({f"{name}.{p}" for p in ("weight", "bias", "running_mean", "running_var")})

    for i in (1, 2, 3):
        conv(f"conv{i}")
        inorm(f"in{i}")
    for r in range(1, 6):
        for i in (1, 2):
            conv(f"res{r}.conv{i}")
            inorm(f"res{r}.in{i}")
    conv("deconv1")
    inorm("in4")
    conv("deconv2")
    inorm("in5")
    conv("deconv3")
    return keys


def test_pytorch_examples_checkpoint_loads_and_drops_legacy_running_stats():
    reference = TransformerNet()
    state = {}
    for key in pytorch_examples_keys():
        if key.endswith(("running_mean", "running_var")):
            channels = reference.state_dict()[key.rsplit(".", 1)[0] + ".weight"].shape
            state[key] = torch.zeros(channels) if key.endswith("mean") else torch.ones(channels)
        else:
            state[key] = torch.randn(reference.state_dict()[key].shape)
    model = TransformerNet()
    dropped = load_generator_weights(model, state, "examples.pth")
    assert len(dropped) == 2 * 15 and all("running_" in k for k in dropped)
    assert torch.equal(model.res3.conv2.conv2d.weight, state["res3.conv2.conv2d.weight"])
    assert torch.equal(model.in5.bias, state["in5.bias"])


def test_wrong_width_weights_are_a_clear_error():
    state = TransformerNet(width=0.5).state_dict()
    with pytest.raises(UserError, match=r"half.pth: conv1.conv2d.weight has shape \(16, 3, 9, 9\).*--width"):
        load_generator_weights(TransformerNet(width=1.0), state, "half.pth")


@pytest.mark.parametrize("arch", ["johnson", "texture"])
@pytest.mark.parametrize("a,b", [(0.3, 40.0), (0.5, 64.0), (2.0, -100.0), (1.0, 30.0)])
def test_instance_norm_generator_ignores_contrast_and_brightness(arch, a, b):
    torch.manual_seed(1)
    model = build_generator(GeneratorSpec(arch, "instance")).eval()
    x = photo_batch(2, 48, 56)
    with torch.no_grad():
        base, changed = model(x), model(a * x + b)
    relative = (changed - base).norm() / base.norm()
    assert relative < 1e-3


@pytest.mark.parametrize("arch", ["johnson", "texture"])
def test_batch_norm_generator_in_eval_mode_follows_contrast(arch):
    torch.manual_seed(1)
    model = build_generator(GeneratorSpec(arch, "batch")).eval()
    x = photo_batch(2, 48, 56)
    with torch.no_grad():
        relative = (model(0.5 * x + 64) - model(x)).norm() / model(x).norm()
    assert relative > 0.05


@pytest.mark.parametrize("arch", ["johnson", "texture"])
def test_instance_norm_output_does_not_depend_on_the_rest_of_the_batch(arch):
    torch.manual_seed(2)
    model = build_generator(GeneratorSpec(arch, "instance")).eval()
    x = photo_batch(4, 40, 40)
    with torch.no_grad():
        alone = model(x[:1])
        together = model(x)
        with_others = model(torch.cat([x[:1], 255 - x[1:]]))
    torch.testing.assert_close(together[:1], alone, atol=1e-3, rtol=1e-4)
    torch.testing.assert_close(with_others[:1], alone, atol=1e-3, rtol=1e-4)


def test_instance_norm_has_no_running_statistics_and_is_the_same_in_train_and_eval():
    model = build_generator(GeneratorSpec("johnson", "instance", 0.5))
    assert not any("running" in k for k in model.state_dict())
    x = photo_batch(2, 32, 32)
    with torch.no_grad():
        train_out = model.train()(x)
        eval_out = model.eval()(x)
    torch.testing.assert_close(train_out, eval_out)


def test_instance_norm_stays_accurate_under_bf16_autocast():
    torch.manual_seed(3)
    model = build_generator(GeneratorSpec("johnson", "instance", 0.5)).eval()
    x = photo_batch(1, 32, 32) * 40  # large activations: the variance would overflow fp16
    with torch.no_grad():
        reference = model(x)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            low = model(x)
    relative = (low.float() - reference).norm() / reference.norm()
    assert relative < 0.05


def test_unknown_arch_or_norm_is_a_user_error():
    with pytest.raises(UserError, match="--arch"):
        build_generator(GeneratorSpec("unet"))
    with pytest.raises(UserError, match="--norm"):
        build_generator(GeneratorSpec("johnson", "group"))


@pytest.mark.parametrize("size", [(8, 8), (9, 13), (64, 70), (130, 67)])
def test_the_traced_padding_path_equals_the_eager_one_from_the_minimum_size_up(size, monkeypatch):
    from train.padding import pad_to_multiple

    x = torch.rand(1, 3, *size)
    eager = pad_to_multiple(x, 4, 8)
    monkeypatch.setattr(torch.compiler, "is_compiling", lambda: True)
    traced = pad_to_multiple(x, 4, 8)
    assert torch.equal(eager, traced)


def test_position_noise_is_uniform_white_and_a_function_of_the_position_alone():
    from train.texture import position_noise

    z = position_noise(3, 300, 400, 7, torch.zeros(1)).numpy()[0]
    assert z.shape == (3, 300, 400) and z.min() >= 0 and z.max() < 1
    assert abs(z.mean() - 0.5) < 0.01 and abs(z.var() - 1 / 12) < 0.002
    for plane in z:
        centred = plane - plane.mean()
        for a, b in ((centred[:, 1:], centred[:, :-1]), (centred[1:], centred[:-1])):  # neighbours
            assert abs((a * b).mean() / centred.var()) < 0.01
        power = np.abs(np.fft.fft2(centred)) ** 2  # no frequency stands out (a lattice or stripes would)
        assert power.max() / power.sum() < 3 * np.log(plane.size) / plane.size
    assert abs(np.corrcoef(z[0].ravel(), z[1].ravel())[0, 1]) < 0.01  # channels differ
    smaller = position_noise(3, 123, 77, 7, torch.zeros(1)).numpy()[0]
    assert np.array_equal(smaller, z[:, :123, :77])  # the same pixel, the same value, whatever the picture's size
    assert not np.array_equal(position_noise(3, 123, 77, 8, torch.zeros(1)).numpy()[0], smaller)  # salt: branch


def test_a_texture_net_with_noise_is_deterministic_outside_training_and_random_in_it():
    spec = GeneratorSpec("texture", "instance", 0.5, noise_channels=2)
    torch.manual_seed(0)
    model = build_generator(spec).eval()
    x = photo_batch(2, 70, 90)
    with torch.no_grad():
        fixed = model(x)
        assert torch.equal(model(x), fixed)
        # The same noise for each picture of a batch. A batch of one runs other convolution kernels: 1e-4 apart
        # here, a little more on CI's CPU; different noise differs by ~0.3 on average and ~3 at most.
        assert torch.allclose(model(x[1:]), fixed[1:], atol=2e-3)
        drawn = [model(x, noise=torch.Generator().manual_seed(s)) for s in (1, 2)]
    assert (drawn[0] - drawn[1]).abs().max() > 1e-3  # the noise does reach the picture
