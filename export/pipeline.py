"""`toolkit export`: source model → checked ONNX files (fp32, and fp16 with instance norms in fp32)."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import onnx
import torch

from export.checks import (
    PARITY_SIZES,
    Check,
    check_engine,
    check_fp16,
    check_fp32_instance_norm,
    check_graph,
    check_norm_nodes,
    check_parity,
)
from export.engine import ShapeProfile, build_engine, make_profile
from export.foreign_onnx import foreign_checks, foreign_metadata, import_foreign
from export.image_io import ImageIO
from export.onnx_export import DEFAULT_OPSET, INPUT_NAME, build_onnx, onnx_metadata, save_onnx
from export.sources import load_source
from runtime.atomic import temporary_name
from runtime.channel_order import channel_order_note
from runtime.cuda_device import tensorrt_unavailable
from runtime.engine_sidecar import sidecar_path
from runtime.errors import UserError
from train.checkpoint import check_writable
from train.norm import half_with_fp32_instance_norm


@dataclass
class ExportResult:
    files: list[str]
    checks: list[Check] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return all(check.ok for check in self.checks)


def export_model(
    model_path: str | Path,
    out_dir: str | Path,
    name: str | None = None,
    fp16: bool = False,
    opset: int = DEFAULT_OPSET,
    io: str = "uint8",
    check: bool = True,
    version: str = "0",
    engine: bool | None = None,
    min_shape: str | None = None,
    opt_shape: str | None = None,
    max_shape: str | None = None,
    workspace_gib: float = 4.0,
    timing_cache: str | Path | None = None,
    channel_order: str = "auto",
) -> ExportResult:
    """Write NAME.onnx (and NAME.fp16.onnx), checked; with TensorRT and a GPU, also engines and their sidecars.

    `engine`: True = build engines, False = don't, None = build them when TensorRT and a GPU are present.
    """
    if io not in ("uint8", "float"):
        raise UserError(f"--io must be uint8 or float, not {io!r}")
    if channel_order not in ("auto", "rgb", "bgr"):
        raise UserError(f"--channel-order must be auto, rgb or bgr, not {channel_order!r}")
    if Path(model_path).suffix.lower() == ".onnx":
        return _export_foreign(Path(model_path), Path(out_dir), name, io, check, version, fp16, engine, channel_order)
    if channel_order == "bgr":
        raise UserError("--channel-order applies to imported .onnx models only; our generators are RGB")
    source = load_source(model_path)
    out_dir = Path(out_dir)
    check_writable(out_dir, "-o/--out")
    name = name or source.name
    generator = source.generator.eval()
    min_size = generator.minimum_size
    spec = source.spec.to_dict()
    profile = make_profile(min_shape, opt_shape, max_shape, min_size)
    if workspace_gib <= 0:
        raise UserError("--workspace must be positive (GiB)")

    fp32_wrapped = ImageIO(generator, io).eval()
    fp32 = build_onnx(
        fp32_wrapped, opset, min_size, onnx_metadata(spec, io, "fp32", min_size, source.training, version)
    )
    models = {out_dir / f"{name}.onnx": fp32}
    checks: list[Check] = []
    if check:
        checks += [check_graph(fp32), *check_norm_nodes(fp32, generator, source.spec.norm)]
        checks.append(check_parity(fp32, fp32_wrapped, io))
    if fp16:
        half = half_with_fp32_instance_norm(generator)
        half_wrapped = ImageIO(half, io, torch.float16).eval()
        meta = onnx_metadata(spec, io, "fp16", min_size, source.training, version)
        fp16_model = build_onnx(half_wrapped, opset, min_size, meta)
        models[out_dir / f"{name}.fp16.onnx"] = fp16_model
        if check:
            fp16_checks = [check_graph(fp16_model), *check_norm_nodes(fp16_model, generator, source.spec.norm)]
            fp16_checks += [check_fp32_instance_norm(fp16_model), check_fp16(fp16_model, fp32, io)]
            for item in fp16_checks:
                item.name = f"fp16: {item.name}"
            checks += fp16_checks
    result = ExportResult([], checks, source.notes)
    if not result.ok:
        return result  # nothing written: a file that failed its checks is not handed out
    for path, model in models.items():
        save_onnx(model, path)
        result.files.append(str(path))
        stale = path.with_suffix(".engine")
        if stale.exists() or sidecar_path(stale).exists():  # built from the ONNX file just replaced
            stale.unlink(missing_ok=True)
            sidecar_path(stale).unlink(missing_ok=True)
            result.notes.append(f"removed {stale.name}: it was built from the previous {path.name}")
    if engine is False:
        return result
    reason = tensorrt_unavailable()
    if reason:
        result.notes.append(f"TensorRT engines not built: {reason}; the ONNX files are written")
        return result
    cache = Path(timing_cache) if timing_cache else out_dir / "timing.cache"
    for onnx_path in list(models):
        precision = "fp16" if onnx_path.name.endswith(".fp16.onnx") else "fp32"
        final = onnx_path.with_suffix(".engine")
        staging = temporary_name(final)  # checked before it takes the final name
        try:
            sidecar = build_engine(onnx_path, staging, io, precision, profile, workspace_gib, cache, result.notes)
            if check:
                sizes = [_clip_to_profile((2, h, w), profile) for h, w in PARITY_SIZES]
                engine_check = check_engine(staging, fp32, io, sizes)
                engine_check.name = f"{precision} engine: {engine_check.name}"
                result.checks.append(engine_check)
                if not engine_check.ok:
                    continue  # not handed out
            os.replace(sidecar_path(staging), sidecar_path(final))
            os.replace(staging, final)
            result.files += [str(final), str(sidecar_path(final))]
            shapes = sidecar["profiles"][0]
            result.notes.append(
                f"built {final.name} ({precision}) with TensorRT {sidecar['tensorrt']['version']} on "
                f"{sidecar['gpu']['name']} (compute capability {sidecar['gpu']['compute_capability']}); "
                f"input {INPUT_NAME} from {shapes['min']} via {shapes['opt']} to {shapes['max']}; "
                f"timing cache {cache}"
            )
        finally:
            staging.unlink(missing_ok=True)
            sidecar_path(staging).unlink(missing_ok=True)
    return result


def _clip_to_profile(shape: tuple[int, int, int], profile: ShapeProfile) -> tuple[int, int, int]:
    n, h, w = (min(max(v, low), high) for v, low, high in zip(shape, profile.min, profile.max, strict=True))
    return n, h, w


def _export_foreign(
    path: Path, out_dir: Path, name: str | None, io: str, check: bool, version: str, fp16: bool,
    engine: bool | None, channel_order: str,
) -> ExportResult:  # fmt: skip
    """An ONNX style model from elsewhere: wrapped with our I/O contract where possible, checked, written."""
    if not path.is_file():
        raise UserError(f"model file not found: {path}")
    try:
        original = onnx.load(path)
    except Exception as exc:  # protobuf raises DecodeError and others on a file that is not ONNX
        raise UserError(f"{path}: not an ONNX file ({type(exc).__name__})") from None
    guessed_note = None
    if channel_order == "auto":
        order, guessed_note = channel_order_note(path)
        channel_order = order.lower()
    bgr = channel_order == "bgr"
    model, contract, notes = import_foreign(original, str(path), io, bgr)
    if guessed_note:
        notes.insert(0, guessed_note.replace("so it runs as", "so it is imported as"))
    check_writable(out_dir, "-o/--out")
    name = name or path.stem
    del model.metadata_props[:]
    for key, value in foreign_metadata(name, str(path), contract, version).items():
        entry = model.metadata_props.add()
        entry.key, entry.value = key, value
    if fp16:
        notes.append("--fp16 is not available for imported ONNX models; only the fp32 file is written")
    if engine:
        notes.append("TensorRT engines are not built for imported ONNX models")
    result = ExportResult([], foreign_checks(original, model, contract, bgr) if check else [], notes)
    if result.ok:
        save_onnx(model, out_dir / f"{name}.onnx")
        result.files.append(str(out_dir / f"{name}.onnx"))
    return result
