"""A generator rebuilt from an ONNX file that `toolkit export` wrote, for fine-tuning (`toolkit train --init`).

A user who has only the exported model (a bundled style, a file a colleague sent) can still continue its training:
the fp32 and fp16 exports keep every generator weight as an initializer under its PyTorch name (behind the export
wrapper's prefix), and the metadata says which generator it is. The int8 file cannot be used (its convolutions'
weights are quantized), nor a batch-norm generator's (the export folds its frozen statistics into the convolutions),
nor a foreign model (no generator of ours inside).
"""

from __future__ import annotations

import ast
from pathlib import Path

import torch

from runtime.errors import UserError
from train.checkpoint import check_size
from train.generators import ARCHS, NORMS, Generator, GeneratorSpec, build_generator, load_generator_weights

EXPORT_FORMAT = "fast-style-toolkit/onnx"
# The inputs after X of the nodes that hold a module's parameters, in order, as the module names them
NODE_PARAMETERS = {
    "Conv": ("weight", "bias"),
    "ConvTranspose": ("weight", "bias"),
    "InstanceNormalization": ("weight", "bias"),
}
SCOPES = "pkg.torch.onnx.name_scopes"  # the torch.onnx exporter's record of the module path each node came from
MAX_ONNX_BYTES = 512 * 2**20  # a style generator is a few MB; a bigger file is not one we wrote


def _scope_list(text: str) -> list[str]:
    """The exporter writes name scopes as a Python list literal of strings (read as a literal, never run; a file
    with an absurd one is read as if it had none)."""
    if len(text) > 4096:
        return []
    try:
        scopes = ast.literal_eval(text)
    except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
        return []
    return [scope for scope in scopes if isinstance(scope, str)] if isinstance(scopes, list) else []


def generator_from_onnx(path: str | Path) -> tuple[Generator, GeneratorSpec]:
    """The generator whose weights `path` (an fp32 or fp16 `toolkit export` file) holds, in fp32, in eval mode."""
    path = Path(path)
    try:
        import onnx
        from onnx import numpy_helper
    except ImportError:
        raise UserError(f"--init {path.name}: reading an ONNX file needs the onnx package (pip install onnx)") from None
    if path.stat().st_size > MAX_ONNX_BYTES:
        raise UserError(f"--init {path.name}: {path.stat().st_size >> 20} MB is not a style generator toolkit export "
                        "wrote; give its model.safetensors")  # fmt: skip
    try:
        model = onnx.load(str(path), load_external_data=False)
    except Exception as exc:  # protobuf's DecodeError and friends: a damaged or foreign file
        reason = (str(exc).splitlines() or [type(exc).__name__])[0]
        raise UserError(f"--init {path.name}: not a readable ONNX file ({reason})") from None
    metadata = {entry.key: entry.value for entry in model.metadata_props}
    if metadata.get("format") != EXPORT_FORMAT:
        raise UserError(f"--init {path.name}: not written by toolkit export (no generator of ours inside); give a "
                        "model.safetensors from toolkit train")  # fmt: skip
    if metadata.get("precision") not in ("fp32", "fp16"):
        raise UserError(f"--init {path.name}: its weights are {metadata.get('precision')}, not the float weights "
                        "training needs; give the fp32 NAME.onnx beside it")  # fmt: skip
    try:  # checked before anything is built: the metadata is the file's word, and a width of 1e6 is a memory bomb
        spec = GeneratorSpec(
            arch=metadata["arch"],
            norm=metadata["norm"],
            width=float(metadata["width"]),
            noise_channels=int(metadata.get("noise_channels", "0")),
        )
        if spec.arch not in ARCHS or spec.norm not in NORMS:
            raise ValueError(f"arch {spec.arch!r}, norm {spec.norm!r}")
        check_size(spec)
    except (KeyError, ValueError, TypeError) as exc:
        raise UserError(f"--init {path.name}: its generator metadata is not one toolkit export writes ({exc}); "
                        "export it again") from None  # fmt: skip
    if spec.norm != "instance":
        raise UserError(f"--init {path.name}: the export folded this {spec.norm}-norm generator's statistics into "
                        "its convolutions, so its weights cannot be taken apart again; give its "
                        "model.safetensors")  # fmt: skip
    generator = build_generator(spec)
    floats = {
        tensor.name: tensor
        for tensor in model.graph.initializer
        if tensor.data_type in (onnx.TensorProto.FLOAT, onnx.TensorProto.FLOAT16)
    }
    # The exporter names each weight PREFIX + its state_dict key, where PREFIX is the export wrapper's path to the
    # generator ("inner.generator." today): found as the prefix under which most keys are there, not hard-coded.
    keys = list(generator.state_dict())
    counts: dict[str, int] = {}
    for name in floats:
        for key in keys:
            if name.endswith(key) and name[: -len(key)][-1:] in ("", "."):
                counts[name[: -len(key)]] = counts.get(name[: -len(key)], 0) + 1
    ranked = sorted(counts.items(), key=lambda item: -item[1])
    if not ranked or (len(ranked) > 1 and ranked[0][1] == ranked[1][1]):
        raise UserError(f"--init {path.name}: its weights are not named as toolkit export names them; export it again "
                        "from the model.safetensors")  # fmt: skip
    prefix = ranked[0][0]
    expected = generator.state_dict()
    found = {key: floats[prefix + key] for key in expected if prefix + key in floats}
    # The exporter keeps one copy of identical tensors (an untrained norm's ones and zeros, say) under one of their
    # names; the others are found through the nodes that use them, whose scope names the module.
    for node in model.graph.node:
        roles = NODE_PARAMETERS.get(node.op_type)
        scopes = next((entry.value for entry in node.metadata_props if entry.key == SCOPES), None)
        if roles is None or scopes is None:
            continue
        for scope in reversed(_scope_list(scopes)):
            module = scope[len(prefix) :] if scope.startswith(prefix) else None
            if module and f"{module}.{roles[0]}" in expected:
                for role, name in zip(roles, node.input[1:], strict=False):
                    if name in floats:
                        found.setdefault(f"{module}.{role}", floats[name])
                break
    state = {}
    for key, tensor in found.items():
        if tensor.data_location == onnx.TensorProto.EXTERNAL:  # toolkit export never writes weights outside the file
            raise UserError(
                f"--init {path.name}: its weights are stored in a separate file; give the model.safetensors"
            )
        try:
            state[key] = torch.from_numpy(numpy_helper.to_array(tensor).astype("float32"))
        except (ValueError, TypeError) as exc:  # dims that do not match the data
            raise UserError(f"--init {path.name}: {key} cannot be read ({exc}); export it again") from None
    load_generator_weights(generator, state, str(path))
    bad = [name for name, value in state.items() if not torch.isfinite(value).all()]
    if bad:
        raise UserError(f"--init {path.name}: weights that are NaN or infinite ({', '.join(bad[:3])})")
    return generator.eval(), spec
