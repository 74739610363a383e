"""CUDA through cuda-python (`cuda.bindings`): checked calls, the GPU's identity, and whether TensorRT can run."""

from __future__ import annotations


def check(result):
    """cuda.bindings calls return (err, *values): raise on an error, else return the value(s)."""
    from cuda.bindings import runtime as cudart

    err, *values = result if isinstance(result, tuple) else (result,)
    if err != cudart.cudaError_t.cudaSuccess:
        raise RuntimeError(f"CUDA error {error_name(err)}")
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
    if err == cudart.cudaError_t.cudaSuccess:
        return None if count else "no CUDA GPU is visible"
    return cuda_start_failure(err)


def cuda_start_failure(err) -> str:
    """What an error from cudaGetDeviceCount means for the user, with the error's own name."""
    from cuda.bindings import runtime as cudart

    name = error_name(err)
    errors = cudart.cudaError_t
    if err == errors.cudaErrorInsufficientDriver:
        return (
            f"the NVIDIA driver is older than this cuda-python's CUDA needs ({name}): update the driver, or install "
            "the cuda-python release for the CUDA version the driver supports (nvidia-smi shows it)"
        )
    if err == errors.cudaErrorNoDevice:
        return f"no CUDA GPU is visible ({name}; check CUDA_VISIBLE_DEVICES and nvidia-smi)"
    return f"CUDA cannot start ({name})"


def error_name(err) -> str:
    from cuda.bindings import runtime as cudart

    name = cudart.cudaGetErrorName(err)[1]
    return name.decode() if isinstance(name, bytes) else str(name)
