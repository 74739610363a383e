"""Building generators by name, and loading their weights from our files or pytorch/examples checkpoints."""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass

import torch
from torch import nn

from runtime.errors import UserError
from train.johnson import TransformerNet
from train.norm import NORMS
from train.texture import TextureNet

ARCHS = ("johnson", "texture")
Generator = TransformerNet | TextureNet


@dataclass(frozen=True)
class GeneratorSpec:
    arch: str = "johnson"
    norm: str = "instance"
    width: float = 1.0
    noise_channels: int = 0

    def to_dict(self) -> dict:
        return asdict(self)


def build_generator(spec: GeneratorSpec) -> Generator:
    if spec.norm not in NORMS:
        raise UserError(f"unknown --norm {spec.norm!r}: choose one of {', '.join(NORMS)}")
    if not spec.width > 0:
        raise UserError(f"--width must be positive, got {spec.width}")
    if spec.arch == "johnson":
        if spec.noise_channels:
            raise UserError("--noise-channels applies to --arch texture only")
        return TransformerNet(norm=spec.norm, width=spec.width)
    if spec.arch == "texture":
        return TextureNet(norm=spec.norm, width=spec.width, noise_channels=spec.noise_channels)
    raise UserError(f"unknown --arch {spec.arch!r}: choose one of {', '.join(ARCHS)}")


_LEGACY_STATS = re.compile(r"(^|\.)(running_mean|running_var|num_batches_tracked)$")


def load_generator_weights(model: nn.Module, state: dict[str, torch.Tensor], source: str) -> list[str]:
    """Load `state` strictly, after dropping legacy instance-norm running statistics.

    pytorch/examples checkpoints were saved by torch < 0.4, whose InstanceNorm2d kept `running_mean`/`running_var`
    buffers that were never used; current InstanceNorm2d has none. Those keys are dropped, and returned so the
    caller can say so. Any other mismatch is an error naming the file.
    """
    expected = model.state_dict()
    dropped = [k for k in state if k not in expected and _LEGACY_STATS.search(k)]
    kept = {k: v for k, v in state.items() if k not in dropped}
    missing = sorted(set(expected) - set(kept))
    unexpected = sorted(set(kept) - set(expected))
    if missing or unexpected:
        detail = []
        if missing:
            detail.append(f"missing {', '.join(missing[:3])}{' …' if len(missing) > 3 else ''}")
        if unexpected:
            detail.append(f"unexpected {', '.join(unexpected[:3])}{' …' if len(unexpected) > 3 else ''}")
        raise UserError(f"{source}: weights do not fit this generator ({'; '.join(detail)})")
    for key, value in kept.items():
        if value.shape != expected[key].shape:
            raise UserError(
                f"{source}: {key} has shape {tuple(value.shape)}, the generator expects "
                f"{tuple(expected[key].shape)} (wrong --arch or --width?)"
            )
    model.load_state_dict(kept)
    return dropped
