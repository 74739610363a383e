"""VGG-16/19 feature stacks for the perceptual loss, with layers addressed by name (`relu1_1` … `relu5_4`).

Modules sit at torchvision's `vgg.features` indices, so torchvision state dicts load as they are. The input
conversion from RGB 0–255 to what the weights were trained on is a 1×1 affine map that comes with the weights
(ImageNet mean/std for torchvision, RGB→BGR×255−mean for the Caffe models).
"""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

CONFIGS: dict[str, list[int | str]] = {
    "vgg16": [64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M"],
    "vgg19": [
        64,
        64,
        "M",
        128,
        128,
        "M",
        256,
        256,
        256,
        256,
        "M",
        512,
        512,
        512,
        512,
        "M",
        512,
        512,
        512,
        512,
        "M",
    ],
}
ARCHS = tuple(CONFIGS)
PaddingMode = Literal["zeros", "reflect", "replicate", "circular"]  # what nn.Conv2d takes


def layer_names(arch: str) -> list[str]:
    """Names of the modules of `features`, index by index: conv1_1, relu1_1, conv1_2, …, pool1, conv2_1, …"""
    names, block, conv = [], 1, 1
    for item in CONFIGS[arch]:
        if item == "M":
            names.append(f"pool{block}")
            block, conv = block + 1, 1
        else:
            names += [f"conv{block}_{conv}", f"relu{block}_{conv}"]
            conv += 1
    return names


def conv_shapes(arch: str) -> list[tuple[int, int, int, int]]:
    shapes, in_channels = [], 3
    for item in CONFIGS[arch]:
        if item != "M":
            shapes.append((int(item), in_channels, 3, 3))
            in_channels = int(item)
    return shapes


class VggFeatures(nn.Module):
    """Frozen VGG features up to the deepest layer the weights provide; `forward` returns the named layers."""

    input_weight: Tensor  # buffers, registered in __init__
    input_bias: Tensor

    def __init__(
        self,
        arch: str,
        convs: list[tuple[Tensor, Tensor]],
        input_weight: Tensor,
        input_bias: Tensor,
        padding_mode: PaddingMode,
    ):
        super().__init__()
        self.arch = arch
        names = layer_names(arch)
        modules: list[nn.Module] = []
        conv_iter = iter(convs)
        for name in names:
            if name.startswith("conv"):
                weight, bias = next(conv_iter, (None, None))
                if weight is None:
                    break
                conv = nn.Conv2d(weight.shape[1], weight.shape[0], 3, padding=1, padding_mode=padding_mode)
                conv.weight.data.copy_(weight)
                assert conv.bias is not None and bias is not None  # Conv2d's bias=True; the pairs hold tensors
                conv.bias.data.copy_(bias)
                modules.append(conv)
            elif name.startswith("relu"):
                modules.append(nn.ReLU())
            else:
                modules.append(nn.MaxPool2d(2, 2))
        # Drop a trailing pool: nothing after it is available.
        while modules and isinstance(modules[-1], nn.MaxPool2d):
            modules.pop()
        self.features = nn.Sequential(*modules)
        self.names = names[: len(modules)]
        self.register_buffer("input_weight", input_weight.reshape(3, 3, 1, 1).float().clone())
        self.register_buffer("input_bias", input_bias.reshape(3).float().clone())
        self.requires_grad_(False)
        self.eval()

    @property
    def deepest_layer(self) -> str:
        return self.names[-1]

    def forward(self, x: Tensor, layers: list[str]) -> dict[str, Tensor]:
        """`x`: RGB 0–255, NCHW. Runs only as deep as the deepest of `layers`."""
        wanted = set(layers)
        last = max(self.names.index(name) for name in wanted)
        y = F.conv2d(x / 255.0, self.input_weight.to(x.dtype), self.input_bias.to(x.dtype))
        out = {}
        for index in range(last + 1):
            y = self.features[index](y)
            if self.names[index] in wanted:
                out[self.names[index]] = y
        return out

    def train(self, mode: bool = True) -> VggFeatures:
        # The loss network never trains (and has no batch norm); keep it in eval mode.
        return super().train(False)


def imagenet_input_transform() -> tuple[Tensor, Tensor]:
    """torchvision's preprocessing as a 1×1 affine map on RGB in [0, 1]."""
    mean = torch.tensor([0.485, 0.456, 0.406])
    std = torch.tensor([0.229, 0.224, 0.225])
    return torch.diag(1.0 / std), -mean / std
