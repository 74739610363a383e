"""The stand-ins of tests/standins use only names the real libraries have, and so does the project.

TensorRT: the `tensorrt-cu13-bindings` 11.4 wheel (dev extra) cannot be imported without libnvinfer, but its
`tensorrt.so` holds every class, method, enum member and argument name as a string (pybind11's), and its
`__init__.py` defines the rest (`nptype`, `Logger.WARNING`). cuda-python: the installed `cuda-bindings` imports
without a GPU, so names and parameter lists are compared directly.
"""

from __future__ import annotations

import ast
import enum
import importlib.util
import inspect
import re
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
STANDINS = Path(__file__).parent / "standins"
# Files of the project that call TensorRT or cuda-python, and the names they import them as.
USERS = ["export/engine.py", "runtime/tensorrt_engine.py", "runtime/backends/tensorrt_backend.py",
         "runtime/cuda_device.py", "benchmarks/gpu_speed.py"]  # fmt: skip


def load(path: Path, name: str):
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses look their module up while the class is made
    try:
        spec.loader.exec_module(module)
    finally:
        del sys.modules[name]
    return module


@pytest.fixture(scope="module")
def real_tensorrt_names() -> set[str]:
    spec = importlib.util.find_spec("tensorrt_bindings")  # finds the package without importing it
    if spec is None or not spec.submodule_search_locations:
        pytest.skip("tensorrt-cu13-bindings is not installed (it is in the dev extra)")
    folder = Path(next(iter(spec.submodule_search_locations)))
    words = set(re.findall(rb"[A-Za-z_][A-Za-z0-9_]*", (folder / "tensorrt.so").read_bytes()))
    tree = ast.parse((folder / "__init__.py").read_text())
    defined = {n.name for n in ast.walk(tree) if isinstance(n, (ast.FunctionDef, ast.ClassDef))}
    defined |= {a.arg for n in ast.walk(tree) if isinstance(n, ast.FunctionDef) for a in n.args.args}
    defined |= {t.attr for n in ast.walk(tree) if isinstance(n, ast.Assign) for t in n.targets
                if isinstance(t, ast.Attribute)}  # fmt: skip
    defined |= {"WARNING", "ERROR", "INFO", "VERBOSE", "INTERNAL_ERROR", "__version__"}  # set from ILogger.Severity
    return {w.decode() for w in words} | defined


def in_tensorrt(name: str, real: set[str]) -> bool:
    # The linker merges a string into the tail of a longer one ("INPUT" into "CONDITIONAL_INPUT").
    return name in real or any(word.endswith(name) for word in real)


def public_names(module) -> list[tuple[str, object]]:
    """(dotted name, object) of what a stand-in module defines for callers: classes with their public members and
    parameters, functions with their parameters, enum members, constants."""
    found = []
    for name, value in vars(module).items():
        foreign = getattr(value, "__module__", module.__name__) not in (module.__name__, None)  # imported, not defined
        if (name.startswith("_") or inspect.ismodule(value) or foreign) and not isinstance(value, enum.Enum):
            continue
        found.append((name, value))
        if inspect.isclass(value):
            for member, attribute in vars(value).items():
                if not member.startswith("_"):
                    found.append((f"{name}.{member}", attribute))
    return found


def parameters(function) -> list[str]:
    if isinstance(function, property) or inspect.isclass(function):
        return []
    try:
        return [p for p in inspect.signature(function).parameters if p != "self"]
    except (TypeError, ValueError):
        return []


def test_the_tensorrt_standin_defines_only_names_tensorrt_11_has(real_tensorrt_names):
    standin = load(STANDINS / "tensorrt" / "__init__.py", "tensorrt_standin_for_names")
    missing = []
    for dotted, value in public_names(standin):
        if not in_tensorrt(dotted.rsplit(".", 1)[-1], real_tensorrt_names):
            missing.append(dotted)
        if callable(value) or isinstance(value, property):
            missing += [f"{dotted}({p})" for p in parameters(value) if not in_tensorrt(p, real_tensorrt_names)]
    assert missing == []
    assert not in_tensorrt("set_flag_fp16_that_does_not_exist", real_tensorrt_names)  # the check has teeth
    assert "BuilderFlag" in real_tensorrt_names and not in_tensorrt("FP16", {"BuilderFlag", "TF32", "REFIT"})


def test_the_cuda_standin_matches_cuda_bindings_names_and_parameters():
    real = pytest.importorskip("cuda.bindings.runtime")
    standin = load(STANDINS / "cuda" / "bindings" / "runtime.py", "cudart_standin_for_names")
    helpers = {"STATE", "reset", "inside", "record_or_run"}  # the stand-in's own, for tests
    problems = []
    for dotted, value in public_names(standin):
        head = dotted.split(".")[0]
        if head in helpers or head.startswith("_"):
            continue
        owner = real
        for part in dotted.split("."):
            if not hasattr(owner, part):
                problems.append(f"{dotted}: not in cuda.bindings.runtime")
                break
            owner = getattr(owner, part)
        else:
            if inspect.isfunction(value) and parameters(value) != parameters(owner):
                problems.append(f"{dotted}{parameters(value)} != cuda-bindings {parameters(owner)}")
    assert problems == []


def used_names(alias: str) -> dict[str, set[str]]:
    """Attributes the project reads from `alias` (`trt.X`, `cudart.X`, `cudart.X.Y`), by file."""
    found: dict[str, set[str]] = {}
    for relative in USERS:
        tree = ast.parse((REPO / relative).read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id == alias:
                found.setdefault(relative, set()).add(node.attr)
            if (isinstance(node, ast.Attribute) and isinstance(node.value, ast.Attribute)
                    and isinstance(node.value.value, ast.Name) and node.value.value.id == alias):  # fmt: skip
                found.setdefault(relative, set()).add(f"{node.value.attr}.{node.attr}")
    return found


def test_the_project_calls_only_what_the_real_libraries_and_the_standins_have(real_tensorrt_names):
    real_cudart = pytest.importorskip("cuda.bindings.runtime")
    trt_standin = load(STANDINS / "tensorrt" / "__init__.py", "tensorrt_standin_for_use")
    cudart_standin = load(STANDINS / "cuda" / "bindings" / "runtime.py", "cudart_standin_for_use")
    problems = []
    trt_used = used_names("trt")
    assert trt_used, "no trt.X found: the scan is broken"
    for relative, names in trt_used.items():
        for dotted in names:
            owner = trt_standin
            for part in dotted.split("."):
                if not in_tensorrt(part, real_tensorrt_names):
                    problems.append(f"{relative}: trt.{dotted} not in TensorRT 11")
                owner = getattr(owner, part, None)
            problems += [f"{relative}: trt.{dotted} not in the stand-in"] * (owner is None)
    for relative, names in used_names("cudart").items():
        for dotted in names:
            for module, label in ((real_cudart, "cuda-bindings"), (cudart_standin, "the stand-in")):
                owner = module
                for part in dotted.split("."):
                    owner = getattr(owner, part, None)
                problems += [f"{relative}: cudart.{dotted} not in {label}"] * (owner is None)
    assert problems == []


def test_real_cuda_bindings_failed_start_is_named():
    """On a machine without a usable driver (this one, CI), the real cuda-bindings' error reaches the user by name."""
    import subprocess

    code = (
        "from cuda.bindings import runtime as cudart\n"
        "from runtime.cuda_device import cuda_start_failure\n"
        "err, count = cudart.cudaGetDeviceCount()\n"
        "print('OK' if err == cudart.cudaError_t.cudaSuccess else cuda_start_failure(err))\n"
    )
    pytest.importorskip("cuda.bindings.runtime")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, timeout=120)
    assert done.returncode == 0, done.stderr
    if done.stdout.strip() == "OK":
        pytest.skip("a CUDA driver and GPU are present: nothing fails to start")
    assert re.search(r"\(cudaError\w+", done.stdout), done.stdout  # the real error's name, not a number
    assert "CUDA" in done.stdout or "driver" in done.stdout
