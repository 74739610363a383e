"""GPU inference, one prepared run (issue 6): the torch path at 720p and 1080p, batch 1 and 8, and the cost of
getting frames onto the GPU.

    python benchmarks/gpu_speed.py [--out benchmarks/gpu_speed.json]

Model: the pytorch/examples TransformerNet (full width, random weights). Variants, per size and batch:
- fp32 eager: NCHW float32, as pytorch/examples evaluates;
- fp16 + channels_last: what the toolkit's torch backend runs (instance norms in fp32);
- fp16 + channels_last + CUDA graph: the same, captured once per shape and replayed.
Copies (cuda-python, explicit and checked): host→device of one 1080p frame as uint8 (6 MB) and as float32 (24 MB),
from pageable and from pinned memory. The limit column is max(FLOPs / peak fp16 tensor rate, bytes / bandwidth)
with the bytes estimated as every activation written and read once in fp16.
TensorRT is not in the lent machine's image, so no TensorRT column is measured here.
"""

from __future__ import annotations

import argparse
import copy
import json
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

SIZES = {"720p": (720, 1280), "1080p": (1080, 1920)}
PEAK = {"H100": (990.0, 3350.0), "H200": (990.0, 4800.0)}  # dense fp16 TFLOP/s, GB/s (SXM datasheets)


def cuda_ms(fn, repeats: int = 20) -> float:
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


def activation_bytes(model, h: int, w: int, batch: int) -> float:
    """Bytes of every convolution's output, fp16, written once and read once."""
    outputs = []

    def hook(_module, _inputs, output):
        outputs.append(output.numel())

    hooks = [m.register_forward_hook(hook) for m in model.modules() if isinstance(m, torch.nn.Conv2d)]
    with torch.no_grad():
        model(torch.zeros(1, 3, h, w, device=next(model.parameters()).device, dtype=next(model.parameters()).dtype))
    for handle in hooks:
        handle.remove()
    return float(sum(outputs) * batch * 2 * 2)


def copies(h: int, w: int) -> list[dict]:
    from cuda.bindings import runtime as cudart

    def check(result):
        err = result[0] if isinstance(result, tuple) else result
        if err != cudart.cudaError_t.cudaSuccess:
            raise RuntimeError(f"CUDA error {err}")
        return result[1] if isinstance(result, tuple) and len(result) > 1 else None

    rows = []
    stream = check(cudart.cudaStreamCreate())
    for dtype in (np.uint8, np.float32):
        nbytes = h * w * 3 * np.dtype(dtype).itemsize
        device = check(cudart.cudaMalloc(nbytes))
        pageable = np.ones(h * w * 3, dtype)
        pinned_ptr = check(cudart.cudaMallocHost(nbytes))
        for kind, src in (("pageable", pageable.ctypes.data), ("pinned", pinned_ptr)):
            times = []
            for _ in range(20):
                start = time.perf_counter()
                check(cudart.cudaMemcpyAsync(device, src, nbytes, cudart.cudaMemcpyKind.cudaMemcpyHostToDevice, stream))
                check(cudart.cudaStreamSynchronize(stream))
                times.append(time.perf_counter() - start)
            ms = float(np.median(times[2:])) * 1e3
            rows.append({"dtype": np.dtype(dtype).name, "memory": kind, "MB": nbytes / 1e6, "ms": ms,
                         "GB_s": nbytes / ms / 1e6})  # fmt: skip
        check(cudart.cudaFreeHost(pinned_ptr))
        check(cudart.cudaFree(device))
    check(cudart.cudaStreamDestroy(stream))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks" / "gpu_speed.json")
    args = parser.parse_args()
    if not torch.cuda.is_available():
        raise SystemExit("no CUDA GPU: this benchmark is for a GPU machine")
    name = torch.cuda.get_device_name()
    peak = next((v for k, v in PEAK.items() if k in name), None)
    torch.backends.cudnn.benchmark = True
    torch.manual_seed(0)
    spec = GeneratorSpec("johnson", "instance", 1.0)
    base = build_generator(spec).eval()
    fp32 = copy.deepcopy(base).cuda()
    fp16 = half_with_fp32_instance_norm(copy.deepcopy(base)).to("cuda", memory_format=torch.channels_last)
    rows = []
    for label, (h, w) in SIZES.items():
        gflop = conv_gflop(base, h, w)
        for batch in (1, 8):
            x32 = torch.rand(batch, 3, h, w, device="cuda") * 255
            x16 = x32.half().contiguous(memory_format=torch.channels_last)
            with torch.inference_mode():
                eager32 = cuda_ms(lambda x32=x32: fp32(x32))
                eager16 = cuda_ms(lambda x16=x16: fp16(x16))
                out32, out16 = fp32(x32), fp16(x16).float()
            worst = float((out32 - out16).abs().max())
            graph, static_in = torch.cuda.CUDAGraph(), x16.clone()
            with torch.inference_mode():
                side = torch.cuda.Stream()
                side.wait_stream(torch.cuda.current_stream())
                with torch.cuda.stream(side):
                    for _ in range(3):
                        fp16(static_in)
                torch.cuda.current_stream().wait_stream(side)
                with torch.cuda.graph(graph):
                    static_out = fp16(static_in)
            graphed = cuda_ms(graph.replay)
            graph_vs_eager = float((static_out.float() - out16).abs().max())
            limit = None
            if peak:
                compute_ms = gflop * batch / (peak[0] * 1e3)
                memory_ms = activation_bytes(fp16, h, w, batch) / (peak[1] * 1e6)
                limit = max(compute_ms, memory_ms)
            rows.append({"size": label, "batch": batch, "fp32_eager_ms": eager32, "fp16_cl_ms": eager16,
                         "fp16_cl_graph_ms": graphed, "speedup": eager32 / graphed, "max_abs_fp16_vs_fp32": worst,
                         "max_abs_graph_vs_eager": graph_vs_eager,
                         "limit_ms": limit, "gflop_per_image": gflop})  # fmt: skip
            print(rows[-1], flush=True)
    copy_rows = copies(*SIZES["1080p"])
    result = {"gpu": name, "torch": torch.__version__, "rows": rows, "copies": copy_rows}
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"\n{name}, torch {torch.__version__}; TensorRT: not installed on this machine\n")
    print(
        "| size | batch | fp32 eager ms/frame | fp16+CL ms/frame | fp16+CL+graph ms/frame | × fp32 | limit ms/frame |"
    )
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        b = r["batch"]
        limit = f"{r['limit_ms'] / b:.2f}" if r["limit_ms"] else "—"
        print(f"| {r['size']} | {b} | {r['fp32_eager_ms'] / b:.2f} | {r['fp16_cl_ms'] / b:.2f} | "
              f"{r['fp16_cl_graph_ms'] / b:.2f} | {r['speedup']:.1f}× | {limit} |")  # fmt: skip
    print("\n| 1080p frame copy | memory | MB | ms | GB/s |\n|---|---|---|---|---|")
    for c in copy_rows:
        print(f"| {c['dtype']} | {c['memory']} | {c['MB']:.1f} | {c['ms']:.2f} | {c['GB_s']:.1f} |")


if __name__ == "__main__":
    main()
