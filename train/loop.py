"""The training loop behind `toolkit train`."""

from __future__ import annotations

import json
import os
import signal
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import torch
from PIL import Image
from safetensors import SafetensorError

from runtime.atomic import atomic_path, write_atomic
from runtime.errors import ModelError, UserError
from runtime.stylizer import resolve_model
from train.checkpoint import check_writable, load_checkpoint, load_model, save_checkpoint, save_model
from train.config import TrainConfig, parse_layers
from train.data import (
    DECODE_ERRORS,
    CropDataset,
    StreamSampler,
    crop_to_square,
    image_to_tensor,
    load_style_image,
    open_rgb,
)
from train.data import scan_folder as scan_images
from train.generators import GeneratorSpec, build_generator
from train.grain import add_grain, grain_change, random_grain
from train.losses import PerceptualLoss, silent_style_layers
from train.onnx_weights import generator_from_onnx
from train.paste import change_round_shapes, paste, random_shapes
from train.relight import random_relighting, relight, relighting_change
from train.vgg_weights import build_loss_network, download_vgg_weights, read_vgg_weights

MODEL_FILE = "model.safetensors"
CHECKPOINT_FILE = "checkpoint.safetensors"
LOG_FILE = "log.jsonl"
SAMPLES_DIR = "samples"
NUM_SAMPLES = 4
PASTE_SEEDS = 1 << 62  # the pasted shapes are drawn from seeds apart from the relit gains' (both per step)
GRAIN_SEEDS = 1 << 61  # and the grain from seeds apart from both


class Reporter:
    """What the loop tells the outside world; the CLI shows it, tests may record it. Methods do nothing here."""

    def warn(self, message: str) -> None: ...
    def start(self, total_steps: int, start_step: int, images_per_step: int) -> None: ...
    def step(self, step: int, losses: dict[str, float] | None) -> None: ...
    def finish(self) -> None: ...


class ReporterLike(Protocol):
    """What `run_training` calls: a Reporter, or any object with its methods (the CLI's progress bar)."""

    def warn(self, message: str) -> None: ...
    def start(self, total_steps: int, start_step: int, images_per_step: int) -> None: ...
    def step(self, step: int, losses: dict[str, float] | None) -> None: ...
    def finish(self) -> None: ...


@dataclass
class TrainResult:
    out: str
    step: int
    total_steps: int
    interrupted: bool
    losses: dict[str, float]
    images_per_s: float
    skipped_files: list[str] = field(default_factory=list)
    device: str = "cpu"
    precision: str = "fp32"


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise UserError("--device cuda: no CUDA GPU is visible to torch; use --device cpu")
    return torch.device(name)


def resolve_precision(name: str, device: torch.device) -> torch.dtype | None:
    """None = plain fp32; else the autocast dtype."""
    if name == "auto":
        if device.type != "cuda":
            return None
        return torch.bfloat16 if torch.cuda.is_bf16_supported(including_emulation=False) else torch.float16
    if name == "bf16" and device.type == "cuda" and not torch.cuda.is_bf16_supported(including_emulation=False):
        raise UserError(f"--precision bf16: {torch.cuda.get_device_name(device)} has no bf16 support; use fp16")
    return {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}[name]


class _StopOnSigint:
    """First Ctrl-C: finish the current step, save, stop. Second Ctrl-C: stop at once (KeyboardInterrupt)."""

    def __init__(self):
        self.requested = False
        self._previous = None

    def __enter__(self):
        if threading.current_thread() is threading.main_thread():
            self._previous = signal.signal(signal.SIGINT, self._handle)
        return self

    def _handle(self, signum, frame):
        if self.requested:
            raise KeyboardInterrupt
        self.requested = True

    def __exit__(self, *exc):
        if self._previous is not None:
            signal.signal(signal.SIGINT, self._previous)


def _ignore_sigint(_worker_id: int) -> None:
    # Ctrl-C reaches the whole process group: data workers must leave it to the trainer, which stops cleanly.
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def _sample_grid(inputs: torch.Tensor, outputs: torch.Tensor) -> Image.Image:
    """Inputs on the top row, outputs below."""
    n, _, h, w = inputs.shape
    grid = torch.zeros(3, 2 * h, n * w)
    for i in range(n):
        grid[:, :h, i * w : (i + 1) * w] = inputs[i]
        grid[:, h:, i * w : (i + 1) * w] = outputs[i].float().clamp(0, 255)
    array = grid.round().to(torch.uint8).permute(1, 2, 0).numpy()
    return Image.fromarray(array, "RGB")


def _sample_inputs(files: list[Path], size: int) -> torch.Tensor:
    """Centre crops of the first few decodable training images, shown in every sample grid."""
    crops = []
    for path in files:
        try:
            crops.append(image_to_tensor(crop_to_square(open_rgb(path, size), size, "center", None)))
        except DECODE_ERRORS:
            continue  # the data loader reports it
        if len(crops) == NUM_SAMPLES:
            break
    if not crops:
        raise UserError(f"none of the {len(files)} images in the data folder could be decoded; check --data")
    return torch.stack(crops)


def _write_image(image: Image.Image, path: Path) -> None:
    with atomic_path(path) as tmp:
        image.save(tmp, format="JPEG", quality=92)


def _trim_log(path: Path, last_step: int) -> None:
    """After a resume, drop log lines of steps that the checkpoint does not contain."""
    if not path.exists():
        return
    kept = []
    for line in path.read_text().splitlines():
        try:
            if json.loads(line)["step"] <= last_step:
                kept.append(line)
        except (ValueError, KeyError, TypeError):
            continue  # a line torn by a crash
    write_atomic("".join(line + "\n" for line in kept).encode(), path)


def _start_from(generator: torch.nn.Module, spec: GeneratorSpec, path: Path) -> None:
    """Fine-tuning: the generator starts from the weights of another run's model.safetensors, of an ONNX file that
    toolkit export wrote, or of a bundled style given by name (same architecture)."""
    try:
        path = resolve_model(str(path))
    except ModelError as exc:
        raise UserError(f"--init: {exc}; give a model.safetensors from toolkit train, an .onnx from toolkit export, "
                        "or a bundled style's name") from None  # fmt: skip
    if path.suffix.lower() == ".onnx":
        start, theirs = generator_from_onnx(path)
    else:
        start, meta = load_model(path)
        theirs = GeneratorSpec(**meta["generator"])
    if theirs != spec:
        flags = f"--arch {theirs.arch} --norm {theirs.norm} --width {theirs.width:g}"
        flags += f" --noise-channels {theirs.noise_channels}" if theirs.noise_channels else ""
        raise UserError(f"--init {path.name} is a {theirs}, this run trains a {spec}; train the same kind ({flags})")
    generator.load_state_dict(start.state_dict())


def build_perceptual_loss(config: TrainConfig, device: torch.device, channels_last: bool = False):
    """The loss of `config` against its style image, on `device`; returns (loss module, where the VGG came from)."""
    style = load_style_image(config.style, config.style_size)
    content_layers = parse_layers(config.content_layers, "--content-layers")
    style_layers = parse_layers(config.style_layers, "--style-layers")
    histogram_layers = parse_layers(config.histogram_layers, "--histogram-layers") if config.histogram_weight else {}
    weights = read_vgg_weights(config.vgg_weights) if config.vgg_weights else download_vgg_weights(config.loss_net)
    vgg = build_loss_network(
        weights, config.loss_net, sorted(set(content_layers) | set(style_layers) | set(histogram_layers))
    ).to(device)
    if channels_last:  # Module.to takes memory_format (documented); the overloads of its annotations omit it
        vgg.to(memory_format=torch.channels_last)  # type: ignore[call-overload]
    loss = PerceptualLoss(
        vgg, style.to(device), content_layers, style_layers,
        config.content_weight, config.style_weight, config.tv_weight, config.loss_scale, config.range_weight,
        histogram_layers, config.histogram_weight, config.style_grid,
        list(parse_layers(config.style_grid_layers, "--style-grid-layers")) or None,
        config.lowfreq_weight, config.lowfreq_scale, config.lowfreq_gain, config.content_structure,
    )  # fmt: skip
    return loss, weights.source


def run_training(config: TrainConfig, resume: bool = False, reporter: ReporterLike | None = None) -> TrainResult:
    reporter = reporter or Reporter()
    out = Path(config.out)
    checkpoint_path = out / CHECKPOINT_FILE
    if resume and not checkpoint_path.is_file():
        raise UserError(f"--resume: no {CHECKPOINT_FILE} in {out}; start the run without --resume")
    if not resume and (checkpoint_path.exists() or (out / MODEL_FILE).exists()):
        raise UserError(f"{out} already holds a training run; add --resume to continue it, or choose another --out")
    if not resume and ((out / LOG_FILE).exists() or (out / SAMPLES_DIR).exists()):
        raise UserError(f"{out} holds a {LOG_FILE} or {SAMPLES_DIR}/ that a new run would overwrite; choose another "
                        "--out")  # fmt: skip

    device = resolve_device(config.device)
    amp_dtype = resolve_precision(config.precision, device)
    if amp_dtype is torch.float16 and device.type == "cpu":
        raise UserError("--precision fp16 needs a CUDA device; use bf16 or fp32 on the CPU")
    channels_last = config.channels_last if config.channels_last is not None else device.type == "cuda"

    folder = scan_images(config.data)
    skipped = [f"{path} ({reason})" for path, reason in folder.unreadable]
    if skipped:
        reporter.warn(f"skipping {len(skipped)} unreadable file(s): " + "; ".join(skipped))
    loss_fn, vgg_source = build_perceptual_loss(config, device, channels_last)

    spec = GeneratorSpec(config.arch, config.norm, config.width, config.noise_channels)
    torch.manual_seed(config.seed)
    generator = build_generator(spec)
    if config.init and not resume:
        _start_from(generator, spec, Path(config.init))
    optimizer = torch.optim.Adam(generator.parameters(), lr=config.lr)
    total_steps = config.total_steps(len(folder.files))

    check_writable(out, "--out")
    generator.to(device)
    if channels_last:  # Module.to takes memory_format (documented); the overloads of its annotations omit it
        generator.to(memory_format=torch.channels_last)  # type: ignore[call-overload]
    scaler = torch.amp.GradScaler(device.type, enabled=amp_dtype is torch.float16)

    step = 0
    if resume:
        step, scaler_state = load_checkpoint(checkpoint_path, generator, optimizer)
        if total_steps < step:
            raise UserError(f"{out} is already at step {step}; give --steps above {step} to train further")
        if scaler_state:
            scaler.load_state_dict(scaler_state)
        _trim_log(out / LOG_FILE, step)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True

    sample_inputs = _sample_inputs(folder.files, config.image_size)

    dataset = CropDataset(folder.files, config.image_size, config.crop, config.seed, config.zoom, config.sky)
    workers = (
        config.workers if config.workers is not None else (0 if device.type == "cpu" else min(4, os.cpu_count() or 1))
    )
    loader = torch.utils.data.DataLoader(
        dataset,
        batch_size=config.batch_size,
        sampler=StreamSampler(step * config.batch_size, total_steps * config.batch_size),
        num_workers=workers,
        pin_memory=device.type == "cuda",
        persistent_workers=False,
        worker_init_fn=_ignore_sigint if workers else None,
    )
    reported_failures: set[str] = set()
    training_info = {
        "style": Path(config.style).name,
        "data": str(config.data),
        "preset": config.preset,
        "loss_net": config.loss_net,
        "vgg_weights": vgg_source,
        "content_layers": config.content_layers,
        "style_layers": config.style_layers,
        "style_grid": config.style_grid,
        "style_grid_layers": config.style_grid_layers or None,
        "content_weight": config.content_weight,
        "content_structure": config.content_structure or None,
        "style_weight": config.style_weight,
        "tv_weight": config.tv_weight,
        "loss_scale": config.loss_scale,
        "range_weight": config.range_weight,
        "histogram_layers": config.histogram_layers if config.histogram_weight else None,
        "histogram_weight": config.histogram_weight,
        "lowfreq_weight": config.lowfreq_weight,
        "lowfreq_scale": config.lowfreq_scale if config.lowfreq_weight else None,
        "lowfreq_gain": config.lowfreq_gain if config.lowfreq_weight else None,
        "relight_weight": config.relight_weight,
        "relight_amount": config.relight_amount if config.relight_weight else None,
        "relight_scale": config.relight_scale if config.relight_weight else None,
        "paste_weight": config.paste_weight,
        "paste_scale": config.paste_scale if config.paste_weight else None,
        "paste_band": config.paste_band if config.paste_weight else None,
        "grain_weight": config.grain_weight,
        "grain_sigma": config.grain_sigma if config.grain_weight else None,
        "style_size": config.style_size,
        "width": config.width,
        "image_size": config.image_size,
        "crop": config.crop,
        "zoom": config.zoom,
        "sky": config.sky,
        "batch_size": config.batch_size,
        "lr": config.lr,
        "seed": config.seed,
        "init": Path(config.init).name if config.init else None,
    }

    def save(at_step: int) -> None:
        check_finite(at_step)
        try:
            save_checkpoint(checkpoint_path, generator, optimizer, scaler.state_dict(), at_step, config.to_dict())
            save_model(out / MODEL_FILE, generator, spec, {**training_info, "steps": at_step})
        except (OSError, SafetensorError) as exc:  # a full disk, a folder that went away: the last save stays whole
            reason = getattr(exc, "strerror", None) or str(exc)
            raise UserError(
                f"cannot save step {at_step} into {out} ({reason}); the previous checkpoint is intact: free space, "
                f"then toolkit train --out {out} --resume"
            ) from None

    def write_samples(at_step: int) -> None:
        generator.eval()
        with torch.no_grad():
            outputs = generator(sample_inputs.to(device)).cpu()
        generator.train()
        (out / SAMPLES_DIR).mkdir(exist_ok=True)
        _write_image(_sample_grid(sample_inputs, outputs), out / SAMPLES_DIR / f"step_{at_step:07d}.jpg")

    generator.train()
    losses: dict[str, float] = {}
    interrupted = False
    run_start = time.perf_counter()
    run_start_step = step
    window_start, window_steps = time.perf_counter(), 0
    reporter.start(total_steps, step, config.batch_size)
    noise = torch.Generator(device=device) if config.noise_channels else None
    nonfinite = torch.zeros((), dtype=torch.bool, device=device)  # checked when logging and saving: no sync per step

    def check_finite(at_step: int) -> None:
        if bool(nonfinite):
            raise UserError(
                f"the loss became infinite or NaN by step {at_step}; start again into a new --out with a lower --lr "
                "or lower loss weights"
            )

    def stylize(images: torch.Tensor) -> torch.Tensor:
        if noise is None:
            return generator(images)
        noise.manual_seed(config.seed * 1_000_003 + step)  # a crop and its relit copy get the same noise
        return generator(images, noise=noise)

    with _StopOnSigint() as stop, (out / LOG_FILE).open("a" if resume else "w") as log:
        for images, failures in loader:
            for line in (f for text in failures for f in text.split("\n") if f):
                if line not in reported_failures:
                    reported_failures.add(line)
                    reporter.warn("skipping unreadable image " + line.replace("\t", ": "))
            images = images.to(device, non_blocking=True)
            if channels_last:
                images = images.contiguous(memory_format=torch.channels_last)
            for group in optimizer.param_groups:
                group["lr"] = config.lr_at(step)
            with torch.autocast(device.type, dtype=amp_dtype or torch.float32, enabled=amp_dtype is not None):
                output = stylize(images)
                terms = loss_fn(output, images)
                if config.relight_weight:  # the same crops under a smooth change of light (train.relight)
                    n, _, h, w = images.shape
                    gains = random_relighting(n, h, w, config.relight_amount, config.seed * 1_000_003 + step, device)
                    change = relighting_change(output, stylize(relight(images, gains)), config.relight_scale)
                    terms["relight"] = config.relight_weight * change
                    terms["total"] = terms["total"] + terms["relight"]
                if config.paste_weight:  # the same crops with a flat shape pasted in (train.paste)
                    n, _, h, w = images.shape
                    masks, colours = random_shapes(n, h, w, PASTE_SEEDS + config.seed * 1_000_003 + step, device)
                    pasted = stylize(paste(images, masks, colours))
                    change = change_round_shapes(output, pasted, masks, config.paste_scale, config.paste_band)
                    terms["paste"] = config.paste_weight * change
                    terms["total"] = terms["total"] + terms["paste"]
                if config.grain_weight:  # the same crops with grain added (train.grain)
                    seed = GRAIN_SEEDS + config.seed * 1_000_003 + step
                    grain = random_grain(images.shape, config.grain_sigma, seed, device)
                    change = grain_change(output, stylize(add_grain(images, grain)))
                    terms["grain"] = config.grain_weight * change
                    terms["total"] = terms["total"] + terms["grain"]
            optimizer.zero_grad(set_to_none=True)
            nonfinite |= ~torch.isfinite(terms["total"].detach())
            scaler.scale(terms["total"]).backward()
            scaler.step(optimizer)
            scaler.update()
            step += 1
            window_steps += 1
            first = step == 1 and config.loss_scale == "absolute" and config.style_weight > 0  # not on resume
            if first and (warning := silent_style_layers(terms, loss_fn.style_layers)):
                reporter.warn(warning)

            logged = None
            if step % config.log_every == 0 or step == total_steps:
                elapsed = time.perf_counter() - window_start
                check_finite(step)
                logged = {k: float(v.detach()) for k, v in terms.items()}
                ips = window_steps * config.batch_size / elapsed if elapsed > 0 else 0.0
                record = {"step": step, "lr": config.lr_at(step - 1), "images_per_s": round(ips, 3), **logged}
                log.write(json.dumps(record) + "\n")
                log.flush()
                losses = logged
                window_start, window_steps = time.perf_counter(), 0
            reporter.step(step, logged)
            if config.sample_every and step % config.sample_every == 0:
                write_samples(step)
            if step % config.checkpoint_every == 0 and step != total_steps:
                save(step)
            if stop.requested:
                interrupted = step < total_steps
                break
        save(step)
    if config.sample_every and step % config.sample_every:
        write_samples(step)
    reporter.finish()
    elapsed = time.perf_counter() - run_start
    return TrainResult(
        out=str(out),
        step=step,
        total_steps=total_steps,
        interrupted=interrupted,
        losses=losses,
        images_per_s=(step - run_start_step) * config.batch_size / elapsed if elapsed > 0 else 0.0,
        skipped_files=sorted(skipped + [f.replace("\t", ": ") for f in reported_failures]),
        device=str(device),
        precision={None: "fp32", torch.bfloat16: "bf16", torch.float16: "fp16"}[amp_dtype],
    )
