"""`toolkit export`: source model → checked ONNX files (fp32; fp16 and int8 with instance norms in fp32)."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import onnx
import torch

from export.checks import (
    FP16_MIN_PSNR,
    PARITY_SIZES,
    Check,
    check_engine,
    check_finite_weights,
    check_fp16,
    check_fp32_instance_norm,
    check_graph,
    check_norm_nodes,
    check_parity,
)
from export.engine import ShapeProfile, build_engine
from export.foreign_onnx import foreign_checks, foreign_metadata, import_foreign
from export.image_io import ImageIO
from export.int8 import (
    INT8_MIN_PSNR,
    calibration_photos,
    check_convolutions_quantized,
    check_int8_psnr,
    check_tensorrt_qdq,
    check_weights_fit_cpus_without_vnni,
    int8_model,
)
from export.onnx_export import INPUT_NAME, add_metadata, build_onnx, onnx_metadata, save_onnx
from export.options import ExportOptions
from export.sources import load_source
from export.triton import write_repository
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
    model_path: str | Path, out_dir: str | Path, options: ExportOptions | None = None, **settings
) -> ExportResult:
    """Write NAME.onnx (and NAME.fp16.onnx, NAME.int8.onnx), checked; with TensorRT and a GPU, also engines and
    their sidecars; with `options.triton`, a Triton model repository for the best of them. `settings`
    (ExportOptions' fields) stand in for `options`; either way they are checked before the model is loaded."""
    options = options or ExportOptions(**settings)
    model_path, out_dir = Path(model_path), Path(out_dir)
    if model_path.suffix.lower() == ".onnx":
        result = _export_foreign(model_path, out_dir, options)
        profile = None
    else:
        result, profile = _export_generator(model_path, out_dir, options)
    if options.triton is not None and result.ok and result.files:
        result.files += [str(p) for p in _triton_repository(result.files, profile, options)]
    return result


def _export_generator(
    model_path: Path, out_dir: Path, options: ExportOptions
) -> tuple[ExportResult, ShapeProfile | None]:
    if options.channel_order == "bgr":
        raise UserError("--channel-order applies to imported .onnx models only; our generators are RGB")
    io, check = options.io, options.check
    calibration = calibration_photos(Path(options.calib)) if options.int8 and options.calib else None
    source = load_source(model_path)
    check_writable(out_dir, "-o/--out")
    name = options.name or source.name
    generator = source.generator.eval()
    min_size = generator.minimum_size
    spec = source.spec.to_dict()
    profile = options.profile(min_size)

    fp32_wrapped = ImageIO(generator, io).eval()
    meta = onnx_metadata(spec, io, "fp32", min_size, source.training, options.version)
    fp32 = add_metadata(build_onnx(fp32_wrapped, options.opset, min_size), meta)
    models = {out_dir / f"{name}.onnx": fp32}
    checks: list[Check] = []
    if check:
        checks += [check_graph(fp32), check_finite_weights(fp32), *check_norm_nodes(fp32, generator, source.spec.norm)]
        checks.append(check_parity(fp32, fp32_wrapped, io))
    if options.fp16:
        half = half_with_fp32_instance_norm(generator)
        half_wrapped = ImageIO(half, io, torch.float16).eval()
        meta = onnx_metadata(spec, io, "fp16", min_size, source.training, options.version)
        fp16_model = add_metadata(build_onnx(half_wrapped, options.opset, min_size), meta)
        models[out_dir / f"{name}.fp16.onnx"] = fp16_model
        if check:
            fp16_checks = [check_graph(fp16_model), *check_norm_nodes(fp16_model, generator, source.spec.norm)]
            fp16_checks += [check_fp32_instance_norm(fp16_model), check_fp16(fp16_model, fp32, io)]
            for item in fp16_checks:
                item.name = f"fp16: {item.name}"
            checks += fp16_checks
    notes = list(source.notes)
    if calibration is not None:
        photos, skipped = calibration
        notes += skipped
        int8_model_proto, int8_checks = _int8(fp32, generator, source.spec.norm, photos, io)
        models[out_dir / f"{name}.int8.onnx"] = int8_model_proto
        # the PSNR was measured anyway (it chose which convolutions stay fp32): even with --no-check a NaN or
        # distant int8 file is not written, since the runtime prefers it on its own
        checks += int8_checks if check else int8_checks[-1:]
    result = ExportResult([], checks, notes)
    if not result.ok:
        return result, profile  # nothing written: a file that failed its checks is not handed out
    for path, model in models.items():
        save_onnx(model, path)
        result.files.append(str(path))
        stale = path.with_suffix(".engine")
        if stale.exists() or sidecar_path(stale).exists():  # built from the ONNX file just replaced
            stale.unlink(missing_ok=True)
            sidecar_path(stale).unlink(missing_ok=True)
            result.notes.append(f"removed {stale.name}: it was built from the previous {path.name}")
    if options.engine is False:
        return result, profile
    reason = tensorrt_unavailable()
    if reason:
        result.notes.append(f"TensorRT engines not built: {reason}; the ONNX files are written")
        return result, profile
    cache = Path(options.timing_cache) if options.timing_cache else out_dir / "timing.cache"
    for onnx_path in list(models):
        precision = next((p for p in ("fp16", "int8") if onnx_path.name.endswith(f".{p}.onnx")), "fp32")
        final = onnx_path.with_suffix(".engine")
        staging = temporary_name(final)  # checked before it takes the final name
        try:
            sidecar = build_engine(
                onnx_path, staging, io, precision, profile, options.workspace_gib, cache, result.notes
            )
            if check:
                sizes = [_clip_to_profile((2, h, w), profile) for h, w in PARITY_SIZES]
                least = INT8_MIN_PSNR if precision == "int8" else FP16_MIN_PSNR
                engine_check = check_engine(staging, fp32, io, sizes, least)
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
    return result, profile


def _int8(fp32: onnx.ModelProto, generator, norm: str, photos: list, io: str):
    """NAME.int8.onnx's model and its checks (export.int8), calibrated on `photos` (those of --calib)."""
    quantized = int8_model(fp32, photos, io)
    model = quantized.model
    checks = [check_graph(model), check_finite_weights(model), *check_norm_nodes(model, generator, norm),
              check_fp32_instance_norm(model), check_convolutions_quantized(model), check_tensorrt_qdq(model),
              check_weights_fit_cpus_without_vnni(model),
              check_int8_psnr(quantized)]  # fmt: skip
    for item in checks:
        item.name = f"int8: {item.name}"
    return model, checks


def _triton_repository(files: list[str], profile: ShapeProfile | None, options: ExportOptions) -> list[Path]:
    """The repository entry for the best file written: the fp16 engine, the fp32 engine, else the fp32 ONNX. An
    engine's batch limit is its profile's maximum batch."""
    paths = [Path(f) for f in files]
    engines = sorted((p for p in paths if p.suffix == ".engine"), key=lambda p: ".fp16" not in p.name)
    onnx_files = [p for p in paths if p.suffix == ".onnx" and not p.name.endswith(".fp16.onnx")]
    model = engines[0] if engines else onnx_files[0]
    max_batch = options.triton_max_batch
    if max_batch is None:
        max_batch = profile.max[0] if engines and profile is not None else 8
    device = options.triton_device or ("gpu" if engines else "cpu")
    assert options.triton is not None
    return write_repository(options.triton, model.name.split(".")[0], model, max_batch, device)


def _clip_to_profile(shape: tuple[int, int, int], profile: ShapeProfile) -> tuple[int, int, int]:
    n, h, w = (min(max(v, low), high) for v, low, high in zip(shape, profile.min, profile.max, strict=True))
    return n, h, w


def _export_foreign(path: Path, out_dir: Path, options: ExportOptions) -> ExportResult:
    """An ONNX style model from elsewhere: wrapped with our I/O contract where possible, checked, written."""
    io, check, channel_order = options.io, options.check, options.channel_order
    if not path.is_file():
        raise UserError(f"model file not found: {path}")
    try:
        original = onnx.load(path)
    except onnx.checker.ValidationError as exc:  # onnx refuses external data it must not read
        first = (str(exc).strip().splitlines() or ["refused"])[0]
        raise UserError(f"{path}: its weights are in an external data file that cannot be used ({first}); give "
                        "a self-contained .onnx (onnx.save with save_as_external_data=False)") from None  # fmt: skip
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
    name = options.name or path.stem
    del model.metadata_props[:]
    for key, value in foreign_metadata(name, str(path), contract, options.version).items():
        entry = model.metadata_props.add()
        entry.key, entry.value = key, value
    if options.fp16:
        notes.append("--fp16 is not available for imported ONNX models; only the fp32 file is written")
    if options.int8:
        notes.append("--int8 is not available for imported ONNX models; only the fp32 file is written")
    if options.engine:
        notes.append("TensorRT engines are not built for imported ONNX models")
    result = ExportResult([], foreign_checks(original, model, contract, bgr) if check else [], notes)
    if result.ok:
        save_onnx(model, out_dir / f"{name}.onnx")
        result.files.append(str(out_dir / f"{name}.onnx"))
    return result
