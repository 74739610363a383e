"""`toolkit export`: write checked ONNX files for a trained generator."""

from __future__ import annotations

import json
from pathlib import Path

import typer

from toolkit import __version__
from toolkit.reporting import stderr, user_errors


def export(
    model: Path = typer.Argument(
        ..., help="model.safetensors from `toolkit train`, a pytorch/examples .pth, or an ONNX style model."
    ),
    out: Path = typer.Option(..., "-o", "--out", help="Output folder."),
    name: str = typer.Option(None, "--name", help="File name stem (default: the run folder's or file's name)."),
    fp16: bool = typer.Option(False, "--fp16", help="Also write NAME.fp16.onnx (instance norms stay fp32)."),
    int8: bool = typer.Option(
        False, "--int8", help="Also write NAME.int8.onnx: convolutions int8 (VNNI CPUs, TensorRT), instance norms fp32."
    ),
    calib: Path = typer.Option(None, "--calib", help="With --int8: a folder of photos to calibrate on (12–24)."),
    opset: int = typer.Option(20, "--opset", help="ONNX opset."),
    io: str = typer.Option("uint8", "--io", help="uint8: RGB NHWC bytes in and out; float: NCHW 0–255 float32."),
    check: bool = typer.Option(True, "--check/--no-check", help="Validate the graph and compare with PyTorch."),
    engine: bool = typer.Option(
        None, "--engine/--no-engine", help="Build TensorRT engines (default: when TensorRT and a GPU are present)."
    ),
    min_shape: str = typer.Option(None, "--min-shape", help="Engine profile minimum, NxHxW (default 1x64x64)."),
    opt_shape: str = typer.Option(None, "--opt-shape", help="Shape the engine is tuned for (default 1x720x1280)."),
    max_shape: str = typer.Option(None, "--max-shape", help="Engine profile maximum (default 1x2160x3840)."),
    workspace: float = typer.Option(4.0, "--workspace", help="TensorRT builder workspace limit, GiB."),
    timing_cache: Path = typer.Option(None, "--timing-cache", help="Timing cache reused across builds."),
    channel_order: str = typer.Option(
        "auto",
        "--channel-order",
        help="Of an imported .onnx model: auto (what its graph shows, else rgb), rgb, or bgr (Caffe/WinML models).",
    ),
    triton: Path = typer.Option(
        None, "--triton", help="Also write a Triton model repository here: REPO/NAME/config.pbtxt + 1/model.*"
    ),
    triton_max_batch: int = typer.Option(
        None, "--triton-max-batch", help="Triton max_batch_size (default: the engine profile's, or 8 for ONNX)."
    ),
    triton_device: str = typer.Option(
        None, "--triton-device", help="Triton instance kind: gpu or cpu (default: gpu for an engine, cpu for ONNX)."
    ),
    json_output: bool = typer.Option(False, "--json", help="Print the result as one JSON object."),
) -> None:
    """Export a generator to ONNX with dynamic batch/height/width, and check it."""
    from export.options import ExportOptions
    from export.pipeline import export_model

    with user_errors():
        options = ExportOptions(
            name=name, fp16=fp16, int8=int8, calib=calib, opset=opset, io=io, check=check, version=__version__,
            engine=engine,
            min_shape=min_shape, opt_shape=opt_shape, max_shape=max_shape, workspace_gib=workspace,
            timing_cache=timing_cache, channel_order=channel_order, triton=triton, triton_max_batch=triton_max_batch,
            triton_device=triton_device,
        )  # fmt: skip
        result = export_model(model, out, options)
    if json_output:
        checks = [c.__dict__ for c in result.checks]
        typer.echo(json.dumps({"ok": result.ok, "files": result.files, "checks": checks, "notes": result.notes}))
    else:
        for item in result.checks:
            mark = "warn" if item.warning else ("ok" if item.ok else "FAIL")
            stderr.print(f"  {mark:4}  {item.name}: {item.detail}", markup=False)
        for path in result.files:
            stderr.print(f"wrote {path}", markup=False)
        for note in result.notes:
            stderr.print(f"note: {note}", markup=False)
    if not result.ok:
        written = "only the files listed above were written" if result.files else "no file was written"
        stderr.print(f"error: export checks failed; {written}", markup=False)
        raise typer.Exit(1)
