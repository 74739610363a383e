"""`toolkit bench`: latency and throughput per backend and size, as a fraction of the machine's GEMM rate."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

import numpy as np
import typer

from toolkit.reporting import stderr, user_errors

VARIANT_PRECISIONS = ("fp32", "fp16", "int8", "bf16")


def bench(
    model: str = typer.Option(
        None,
        "--model",
        help="Model file or bundled style (default: a random-weight "
        "pytorch/examples TransformerNet, exported on the spot; needs torch).",
    ),
    backends: str = typer.Option(
        "onnxruntime,openvino,openvino:int8,torch",
        "--backend",
        help="Comma-separated BACKEND[:PRECISION]: fp32 (default), int8 (runs NAME.int8.onnx), bf16 (openvino, "
        "torch: the fp32 file computed in bf16), fp16 (NAME.fp16.onnx/engine).",
    ),
    sizes: str = typer.Option("256,512,1024,720p,1080p", "--sizes", help="N (square), HxW, 480p/720p/1080p/4k."),
    batch: int = typer.Option(1, "--batch", help="Images per call."),
    device: str = typer.Option("cpu", "--device", help="cpu or cuda."),
    max_seconds: float = typer.Option(10.0, "--max-seconds", help="Time spent measuring each cell, at most."),
    json_output: bool = typer.Option(False, "--json", help="One JSON object with every measurement."),
    plot: Path = typer.Option(None, "--plot", help="Write a PNG chart of images/s here."),
) -> None:
    """Measure median and p90 latency, images/s, GFLOP/s (and its share of the machine's GEMM rate in the same
    precision, measured in the same run) and PSNR against fp32 of each backend and precision at each size."""
    from runtime.bench import int8_gemm_gops, measure, parse_sizes, photo_like_frame, psnr, sgemm_gflops, summarize
    from runtime.bench import plot as draw_plot
    from runtime.stylizer import ModelError

    with user_errors(), tempfile.TemporaryDirectory() as tmp:
        try:
            cells = parse_sizes(sizes)
        except ValueError as exc:
            raise ModelError(str(exc)) from None
        if batch < 1 or max_seconds <= 0 or any(min(hw) < 1 for _, hw in cells):
            raise ModelError("--batch, --max-seconds and every size must be positive")
        variants = _variants(backends)
        files, generator = _model_files(model, Path(tmp), any(p == "int8" for _, p in variants))
        gemm: dict[str, float | None] = {"fp32": sgemm_gflops()}
        gemm["bf16"] = gemm["fp16"] = gemm["fp32"]  # no bf16/fp16 GEMM is measured: shares are of the fp32 rate
        gemm["int8"] = int8_gemm_gops() if any(p == "int8" for _, p in variants) else None
        results = []
        reference: dict[str, np.ndarray] = {}  # size → the first fp32 row's output
        for backend, precision in variants:
            label = backend if precision == "fp32" else f"{backend}:{precision}"
            try:
                stylizer = _open(backend, precision, files, device)
            except (ModelError, ValueError) as exc:
                stderr.print(f"note: {label} skipped: {exc}", markup=False)
                continue
            with stylizer:
                for name, (h, w) in cells:
                    frames = np.stack([photo_like_frame(h, w, seed=i) for i in range(batch)])
                    model_input = stylizer.model_input(list(frames))
                    times = measure(stylizer.backend.run, model_input, max_seconds=max_seconds)
                    output = stylizer.stylize_arrays([frames[0]])[0]
                    if precision == "fp32" and name not in reference:
                        reference[name] = output
                    quality = psnr(output, reference[name]) if name in reference else None
                    row = summarize(backend, name, (h, w), batch, times, _gflop(generator, h, w), gemm[precision],
                                    precision, quality)  # fmt: skip
                    results.append(row)
                    if not json_output:
                        stderr.print(f"  {label} {name}: {row.median_ms:.0f} ms", markup=False)
        if plot and results:
            draw_plot(results, plot, f"images/s, batch {batch}, {device}")
    if json_output:
        rates = {"sgemm_gflops": gemm["fp32"], "int8_gemm_gops": gemm["int8"]}
        rows = [{k: None if v == float("inf") else v for k, v in r.__dict__.items()} for r in results]  # strict JSON
        typer.echo(json.dumps({**rates, "device": device, "rows": rows}))
        return
    int8_rate = f", int8 {gemm['int8']:.0f} GOP/s (ONNX Runtime MatMulInteger u8×s8)" if gemm["int8"] else ""
    typer.echo(f"GEMM rates measured now (2048²): fp32 {gemm['fp32']:.0f} GFLOP/s (numpy){int8_rate}")
    columns = "backend | precision | size | batch | median ms | p90 ms | images/s | GFLOP/s | % of GEMM | PSNR vs fp32"
    typer.echo(f"| {columns} |")
    typer.echo("|---|---|---|---|---|---|---|---|---|---|")
    for r in results:
        rate = f"{r.gflops:.1f}" if r.gflops else "—"
        share = f"{100 * r.of_sgemm:.0f} % ({'int8' if r.precision == 'int8' else 'fp32'})" if r.of_sgemm else "—"
        same = "—" if r.psnr_db is None else "same" if r.psnr_db == float("inf") else f"{r.psnr_db:.1f} dB"
        typer.echo(f"| {r.backend} | {r.precision} | {r.size} | {r.batch} | {r.median_ms:.1f} | {r.p90_ms:.1f} | "
                   f"{r.images_per_s:.2f} | {rate} | {share} | {same} |")  # fmt: skip
    if plot and results:
        typer.echo(f"plot: {plot}")


def _variants(text: str) -> list[tuple[str, str]]:
    from runtime.backends.table import BACKENDS
    from runtime.stylizer import ModelError

    variants = []
    for item in (part.strip() for part in text.split(",") if part.strip()):
        backend, _, precision = item.partition(":")
        precision = precision or "fp32"
        if backend not in BACKENDS or precision not in VARIANT_PRECISIONS:
            raise ModelError(f"--backend {item!r}: write BACKEND[:PRECISION] with a backend of {', '.join(BACKENDS)} "
                             f"and a precision of {', '.join(VARIANT_PRECISIONS)}")  # fmt: skip
        variants.append((backend, precision))
    if not variants:
        raise ModelError("--backend is empty")
    return variants


def _open(backend: str, precision: str, files: dict[str, Path], device: str):
    """A Stylizer for one bench row: the file of that precision, or the fp32 file computed in bf16."""
    from runtime.stylizer import ModelError, Stylizer

    source = files.get("torch" if backend == "torch" else "onnx")
    if source is None:
        raise ModelError(f"no model file for {backend} here")
    if precision != "bf16":
        if backend == "torch" and precision != "fp32":
            raise ModelError("the torch backend runs the checkpoint in fp32 or bf16")
        return Stylizer.load(source, backend=backend, device=device, precision=precision)
    if backend == "openvino":
        from runtime.backends.openvino_backend import OpenVinoBackend

        return Stylizer(OpenVinoBackend(source, device, inference_precision="bf16"))
    if backend == "torch":
        from runtime.backends.torch_backend import TorchBackend

        return Stylizer(TorchBackend(source, device, precision="bf16"))
    raise ModelError(f"{backend} has no bf16 mode here (openvino and torch have)")


def _model_files(model: str | None, tmp: Path, int8: bool) -> tuple[dict[str, Path], object]:
    """The ONNX file and the torch checkpoint where there is one, and a torch generator for FLOP counting where one
    can be had. The default random-weight model gets its int8 file too (calibrated on photo-like frames)."""
    from runtime.stylizer import resolve_model

    if model is None:
        import torch
        from PIL import Image

        from export.pipeline import export_model
        from runtime.bench import photo_like_frame
        from train.checkpoint import save_model
        from train.generators import GeneratorSpec, build_generator

        torch.manual_seed(0)
        spec = GeneratorSpec("johnson", "instance", 1.0)
        generator = build_generator(spec).eval()
        save_model(tmp / "model.safetensors", generator, spec, {"style": "random weights"})
        calib = tmp / "calib"
        if int8:
            calib.mkdir()
            for i in range(8):
                Image.fromarray(photo_like_frame(256, 256, seed=100 + i)).save(calib / f"{i}.png")
        export_model(tmp / "model.safetensors", tmp, name="bench", check=False, engine=False, int8=int8,
                     calib=calib if int8 else None)  # fmt: skip
        return {"onnx": tmp / "bench.onnx", "torch": tmp / "model.safetensors"}, generator
    path = resolve_model(model)
    if path.suffix == ".safetensors":
        from train.checkpoint import load_model

        return {"torch": path}, load_model(path)[0]
    return {"onnx": path.with_suffix(".onnx")}, _generator_from_metadata(path.with_suffix(".onnx"))


def _generator_from_metadata(path: Path):
    """Our exports name their generator (arch, norm, width): rebuilt with random weights for counting FLOPs, where
    torch and onnx are installed; None otherwise."""
    try:
        import onnx

        from train.generators import GeneratorSpec, build_generator
    except ImportError:
        return None
    try:
        meta = {e.key: e.value for e in onnx.load(str(path), load_external_data=False).metadata_props}
        return build_generator(GeneratorSpec(meta["arch"], meta.get("norm", "instance"), float(meta["width"]))).eval()
    except Exception:  # a foreign model, or metadata of another shape: no FLOP count
        return None


def _gflop(generator, h: int, w: int) -> float | None:
    if generator is None:
        return None
    from train.flops import conv_gflop

    return conv_gflop(generator, h, w)
