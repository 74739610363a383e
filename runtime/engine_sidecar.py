"""The JSON sidecar written beside every TensorRT engine, and the check that an engine fits this machine.

A TensorRT plan runs only on the TensorRT version and GPU (compute capability) it was built for; the plan file
itself stays a plain plan that trtexec and Triton load, so what it was built for is recorded here instead.
Pure Python: the runtime reads it before deciding whether to load TensorRT at all.
"""

from __future__ import annotations

import json
from pathlib import Path

SIDECAR_FORMAT = "fast-style-toolkit/tensorrt-engine"


def sidecar_path(engine_path: str | Path) -> Path:
    engine_path = Path(engine_path)
    return engine_path.with_name(engine_path.name + ".json")


def read_sidecar(engine_path: str | Path) -> dict:
    path = sidecar_path(engine_path)
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        raise ValueError(f"{path} is missing: the engine cannot be checked; rebuild it with toolkit export") from None
    except (OSError, ValueError) as exc:
        raise ValueError(f"{path}: not a readable engine sidecar ({exc})") from None
    if data.get("format") != SIDECAR_FORMAT:
        raise ValueError(f"{path}: not a {SIDECAR_FORMAT} file")
    return data


def engine_mismatches(sidecar: dict, tensorrt_version: str, gpu_name: str, compute_capability: str) -> list[str]:
    """Why an engine described by `sidecar` cannot run here (empty list: it can)."""
    reasons = []
    built_trt = sidecar.get("tensorrt", {}).get("version", "?")
    if built_trt != tensorrt_version:
        reasons.append(f"built with TensorRT {built_trt}, this machine has {tensorrt_version}")
    gpu = sidecar.get("gpu", {})
    built_for = (gpu.get("name"), gpu.get("compute_capability"))
    if built_for != (gpu_name, compute_capability):
        # TensorRT plans are tuned for, and only guaranteed on, the GPU model they were built on.
        reasons.append(
            f"built for {built_for[0] or '?'} (compute capability {built_for[1] or '?'}), "
            f"this GPU is {gpu_name} ({compute_capability})"
        )
    return reasons
