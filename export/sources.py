"""What `toolkit export` accepts: our `model.safetensors` and pytorch/examples `fast_neural_style` checkpoints."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from runtime.errors import UserError
from train.checkpoint import load_model
from train.generators import Generator, GeneratorSpec, build_generator, load_generator_weights
from train.state_files import read_state_dict


@dataclass
class SourceModel:
    generator: Generator
    spec: GeneratorSpec
    name: str
    source: str
    training: dict = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)


def _pytorch_examples(path: Path) -> SourceModel:
    state = read_state_dict(path, "fast_neural_style TransformerNet")
    if "conv1.conv2d.weight" not in state:
        raise UserError(
            f"{path}: not a pytorch/examples fast_neural_style state dict (no conv1.conv2d.weight); "
            "give a model.safetensors from `toolkit train` or a TransformerNet .pth"
        )
    width = state["conv1.conv2d.weight"].shape[0] / 32
    spec = GeneratorSpec("johnson", "instance", width)
    generator = build_generator(spec)
    dropped = load_generator_weights(generator, state, str(path))
    notes = (
        [f"dropped {len(dropped)} legacy InstanceNorm running-statistics keys (unused since torch 0.4)"]
        if dropped
        else []
    )
    return SourceModel(generator.eval(), spec, path.stem, str(path), {"source": "pytorch/examples"}, notes)


def load_source(path: str | Path) -> SourceModel:
    path = Path(path)
    if not path.is_file():
        raise UserError(f"model file not found: {path}")
    suffix = path.suffix.lower()
    if suffix == ".safetensors":
        generator, meta = load_model(path)
        spec = GeneratorSpec(**meta["generator"])
        name = path.parent.name if path.stem == "model" else path.stem
        return SourceModel(generator, spec, name, str(path), meta.get("training", {}))
    if suffix in (".pth", ".pt", ".model"):
        return _pytorch_examples(path)
    raise UserError(
        f"{path}: unknown model type {suffix or '(no suffix)'}; give a model.safetensors from `toolkit train` "
        "or a pytorch/examples .pth/.model checkpoint"
    )
