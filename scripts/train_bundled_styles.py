"""Train, export and record the styles that ship in `runtime/styles/` (issues 5 and 12).

    python scripts/train_bundled_styles.py --assets ../shared/assets [--styles mosaic,candy]

Each style: `toolkit train` in stages, each from the previous one's weights with `--init` (BASE from scratch; FINAL,
which a style without a base stage starts from another style's base or a bundled style; STRONGER; IN RANGE; PALETTE;
MORE PHOTO, SKY, RELIT, FIGURES, FIGURES II, LONGER, FLAT FREE, GRAINLESS, JOHNSON'S LOSS, OPEN SKIES, RELIT AGAIN,
see `Style`)
on the 16-photo training set named in the assets' SOURCES.md, with the full VGG-16 of the assets as the loss network;
`toolkit export` into runtime/styles/NAME.onnx (fp32, uint8 I/O); and runtime/styles/NAME.json with the provenance:
commands, data, steps, final losses, training time, machine. Runs go to runs/bundled/NAME-base, NAME, NAME-s6,
NAME-r, NAME-h, NAME-p, NAME-k, NAME-l, NAME-f, NAME-f2, NAME-long, NAME-cs, NAME-g, NAME-j, NAME-js, NAME-jh and
NAME-jl (kept out of git); a stopped run resumes where it stopped, a finished one is exported again.
Without those runs (a fresh checkout), the stages that NAME.json already records are taken from NAME.onnx's weights
(`recover`), so a new last stage trains from the bundled model rather than from scratch.
The recipe was picked with the quality yardstick (docs/quality.py; docs/recipe.md), which measures the results
(docs/quality.md).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shlex
import subprocess
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
TRAINING_SET = [
    "amber.jpg",
    "tubingen.jpg",
    "golden_gate.jpg",
    "chicago.jpg",
    "cornell.jpg",
    "newyork.jpg",
    "sailboat.jpg",
    "modern.jpg",
    "flowers.jpg",
    "tiger.jpg",
    "karya.jpg",
    "in3.png",
    "in39.png",
    "china.jpg",
    "flower.jpg",
    "astronaut.png",
]


@dataclass(frozen=True)
class Style:
    image: str  # in ASSETS/style
    painting: str  # what it is
    base_steps: int  # stage 1 (BASE) from scratch; 0: no stage 1
    init: str | None  # stage 2 starts from this run's model (NAME-base, another style's base) or BUNDLED + a style
    steps: int  # stage 2 (FINAL)
    stronger_steps: int = 0  # stage 3 (STRONGER, in NAME-s6) from stage 2's weights; 0: none
    range_steps: int = 0  # stage 4 (IN RANGE, in NAME-r) from the last stage's weights with its loss; 0: none
    histogram_steps: int = 0  # stage 5 (PALETTE, in NAME-h) from stage 4's weights with its loss; 0: none
    photo_steps: int = 0  # stage 6 (MORE PHOTO, in NAME-p) from stage 5's weights; 0: none
    photo_grid: int = 1  # stage 6's --style-grid
    sky_steps: int = 0  # stage 7 (SKY, in NAME-k) from stage 6's weights with its loss and synthetic skies; 0: none
    relight_steps: int = 0  # stage 8 (RELIT, in NAME-l) from the last stage's weights, its loss + relit crops; 0: none
    paste_steps: int = 0  # the last stage (FIGURES, in NAME-f) from the last one's weights, its loss + pasted figures
    paste_weight: int = 3000  # FIGURES' --paste-weight
    figures2_steps: int = 0  # FIGURES II (in NAME-f2): FIGURES' loss again from its weights, rate restarted; 0: none
    figures2_band: int = 6  # FIGURES II's --paste-band (6: FIGURES' own, the default)
    figures2_scale: int = 8  # FIGURES II's --paste-scale (8: FIGURES' own, the default)
    longer_steps: int = 0  # LONGER (in NAME-long): the last stage's loss again for many steps at a slower rate; 0: none
    longer_halving: int = 500  # LONGER's rate, 5e-4 at first, halves every this many steps
    structure_steps: int = 0  # FLAT FREE (in NAME-cs): LONGER's rate, content weighed by structure; 0: none
    structure_at: int = 8  # FLAT FREE's --content-structure: content counts fully from this luma std (levels) up
    grain_steps: int = 0  # GRAINLESS (in NAME-g): LONGER's rate, the output asked not to change with grain; 0: none
    grain_weight: int = 2000  # GRAINLESS's --grain-weight
    johnson_steps: int = 0  # JOHNSON'S LOSS (in NAME-j): Johnson et al.'s loss in place of ours, from the last stage
    johnson_style_size: int = 256  # JOHNSON'S LOSS's --style-size
    johnson_seed: int = 44  # JOHNSON'S LOSS's --seed
    # OPEN SKIES after JOHNSON'S LOSS, one stage each (steps, seed, --histogram-weight or "" for none): in NAME-js
    # without the histogram term, NAME-jh with it
    open_skies: tuple[tuple[int, int, str], ...] = ()
    # RELIT AGAIN after OPEN SKIES (steps, seed, --relight-weight), in NAME-jl; () for none
    relit_again: tuple[int, int, str] = ()
    # RELIT AGAIN's --grain-weight ("" for none), in NAME-jlg
    relit_grain: str = ""


BUNDLED = "bundled:"  # Style.init: start from that style's shipped weights (toolkit train --init NAME)
STYLES = {
    "mosaic": Style("mosaic.jpg", "the stained-glass 'mosaic' of pytorch/examples and Johnson et al.", 1000,
                    "mosaic-base", 1000, 1000, 800, 300, 400, paste_steps=300, paste_weight=10000,
                    figures2_steps=300, figures2_band=2, structure_steps=400, johnson_steps=400,
                    johnson_style_size=512, johnson_seed=45, open_skies=((400, 45, "3e7"),),
                    relit_again=(200, 48, "1e8"), relit_grain="1e7"),
    "candy": Style("candy.jpg", "the 'candy' painting of pytorch/examples and Johnson et al.", 1000,
                   "candy-base", 750, 1000, 800, 300, 400, photo_grid=2, sky_steps=400,
                   relight_steps=400, paste_steps=300, paste_weight=1000, figures2_steps=300, longer_steps=1000,
                   johnson_steps=400, open_skies=((400, 45, ""), (400, 46, "3e7")), relit_again=(200, 48, "1e8")),
    "starry-night": Style("starry_night.jpg", "Van Gogh, The Starry Night (1889)", 0, "mosaic-base", 750,
                          range_steps=400, histogram_steps=300, photo_steps=400, relight_steps=400,
                          paste_steps=300, johnson_steps=400, johnson_style_size=512, johnson_seed=45,
                          open_skies=((400, 46, "3e7"),)),
    # from the shipped starry-night (its base, mosaic-base, is not in a fresh checkout): a painterly generator
    "rain-princess": Style("rain-princess-cropped.jpg", "Leonid Afremov, Rain Princess", 0, BUNDLED + "starry-night",
                           600, range_steps=300, histogram_steps=300, photo_steps=400, relight_steps=400,
                           paste_steps=300, paste_weight=1000, grain_steps=400),
    # a probe, not shipped (faces lose their features; docs/recipe.md), so not in --styles' default
    "the-scream": Style("the_scream.jpg", "Munch, The Scream (1893)", 0, "mosaic-base", 750, range_steps=400,
                        histogram_steps=300),
}  # fmt: skip
VGG = "vgg/vgg16_imagenet_features.safetensors"
# Johnson et al.'s layers (style relu1_2, relu2_2, relu3_3, relu4_3) with every term a relative error
# (--loss-scale relative): with this VGG-16's raw scale relu4_3's Gram term is 1e5 times smaller than the others and
# would count for nothing. Half-width generator (Johnson's 2016 models are too), 192² random crops of the photos
# resized to 192 px, the painting at 384 px, batch 4.
COMMON = [
    "--preset", "johnson", "--loss-scale", "relative", "--width", "0.5", "--batch-size", "4",
    "--style-layers", "relu1_2,relu2_2,relu3_3,relu4_3", "--content-weight", "1", "--style-weight", "3",
    "--tv-weight", "10", "--image-size", "192", "--style-size", "384", "--crop", "random", "--channels-last",
]  # fmt: skip
# Stage 1, from scratch: content on relu3_3 only, which lets the style in fastest (the 1e-3 rate's decay at 2500
# never comes within these 1000 steps; it is kept because it is how the run was started).
BASE = [*COMMON, "--content-layers", "relu3_3", "--seed", "42", "--lr", "1e-3", "--lr-decay", "0.3",
        "--lr-decay-every", "2500"]  # fmt: skip
# Stage 2, from stage 1's weights (--init): relu2_2 joins the content loss at half weight. Measured with the
# yardstick at 1500 steps in all against going on with stage 1 (docs/recipe.md):
# SSIM 0.229 → 0.303 and palette 21.7 → 15.5, closeness 0.346 → 0.392.
FINAL = [*COMMON, "--content-layers", "relu2_2:0.5,relu3_3:1", "--seed", "43", "--lr", "1e-3"]
# Stage 3, from stage 2's weights: the same loss with the style weight doubled (the option's last value counts).
# Measured at 500 of its steps (docs/recipe.md): mosaic closeness 0.388 → 0.343 (Johnson's 0.344), palette 14.9 →
# 13.4, SSIM 0.317 → 0.292 (Johnson's 0.267); candy 0.438 → 0.410, 17.2 → 15.4, 0.422 → 0.392.
STRONGER = [*FINAL, "--style-weight", "6"]


def in_range(recipe: list[str]) -> list[str]:
    """Stage 4, from the previous stage's weights, with its loss: the loss now judges the output clipped to 0–255
    (the picture a user gets) and values outside cost --range-weight. Until then the generators painted with values
    up to ~450 (6 % of mosaic's above 255 on held-out photos) that VGG read as colour and the saved picture showed
    as white: pale palettes, white glows at edges. Measured at 200 of its steps (docs/recipe.md): mosaic closeness
    0.341 → 0.304, palette 13.5 → 9.9, halo +8.5 → −2.4."""
    return [*recipe, "--range-weight", "100", "--seed", "44"]


def with_histogram(recipe: list[str]) -> list[str]:
    """Stage 5, from stage 4's weights, with its loss (same seed: the same crops in the same order) plus the sliced
    histogram of relu1_1 features (--histogram-weight): Gram matrices match the painting's second moments only, so a
    picture can match them with the photo's tones; the histogram term matches the whole distribution of colours and
    small textures. Measured on mosaic at 300 of its steps (docs/recipe.md): palette 10.2 → 7.1 (Johnson's 6.8),
    closeness 0.319 → 0.289."""
    return [*recipe, "--histogram-weight", "50"]


def more_photo(recipe: list[str], grid: int) -> list[str]:
    """Stage 6, from stage 5's weights: stage 5's loss with the content weight raised to 4, the histogram weight to
    500 (so that the palette does not drift back to the photo's), and crops taken from the photos enlarged up to 3×
    (--zoom 3: the generator sees skies and faces at the scale it is used at, 512 px and up, not only as in the
    192-px view of the whole photo); the learning rate halved every 100 steps, so that the run ends where the loss
    settled rather than wherever its last steps took it. Measured on mosaic (docs/recipe.md): closeness 0.289 →
    0.274, palette 7.1 → 4.4, SSIM 0.271 → 0.302, stripes 6.5 → 7.8 % (Johnson's 0.344, 6.8, 0.267, 1.1 %).
    `grid` > 1 (candy): the style term per cell of a grid×grid split (--style-grid), so that large smooth regions
    carry the painting's texture too. Measured on candy at grid 2 (docs/recipe.md): closeness 0.371 → 0.334, palette
    10.5 → 5.4, SSIM 0.373 → 0.384; on mosaic it traded the photo (SSIM 0.302 → 0.255) for fewer ghost outlines."""
    grid_flags = ["--style-grid", str(grid)] if grid > 1 else []
    return [*with_histogram(recipe), "--content-weight", "4", "--histogram-weight", "500", "--zoom", "3",
            "--lr-decay", "0.5", "--lr-decay-every", "100", *grid_flags]  # fmt: skip


def with_skies(recipe: list[str]) -> list[str]:
    """Stage 7, from stage 6's weights with its loss (and seed: the same crops), half of the crops given a synthetic
    sky (--sky 0.5: a smooth, grainy gradient in two of the crop's colours beyond a random line). The 16 training
    photos have few large flat areas and no dark ones, and there candy painted a yellow glow (the Hoover tower's
    night sky) and turned a navy uniform light blue. Measured on candy (docs/recipe.md): stripes 22.4 → 8.1 %
    (18.2 % after the same steps without skies), the glow gone, palette 5.4 → 5.0, closeness 0.334 → 0.340."""
    return [*recipe, "--sky", "0.5"]


def relit(recipe: list[str]) -> list[str]:
    """A finishing stage (candy's 8th; rain-princess's and starry-night's 7th, after MORE PHOTO), from the stage before
    with its loss (and seed): each crop is also stylized under a smooth change of light (a ramp or a vignette, up
    to ×1.25 or ÷1.25), and the two outputs seen through a 16-px blur must agree (--relight-weight 1000,
    train.relight). candy mapped a night sky's slow gradient to bands of its colours (the
    rocket's arc): its large-scale layout moved 11.0 when the light changed by ±15 %, Johnson's 4.8, the photo's own
    6.3. Measured on candy (docs/recipe.md): that change 11.0 → 3.5, the arc and the white blotches in open
    backdrops gone; SSIM 0.377 → 0.343, stripes 8.1 → 19.9 % (the skies' cells more regular), closeness 0.340 →
    0.349, palette 5.0 → 5.5. rain-princess: light 10.2 → 4.9, its rocket's arc gone, SSIM 0.434 → 0.417, palette
    5.2 → 5.9; starry-night: light 7.5 → 3.7, the rocket's glow band gone, palette 12.7 → 14.0."""
    return [*recipe, "--relight-weight", "1000", "--relight-amount", "0.25"]


def pasted(recipe: list[str], weight: int = 3000) -> list[str]:
    """The last stage, from the stage before with its loss (and seed): each crop is also stylized with a flat, mostly
    dark ellipse pasted in, and the two outputs seen through an 8-px blur must agree more than 6 px out from it,
    their mean change there aside (--paste-weight, train.paste). Round dark figures on a light sky mosaic drew a
    second outline, starry-night a yellow glow, candy dark-red bars along thin masts; the yardstick's figure column
    measures it. At 3000: mosaic 7.2 → 3.7 (Johnson's 5.5), starry-night 11.0 → 3.7, candy 15.9 → 6.6 but its SSIM
    0.343 → 0.321, under Johnson's 0.325. So candy's weight is 1000 (15.9 → 9.8, Johnson's 10.2; SSIM 0.335) and
    mosaic's 10000 (7.2 → 2.6, and its skies' parallel lines broken up: stripes 7.8 → 3.7 %). rain-princess's glow
    round dark heads: 13.6 → 6.9 at 1000 (closeness 0.288 → 0.306); 3000 took it away (4.8) at 0.330."""
    return [*recipe, "--paste-weight", str(weight)]


def figures_again(recipe: list[str], band: int, scale: int) -> list[str]:
    """FIGURES II: FIGURES' loss (and seed) again, from its weights, the learning rate's decay restarted; the band
    round the pasted shape where the output may change freely (--paste-band, FIGURES' 6 px) and the blur it is seen
    through (--paste-scale, 8 px) written out. Measured each against 300 more steps of FIGURES unchanged
    (docs/recipe.md): mosaic with the band narrowed to 2 px, stripes 4.2 → 2.3 %, halo −32.5 → −26.5, echo +5.3 →
    +4.6, palette 5.5 → 6.1; candy unchanged (its band at 2 px moved closeness, palette and SSIM away), against its
    stage 9: SSIM 0.335 → 0.341, stripes 17.6 → 13.7 %, figure 9.8 → 9.2."""
    return [*recipe, "--paste-band", str(band), "--paste-scale", str(scale)]


def longer(recipe: list[str], halving: int = 500) -> list[str]:
    """LONGER: the last stage's loss (and seed) again, from its weights, for many more steps: the rate starts at half
    the earlier stages' 1e-3 and halves every `halving` steps instead of every 100 (scripts/continue_style.py runs it
    on this CPU or a lent GPU). Measured (docs/recipe.md): candy's 1000 steps after stage 10, closeness 0.370 →
    0.364, palette 6.9 → 6.2, SSIM 0.341 → 0.351, figure 9.2 → 7.9; on mosaic it filled light skies with a diagonal
    hatching (stripes 2.3 → 16 % at 1000 steps), so mosaic has none."""
    return [*recipe, "--lr", "5e-4", "--lr-decay", "0.5", "--lr-decay-every", str(halving)]


def flat_free(recipe: list[str], structure_at: int, halving: int = 500) -> list[str]:
    """FLAT FREE: the last stage's loss at LONGER's slower rate, the content term weighed by the photo's structure
    (--content-structure, train.losses.structure_weights): where the photo is flat it counts a tenth, and the style
    has the sky. Measured on mosaic at 400 of its steps (docs/recipe.md), against LONGER alone: closeness 0.287 →
    0.274, palette 5.5 → 5.2, stripes 17.6 → 1.6 %, hatching 78.7 → 43.6 %, echo +4.3 → −3.0 (the light band round
    figures gone), SSIM 0.328 → 0.300 (Johnson's 0.267)."""
    return [*longer(recipe, halving), "--content-structure", str(structure_at)]


def grainless(recipe: list[str], weight: int, halving: int = 500) -> list[str]:
    """GRAINLESS: the last stage's loss at LONGER's slower rate, plus the output's change when grain (σ 4) is added to
    the crop (--grain-weight, train.grain): a texture drawn out of the photo's grain costs. Measured on rain-princess
    at 400 of its steps at 2000 (docs/recipe.md): hatching 66.0 → 19.8 % (its diagonal weave in skies much fainter),
    SSIM 0.409 → 0.449, closeness 0.306 → 0.302, palette 6.7 → 6.3, echo −1.7 → +1.0. mosaic has none: at 2000 its
    skies went bare."""
    return [*longer(recipe, halving), "--grain-weight", str(weight)]


def johnsons_loss(style_size: int, seed: int) -> list[str]:
    """JOHNSON'S LOSS: Johnson et al.'s own loss (--preset johnson: the absolute scale, style weight 5, content on
    relu3_3, TV 1e-6) in place of ours, none of the relative-scale terms of the stages before, with the content weight
    at 4, the crops zoomed up to 3× and the rate at LONGER's first, 5e-4, kept. The slow method with this loss draws
    candy's ringed circles (ours gave a recoloured photo). Measured at 400 steps (docs/recipe.md): candy, the painting
    at 256 px, from its stage 11: SSIM 0.351 → 0.384, halo −33.7 → −12.3 (dark coats no longer turn light), palette
    6.2 → 10.1 and a diagonal stripe pattern in open skies (stripes 14.0 → 39.3 %); mosaic, the painting at 512 px,
    from its stage 9: closeness 0.274 → 0.225, palette 5.2 → 11.1, its skies' lattice thinned to parallel lines."""
    return ["--preset", "johnson", "--width", "0.5", "--batch-size", "4", "--image-size", "192", "--zoom", "3",
            "--crop", "random", "--style-size", str(style_size), "--channels-last", "--seed", str(seed),
            "--lr", "5e-4", "--content-weight", "4"]  # fmt: skip


def open_skies(recipe: list[str], seed: int, histogram: str) -> list[str]:
    """OPEN SKIES: JOHNSON'S LOSS (or the OPEN SKIES stage before) with half the crops given a synthetic sky
    (--sky 0.5, as SKY) and the content term weighed by the photo's structure (--content-structure 8, as FLAT FREE),
    a new seed, and where `histogram` is set the sliced histogram of relu1_1 features (as PALETTE) at that weight, the
    absolute scale's (the other terms are ~1e6). Where the photo is flat the style has the sky: candy paints the
    painting's red ringed circles there, mosaic stained-glass cells with coloured panes. Measured (docs/recipe.md):
    candy without the histogram term, then with it at 3e7: hatching 81.2 → 27.4 → 34.7 % (Johnson's 35.4 %), SSIM
    0.384 → 0.400 → 0.390, palette 10.1 → 13.7 → 8.1 (the photo's tones come back without it); mosaic with it at
    once: closeness 0.225 → 0.194, palette 11.1 → 5.4, hatching 42.5 → 18.4 % (stage 9: 43.6 %), SSIM 0.292 → 0.298.
    Both then move more when the light changes or a figure is pasted in (light, figure)."""
    return [*recipe, "--seed", str(seed), "--sky", "0.5", "--content-structure", "8",
            *(["--histogram-weight", histogram] if histogram else [])]  # fmt: skip


def relit_again(recipe: list[str], seed: int, weight: str, grain: str = "") -> list[str]:
    """RELIT AGAIN: OPEN SKIES' loss plus the relit crops of RELIT (--relight-amount 0.25) at `weight`, the absolute
    scale's (1e8 is some 3 % of candy's loss), at half the rate (2.5e-4), a new seed. OPEN SKIES left out the relit
    crops, and candy's circles moved with the light again (`light` 4.1 → 6.1). 400 steps at the full rate, with or
    without the term, turn the skies' ringed circles into squiggles; 200 at half keep the pictures as they were.
    Measured on candy at 200 steps (docs/recipe.md), two seeds each: `light` 6.1 / 6.4 without the term (the
    control), 5.0 / 4.9 with it (Johnson's 4.8), closeness 0.364 / 0.371 → 0.372 / 0.373, SSIM 0.397 → 0.388 /
    0.393. mosaic's stage 12 (session 44; its control in session 43): `light` 4.0 → 3.3, `figure` 6.4 → 6.0,
    `hatching` 18.4 → 11.1 %, palette 5.4 → 5.9, still regions in video 8.8 → 9.8 steadied. starry-night's glow
    round dark figures comes back with the term (at 400 steps and at 200 at half the rate; its control without the
    term has none), so it has no such stage.

    With `grain` (mosaic): the output also asked not to change when grain is added to the crop (--grain-weight,
    train.grain; see grainless). On mosaic at 1e7 (session 44, against the stage without it): still regions in video
    25.6 → 21.6 per frame, 9.8 → 8.5 steadied (below stage 11's 8.8), `light` 3.3 → 2.7, `figure` 6.0 → 5.2 (past
    Johnson's 3.0 and 5.5), palette 5.9 → 6.3 (his 6.8), lines at edges darker (halo −15.3 → −18.8), the skies'
    coloured panes a little paler; at 3e7 the skies turned into a regular diagonal lattice."""
    relit = [*recipe, "--seed", str(seed), "--lr", "2.5e-4", "--relight-weight", weight, "--relight-amount", "0.25"]
    return [*relit, "--grain-weight", grain] if grain else relit


def machine() -> str:
    from runtime.precision import cpu_name

    cpu = cpu_name()
    import torch

    device = torch.cuda.get_device_name() if torch.cuda.is_available() else f"CPU only, {os.cpu_count()} cores"
    return f"{cpu}; {device}; torch {torch.__version__}"


def span(first: int, last: int) -> str:
    return f"stage {first}" if first == last else f"stages {first}–{last}"


def machines_until(machine: str, stages: int) -> str:
    """A record's machine, with the stages it names: `X` for all of stages 1..`stages`, or an earlier composite `X
    (stages 1–K); Y (the rest)` with Y's stages named (the rest were K+1..`stages`)."""
    earlier = re.search(r"\(stages? (?:\d+–)?(\d+)\); (.*) \(the rest\)$", machine)
    if earlier:
        return f"{machine[: earlier.start(2)]}{earlier[2]} ({span(int(earlier[1]) + 1, stages)})"
    if re.search(r"\(stages? [\d–]+\)$", machine):
        return machine
    return f"{machine} ({span(1, stages)})"


def run(command: list[str]) -> None:
    print("+", shlex.join(command), flush=True)
    subprocess.run(command, check=True)


def training_folder(assets: Path, folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for name in TRAINING_SET:
        link = folder / name
        if not link.exists():
            link.symlink_to((assets / "content" / name).resolve())
    return folder


def read_log(run_dir: Path) -> list[dict]:
    return [json.loads(line) for line in (run_dir / "log.jsonl").read_text().splitlines() if line.strip()]


def training_seconds(log: list[dict], batch: int = 4) -> float:
    """Time spent training, from the images/s of each logged window (a resumed run's restarts cost nothing)."""
    seconds, previous = 0.0, 0
    for line in log:
        if line.get("images_per_s"):
            seconds += (line["step"] - previous) * batch / line["images_per_s"]
        previous = line["step"]
    return seconds


def train_command(assets: Path, data: Path, run_dir: Path, image: str, steps: int, recipe: list[str],
                  init: Path | str | None) -> list[str]:  # fmt: skip
    return [
        "toolkit", "train", "--style", str(assets / "style" / image), "--data", str(data), "--out", str(run_dir),
        "--vgg-weights", str(assets / VGG), *recipe, "--steps", str(steps), *(["--init", str(init)] if init else []),
        "--log-every", "50", "--sample-every", "250", "--checkpoint-every", "250", "--quiet",
    ]  # fmt: skip


def trained_steps(run_dir: Path) -> int:
    """Steps in the run's model.safetensors (0 when there is none)."""
    model = run_dir / "model.safetensors"
    if not model.is_file():
        return 0
    from safetensors import safe_open

    with safe_open(str(model), framework="pt") as handle:
        return int(json.loads(handle.metadata()["training"])["steps"])


def train(assets: Path, data: Path, run_dir: Path, image: str, steps: int, recipe: list[str],
          init: Path | str | None) -> list[str]:  # fmt: skip
    """Train `run_dir` up to `steps` (resuming a stopped run; nothing to do for a finished one); the command."""
    command = train_command(assets, data, run_dir, image, steps, recipe, init)
    if trained_steps(run_dir) >= steps:
        return command
    if (run_dir / "checkpoint.safetensors").exists():
        run(["toolkit", "train", "--out", str(run_dir), "--resume", "--steps", str(steps), "--quiet"])
    else:
        run(command)
    return command


def int8_record(path: Path) -> dict:
    """What the int8 export measured and kept (export.int8), from the file's metadata."""
    import onnx

    metadata = {entry.key: entry.value for entry in onnx.load(str(path), load_external_data=False).metadata_props}
    return {"file": path.name, **json.loads(metadata["int8"])}


@dataclass(frozen=True)
class Stage:
    run_dir: Path
    steps: int
    recipe: list[str]
    init: Path | str | None  # a model file, or a bundled style's name


def plan(name: str, style: Style, runs: Path) -> list[Stage]:
    """The stages of `style`: BASE from scratch, FINAL from `style.init`'s model, each later one from the one before."""
    stages = [Stage(runs / f"{name}-base", style.base_steps, BASE, None)] if style.base_steps else []
    start: Path | str | None = None
    if style.init and style.init.startswith(BUNDLED):
        start = style.init.removeprefix(BUNDLED)
    elif style.init:
        start = runs / style.init / "model.safetensors"
    stages.append(Stage(runs / name, style.steps, FINAL, start))
    later = [("s6", style.stronger_steps, STRONGER)]
    if style.range_steps:
        recipe = in_range(STRONGER if style.stronger_steps else FINAL)
        photo = more_photo(recipe, style.photo_grid)
        later += [("r", style.range_steps, recipe), ("h", style.histogram_steps, with_histogram(recipe)),
                  ("p", style.photo_steps, photo)]  # fmt: skip
        # the finishing stages: each a style has goes on from the one before with its loss plus one term
        last = photo
        again = style.figures2_steps if style.paste_steps else 0  # FIGURES II repeats FIGURES: none without it
        finishing = [("k", style.sky_steps, with_skies), ("l", style.relight_steps, relit),
                     ("f", style.paste_steps, lambda r: pasted(r, style.paste_weight)),
                     ("f2", again, lambda r: figures_again(r, style.figures2_band, style.figures2_scale)),
                     ("long", style.longer_steps, lambda r: longer(r, style.longer_halving)),
                     ("cs", style.structure_steps,
                      lambda r: flat_free(r, style.structure_at, style.longer_halving)),
                     ("g", style.grain_steps,
                      lambda r: grainless(r, style.grain_weight, style.longer_halving))]  # fmt: skip
        for suffix, steps, add in finishing:
            if steps:
                last = add(last)
                later.append((suffix, steps, last))
        if style.johnson_steps:  # a loss of their own from here: only the last stage's weights go on
            last = johnsons_loss(style.johnson_style_size, style.johnson_seed)
            later.append(("j", style.johnson_steps, last))
            for steps, seed, histogram in style.open_skies:
                last = open_skies(last, seed, histogram)
                later.append(("jh" if histogram else "js", steps, last))
            if style.relit_again:
                steps, seed, weight = style.relit_again
                last = relit_again(last, seed, weight, style.relit_grain)
                later.append(("jlg" if style.relit_grain else "jl", steps, last))
    for suffix, steps, recipe in later:
        if not steps:
            if suffix == "s6":
                continue  # a style without STRONGER goes on to IN RANGE
            break  # stages 4 to 6: a style stops at its first stage with no steps
        stages.append(Stage(runs / f"{name}-{suffix}", steps, recipe, stages[-1].run_dir / "model.safetensors"))
    return stages


def starts_from(style: Style) -> str | None:
    """Where a style without a base stage starts, for its record."""
    if style.base_steps or not style.init:
        return None
    if style.init.startswith(BUNDLED):
        name = style.init.removeprefix(BUNDLED)
        return f"the bundled {name} as it was then (runtime/styles/{name}.json)"
    return f"{style.init} (see its record)"


def as_recorded(command: list[str], assets: Path, data: Path) -> str:
    """A command as NAME.json records it: without this machine's folders."""
    text = shlex.join(command).replace(str(assets), "ASSETS").replace(str(data), "TRAIN16")
    return text.replace(str(REPO) + "/", "")


RECOVERED = "recovered.json"  # in the run folder of a stage taken back from the bundled file: what the record said


def recover(stages: list[Stage], shown_commands: list[str], previous: dict | None, bundled: Path) -> dict | None:
    """The stages the bundled file already holds, on a checkout without the runs (they are kept out of git): a style
    whose record lists exactly the first K stages' commands, and whose NAME.onnx is stage K's export, goes on from
    those weights (written back as stage K's model.safetensors, the same numbers: train.onnx_weights) instead of
    being trained again from stage 1; K may be all of them (the style is only exported again). Returns the record's
    numbers for those K stages ({"stages": K, "steps", "wall_seconds", "machine", "final_losses"}), kept in
    stage K's folder so that a later run counts them once; None when the runs are here or nothing matches."""
    for stage in stages:
        if (stage.run_dir / RECOVERED).is_file():  # an earlier run of this script took them back
            return json.loads((stage.run_dir / RECOVERED).read_text())
    if previous is None or not bundled.is_file():
        return None
    recorded = previous["training"]["commands"]
    if not recorded or len(recorded) > len(stages) or recorded != shown_commands[: len(recorded)]:
        return None
    if any((stage.run_dir / "log.jsonl").exists() for stage in stages[: len(recorded)]):
        return None  # those runs are here: read (or resumed) as usual
    import onnx

    from train.checkpoint import save_model
    from train.onnx_weights import generator_from_onnx

    last = stages[len(recorded) - 1]
    exported = shlex.split(previous.get("export", ""))  # toolkit export RUN/model.safetensors …: which stage it was
    if len(exported) < 3 or Path(exported[2]).parent.name != last.run_dir.name:
        return None  # two stages of equal length (starry-night's 6th and 7th) cannot be told apart by their steps
    model = onnx.load(str(bundled), load_external_data=False)
    training = json.loads({entry.key: entry.value for entry in model.metadata_props}["training"])
    if training.get("steps") != last.steps:  # the file is not that stage's export (a probe exported over it?)
        return None
    generator, spec = generator_from_onnx(bundled)
    last.run_dir.mkdir(parents=True, exist_ok=True)
    save_model(last.run_dir / "model.safetensors", generator, spec, training)
    held = {"stages": len(recorded), "from": bundled.name, **{k: previous["training"][k] for k in
            ("steps", "wall_seconds", "final_losses")}, "machine": previous["machine"]}  # fmt: skip
    (last.run_dir / RECOVERED).write_text(json.dumps(held, indent=1) + "\n")
    return held


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--assets", type=Path, default=REPO.parent / "shared" / "assets")
    parser.add_argument("--styles", default="mosaic,candy,starry-night,rain-princess")
    parser.add_argument("--runs", type=Path, default=REPO / "runs" / "bundled")
    parser.add_argument("--out", type=Path, default=REPO / "runtime" / "styles")
    args = parser.parse_args()

    data = training_folder(args.assets, args.runs / "train16")

    def shown(command: list[str]) -> str:
        return as_recorded(command, args.assets, data)

    for name in args.styles.split(","):
        style = STYLES[name]
        stages = plan(name, style, args.runs)
        commands = [train_command(args.assets, data, s.run_dir, style.image, s.steps, s.recipe, s.init) for s in stages]
        record_path = args.out / f"{name}.json"
        previous = json.loads(record_path.read_text()) if record_path.is_file() else None
        held = recover(stages, [shown(c) for c in commands], previous, args.out / f"{name}.onnx")
        logs = []
        for stage in stages[held["stages"] if held else 0 :]:
            train(args.assets, data, stage.run_dir, style.image, stage.steps, stage.recipe, stage.init)
            logs.append(read_log(stage.run_dir))
        final_dir = stages[-1].run_dir
        # NAME.int8.onnx beside it, calibrated on the training photos (runtime.precision picks it on VNNI CPUs)
        export = ["toolkit", "export", str(final_dir / "model.safetensors"), "-o", str(args.out), "--name", name,
                  "--int8", "--calib", str(data)]  # fmt: skip
        run(export)
        steps = sum(log[-1]["step"] for log in logs)
        seconds = sum(training_seconds(log) for log in logs)
        here = machine()
        final_losses = (
            {k: round(v, 5) for k, v in logs[-1][-1].items() if k not in ("step", "lr", "images_per_s")} if logs else {}
        )
        if held:  # the stages taken back from the bundled file, with their recorded numbers
            steps += held["steps"]
            seconds += held["wall_seconds"]
            if not logs:
                final_losses, here = held["final_losses"], held["machine"]
            elif held["machine"] != here:
                earlier = machines_until(held["machine"], held["stages"])
                here = f"{earlier}; {here} ({span(held['stages'] + 1, len(stages))})"
        record = {
            "style_image": style.image,
            "painting": style.painting,
            "training": {
                "commands": [shown(c) for c in commands],
                "data": f"16 photos (TRAIN16): {', '.join(TRAINING_SET)}",
                "loss_network": "VGG-16, conv1_1..conv5_3 (ASSETS/" + VGG + ", Caffe feature scale)",
                "steps": steps,
                "starts_from": starts_from(style),
                "images_seen": steps * 4,
                "final_losses": final_losses,
                "wall_seconds": round(seconds),
            },
            "export": shown(export),
            "machine": here,
            "precision": "fp32",
            "int8": int8_record(args.out / f"{name}.int8.onnx"),
            "quality": "docs/quality.md",
        }
        record_path.write_text(json.dumps(record, indent=2) + "\n")
        print(f"{name}: {steps} steps, {seconds / 3600:.1f} h of training -> {args.out / name}.onnx")


if __name__ == "__main__":
    main()
