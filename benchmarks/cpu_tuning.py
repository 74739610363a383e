"""CPU inference: torch eager against ONNX Runtime session variants, per size, in one run (issue 6).

    python benchmarks/cpu_tuning.py [--sizes 256,512,1024,720p,1080p] [--variants default,toolkit,...] [--rss]

Model: the pytorch/examples TransformerNet (full width, random weights, seed 0), exported by `toolkit export`
(uint8 NHWC I/O). Each cell is the median of repeated batch-1 calls after a warm-up. The GEMM rate is measured in
the same run twice: numpy's BLAS and torch (oneDNN/MKL), float32 2048²; the table's "% of sgemm" uses the larger.
`--rss` adds the peak resident memory of one 4000×3000 photo per variant, each in a fresh process.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))


def session_options(variant: str):
    import onnxruntime as ort

    options = ort.SessionOptions()
    if variant == "default":
        return options
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.intra_op_num_threads = os.cpu_count() or 1
    options.log_severity_level = 3
    if variant == "no-arena":
        options.enable_cpu_mem_arena = False
    elif variant == "no-spin":
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    elif variant == "daz":
        options.add_session_config_entry("session.set_denormal_as_zero", "1")
    elif variant == "extended":
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED
    elif variant == "1-thread":
        options.intra_op_num_threads = 1
    elif variant != "toolkit":
        raise ValueError(f"unknown variant {variant!r}")
    return options


def make_model(folder: Path) -> Path:
    import torch

    from export.pipeline import export_model
    from train.checkpoint import save_model
    from train.generators import GeneratorSpec, build_generator

    torch.manual_seed(0)
    spec = GeneratorSpec("johnson", "instance", 1.0)
    save_model(folder / "model.safetensors", build_generator(spec).eval(), spec, {"style": "random weights"})
    export_model(folder / "model.safetensors", folder, name="bench", check=False, engine=False)
    return folder


def sgemm_rates() -> dict[str, float]:
    import torch

    from runtime.bench import sgemm_gflops

    n = 2048
    a, b = torch.randn(n, n), torch.randn(n, n)
    a @ b
    best, deadline = float("inf"), time.perf_counter() + 1.5
    while time.perf_counter() < deadline:
        start = time.perf_counter()
        a @ b
        best = min(best, time.perf_counter() - start)
    return {"numpy": sgemm_gflops(), "torch": 2 * n**3 / best / 1e9}


def openvino_runner(path: Path, static: bool):
    """OpenVINO's CPU plugin in fp32 (its default on CPUs with bf16 units is bf16); `static` compiles the model
    for each input shape (compile time not measured), else once with dynamic shapes."""
    import openvino as ov

    core = ov.Core()
    config = {"PERFORMANCE_HINT": "LATENCY", "INFERENCE_PRECISION_HINT": "f32"}
    compiled = {}

    def run(image):
        key = image.shape if static else None
        if key not in compiled:
            model = core.read_model(str(path))
            if static:
                model.reshape({model.inputs[0].get_any_name(): list(image.shape)})
            compiled[key] = core.compile_model(model, "CPU", config).create_infer_request()
        return compiled[key].infer({0: image})

    return run


def timed(run, repeats: int, budget: float) -> float:
    run()
    times, deadline = [], time.perf_counter() + budget
    while len(times) < repeats or (time.perf_counter() < deadline and len(times) < 20):
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    return float(np.median(times))


def peak_rss_mib(folder: Path, variant: str, h: int, w: int) -> float:
    """Peak resident memory of a fresh process that runs one h×w photo through `variant`."""
    code = (
        f"import sys, resource, numpy as np; sys.path.insert(0, {str(REPO)!r})\n"
        "from benchmarks.cpu_tuning import run_once\n"
        f"run_once({str(folder)!r}, {variant!r}, {h}, {w})\n"
        "print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True).stdout
    return int(out.split()[-1]) / 1024


def run_once(folder: str, variant: str, h: int, w: int) -> None:
    image = np.random.default_rng(0).integers(0, 256, (1, h, w, 3), dtype=np.uint8)
    if variant == "torch-eager":
        import torch

        from train.checkpoint import load_model

        model = load_model(Path(folder) / "model.safetensors")[0].eval()
        with torch.no_grad():
            model(torch.from_numpy(image).permute(0, 3, 1, 2).float())
        return
    if variant.startswith("openvino"):
        openvino_runner(Path(folder) / "bench.onnx", static=variant == "openvino-static")(image)
        return
    import onnxruntime as ort

    path = str(Path(folder) / "bench.onnx")
    session = ort.InferenceSession(path, session_options(variant), providers=["CPUExecutionProvider"])
    session.run(None, {session.get_inputs()[0].name: image})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="256,512,1024,720p,1080p")
    parser.add_argument(
        "--variants", default="torch-eager,default,toolkit,no-arena,no-spin,daz,extended,openvino,openvino-static"
    )
    parser.add_argument("--budget", type=float, default=6.0, help="Seconds per cell, at most (3 runs at least).")
    parser.add_argument("--rss", action="store_true", help="Also the peak memory of a 4000×3000 photo.")
    parser.add_argument("--json", type=Path, help="Also write the rows here.")
    args = parser.parse_args()

    import onnxruntime as ort
    import torch

    from runtime.bench import parse_sizes
    from train.checkpoint import load_model
    from train.flops import conv_gflop

    torch.set_num_threads(os.cpu_count() or 1)
    rates = sgemm_rates()
    limit = max(rates.values())
    print(f"sgemm float32 2048²: numpy {rates['numpy']:.0f} GFLOP/s, torch {rates['torch']:.0f} GFLOP/s", flush=True)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        folder = make_model(Path(tmp))
        model = load_model(folder / "model.safetensors")[0].eval()
        for variant in args.variants.split(","):
            if variant.startswith("openvino"):
                run_for = openvino_runner(folder / "bench.onnx", static=variant == "openvino-static")
            elif variant == "torch-eager":

                def run_for(image, model=model):
                    x = torch.from_numpy(image).permute(0, 3, 1, 2).float()
                    with torch.no_grad():
                        return model(x)
            else:
                session = ort.InferenceSession(
                    str(folder / "bench.onnx"), session_options(variant), providers=["CPUExecutionProvider"]
                )
                name = session.get_inputs()[0].name

                def run_for(image, session=session, name=name):
                    return session.run(None, {name: image})

            for label, (h, w) in parse_sizes(args.sizes):
                image = np.random.default_rng(0).integers(0, 256, (1, h, w, 3), dtype=np.uint8)
                seconds = timed(lambda image=image, run_for=run_for: run_for(image), 3, args.budget)
                gflop = conv_gflop(model, h, w)
                rows.append({"variant": variant, "size": label, "seconds": seconds, "gflop": gflop,
                             "gflops": gflop / seconds, "of_sgemm": gflop / seconds / limit})  # fmt: skip
                print(f"  {variant} {label}: {seconds * 1000:.0f} ms", flush=True)
        rss = {}
        if args.rss:
            for variant in args.variants.split(","):
                rss[variant] = peak_rss_mib(folder, variant, 3000, 4000)
                print(f"  {variant} 4000×3000 peak RSS: {rss[variant]:.0f} MiB", flush=True)

    eager = {r["size"]: r["seconds"] for r in rows if r["variant"] == "torch-eager"}
    print("\n| variant | size | ms | GFLOP/s | % of sgemm | × torch eager |")
    print("|---|---|---|---|---|---|")
    for r in rows:
        speedup = f"{eager[r['size']] / r['seconds']:.2f}×" if r["size"] in eager else "—"
        print(f"| {r['variant']} | {r['size']} | {r['seconds'] * 1000:.0f} | {r['gflops']:.1f} | "
              f"{100 * r['of_sgemm']:.0f} % | {speedup} |")  # fmt: skip
    if rss:
        print("\n| variant | peak RSS, one 4000×3000 photo |\n|---|---|")
        for variant, mib in rss.items():
            print(f"| {variant} | {mib:.0f} MiB |")
    if args.json:
        args.json.write_text(json.dumps({"sgemm": rates, "rows": rows, "rss_mib": rss}, indent=2) + "\n")


if __name__ == "__main__":
    main()
