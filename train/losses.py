"""Perceptual loss of Johnson et al. / Ulyanov et al.: content, Gram-matrix style, and total variation."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from train.vgg import VggFeatures


def gram_matrix(features: Tensor) -> Tensor:
    """(N, C, H, W) → (N, C, C), normalised by C·H·W; computed in float32 so that fp16 features cannot overflow."""
    n, c, h, w = features.shape
    # Autocast would run the matmul in fp16/bf16 again even on float32 inputs: switch it off here.
    with torch.autocast(features.device.type, enabled=False):
        flat = features.float().reshape(n, c, h * w)
        return flat @ flat.transpose(1, 2) / (c * h * w)


def total_variation(images: Tensor) -> Tensor:
    """Sum of squared differences between neighbouring pixels, per image, averaged over the batch."""
    images = images.float()
    dy = (images[..., 1:, :] - images[..., :-1, :]).pow(2).sum(dim=(1, 2, 3))
    dx = (images[..., :, 1:] - images[..., :, :-1]).pow(2).sum(dim=(1, 2, 3))
    return (dx + dy).mean()


class PerceptualLoss(nn.Module):
    """Weighted sum of content, style and TV terms against one style image.

    `content_layers` and `style_layers` map VGG layer names to per-layer weights; `content_weight` and
    `style_weight` multiply the sums. The style image's Gram matrices are computed once, here.
    """

    def __init__(
        self,
        vgg: VggFeatures,
        style_image: Tensor,
        content_layers: dict[str, float],
        style_layers: dict[str, float],
        content_weight: float,
        style_weight: float,
        tv_weight: float,
    ):
        super().__init__()
        self.vgg = vgg
        self.content_layers = dict(content_layers)
        self.style_layers = dict(style_layers)
        self.content_weight = content_weight
        self.style_weight = style_weight
        self.tv_weight = tv_weight
        self.layers = sorted(set(self.content_layers) | set(self.style_layers))
        with torch.no_grad():
            features = vgg(style_image, list(self.style_layers))
        for name in self.style_layers:
            self.register_buffer(f"style_gram_{name}", gram_matrix(features[name]))

    def style_gram(self, name: str) -> Tensor:
        return getattr(self, f"style_gram_{name}")

    def forward(self, output: Tensor, content: Tensor) -> dict[str, Tensor]:
        """Loss terms for generator `output` given the `content` images (both RGB 0–255 NCHW).

        Returns `total`, `content`, `style`, `tv` (each already weighted), and the unweighted per-layer terms
        `content/<layer>` and `style/<layer>`.
        """
        out_features = self.vgg(output, self.layers)
        target_features = {}
        if self.content_layers:
            with torch.no_grad():
                target_features = self.vgg(content, list(self.content_layers))
        terms: dict[str, Tensor] = {}
        content_sum = output.new_zeros((), dtype=torch.float32)
        for name, weight in self.content_layers.items():
            term = F.mse_loss(out_features[name].float(), target_features[name].float())
            terms[f"content/{name}"] = term.detach()
            content_sum = content_sum + weight * term
        style_sum = output.new_zeros((), dtype=torch.float32)
        for name, weight in self.style_layers.items():
            gram = gram_matrix(out_features[name])
            term = F.mse_loss(gram, self.style_gram(name).expand_as(gram))
            terms[f"style/{name}"] = term.detach()
            style_sum = style_sum + weight * term
        terms["content"] = self.content_weight * content_sum
        terms["style"] = self.style_weight * style_sum
        terms["tv"] = self.tv_weight * total_variation(output) if self.tv_weight else content_sum.new_zeros(())
        terms["total"] = terms["content"] + terms["style"] + terms["tv"]
        return terms
