"""The prepared GPU run (issue 13): tests, inference speed, training speed and `toolkit run`, in one table.

    bash benchmarks/gpu_run.sh                 # on the lent GPU machine (installs the carried wheels, runs this)
    python benchmarks/gpu_speed.py --out OUT [--assets .gpu] [--quick]

On an H100/H200 it takes about 6 minutes:
1. `pytest -m gpu`: the torch backend on CUDA (fp16/bf16 against the CPU's fp32, CUDA-graph replays against eager
   runs) and the TensorRT test where TensorRT is installed.
2. The model alone (GPU time, CUDA events): the pytorch/examples TransformerNet at full width (random weights; speed
   does not depend on them), fp32 eager NCHW (the pytorch/examples way; cuDNN may use TF32, PyTorch's default),
   fp16 + channels_last, bf16 + channels_last, and fp16 + channels_last replayed from a CUDA graph, at 256², 512²,
   1024², 720p, 1080p and 4K, batch 1 and 8.
3. The torch backend as `toolkit run` uses it (uint8 frames from host memory and back, wall clock; the same
   full-width network): fp16 eager and fp16 with its CUDA graphs, at the same sizes.
4. Training: `benchmarks/train_speed.py --device cuda`, the toolkit loop against a plain fp32 loop.
5. `toolkit run --backend torch --device cuda` with the carried model (a bundled style's generator) on the carried
   photos and on the shared clip (cutBunny.mp4).
Writes OUT/gpu_speed.md (the tables) and OUT/gpu_speed.json. Goals (issue 13): fp16 + CUDA graphs ≥ 3× fp32 eager
at 1080p, and a 1080p frame in ≤ 4 ms.
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from train.flops import conv_gflop  # noqa: E402
from train.generators import GeneratorSpec, build_generator  # noqa: E402
from train.norm import half_with_fp32_instance_norm  # noqa: E402

SIZES = {"256²": (256, 256), "512²": (512, 512), "1024²": (1024, 1024), "720p": (720, 1280), "1080p": (1080, 1920),
         "4K": (2160, 3840)}  # fmt: skip
BATCHES = (1, 8)


def cuda_ms(fn, repeats: int = 10) -> float:
    """Median GPU time of `fn` in ms (CUDA events), after two warm-up calls."""
    for _ in range(2):
        fn()
    torch.cuda.synchronize()
    times = []
    for _ in range(repeats):
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        fn()
        end.record()
        end.synchronize()
        times.append(start.elapsed_time(end))
    return float(np.median(times))


def wall_ms(fn, repeats: int = 10) -> float:
    for _ in range(3):  # the backend captures its CUDA graph on the second call of a shape
        fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append((time.perf_counter() - start) * 1000)
    return float(np.median(times))


def graphed(model, example):
    """(replay, output) of `model` captured on `example` in a CUDA graph."""
    static_in = example.clone()
    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side):
        for _ in range(3):
            model(static_in)
    torch.cuda.current_stream().wait_stream(side)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        static_out = model(static_in)
    return graph.replay, static_out


def model_alone(sizes: dict, batches: tuple) -> list[dict]:
    torch.backends.cudnn.benchmark = True
    torch.manual_seed(0)
    base = build_generator(GeneratorSpec("johnson", "instance", 1.0)).eval()
    fp32 = copy.deepcopy(base).cuda()
    half = {
        "fp16": half_with_fp32_instance_norm(base, torch.float16).to("cuda", memory_format=torch.channels_last),
        "bf16": half_with_fp32_instance_norm(base, torch.bfloat16).to("cuda", memory_format=torch.channels_last),
    }
    rows = []
    for label, (h, w) in sizes.items():
        for batch in batches:
            x32 = torch.rand(batch, 3, h, w, device="cuda") * 255
            row = {"size": label, "batch": batch, "gflop_per_image": conv_gflop(base, h, w)}
            with torch.inference_mode():
                row["fp32_eager_ms"] = cuda_ms(lambda x32=x32: fp32(x32))
                reference = fp32(x32)
                for name, model in half.items():
                    x = x32.to(model_dtype(name)).contiguous(memory_format=torch.channels_last)
                    row[f"{name}_cl_ms"] = cuda_ms(lambda x=x, model=model: model(x))
                    row[f"{name}_max_abs_vs_fp32"] = float((model(x).float() - reference).abs().max())
                x16 = x32.half().contiguous(memory_format=torch.channels_last)
                replay, _ = graphed(half["fp16"], x16)
                row["fp16_cl_graph_ms"] = cuda_ms(replay)
            row["graph_speedup_vs_fp32"] = row["fp32_eager_ms"] / row["fp16_cl_graph_ms"]
            rows.append(row)
            print(json.dumps(row), flush=True)
            del x32, reference
            torch.cuda.empty_cache()
    return rows


def model_dtype(name: str) -> torch.dtype:
    return {"fp16": torch.float16, "bf16": torch.bfloat16}[name]


def backend_rows(model_path: Path, sizes: dict, batches: tuple) -> list[dict]:
    """The torch backend end to end: uint8 host frames in, uint8 host frames out."""
    from runtime.backends.torch_backend import TorchBackend

    rows = []
    eager = TorchBackend(model_path, "cuda", cuda_graphs=False)
    graphs = TorchBackend(model_path, "cuda", cuda_graphs=True)
    for label, (h, w) in sizes.items():
        for batch in batches:
            frames = np.random.default_rng(0).integers(0, 256, (batch, h, w, 3), dtype=np.uint8)
            row = {"size": label, "batch": batch}
            row["eager_ms"] = wall_ms(lambda frames=frames: eager.run(frames))
            row["graph_ms"] = wall_ms(lambda frames=frames: graphs.run(frames))
            rows.append(row)
            print(json.dumps(row), flush=True)
    return rows


def sh(command: list[str], timeout: int) -> tuple[int, str, float]:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))}
    start = time.perf_counter()
    try:
        done = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=timeout)
        code, text = done.returncode, done.stdout + done.stderr
    except subprocess.TimeoutExpired as exc:
        code, text = 124, f"timed out after {timeout} s: {exc}"
    return code, text, time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path(os.environ.get("OUT", REPO / "benchmarks")))
    parser.add_argument("--assets", type=Path, default=REPO / ".gpu", help="photos/, cutBunny.mp4, model.safetensors")
    parser.add_argument("--quick", action="store_true", help="Two sizes, batch 1 (to try the script out).")
    args = parser.parse_args()
    if not torch.cuda.is_available():
        raise SystemExit("no CUDA GPU: this benchmark is for a GPU machine")
    args.out.mkdir(parents=True, exist_ok=True)
    sizes = {k: SIZES[k] for k in ("256²", "1080p")} if args.quick else SIZES
    batches = (1,) if args.quick else BATCHES
    python = sys.executable
    result: dict = {"gpu": torch.cuda.get_device_name(), "torch": torch.__version__, "started": time.ctime()}

    gpu_tests = ["tests/test_gpu_torch.py", "tests/test_engine.py"]  # the gpu-marked ones (others need more packages)
    code, text, seconds = sh([python, "-m", "pytest", "-q", "-m", "gpu", "-p", "no:cacheprovider", *gpu_tests], 300)
    result["pytest_gpu"] = {"exit": code, "seconds": seconds, "tail": text.strip().splitlines()[-12:]}
    print("\n".join(result["pytest_gpu"]["tail"]), flush=True)

    result["model"] = model_alone(sizes, batches)
    from tests.test_export import trained_model

    full_width, _ = trained_model(args.out / "random", "johnson", "instance", width=1.0)
    result["backend"] = backend_rows(full_width, sizes, batches)
    model_path = args.assets / "model.safetensors"  # a bundled style's generator, as users run it
    if not model_path.is_file():
        model_path = full_width
    result["run_model"] = str(model_path.name if model_path != full_width else "random full-width generator")

    code, text, seconds = sh([python, "benchmarks/train_speed.py", "--device", "cuda", "--steps", "30", "--json"], 240)
    result["train"] = {"exit": code, "seconds": seconds, "output": text.strip().splitlines()[-3:]}

    runs = []
    for label, inputs in (("photos", args.assets / "photos"), ("video", args.assets / "cutBunny.mp4")):
        if not inputs.exists():
            runs.append({"what": label, "skipped": f"{inputs} not carried"})
            continue
        target = args.out / f"run-{label}" / ("" if label == "photos" else "styled.mp4")
        code, text, seconds = sh([python, "-m", "toolkit.cli", "run", str(inputs), "-o", str(target), "--model",
                                  str(model_path), "--backend", "torch", "--device", "cuda", "--json", "--quiet"],
                                 240)  # fmt: skip
        lines = [json.loads(x) for x in text.splitlines() if x.startswith("{")]
        summary = next((x for x in lines if x.get("summary")), {})
        frames = sum(x.get("frames") or 0 for x in lines if not x.get("summary"))
        runs.append({"what": label, "exit": code, "seconds": seconds, "summary": summary, "frames": frames,
                     "tail": text.strip().splitlines()[-3:]})  # fmt: skip
    result["toolkit_run"] = runs
    (args.out / "gpu_speed.json").write_text(json.dumps(result, indent=1) + "\n")
    (args.out / "gpu_speed.md").write_text(report(result))
    print(report(result))


def report(r: dict) -> str:
    tail = r["pytest_gpu"]["tail"][-1] if r["pytest_gpu"]["tail"] else ""
    columns = "fp32 eager | fp16+CL | bf16+CL | fp16+CL+graph | graph × fp32 | GFLOP/frame | TFLOP/s (graph)"
    lines = [f"GPU: {r['gpu']}, torch {r['torch']}; {r['started']}", "",
             f"pytest -m gpu: exit {r['pytest_gpu']['exit']} — {tail}",
             "", "Model alone (full-width TransformerNet, GPU ms per frame; CUDA events):", "",
             f"| size | batch | {columns} |", "|---|---|---|---|---|---|---|---|---|"]  # fmt: skip
    for m in r["model"]:
        b = m["batch"]
        tflops = m["gflop_per_image"] * b / m["fp16_cl_graph_ms"]
        lines.append(f"| {m['size']} | {b} | {m['fp32_eager_ms'] / b:.2f} | {m['fp16_cl_ms'] / b:.2f} | "
                     f"{m['bf16_cl_ms'] / b:.2f} | {m['fp16_cl_graph_ms'] / b:.2f} | "
                     f"{m['graph_speedup_vs_fp32']:.1f}× | {m['gflop_per_image']:.0f} | {tflops:.0f} |")  # fmt: skip
    lines += ["", "Torch backend end to end (uint8 host frames in and out; wall ms per frame):", "",
              "| size | batch | fp16 eager | fp16 + CUDA graphs |", "|---|---|---|---|"]  # fmt: skip
    for m in r["backend"]:
        b = m["batch"]
        lines.append(f"| {m['size']} | {b} | {m['eager_ms'] / b:.2f} | {m['graph_ms'] / b:.2f} |")
    lines += ["", f"Training (benchmarks/train_speed.py --device cuda): exit {r['train']['exit']}", "",
              *(f"    {x}" for x in r["train"]["output"]), "",
              f"toolkit run --backend torch --device cuda, model {r['run_model']}:", ""]  # fmt: skip
    for run in r["toolkit_run"]:
        if "skipped" in run:
            lines.append(f"- {run['what']}: skipped ({run['skipped']})")
            continue
        s = run["summary"]
        count = run["frames"] if run["what"] == "video" else s.get("done", 0)
        unit = "frames" if run["what"] == "video" else "images"
        lines.append(f"- {run['what']}: exit {run['exit']}, {count} {unit} in {run['seconds']:.1f} s "
                     f"({count / max(run['seconds'], 1e-9):.1f} {unit}/s, start-up included); {s}")  # fmt: skip
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
