"""Loading VGG weights for the loss network from a local file or from torchvision's download URL.

Accepted layouts (the input conversion and padding follow the weights):
- torchvision state dicts: `features.N.weight` (full model; `classifier.*` ignored) or truncated `N.weight`;
  input normalised with ImageNet mean/std, zero padding.
- Caffe "normalised" VGG-19 (Gatys et al., as used by WCT/LinearStyleTransfer/AdaIN): a leading 1×1 conv that
  turns RGB in [0, 1] into BGR×255−mean (keys `conv1`, `conv2`, … or `0`, `2`, …), then the 3×3 convs; reflection
  padding.
"""

from __future__ import annotations

import re
import urllib.error
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor

from runtime.errors import UserError
from train.state_files import read_state_dict
from train.vgg import CONFIGS, PaddingMode, VggFeatures, conv_shapes, imagenet_input_transform, layer_names

TORCHVISION_URLS = {
    "vgg16": "https://download.pytorch.org/models/vgg16-397923af.pth",
    "vgg19": "https://download.pytorch.org/models/vgg19-dcbb9e9d.pth",
}


@dataclass
class VggWeights:
    convs: list[tuple[Tensor, Tensor]]
    input_weight: Tensor
    input_bias: Tensor
    padding_mode: PaddingMode
    kind: str  # "torchvision" or "caffe-normalised"
    source: str
    arch: str | None  # None where a truncated file fits both VGG-16 and VGG-19

    @property
    def deepest_layer(self) -> str:
        arch = self.arch or "vgg19"
        conv_names = [n for n in layer_names(arch) if n.startswith("conv")]
        return conv_names[len(self.convs) - 1].replace("conv", "relu")


_INDEXED_KEY = re.compile(r"^(?:features\.)?(?:conv)?(\d+)\.(weight|bias)$")


def parse_vgg_state(state: dict[str, Tensor], source: str) -> VggWeights:
    convs: dict[int, dict[str, Tensor]] = {}
    for key, value in state.items():
        match = _INDEXED_KEY.match(key)
        if match:
            convs.setdefault(int(match.group(1)), {})[match.group(2)] = value
    ordered = [convs[i] for i in sorted(convs) if convs[i].get("weight") is not None]
    ordered = [c for c in ordered if c["weight"].dim() == 4]
    if not ordered or any("bias" not in c for c in ordered):
        raise UserError(
            f"{source}: no VGG convolution weights found (expected torchvision `features.N.weight` / `N.weight` "
            "keys or Caffe-normalised `convN.weight` keys)"
        )
    if any(key.endswith(("running_mean", "running_var")) for key in state):
        raise UserError(
            f"{source}: batch-norm VGG weights (vgg16_bn/vgg19_bn) are not supported; give plain VGG-16/19 weights"
        )
    pairs = [(c["weight"].float(), c["bias"].float()) for c in ordered]
    padding: PaddingMode
    if tuple(pairs[0][0].shape) == (3, 3, 1, 1):
        input_weight, input_bias = pairs[0][0].reshape(3, 3), pairs[0][1]
        pairs, kind, padding, arch = pairs[1:], "caffe-normalised", "reflect", "vgg19"
    else:
        input_weight, input_bias = imagenet_input_transform()
        kind, padding, arch = "torchvision", "zeros", None
    if len(pairs) > 16:
        raise UserError(f"{source}: {len(pairs)} convolutions found; VGG-19 has 16 — not a VGG file")
    candidates = [arch] if arch else list(CONFIGS)
    mismatches = {c: _first_mismatch(pairs, c) for c in candidates}
    fitting = [c for c, mismatch in mismatches.items() if mismatch is None]
    if not fitting:
        candidate, (index, shape, expected) = next((c, m) for c, m in mismatches.items() if m is not None)
        raise UserError(
            f"{source}: convolution {index + 1} has weight shape {shape}, {candidate.upper()} expects {expected} "
            "— not a VGG-16/19 weights file"
        )
    arch = fitting[0] if len(fitting) == 1 else None
    return VggWeights(pairs, input_weight, input_bias, padding, kind, source, arch)


def _first_mismatch(
    pairs: list[tuple[Tensor, Tensor]], arch: str
) -> tuple[int, tuple[int, ...], tuple[int, int, int, int] | None] | None:
    """(index, found shape, expected shape) of the first conv that does not fit `arch`, or None if all fit."""
    expected = conv_shapes(arch)
    for index, (weight, bias) in enumerate(pairs):
        shape = expected[index] if index < len(expected) else None
        if shape is None or tuple(weight.shape) != shape or tuple(bias.shape) != (shape[0],):
            return index, tuple(weight.shape), shape
    return None


def read_vgg_weights(path: str | Path) -> VggWeights:
    path = Path(path)
    return parse_vgg_state(read_state_dict(path, "VGG weights"), str(path))


def download_vgg_weights(arch: str) -> VggWeights:
    """torchvision's ImageNet VGG into the torch hub cache, checked against the hash in its file name."""
    url = TORCHVISION_URLS[arch]
    try:
        state = torch.hub.load_state_dict_from_url(
            url, map_location="cpu", check_hash=True, progress=True, weights_only=True
        )
    except (urllib.error.URLError, OSError) as exc:
        raise UserError(
            f"could not download {arch.upper()} weights from {url} ({exc}); give a local file with --vgg-weights PATH"
        ) from None
    except RuntimeError as exc:
        if "invalid hash" in str(exc):
            raise UserError(f"downloaded {arch.upper()} weights fail their hash check ({exc})") from None
        raise
    return parse_vgg_state(state, url)


def build_loss_network(weights: VggWeights, arch: str, layers: list[str]) -> VggFeatures:
    """Check that `layers` exist in `arch` and are within the weights' depth, then build the network."""
    if weights.arch and weights.arch != arch:
        raise UserError(
            f"{weights.source} holds {weights.arch.upper()} weights but --loss-net is {arch}; "
            f"use --loss-net {weights.arch}"
        )
    names = layer_names(arch)
    unknown = [name for name in layers if name not in names]
    if unknown:
        relus = [n for n in names if n.startswith("relu")]
        raise UserError(f"{arch.upper()} has no layer {unknown[0]}; its layers are {relus[0]} … {relus[-1]}")
    network = VggFeatures(arch, weights.convs, weights.input_weight, weights.input_bias, weights.padding_mode)
    too_deep = [name for name in layers if name not in network.names]
    if too_deep:
        raise UserError(
            f"VGG weights from {weights.source} stop at {network.deepest_layer}; {too_deep[0]} is deeper. "
            f"Choose layers up to {network.deepest_layer} or give full VGG weights with --vgg-weights"
        )
    return network
