"""`toolkit bench`: latency and throughput per backend and size, as a fraction of the machine's GEMM rate."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

import numpy as np
import typer

from toolkit.reporting import stderr, user_errors


def bench(
    model: str = typer.Option(
        None,
        "--model",
        help="Model file or bundled style (default: a random-weight "
        "pytorch/examples TransformerNet, exported on the spot; needs torch).",
    ),
    backends: str = typer.Option("onnxruntime,torch", "--backend", help="Comma-separated backends to measure."),
    sizes: str = typer.Option("256,512,1024,720p,1080p", "--sizes", help="N (square), HxW, 480p/720p/1080p/4k."),
    batch: int = typer.Option(1, "--batch", help="Images per call."),
    device: str = typer.Option("cpu", "--device", help="cpu or cuda."),
    max_seconds: float = typer.Option(10.0, "--max-seconds", help="Time spent measuring each cell, at most."),
    json_output: bool = typer.Option(False, "--json", help="One JSON object with every measurement."),
    plot: Path = typer.Option(None, "--plot", help="Write a PNG chart of images/s here."),
) -> None:
    """Measure median and p90 latency, images/s and GFLOP/s of each backend at each size."""
    from runtime.bench import measure, parse_sizes, sgemm_gflops, summarize
    from runtime.bench import plot as draw_plot
    from runtime.stylizer import ModelError, Stylizer

    with user_errors(), tempfile.TemporaryDirectory() as tmp:
        try:
            cells = parse_sizes(sizes)
        except ValueError as exc:
            raise ModelError(str(exc)) from None
        if batch < 1 or max_seconds <= 0 or any(min(hw) < 1 for _, hw in cells):
            raise ModelError("--batch, --max-seconds and every size must be positive")
        files, generator = _model_files(model, Path(tmp))
        sgemm = sgemm_gflops()
        results = []
        for backend in (b.strip() for b in backends.split(",") if b.strip()):
            source = files.get(backend)
            if source is None:
                stderr.print(f"note: {backend} has no model file to run here; skipped", markup=False)
                continue
            with Stylizer.load(source, backend=backend, device=device) as stylizer:
                for name, (h, w) in cells:
                    frames = np.random.default_rng(0).integers(0, 256, (batch, h, w, 3), dtype=np.uint8)
                    model_input = stylizer.model_input(list(frames))
                    times = measure(stylizer.backend.run, model_input, max_seconds=max_seconds)
                    gflop = _gflop(generator, h, w)
                    row = summarize(backend, name, (h, w), batch, times, gflop, sgemm)
                    results.append(row)
                    if not json_output:
                        stderr.print(f"  {backend} {name}: {row.median_ms:.0f} ms", markup=False)
        if plot and results:
            draw_plot(results, plot, f"images/s, batch {batch}, {device}")
    if json_output:
        typer.echo(json.dumps({"sgemm_gflops": sgemm, "device": device, "rows": [r.__dict__ for r in results]}))
        return
    typer.echo(f"sgemm rate measured now: {sgemm:.0f} GFLOP/s (numpy, float32, 2048²)")
    typer.echo("| backend | size | batch | median ms | p90 ms | images/s | GFLOP/s | % of sgemm |")
    typer.echo("|---|---|---|---|---|---|---|---|")
    for r in results:
        rate = f"{r.gflops:.1f}" if r.gflops else "—"
        share = f"{100 * r.of_sgemm:.0f} %" if r.of_sgemm else "—"
        typer.echo(f"| {r.backend} | {r.size} | {r.batch} | {r.median_ms:.1f} | {r.p90_ms:.1f} | "
                   f"{r.images_per_s:.2f} | {rate} | {share} |")  # fmt: skip
    if plot and results:
        typer.echo(f"plot: {plot}")


def _model_files(model: str | None, tmp: Path) -> tuple[dict[str, Path], object]:
    """Which file each backend runs, and a torch generator for FLOP counting where one can be had."""
    from runtime.stylizer import resolve_model

    if model is None:
        import torch

        from export.pipeline import export_model
        from train.checkpoint import save_model
        from train.generators import GeneratorSpec, build_generator

        torch.manual_seed(0)
        spec = GeneratorSpec("johnson", "instance", 1.0)
        generator = build_generator(spec).eval()
        save_model(tmp / "model.safetensors", generator, spec, {"style": "random weights"})
        export_model(tmp / "model.safetensors", tmp, name="bench", check=False, engine=False)
        files = {"onnxruntime": tmp / "bench.onnx", "openvino": tmp / "bench.onnx", "torch": tmp / "model.safetensors"}
        return files, generator
    path = resolve_model(model)
    if path.suffix == ".safetensors":
        from train.checkpoint import load_model

        return {"torch": path}, load_model(path)[0]
    files = {"onnxruntime": path.with_suffix(".onnx"), "openvino": path.with_suffix(".onnx")}
    if path.with_suffix(".engine").exists():
        files["tensorrt"] = path.with_suffix(".engine")
    return files, None


def _gflop(generator, h: int, w: int) -> float | None:
    if generator is None:
        return None
    from train.flops import conv_gflop

    return conv_gflop(generator, h, w)
