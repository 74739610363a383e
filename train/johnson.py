"""Johnson et al.'s residual transformer network, as pytorch/examples `fast_neural_style` builds it.

Module and parameter names are theirs (`conv1.conv2d.weight`, `in1.weight`, `res1.conv1.conv2d.weight`, ...),
so their published state dicts load directly. Differences: the width multiplier, the choice of norm, and that
`forward` accepts any H×W (mirror-padded to a multiple of 4, cropped back).
"""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn

from train.norm import make_norm
from train.padding import pad_to_multiple


class ConvLayer(nn.Module):
    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, stride: int):
        super().__init__()
        self.reflection_pad = nn.ReflectionPad2d(kernel_size // 2)
        self.conv2d = nn.Conv2d(in_channels, out_channels, kernel_size, stride)

    def forward(self, x: Tensor) -> Tensor:
        return self.conv2d(self.reflection_pad(x))


class ResidualBlock(nn.Module):
    def __init__(self, channels: int, norm: str):
        super().__init__()
        self.conv1 = ConvLayer(channels, channels, kernel_size=3, stride=1)
        self.in1 = make_norm(norm, channels)
        self.conv2 = ConvLayer(channels, channels, kernel_size=3, stride=1)
        self.in2 = make_norm(norm, channels)
        self.relu = nn.ReLU()

    def forward(self, x: Tensor) -> Tensor:
        out = self.relu(self.in1(self.conv1(x)))
        return self.in2(self.conv2(out)) + x


class UpsampleConvLayer(nn.Module):
    """Nearest-neighbour upsampling then a convolution: no checkerboard artifacts of transposed convs."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, stride: int, upsample: int):
        super().__init__()
        self.upsample = upsample
        self.reflection_pad = nn.ReflectionPad2d(kernel_size // 2)
        self.conv2d = nn.Conv2d(in_channels, out_channels, kernel_size, stride)

    def forward(self, x: Tensor) -> Tensor:
        x = F.interpolate(x, mode="nearest", scale_factor=self.upsample)
        return self.conv2d(self.reflection_pad(x))


class TransformerNet(nn.Module):
    """RGB float 0–255 NCHW in, RGB float (about 0–255, unclipped) of the same size out."""

    # Two stride-2 stages; at 8 px the 9×9 reflection pad and the 2 px residual maps are still valid.
    multiple = 4
    minimum_size = 8

    def __init__(self, norm: str = "instance", width: float = 1.0):
        super().__init__()
        c1, c2, c3 = (max(1, round(c * width)) for c in (32, 64, 128))
        self.conv1 = ConvLayer(3, c1, kernel_size=9, stride=1)
        self.in1 = make_norm(norm, c1)
        self.conv2 = ConvLayer(c1, c2, kernel_size=3, stride=2)
        self.in2 = make_norm(norm, c2)
        self.conv3 = ConvLayer(c2, c3, kernel_size=3, stride=2)
        self.in3 = make_norm(norm, c3)
        self.res1 = ResidualBlock(c3, norm)
        self.res2 = ResidualBlock(c3, norm)
        self.res3 = ResidualBlock(c3, norm)
        self.res4 = ResidualBlock(c3, norm)
        self.res5 = ResidualBlock(c3, norm)
        self.deconv1 = UpsampleConvLayer(c3, c2, kernel_size=3, stride=1, upsample=2)
        self.in4 = make_norm(norm, c2)
        self.deconv2 = UpsampleConvLayer(c2, c1, kernel_size=3, stride=1, upsample=2)
        self.in5 = make_norm(norm, c1)
        self.deconv3 = ConvLayer(c1, 3, kernel_size=9, stride=1)
        self.relu = nn.ReLU()

    def forward(self, x: Tensor) -> Tensor:
        h, w = x.shape[-2], x.shape[-1]
        y = pad_to_multiple(x, self.multiple, self.minimum_size)
        y = self.relu(self.in1(self.conv1(y)))
        y = self.relu(self.in2(self.conv2(y)))
        y = self.relu(self.in3(self.conv3(y)))
        y = self.res5(self.res4(self.res3(self.res2(self.res1(y)))))
        y = self.relu(self.in4(self.deconv1(y)))
        y = self.relu(self.in5(self.deconv2(y)))
        y = self.deconv3(y)
        return y[..., :h, :w]
