"""Training settings: defaults, the published recipes (`--preset`), and how flags and a resumed run combine."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields

from runtime.errors import UserError


@dataclass
class TrainConfig:
    style: str = ""
    data: str = ""
    out: str = ""
    preset: str = "pytorch-examples"
    # generator
    arch: str = "johnson"
    norm: str = "instance"
    width: float = 1.0
    noise_channels: int = 0
    # data
    image_size: int = 256
    style_size: int | None = None
    crop: str = "random"
    zoom: float = 1.0  # random crops from the short side resized to image_size × [1, zoom] (train.data)
    sky: float = 0.0  # fraction of crops given a synthetic smooth sky (train.data.paint_sky)
    batch_size: int = 4
    steps: int | None = None
    epochs: float | None = None
    # loss
    loss_net: str = "vgg16"
    vgg_weights: str | None = None
    content_layers: str = "relu2_2"
    style_layers: str = "relu1_2,relu2_2,relu3_3,relu4_3"
    style_grid: int = 1  # > 1: Gram matrices of each cell of a grid×grid split of the output (train.losses) ...
    style_grid_layers: str = ""  # ... at these style layers; empty: at every style layer
    content_weight: float = 1e5
    content_structure: float = 0.0  # > 0: content counts fully where the photo's 9×9 luma std reaches this (losses)
    style_weight: float = 1e10
    tv_weight: float = 0.0
    loss_scale: str = "absolute"
    range_weight: float = 0.0  # > 0: the loss judges the output clipped to 0–255 and penalises values outside
    histogram_layers: str = "relu1_1"  # compared as distributions (train.losses.SlicedHistogram) ...
    histogram_weight: float = 0.0  # ... with this weight; 0: off
    lowfreq_weight: float = 0.0  # > 0: large-scale colour change where the photo has none costs this much ...
    lowfreq_scale: int = 32  # ... seen through a box blur of this many px (train.losses.low_frequency_excess) ...
    lowfreq_gain: float = 2.0  # ... beyond this many times the photo's own change
    relight_weight: float = 0.0  # > 0: the output's change when the crop is relit smoothly costs this much ...
    relight_amount: float = 0.5  # ... lit by up to ×(1 + amount) or ÷(1 + amount) (train.relight) ...
    relight_scale: int = 16  # ... seen through a box blur of this many px
    paste_weight: float = 0.0  # > 0: the output's change round a flat shape pasted into the crop costs this much ...
    paste_scale: int = 8  # ... seen through a box blur of this many px (train.paste) ...
    paste_band: int = 6  # ... outside a band this many px wide round the shape (its own outline)
    grain_weight: float = 0.0  # > 0: the output's change when grain is added to the crop costs this much ...
    grain_sigma: float = 4.0  # ... grain of this standard deviation, 0–255 units (train.grain)
    # optimiser
    lr: float = 1e-3
    lr_decay: float = 1.0
    lr_decay_every: int = 0
    seed: int = 42
    init: str | None = None  # model.safetensors, exported .onnx or bundled style name to start from
    # bookkeeping and hardware
    checkpoint_every: int = 1000
    log_every: int = 50
    sample_every: int = 500
    device: str = "auto"
    precision: str = "auto"
    channels_last: bool | None = None
    workers: int | None = None

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> TrainConfig:
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})

    def total_steps(self, num_images: int) -> int:
        if self.steps is not None:
            return self.steps
        epochs = self.epochs if self.epochs is not None else 1.0
        return max(1, math.ceil(epochs * num_images / self.batch_size))

    def lr_at(self, step: int) -> float:
        """Step schedule: lr × lr_decay^(step // lr_decay_every). A pure function of the step, so resume is exact."""
        if not self.lr_decay_every:
            return self.lr
        return self.lr * self.lr_decay ** (step // self.lr_decay_every)


# The published recipes. Loss weights are relative to the loss network's feature scale: they reproduce the
# originals with the same VGG weights (torchvision VGG-16 for pytorch-examples; Caffe VGG-16/19 for the others).
PRESETS: dict[str, dict] = {
    "pytorch-examples": dict(
        arch="johnson",
        loss_net="vgg16",
        content_layers="relu2_2",
        style_layers="relu1_2,relu2_2,relu3_3,relu4_3",
        content_weight=1e5,
        style_weight=1e10,
        tv_weight=0.0,
        lr=1e-3,
        lr_decay=1.0,
        lr_decay_every=0,
        batch_size=4,
        image_size=256,
        style_size=None,
        crop="center",
        steps=None,
        epochs=2.0,
    ),
    "johnson": dict(
        arch="johnson",
        loss_net="vgg16",
        content_layers="relu3_3",
        style_layers="relu1_2,relu2_2,relu3_3,relu4_3",
        content_weight=1.0,
        style_weight=5.0,
        tv_weight=1e-6,
        lr=1e-3,
        lr_decay=1.0,
        lr_decay_every=0,
        batch_size=4,
        image_size=256,
        style_size=256,
        crop="center",
        steps=40000,
        epochs=None,
    ),
    "texture-nets": dict(
        arch="texture",
        loss_net="vgg19",
        content_layers="relu4_2",
        style_layers="relu1_1,relu2_1,relu3_1,relu4_1",
        content_weight=1.0,
        style_weight=1.0,
        tv_weight=0.0,
        lr=1e-3,
        lr_decay=0.8,
        lr_decay_every=2000,
        batch_size=1,
        image_size=256,
        style_size=256,
        crop="random",
        steps=50000,
        epochs=None,
    ),
    # Ours: the loss of the bundled styles (scripts/train_bundled_styles.py, the settings of its final stage).
    # Johnson et al.'s style layers with every term a relative error, so that the deep layers count whatever the VGG
    # file's feature scale (with the Caffe-scale VGG-16 of our assets, relu4_3's raw Gram term is 1e5 times smaller
    # than relu2_2's), and relu2_2 beside relu3_3 in the content loss, which keeps more of the photo (SSIM 0.23 →
    # 0.30 on held-out photos at equal steps, docs/recipe.md), and the output judged as the user will get it, clipped
    # to 0–255, with values outside penalised (--range-weight; the bundled styles' fourth stage): without it the
    # generator paints with values VGG reads as colour and the saved picture shows as white (pale palettes, white
    # glows at edges). The histogram term of their fifth stage is not in it: from scratch it holds the style back.
    "balanced": dict(
        arch="johnson",
        loss_net="vgg16",
        content_layers="relu2_2:0.5,relu3_3:1",
        style_layers="relu1_2,relu2_2,relu3_3,relu4_3",
        content_weight=1.0,
        style_weight=3.0,
        tv_weight=10.0,
        loss_scale="relative",
        range_weight=100.0,
        lr=1e-3,
        lr_decay=1.0,
        lr_decay_every=0,
        batch_size=4,
        image_size=192,
        style_size=384,
        crop="random",
        steps=3000,
        epochs=None,
    ),
    # Ours: for loss networks that stop at relu3_1, such as the Caffe-normalised VGG-19 encoder
    # (vgg_r31.pth) that WCT and LinearStyleTransfer ship. Weights chosen on that network from 400-step CPU runs
    # (mosaic, half width, 128² crops): style 1e3 left the style loss flat, 1e4 at lr 2e-3 stylized.
    "shallow": dict(
        arch="johnson",
        loss_net="vgg19",
        content_layers="relu2_1",
        style_layers="relu1_1,relu2_1,relu3_1",
        content_weight=1.0,
        style_weight=1e4,
        tv_weight=1e-6,
        lr=2e-3,
        lr_decay=1.0,
        lr_decay_every=0,
        batch_size=4,
        image_size=256,
        style_size=256,
        crop="random",
        steps=2000,
        epochs=None,
    ),
}

# Settings that define what is being trained: a resumed run must keep them, or it would not continue the same run.
FIXED_ON_RESUME = (
    "style",
    "data",
    "preset",
    "arch",
    "norm",
    "width",
    "noise_channels",
    "image_size",
    "style_size",
    "crop",
    "zoom",
    "sky",
    "batch_size",
    "loss_net",
    "vgg_weights",
    "content_layers",
    "style_layers",
    "style_grid",
    "style_grid_layers",
    "content_weight",
    "content_structure",
    "style_weight",
    "tv_weight",
    "loss_scale",
    "range_weight",
    "histogram_layers",
    "histogram_weight",
    "lowfreq_weight",
    "lowfreq_scale",
    "lowfreq_gain",
    "relight_weight",
    "relight_amount",
    "relight_scale",
    "paste_weight",
    "paste_scale",
    "paste_band",
    "grain_weight",
    "grain_sigma",
    "lr",
    "lr_decay",
    "lr_decay_every",
    "seed",
    "init",
)

CHOICES = {
    "crop": ("random", "center"),
    "loss_scale": ("absolute", "relative"),
    "device": ("auto", "cpu", "cuda"),
    "precision": ("auto", "fp32", "bf16", "fp16"),
}


def parse_layers(spec: str, flag: str) -> dict[str, float]:
    """'relu1_2,relu2_2:0.5' → {'relu1_2': 1.0, 'relu2_2': 0.5}."""
    layers: dict[str, float] = {}
    for item in (part.strip() for part in spec.split(",")):
        if not item:
            continue
        name, _, weight = item.partition(":")
        try:
            layers[name.strip()] = float(weight) if weight else 1.0
        except ValueError:
            raise UserError(f"{flag}: bad layer weight in {item!r}; write LAYER or LAYER:WEIGHT") from None
    return layers


def resolve(overrides: dict, saved: dict | None = None) -> TrainConfig:
    """Combine flags given on the command line (`overrides`, None = not given) with a preset or a saved run."""
    given = {k: v for k, v in overrides.items() if v is not None}
    if saved is not None:
        config = TrainConfig.from_dict(saved)
        for key in FIXED_ON_RESUME:
            if key in given and given[key] != getattr(config, key):
                flag = "--" + key.replace("_", "-")
                raise UserError(
                    f"{flag} {given[key]} differs from the run being resumed ({getattr(config, key)}); "
                    f"drop {flag} to resume, or train into a new --out"
                )
    else:
        preset = given.get("preset", TrainConfig.preset)
        if preset not in PRESETS:
            raise UserError(f"unknown --preset {preset!r}: choose one of {', '.join(PRESETS)}")
        config = TrainConfig(**{**PRESETS[preset], "preset": preset})
    if "steps" in given and "epochs" in given:
        raise UserError("give --steps or --epochs, not both")
    if "steps" in given:
        config.epochs = None
    if "epochs" in given:
        config.steps = None
    for key, value in given.items():
        setattr(config, key, value)
    validate(config)
    return config


def validate(config: TrainConfig) -> None:
    for key, allowed in CHOICES.items():
        if getattr(config, key) not in allowed:
            raise UserError(f"--{key.replace('_', '-')} must be one of {', '.join(allowed)}")
    positive = ("image_size", "batch_size", "checkpoint_every", "log_every")
    for key in positive:
        if getattr(config, key) <= 0:
            raise UserError(f"--{key.replace('_', '-')} must be positive")
    non_negative = ("noise_channels", "workers", "seed", "sample_every", "lr_decay_every")
    for key in non_negative:
        value = getattr(config, key)
        if value is not None and value < 0:
            raise UserError(f"--{key.replace('_', '-')} must be 0 or more")
    if config.style_size is not None and config.style_size <= 0:
        raise UserError("--style-size must be positive")
    if config.steps is not None and config.steps <= 0:
        raise UserError("--steps must be positive")
    if config.epochs is not None and config.epochs <= 0:
        raise UserError("--epochs must be positive")
    if config.zoom < 1:
        raise UserError("--zoom must be 1 or more (1: crops from the whole short side)")
    if config.zoom > 1 and config.crop != "random":
        raise UserError("--zoom needs --crop random (centre crops always show the whole short side)")
    if not 0 <= config.sky <= 1:
        raise UserError("--sky must be a fraction of the crops, 0 to 1")
    if config.style_grid < 1:
        raise UserError("--style-grid must be 1 or more (1: Gram matrices of the whole output)")
    grid_layers = parse_layers(config.style_grid_layers, "--style-grid-layers")
    if unknown := sorted(set(grid_layers) - set(parse_layers(config.style_layers, "--style-layers"))):
        raise UserError(f"--style-grid-layers: {', '.join(unknown)} not in --style-layers ({config.style_layers})")
    # reluB_N sees the crop pooled B-1 times: every cell of the grid must keep at least one feature
    sides = {name: config.image_size // 2 ** (int(name[4]) - 1)
             for name in grid_layers or parse_layers(config.style_layers, "--style-layers")
             if name[:4] == "relu" and name[4:5].isdigit()}  # fmt: skip
    if config.style_grid > 1 and sides and config.style_grid > min(sides.values()):
        name = min(sides, key=lambda layer: sides[layer])
        raise UserError(
            f"--style-grid {config.style_grid}: {name} is {sides[name]}×{sides[name]} at --image-size "
            f"{config.image_size}; use a grid of at most {sides[name]} or a larger --image-size"
        )
    if config.content_structure < 0:
        raise UserError("--content-structure must be 0 or more (0: every place of the photo counts the same)")
    if config.range_weight < 0:
        raise UserError("--range-weight must be 0 or more")
    if config.histogram_weight < 0:
        raise UserError("--histogram-weight must be 0 or more")
    if config.histogram_weight and not parse_layers(config.histogram_layers, "--histogram-layers"):
        raise UserError(
            "--histogram-layers is empty; name at least one layer, e.g. relu1_1, or set --histogram-weight 0"
        )
    if config.lowfreq_weight < 0:
        raise UserError("--lowfreq-weight must be 0 or more")
    if config.lowfreq_gain < 0:
        raise UserError("--lowfreq-gain must be 0 or more")
    if config.lowfreq_scale < 2 or (config.lowfreq_weight and config.lowfreq_scale > config.image_size // 2):
        raise UserError(
            f"--lowfreq-scale must be 2 to half the --image-size ({config.image_size // 2}): the blurred crop needs "
            "at least two neighbours to compare"
        )
    if config.relight_weight < 0:
        raise UserError("--relight-weight must be 0 or more")
    if config.relight_weight and config.norm != "instance":
        raise UserError(  # the relit pass would move the running statistics a second time per step
            f"--relight-weight needs --norm instance (--norm {config.norm} keeps running statistics that the relit "
            "copies would train too)"
        )
    if not 0 < config.relight_amount <= 4:
        raise UserError("--relight-amount must be above 0 and at most 4 (light changed by up to ×5)")
    if config.relight_scale < 1 or (config.relight_weight and config.relight_scale > config.image_size):
        raise UserError(f"--relight-scale must be 1 to the --image-size ({config.image_size}) px")
    if config.paste_weight < 0:
        raise UserError("--paste-weight must be 0 or more")
    if config.paste_weight and config.norm != "instance":
        raise UserError(  # as --relight-weight: a second pass per step would move the running statistics twice
            f"--paste-weight needs --norm instance (--norm {config.norm} keeps running statistics that the pasted "
            "copies would train too)"
        )
    if config.paste_scale < 1 or (config.paste_weight and config.paste_scale > config.image_size // 4):
        raise UserError(
            f"--paste-scale must be 1 to a quarter of the --image-size ({config.image_size // 4}) px: the blurred "
            "crop needs cells away from the pasted shape"
        )
    if config.paste_band < 0 or (config.paste_weight and config.paste_band > config.image_size // 8):
        raise UserError(
            f"--paste-band must be 0 to an eighth of the --image-size ({config.image_size // 8}) px: the crop needs "
            "cells beyond the band"
        )
    if config.grain_weight < 0:
        raise UserError("--grain-weight must be 0 or more")
    if config.grain_weight and config.norm != "instance":
        raise UserError(  # as --relight-weight: a second pass per step would move the running statistics twice
            f"--grain-weight needs --norm instance (--norm {config.norm} keeps running statistics that the grainy "
            "copies would train too)"
        )
    if not 0 < config.grain_sigma <= 32:
        raise UserError("--grain-sigma must be above 0 and at most 32 (0–255 units)")
    if config.lr <= 0:
        raise UserError("--lr must be positive")
    if not parse_layers(config.content_layers, "--content-layers") and config.content_weight:
        raise UserError("--content-layers is empty; name at least one layer or set --content-weight 0")
    if not parse_layers(config.style_layers, "--style-layers"):
        raise UserError("--style-layers is empty; name at least one layer, e.g. relu1_2,relu2_2")
