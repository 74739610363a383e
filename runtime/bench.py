"""Latency and throughput of a model per backend and input size, against the machine's measured GEMM rate."""

from __future__ import annotations

import statistics
import time
from dataclasses import dataclass

import numpy as np

NAMED_SIZES = {"480p": (480, 854), "720p": (720, 1280), "1080p": (1080, 1920), "4k": (2160, 3840)}


def parse_sizes(text: str) -> list[tuple[str, tuple[int, int]]]:
    """'256,512,720p' → [('256', (256, 256)), ('512', (512, 512)), ('720p', (720, 1280))]; H×W also accepted."""
    sizes = []
    for item in (part.strip().lower() for part in text.split(",") if part.strip()):
        if item in NAMED_SIZES:
            sizes.append((item, NAMED_SIZES[item]))
        elif "x" in item and all(p.isdigit() for p in item.split("x", 1)):
            h, w = (int(p) for p in item.split("x", 1))
            sizes.append((item, (h, w)))
        elif item.isdigit():
            sizes.append((item, (int(item), int(item))))
        else:
            raise ValueError(f"--sizes: {item!r} is not N, HxW or one of {', '.join(NAMED_SIZES)}")
    if not sizes:
        raise ValueError("--sizes is empty")
    return sizes


def sgemm_gflops(n: int = 2048, seconds: float = 1.5) -> float:
    """float32 matrix-multiply rate of this machine through numpy's BLAS (the best of several runs)."""
    a = np.random.default_rng(0).standard_normal((n, n), dtype=np.float32)
    b = np.random.default_rng(1).standard_normal((n, n), dtype=np.float32)
    a @ b
    best, deadline = float("inf"), time.perf_counter() + seconds
    while time.perf_counter() < deadline:
        start = time.perf_counter()
        a @ b
        best = min(best, time.perf_counter() - start)
    return 2 * n**3 / best / 1e9


def int8_gemm_gops(n: int = 2048, seconds: float = 1.5) -> float | None:
    """uint8×int8→int32 matrix-multiply rate through ONNX Runtime's MatMulInteger (MLAS; VNNI where the CPU has it),
    the best of several runs; None without onnxruntime and onnx."""
    try:
        import onnxruntime as ort
        from onnx import TensorProto, helper
    except ImportError:
        return None
    inputs = [helper.make_tensor_value_info("a", TensorProto.UINT8, [n, n]),
              helper.make_tensor_value_info("b", TensorProto.INT8, [n, n])]  # fmt: skip
    output = helper.make_tensor_value_info("c", TensorProto.INT32, [n, n])
    graph = helper.make_graph([helper.make_node("MatMulInteger", ["a", "b"], ["c"])], "gemm", inputs, [output])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    options = ort.SessionOptions()
    options.log_severity_level = 3
    session = ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])
    rng = np.random.default_rng(0)
    feeds = {"a": rng.integers(0, 128, (n, n), dtype=np.uint8), "b": rng.integers(-127, 128, (n, n), dtype=np.int8)}
    session.run(None, feeds)
    best, deadline = float("inf"), time.perf_counter() + seconds
    while time.perf_counter() < deadline:
        start = time.perf_counter()
        session.run(None, feeds)
        best = min(best, time.perf_counter() - start)
    return 2 * n**3 / best / 1e9


def photo_like_frame(h: int, w: int, seed: int = 0) -> np.ndarray:
    """An H×W×3 uint8 frame with gradients, soft shapes and mild noise, for comparing outputs (random noise would
    make every model's output noise too)."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w] / max(h, w)
    image = np.stack([0.5 + 0.4 * np.sin(rng.uniform(2, 7) * 6.3 * xx + c) * np.cos(rng.uniform(2, 7) * 6.3 * yy)
                      for c in range(3)], -1)  # fmt: skip
    for _ in range(4):
        cy, cx, r = rng.uniform(0, 1), rng.uniform(0, 1), rng.uniform(0.05, 0.25)
        image[(yy - cy) ** 2 + (xx - cx) ** 2 < r**2] = rng.uniform(0, 1, 3)
    image += rng.normal(0, 0.02, image.shape)
    return (np.clip(image, 0, 1) * 255).round().astype(np.uint8)


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return float("inf") if mse == 0 else float(10 * np.log10(255.0**2 / mse))


@dataclass
class Measurement:
    backend: str
    size: str
    height: int
    width: int
    batch: int
    median_ms: float
    p90_ms: float
    images_per_s: float
    gflop_per_image: float | None
    gflops: float | None
    of_sgemm: float | None  # of the machine's GEMM rate in this row's precision (int8 rows: the int8 rate)
    precision: str = "fp32"
    psnr_db: float | None = None  # output against the first fp32 row at this size, on a photo-like frame

    @property
    def label(self) -> str:
        return self.backend if self.precision == "fp32" else f"{self.backend}:{self.precision}"


def measure(run, batch_input: np.ndarray, min_runs: int = 3, max_seconds: float = 10.0) -> list[float]:
    """Seconds per call of `run(batch_input)`, after one warm-up call."""
    run(batch_input)
    times: list[float] = []
    deadline = time.perf_counter() + max_seconds
    while len(times) < min_runs or (time.perf_counter() < deadline and len(times) < 50):
        start = time.perf_counter()
        run(batch_input)
        times.append(time.perf_counter() - start)
    return times


def summarize(
    backend: str,
    size: str,
    hw: tuple[int, int],
    batch: int,
    times: list[float],
    gflop: float | None,
    gemm: float | None,
    precision: str = "fp32",
    psnr_db: float | None = None,
) -> Measurement:
    """One row; `gemm`: the machine's GEMM rate in the row's precision (GFLOP/s or GOP/s)."""
    median = statistics.median(times)
    p90 = sorted(times)[min(len(times) - 1, int(0.9 * len(times)))]
    rate = gflop * batch / median if gflop else None
    return Measurement(backend, size, hw[0], hw[1], batch, median * 1e3, p90 * 1e3, batch / median, gflop, rate,
                       rate / gemm if rate and gemm else None, precision, psnr_db)  # fmt: skip


def plot(measurements: list[Measurement], path, title: str) -> None:
    """A grouped bar chart of images/s (one group per size, one bar per backend), drawn with Pillow."""
    from PIL import Image, ImageDraw

    sizes = list(dict.fromkeys(m.size for m in measurements))
    backends = list(dict.fromkeys(m.label for m in measurements))
    colours = [(31, 119, 180), (255, 127, 14), (44, 160, 44), (214, 39, 40)]
    width, height, left, bottom, top = 140 * len(sizes) + 120, 420, 70, 60, 50
    image = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(image)
    peak = max(m.images_per_s for m in measurements) or 1.0
    scale = (height - bottom - top) / peak
    draw.text((left, 12), title, fill="black")
    draw.line((left, height - bottom, width - 20, height - bottom), fill="black")
    draw.text((8, top - 6), f"{peak:.3g}", fill="black")
    draw.text((8, height - bottom - 6), "0", fill="black")
    draw.text((8, top + 12), "img/s", fill="black")
    bar = 100 // max(1, len(backends))
    for i, size in enumerate(sizes):
        x0 = left + 20 + i * 140
        for j, backend in enumerate(backends):
            found = [m for m in measurements if m.size == size and m.label == backend]
            if found:
                y = height - bottom - found[0].images_per_s * scale
                draw.rectangle((x0 + j * bar, y, x0 + (j + 1) * bar - 4, height - bottom), fill=colours[j % 4])
        draw.text((x0, height - bottom + 8), size, fill="black")
    for j, backend in enumerate(backends):
        draw.rectangle((left + j * 150, height - 22, left + j * 150 + 12, height - 10), fill=colours[j % 4])
        draw.text((left + j * 150 + 18, height - 23), backend, fill="black")
    image.save(path)
