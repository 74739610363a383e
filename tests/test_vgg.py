import hashlib

import pytest
import torch
import torch.nn.functional as F

from runtime.errors import UserError
from tests.helpers import random_vgg_state
from train import vgg_weights
from train.vgg import layer_names
from train.vgg_weights import build_loss_network, download_vgg_weights, read_vgg_weights


def test_layer_names_follow_torchvision_indices():
    names16, names19 = layer_names("vgg16"), layer_names("vgg19")
    assert len(names16) == 31 and len(names19) == 37  # len(torchvision vgg.features)
    assert names16[3] == "relu1_2" and names16[8] == "relu2_2" and names16[15] == "relu3_3"
    assert names16[22] == "relu4_3" and names16[29] == "relu5_3"
    assert names19[1] == "relu1_1" and names19[11] == "relu3_1" and names19[20] == "relu4_1"
    assert names19[22] == "relu4_2" and names19[35] == "relu5_4"


def reference_features(state, x, upto_convs, mean, std):
    """relu after the last conv, computed by hand with torchvision's layout (zero padding, max pool)."""
    y = (x / 255 - torch.tensor(mean).view(1, 3, 1, 1)) / torch.tensor(std).view(1, 3, 1, 1)
    convs = sorted({int(k.split(".")[-2]) for k in state if k.endswith("weight")})
    pools_after = {2, 4}  # conv1_2, conv2_2 (1-based) are followed by a pool in VGG-16
    for n, index in enumerate(convs[:upto_convs], start=1):
        prefix = "features." if f"features.{index}.weight" in state else ""
        y = F.relu(F.conv2d(y, state[f"{prefix}{index}.weight"], state[f"{prefix}{index}.bias"], padding=1))
        if n in pools_after and n < upto_convs:
            y = F.max_pool2d(y, 2)
    return y


@pytest.mark.parametrize("prefix", ["", "features."])
def test_torchvision_state_dicts_load_full_or_truncated(tmp_path, prefix):
    state = random_vgg_state(13, "vgg16", prefix=prefix) if prefix else random_vgg_state(5, "vgg16")
    if prefix:
        state["classifier.0.weight"] = torch.zeros(8, 8)  # a full model file also has the classifier
    path = tmp_path / "vgg.pth"
    torch.save(state, path)
    weights = read_vgg_weights(path)
    assert weights.kind == "torchvision"
    assert weights.arch == ("vgg16" if prefix else None)
    net = build_loss_network(weights, "vgg16", ["relu3_1"])
    x = torch.rand(1, 3, 32, 32) * 255
    expected = reference_features(state, x, 5, (0.485, 0.456, 0.406), (0.229, 0.224, 0.225))
    torch.testing.assert_close(net(x, ["relu3_1"])["relu3_1"], expected, atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize("keys", ["convN", "sequential"])
def test_caffe_normalised_vgg19_uses_its_input_conversion_and_reflection_padding(tmp_path, keys):
    tv = random_vgg_state(3, "vgg19")
    convs = [(tv[f"{i}.weight"], tv[f"{i}.bias"]) for i in (0, 2, 5)]
    to_bgr = torch.tensor([[0.0, 0, 255], [0, 255, 0], [255, 0, 0]]).view(3, 3, 1, 1)
    mean_bgr = -torch.tensor([103.939, 116.779, 123.68])
    if keys == "convN":  # LinearStyleTransfer / WCT encoder layout
        names = ["conv1", "conv2", "conv3", "conv4"]
    else:  # pytorch-AdaIN vgg_normalised.pth: an nn.Sequential with padding modules in between
        names = ["0", "2", "5", "9"]
    state = {f"{names[0]}.weight": to_bgr, f"{names[0]}.bias": mean_bgr}
    for name, (w, b) in zip(names[1:], convs, strict=True):
        state[f"{name}.weight"], state[f"{name}.bias"] = w, b
    path = tmp_path / "vgg_normalised.pth"
    torch.save(state, path)
    weights = read_vgg_weights(path)
    assert (weights.kind, weights.arch, weights.deepest_layer) == ("caffe-normalised", "vgg19", "relu2_1")
    net = build_loss_network(weights, "vgg19", ["relu2_1"])

    x = torch.rand(1, 3, 24, 20) * 255
    y = F.conv2d(x / 255, to_bgr, mean_bgr)
    for i, (w, b) in enumerate(convs):
        y = F.relu(F.conv2d(F.pad(y, (1, 1, 1, 1), mode="reflect"), w, b))
        if i == 1:
            y = F.max_pool2d(y, 2)
    torch.testing.assert_close(net(x, ["relu2_1"])["relu2_1"], y, atol=1e-3, rtol=1e-4)


def test_a_layer_deeper_than_the_weights_names_the_deepest_one(tmp_path):
    path = tmp_path / "short.pth"
    torch.save(random_vgg_state(5, "vgg19"), path)
    weights = read_vgg_weights(path)
    with pytest.raises(UserError, match=r"stop at relu3_1; relu4_1 is deeper"):
        build_loss_network(weights, "vgg19", ["relu1_1", "relu4_1"])
    with pytest.raises(UserError, match=r"no layer relu6_1"):
        build_loss_network(weights, "vgg19", ["relu6_1"])


def test_wrong_shapes_and_wrong_files_are_clear_errors(tmp_path):
    state = random_vgg_state(4, "vgg16")
    state["5.weight"] = torch.zeros(128, 32, 3, 3)
    bad_shape = tmp_path / "bad_shape.pth"
    torch.save(state, bad_shape)
    with pytest.raises(UserError, match=r"bad_shape.pth: convolution 3 has weight shape \(128, 32, 3, 3\)"):
        read_vgg_weights(bad_shape)

    not_vgg = tmp_path / "not_vgg.pth"
    torch.save({"fc.weight": torch.zeros(3, 3)}, not_vgg)
    with pytest.raises(UserError, match=r"not_vgg\.pth: no VGG convolution weights"):
        read_vgg_weights(not_vgg)

    garbage = tmp_path / "garbage.pth"
    garbage.write_bytes(b"this is not a weights file")
    with pytest.raises(UserError, match=r"garbage\.pth: not a PyTorch weights file"):
        read_vgg_weights(garbage)

    with pytest.raises(UserError, match="not found"):
        read_vgg_weights(tmp_path / "missing.pth")


class _RunsCode:
    def __reduce__(self):
        return (print, ("pickle code ran",))


def test_a_pickle_that_would_run_code_is_refused(tmp_path, capsys):
    path = tmp_path / "evil.pth"
    torch.save({"0.weight": _RunsCode()}, path)
    with pytest.raises(UserError, match=r"evil\.pth: not a PyTorch weights file that can be loaded safely"):
        read_vgg_weights(path)
    assert "pickle code ran" not in capsys.readouterr().out


def test_full_vgg19_file_contradicting_loss_net_is_an_error(tmp_path):
    path = tmp_path / "vgg19.pth"
    torch.save(random_vgg_state(16, "vgg19", prefix="features."), path)
    weights = read_vgg_weights(path)
    assert weights.arch == "vgg19" and weights.deepest_layer == "relu5_4"
    with pytest.raises(UserError, match="holds VGG19 weights but --loss-net is vgg16"):
        build_loss_network(weights, "vgg16", ["relu2_2"])


def _hub_file(tmp_path, name_stem: str, state) -> tuple[str, str]:
    source = tmp_path / "server"
    source.mkdir()
    staging = source / "staging.pth"
    torch.save(state, staging)
    digest = hashlib.sha256(staging.read_bytes()).hexdigest()
    return staging, digest


def test_download_goes_to_the_hub_cache_and_checks_the_hash(tmp_path, monkeypatch):
    state = random_vgg_state(13, "vgg16", prefix="features.")
    staging, digest = _hub_file(tmp_path, "vgg16", state)
    good = staging.with_name(f"vgg16-{digest[:8]}.pth")
    staging.rename(good)
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch-home"))
    monkeypatch.setitem(vgg_weights.TORCHVISION_URLS, "vgg16", good.as_uri())
    weights = download_vgg_weights("vgg16")
    assert weights.arch == "vgg16" and len(weights.convs) == 13
    assert (tmp_path / "torch-home" / "hub" / "checkpoints" / good.name).is_file()


def test_download_with_a_wrong_hash_is_refused(tmp_path, monkeypatch):
    staging, _ = _hub_file(tmp_path, "vgg16", random_vgg_state(13, "vgg16", prefix="features."))
    bad = staging.with_name("vgg16-00000000.pth")
    staging.rename(bad)
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch-home"))
    monkeypatch.setitem(vgg_weights.TORCHVISION_URLS, "vgg16", bad.as_uri())
    with pytest.raises(UserError, match="fail their hash check"):
        download_vgg_weights("vgg16")


def test_no_network_tells_the_user_to_give_a_local_file(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch-home"))
    monkeypatch.setitem(vgg_weights.TORCHVISION_URLS, "vgg16", (tmp_path / "nowhere" / "vgg16-12345678.pth").as_uri())
    with pytest.raises(UserError, match="--vgg-weights PATH"):
        download_vgg_weights("vgg16")


def test_a_truncated_file_past_conv3_3_tells_vgg16_from_vgg19(tmp_path):
    path16, path19 = tmp_path / "vgg16_10.pth", tmp_path / "vgg19_10.pth"
    torch.save(random_vgg_state(10, "vgg16"), path16)
    torch.save(random_vgg_state(10, "vgg19"), path19)
    assert read_vgg_weights(path16).arch == "vgg16" and read_vgg_weights(path16).deepest_layer == "relu4_3"
    assert read_vgg_weights(path19).arch == "vgg19" and read_vgg_weights(path19).deepest_layer == "relu4_2"


def test_vgg19_cut_after_conv5_1_is_not_mistaken_for_vgg16(tmp_path):
    path = tmp_path / "vgg19_relu5_1.pth"
    torch.save(random_vgg_state(13, "vgg19", prefix="features."), path)
    weights = read_vgg_weights(path)
    assert weights.arch == "vgg19" and weights.deepest_layer == "relu5_1"


def test_batch_norm_vgg_weights_are_refused(tmp_path):
    state = random_vgg_state(13, "vgg16", prefix="features.")
    state["features.1.running_mean"] = torch.zeros(64)
    path = tmp_path / "vgg16_bn.pth"
    torch.save(state, path)
    with pytest.raises(UserError, match=r"vgg16_bn\.pth: batch-norm VGG weights"):
        read_vgg_weights(path)
