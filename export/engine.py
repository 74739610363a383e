"""TensorRT engine building, kept thin: the API common to TensorRT 10.x and 11.x, strongly typed networks.

Precision is what the ONNX graph says (TensorRT 11 has no weak typing): an fp16 engine is built from
`NAME.fp16.onnx`, whose instance norms already compute in fp32. The parser maps InstanceNormalization to TensorRT's
native normalization layer (its default), which computes per-instance statistics at run time.
"""

from __future__ import annotations

import datetime
import hashlib
import json
import re
from dataclasses import dataclass
from pathlib import Path

import onnx

from export.onnx_export import INPUT_NAME
from runtime.atomic import write_atomic
from runtime.cuda_device import gpu_identity
from runtime.engine_sidecar import SIDECAR_FORMAT, sidecar_path
from runtime.errors import UserError

DEFAULT_MIN, DEFAULT_OPT, DEFAULT_MAX = (1, 64, 64), (1, 720, 1280), (1, 2160, 3840)


@dataclass(frozen=True)
class ShapeProfile:
    """Batch, height and width at the profile's min, opt and max."""

    min: tuple[int, int, int] = DEFAULT_MIN
    opt: tuple[int, int, int] = DEFAULT_OPT
    max: tuple[int, int, int] = DEFAULT_MAX

    def input_shapes(self, io: str) -> tuple[tuple[int, ...], ...]:
        """The three shapes in the graph input's layout (NHWC for uint8 I/O, NCHW for float)."""
        if io == "uint8":
            return tuple((n, h, w, 3) for n, h, w in (self.min, self.opt, self.max))
        return tuple((n, 3, h, w) for n, h, w in (self.min, self.opt, self.max))


def parse_shape(text: str | None, flag: str, default: tuple[int, int, int]) -> tuple[int, int, int]:
    """'1x720x1280' (N×H×W) or '720x1280' (batch 1)."""
    if text is None:
        return default
    parts = re.split(r"[x×,]", text.strip().lower())
    try:
        numbers = tuple(int(p) for p in parts)
    except ValueError:
        numbers = ()
    if len(numbers) == 2:
        numbers = (1, *numbers)
    if len(numbers) != 3 or min(numbers) <= 0:
        raise UserError(f"{flag} {text!r}: write NxHxW or HxW with positive numbers, e.g. 1x720x1280")
    return numbers


def make_profile(min_text: str | None, opt_text: str | None, max_text: str | None, min_side: int) -> ShapeProfile:
    profile = ShapeProfile(
        parse_shape(min_text, "--min-shape", DEFAULT_MIN),
        parse_shape(opt_text, "--opt-shape", DEFAULT_OPT),
        parse_shape(max_text, "--max-shape", DEFAULT_MAX),
    )
    for axis, name in enumerate(("batch", "height", "width")):
        low, mid, high = profile.min[axis], profile.opt[axis], profile.max[axis]
        if not low <= mid <= high:
            raise UserError(
                f"shape profile {name}: need min ≤ opt ≤ max, got {low}, {mid}, {high} "
                "(--min-shape/--opt-shape/--max-shape)"
            )
    if min(profile.min[1:]) < min_side:
        raise UserError(f"--min-shape {profile.min}: this generator needs sides of at least {min_side} px")
    return profile


def build_engine(
    onnx_path: Path,
    engine_path: Path,
    io: str,
    precision: str,
    profile: ShapeProfile,
    workspace_gib: float,
    timing_cache: Path | None,
    notes: list[str] | None = None,
) -> dict:
    """Build and write `engine_path` and its sidecar; returns the sidecar. What the user should know about the
    build (a timing cache that could not be used) is appended to `notes`."""
    import tensorrt as trt

    logger = trt.Logger(trt.Logger.WARNING)
    builder = trt.Builder(logger)
    flags = 0
    if hasattr(trt.NetworkDefinitionCreationFlag, "STRONGLY_TYPED"):  # required on 10.12+, ignored on 11
        flags |= 1 << int(trt.NetworkDefinitionCreationFlag.STRONGLY_TYPED)
    network = builder.create_network(flags)
    parser = trt.OnnxParser(network, logger)
    if not parser.parse_from_file(str(onnx_path)):
        errors = "; ".join(str(parser.get_error(i)) for i in range(parser.num_errors))
        raise UserError(f"TensorRT could not parse {onnx_path}: {errors}")
    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, int(workspace_gib * (1 << 30)))
    cache_bytes = timing_cache.read_bytes() if timing_cache and timing_cache.is_file() else b""
    # Timings from another GPU or TensorRT version are not reused: set_timing_cache refuses them (False), and the
    # build then starts a fresh cache, which replaces the old file.
    if not config.set_timing_cache(config.create_timing_cache(cache_bytes), ignore_mismatch=False):
        if notes is not None:
            notes.append(f"timing cache {timing_cache} was made on another GPU or TensorRT version; starting a new one")
        if not config.set_timing_cache(config.create_timing_cache(b""), ignore_mismatch=False):
            raise UserError("TensorRT refused an empty timing cache; pass --timing-cache with a new file name")
    optimization_profile = builder.create_optimization_profile()
    shapes = profile.input_shapes(io)
    optimization_profile.set_shape(INPUT_NAME, *shapes)
    config.add_optimization_profile(optimization_profile)
    plan = builder.build_serialized_network(network, config)
    if plan is None:
        raise UserError(f"TensorRT failed to build an engine from {onnx_path} (see its log above)")
    write_atomic(bytes(plan), engine_path)
    built_cache = config.get_timing_cache()
    if timing_cache and built_cache is not None:
        write_atomic(bytes(built_cache.serialize()), timing_cache)
    name, capability = gpu_identity()
    metadata = {p.key: p.value for p in onnx.load(str(onnx_path), load_external_data=False).metadata_props}
    sidecar = {
        "format": SIDECAR_FORMAT,
        "tensorrt": {"version": trt.__version__},
        "gpu": {"name": name, "compute_capability": capability},
        "precision": precision,
        "io": io,
        "contract": metadata.get("io"),
        "profiles": [{"input": INPUT_NAME, "min": shapes[0], "opt": shapes[1], "max": shapes[2]}],
        "onnx": {"file": onnx_path.name, "sha256": hashlib.sha256(onnx_path.read_bytes()).hexdigest()},
        "built": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
    }
    write_atomic((json.dumps(sidecar, indent=2) + "\n").encode(), sidecar_path(engine_path))
    return sidecar
