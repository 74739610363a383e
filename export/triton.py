"""A Triton Inference Server model repository for an exported style: REPO/NAME/config.pbtxt and REPO/NAME/1/model.*

The config is checked when written: parsed into tritonclient's `ModelConfig` protobuf (which catches unknown
fields, bad enums and non-integer dims), plus the checks that parsing misses (model name = folder name, dynamic
batching needs max_batch_size > 0, preferred batch sizes within it, no zero dims, tensor names and types that match
the model). Tensors: `image` uint8 N×H×W×3 in, `stylized` uint8 N×H×W×3 out, any H and W.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from runtime.atomic import atomic_path, write_atomic
from runtime.errors import UserError

PLATFORMS = {".onnx": ("onnxruntime_onnx", "model.onnx"), ".engine": ("tensorrt_plan", "model.plan")}


def config_text(name: str, platform: str, max_batch: int, kind: str, input_name: str, output_name: str) -> str:
    preferred = [b for b in (4, 8) if b < max_batch] + [max_batch]
    group = f"count: 1 kind: {kind}" + (' profile: [ "0" ]' if platform == "tensorrt_plan" else "")
    return f"""name: "{name}"
platform: "{platform}"
max_batch_size: {max_batch}
input [ {{ name: "{input_name}" data_type: TYPE_UINT8 format: FORMAT_NHWC dims: [ -1, -1, 3 ] }} ]
output [ {{ name: "{output_name}" data_type: TYPE_UINT8 dims: [ -1, -1, 3 ] }} ]
dynamic_batching {{ preferred_batch_size: [ {", ".join(str(b) for b in sorted(set(preferred)))} ] max_queue_delay_microseconds: 2000 }}
instance_group [ {{ {group} }} ]
"""  # noqa: E501


def check_config(text: str, folder_name: str, input_name: str = "image", output_name: str = "stylized") -> list[str]:
    """Problems with a config.pbtxt: a protobuf parse error, or what Triton would refuse at load time."""
    try:
        from google.protobuf import text_format
        from tritonclient.grpc import model_config_pb2
    except ImportError:
        raise UserError("--triton needs tritonclient (pip install 'fast-style-toolkit[triton]')") from None
    try:
        config = text_format.Parse(text, model_config_pb2.ModelConfig())
    except text_format.ParseError as exc:
        return [f"config.pbtxt does not parse: {exc}"]
    problems = []
    if config.name != folder_name:
        problems.append(f"name {config.name!r} is not the folder's name {folder_name!r}")
    if config.HasField("dynamic_batching"):
        if config.max_batch_size <= 0:
            problems.append("dynamic_batching needs max_batch_size > 0")
        too_big = [b for b in config.dynamic_batching.preferred_batch_size if b > config.max_batch_size or b <= 0]
        if too_big:
            problems.append(f"preferred_batch_size {too_big} outside 1..max_batch_size {config.max_batch_size}")
    uint8 = model_config_pb2.DataType.Value("TYPE_UINT8")
    for kind, tensors, expected in (("input", config.input, input_name), ("output", config.output, output_name)):
        if [t.name for t in tensors] != [expected]:
            problems.append(f"{kind} must be one tensor named {expected!r}, found {[t.name for t in tensors]}")
        for tensor in tensors:
            if 0 in tensor.dims or any(d < -1 for d in tensor.dims):
                problems.append(f"{kind} {tensor.name!r} has a zero or invalid dim: {list(tensor.dims)}")
            if tensor.data_type != uint8:
                problems.append(f"{kind} {tensor.name!r} must be TYPE_UINT8")
    return problems


def write_repository(repo: Path, name: str, model: Path, max_batch: int, device: str) -> list[Path]:
    """Copy `model` (.onnx or .engine) into REPO/NAME/1/ and write a checked REPO/NAME/config.pbtxt."""
    if model.suffix not in PLATFORMS:
        raise UserError(f"{model}: a Triton repository takes a .onnx or .engine file")
    if max_batch < 1:
        raise UserError(f"--triton-max-batch must be at least 1, not {max_batch}")
    platform, file_name = PLATFORMS[model.suffix]
    if platform == "tensorrt_plan" and device != "gpu":
        raise UserError("a TensorRT plan runs on a GPU only: use --triton-device gpu")
    kind = {"gpu": "KIND_GPU", "cpu": "KIND_CPU"}.get(device)
    if kind is None:
        raise UserError(f"--triton-device must be cpu or gpu, not {device!r}")
    text = config_text(name, platform, max_batch, kind, "image", "stylized")
    problems = check_config(text, name)
    if problems:  # our own template went wrong: refuse rather than hand Triton a repository it will reject
        raise UserError("Triton config for " + name + ": " + "; ".join(problems))
    folder = repo / name
    (folder / "1").mkdir(parents=True, exist_ok=True)
    target = folder / "1" / file_name
    with atomic_path(target) as tmp:
        shutil.copyfile(model, tmp)
    for stale in (folder / "1").glob("model.*"):
        if stale != target:
            stale.unlink()
    config = folder / "config.pbtxt"
    write_atomic(text.encode(), config)
    return [config, target]
