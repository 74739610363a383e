"""Our files, all safetensors (no pickle), each written to a temporary name and renamed into place.

- `model.safetensors`: generator weights; metadata says how to rebuild it (arch, norm, width) and how it was
  trained. This is what `toolkit export` takes.
- `checkpoint.safetensors`: everything needed to continue training exactly: generator, optimizer state, grad
  scaler, step. (Data order, crops and the LR schedule are functions of the seed and step, so no RNG state.)
"""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import load_file, save_file
from torch import nn

from runtime.atomic import atomic_path
from runtime.errors import UserError
from train.generators import Generator, GeneratorSpec, build_generator, load_generator_weights

MODEL_FORMAT = "fast-style-toolkit/generator"
MAX_WIDTH = 8.0  # a channel multiplier beyond this is not a style generator but a memory bomb
CHECKPOINT_FORMAT = "fast-style-toolkit/training-state"
FORMAT_VERSION = "1"
IO_CONTRACT = {"layout": "NCHW", "channels": "RGB", "dtype": "float32", "range": [0, 255]}


def check_size(spec: GeneratorSpec) -> None:
    """ValueError when a file's generator description would build something no style generator is: checked before
    anything is built, since the file's word is all there is."""
    if not isinstance(spec.width, (int, float)) or not 0 < spec.width <= MAX_WIDTH:  # also NaN
        raise ValueError(f"width {spec.width!r} is outside (0, {MAX_WIDTH}]")
    if not isinstance(spec.noise_channels, int) or not 0 <= spec.noise_channels <= 64:
        raise ValueError(f"noise_channels {spec.noise_channels!r} is outside 0..64")


def check_writable(folder: Path, flag: str) -> None:
    """Create `folder` if needed and prove a file can be written there, before any real work is done."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
        probe = folder / f".write-test.{uuid.uuid4().hex[:12]}"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as exc:
        raise UserError(
            f"cannot write to output folder {folder} ({exc.strerror or exc}); choose another {flag}"
        ) from None


def atomic_save(tensors: dict[str, torch.Tensor], path: Path, metadata: dict[str, str]) -> None:
    with atomic_path(path, durable=True) as tmp:  # a checkpoint must survive a power cut whole
        save_file({k: v.detach().contiguous().cpu() for k, v in tensors.items()}, tmp, metadata=metadata)


def _read(path: Path, expected_format: str) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    try:
        with safe_open(str(path), framework="pt") as handle:
            metadata = handle.metadata() or {}
        tensors = load_file(str(path))
    except (SafetensorError, OSError, ValueError) as exc:
        raise UserError(f"{path}: not a readable safetensors file ({exc})") from None
    if metadata.get("format") != expected_format:
        raise UserError(f"{path}: not a {expected_format} file (format: {metadata.get('format', 'none')})")
    return tensors, metadata


def save_model(path: Path, generator: nn.Module, spec: GeneratorSpec, training: dict) -> None:
    metadata = {
        "format": MODEL_FORMAT,
        "format_version": FORMAT_VERSION,
        "generator": json.dumps(spec.to_dict()),
        "io": json.dumps(IO_CONTRACT),
        "training": json.dumps(training),
    }
    atomic_save(generator.state_dict(), path, metadata)


def load_model(path: str | Path) -> tuple[Generator, dict]:
    """Rebuild a generator from a `model.safetensors`; returns (model in eval mode, metadata with JSON decoded)."""
    path = Path(path)
    tensors, metadata = _read(path, MODEL_FORMAT)
    try:
        decoded: dict[str, Any] = {
            k: json.loads(v) if k in ("generator", "io", "training") else v for k, v in metadata.items()
        }
        spec = GeneratorSpec(**decoded["generator"])
        check_size(spec)
    except (ValueError, TypeError, KeyError) as exc:  # bad JSON, a missing or extra key, a list, a huge width
        raise UserError(f"{path}: its generator metadata is not one toolkit train writes ({exc}); retrain or "
                        "re-save it") from None  # fmt: skip
    model = build_generator(spec)
    load_generator_weights(model, tensors, str(path))
    bad = [name for name, value in tensors.items() if value.is_floating_point() and not torch.isfinite(value).all()]
    if bad:
        raise UserError(f"{path}: weights that are NaN or infinite ({', '.join(bad[:3])}): the training diverged; "
                        "use an earlier checkpoint or retrain with a lower --lr")  # fmt: skip
    return model.eval(), decoded


def save_checkpoint(
    path: Path,
    generator: nn.Module,
    optimizer: torch.optim.Optimizer,
    scaler_state: dict,
    step: int,
    config: dict,
) -> None:
    tensors = {f"generator.{k}": v for k, v in generator.state_dict().items()}
    optim = optimizer.state_dict()
    scalars: dict[str, dict] = {}
    for param_id, state in optim["state"].items():
        for name, value in state.items():
            if isinstance(value, torch.Tensor):
                tensors[f"optimizer.{param_id}.{name}"] = value
            else:
                scalars.setdefault(str(param_id), {})[name] = value
    metadata = {
        "format": CHECKPOINT_FORMAT,
        "format_version": FORMAT_VERSION,
        "step": str(step),
        "config": json.dumps(config),
        "param_groups": json.dumps(optim["param_groups"]),
        "optimizer_scalars": json.dumps(scalars),
        "scaler": json.dumps(scaler_state),
    }
    atomic_save(tensors, path, metadata)


def read_checkpoint_config(path: Path) -> dict:
    _, metadata = _read(path, CHECKPOINT_FORMAT)
    return json.loads(metadata["config"])


def load_checkpoint(path: Path, generator: nn.Module, optimizer: torch.optim.Optimizer) -> tuple[int, dict]:
    """Restore generator and optimizer in place; returns (step, grad scaler state)."""
    tensors, metadata = _read(path, CHECKPOINT_FORMAT)
    weights = {k.removeprefix("generator."): v for k, v in tensors.items() if k.startswith("generator.")}
    load_generator_weights(generator, weights, str(path))
    state: dict[int, dict] = {}
    for key, value in tensors.items():
        if key.startswith("optimizer."):
            _, param_id, name = key.split(".", 2)
            state.setdefault(int(param_id), {})[name] = value
    for param_id, values in json.loads(metadata["optimizer_scalars"]).items():
        state.setdefault(int(param_id), {}).update(values)
    optimizer.load_state_dict({"state": state, "param_groups": json.loads(metadata["param_groups"])})
    return int(metadata["step"]), json.loads(metadata["scaler"])
