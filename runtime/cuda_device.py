"""CUDA through cuda-python (`cuda.bindings`): checked calls, the GPU's identity, and whether TensorRT can run."""

from __future__ import annotations


def check(result):
    """cuda.bindings calls return (err, *values): raise on an error, else return the value(s)."""
    from cuda.bindings import runtime as cudart

    err, *values = result if isinstance(result, tuple) else (result,)
    if err != cudart.cudaError_t.cudaSuccess:
        name = cudart.cudaGetErrorName(err)[1]
        raise RuntimeError(f"CUDA error {name.decode() if isinstance(name, bytes) else name}")
    if not values:
        return None
    return values[0] if len(values) == 1 else values


def gpu_identity() -> tuple[str, str]:
    """(name, compute capability 'major.minor') of CUDA device 0."""
    from cuda.bindings import runtime as cudart

    props = check(cudart.cudaGetDeviceProperties(0))
    name = props.name.decode(errors="replace") if isinstance(props.name, bytes) else str(props.name)
    return name.rstrip("\x00"), f"{props.major}.{props.minor}"


def tensorrt_unavailable() -> str | None:
    """None when TensorRT can run here; else the reason, in words."""
    try:
        import tensorrt  # noqa: F401
    except ImportError:
        return "TensorRT is not installed (pip install tensorrt, from NVIDIA's package index)"
    try:
        from cuda.bindings import runtime as cudart
    except ImportError:
        return "cuda-python is not installed (pip install cuda-python)"
    err, count = cudart.cudaGetDeviceCount()
    if err != cudart.cudaError_t.cudaSuccess or count == 0:
        return "no CUDA GPU is visible"
    return None
