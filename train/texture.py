"""Ulyanov et al.'s multi-scale texture network (texture_nets `pyramid` model), the seed paper's generator.

The input is average-pooled to 1/32 … 1/1 of its size. Each copy goes through three conv blocks (3×3, 3×3,
1×1). Going from coarse to fine, the running result is upsampled ×2, both it and the next branch are
normalized, concatenated, and mixed by three more conv blocks; a final 1×1 conv gives RGB. Convs are
reflection-padded (texture_nets pads with zeros; mirroring keeps instance norm's contrast invariance exact).
Optional noise channels are appended to every downsampled input (texture_nets' `NoiseFill`): random in training,
and outside it a fixed noise drawn from each pixel's position (`position_noise`), so that a model gives the same
picture every time, its ONNX export can be checked against it, and a still sky in a video stays still.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from train.norm import make_norm
from train.padding import pad_to_multiple

RATIOS = (32, 16, 8, 4, 2, 1)
# A prime whose square stays below 2²⁴: every step of the hash is then exact in int32 and in float32 alike (OpenVINO's
# CPU computes an int32 Mod through float32 and loses the low bits above 2²⁴); the hash runs in integers so that an
# fp16 export cannot round it. The noise repeats every NOISE_PRIME pixels of a branch (4093 px at full size).
NOISE_PRIME = 4093


def position_noise(channels: int, h: int, w: int, salt: int, like: Tensor) -> Tensor:
    """1×C×H×W noise in [0, 1] of `like`'s dtype: a hash of (channel, row, column, salt), so a pixel gets the same
    value whatever the picture's size. Uniform and white (neighbour correlation and the largest frequency's share of
    the power as for random numbers, tests/test_generators.py); the squarings make it non-linear, since a linear
    hash of the position would be a lattice, visible as stripes."""
    y = torch.arange(h, dtype=torch.int32, device=like.device).view(1, 1, h, 1) % NOISE_PRIME
    x = torch.arange(w, dtype=torch.int32, device=like.device).view(1, 1, 1, w) % NOISE_PRIME
    c = torch.arange(channels, dtype=torch.int32, device=like.device).view(1, channels, 1, 1)
    v = (y * 61 + x * 113 + c * 4021 + salt * 97) % NOISE_PRIME  # each sum below 2²⁴ too
    v = (v * v + x + 1234) % NOISE_PRIME
    v = (v * v + y + 777) % NOISE_PRIME
    v = (v * v + c + 4242) % NOISE_PRIME
    return (v.float() / NOISE_PRIME).to(like.dtype)


class ConvBlock(nn.Sequential):
    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, norm: str):
        super().__init__(
            nn.ReflectionPad2d(kernel_size // 2),
            nn.Conv2d(in_channels, out_channels, kernel_size),
            make_norm(norm, out_channels),
            nn.LeakyReLU(0.01),
        )


def _three_blocks(in_channels: int, channels: int, norm: str) -> nn.Sequential:
    return nn.Sequential(
        ConvBlock(in_channels, channels, 3, norm),
        ConvBlock(channels, channels, 3, norm),
        ConvBlock(channels, channels, 1, norm),
    )


class TextureNet(nn.Module):
    """RGB float 0–255 NCHW in, RGB float of the same size out."""

    multiple = RATIOS[0]
    # The coarsest branch must be at least 2×2 for its 3×3 mirror padding.
    minimum_size = 2 * RATIOS[0]

    def __init__(self, norm: str = "instance", width: float = 1.0, noise_channels: int = 0):
        super().__init__()
        self.noise_channels = noise_channels
        base = max(1, round(8 * width))
        self.branches = nn.ModuleList(_three_blocks(3 + noise_channels, base, norm) for _ in RATIOS)
        # Join i merges the running result (base*i channels) with branch i (base channels).
        self.join_norms_coarse = nn.ModuleList(make_norm(norm, base * i) for i in range(1, len(RATIOS)))
        self.join_norms_branch = nn.ModuleList(make_norm(norm, base) for _ in range(1, len(RATIOS)))
        self.joins = nn.ModuleList(_three_blocks(base * (i + 1), base * (i + 1), norm) for i in range(1, len(RATIOS)))
        self.to_rgb = nn.Conv2d(base * len(RATIOS), 3, 1)

    def _branch_input(self, x: Tensor, ratio: int, noise: torch.Generator | None) -> Tensor:
        x = F.avg_pool2d(x, ratio) if ratio > 1 else x
        if not self.noise_channels:
            return x
        n, _, h, w = x.shape
        if noise is None:
            z = position_noise(self.noise_channels, h, w, ratio, x).expand(n, -1, -1, -1)
        else:
            z = torch.rand((n, self.noise_channels, h, w), generator=noise, device=x.device, dtype=x.dtype)
        return torch.cat([x, z * 255.0], dim=1)

    def forward(self, x: Tensor, noise: torch.Generator | None = None) -> Tensor:
        """`noise`: the random stream of the noise channels in training; None: `position_noise`."""
        h, w = x.shape[-2], x.shape[-1]
        x = pad_to_multiple(x, self.multiple, self.minimum_size)
        y = self.branches[0](self._branch_input(x, RATIOS[0], noise))
        for i, ratio in enumerate(RATIOS[1:]):
            branch = self.branches[i + 1](self._branch_input(x, ratio, noise))
            y = F.interpolate(y, scale_factor=2, mode="nearest")
            y = torch.cat([self.join_norms_coarse[i](y), self.join_norms_branch[i](branch)], dim=1)
            y = self.joins[i](y)
        return self.to_rgb(y)[..., :h, :w]
