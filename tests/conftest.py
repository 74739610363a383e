import hashlib
import os
import sys
from contextlib import contextmanager
from pathlib import Path

import onnx
import pytest
import torch

import export.pipeline
from export.pipeline import export_model
from tests.test_export import trained_model


def _trace_key(wrapped: torch.nn.Module, *args) -> tuple:
    """Everything the traced graph depends on: each module's class, forward and plain attributes (io, stride,
    dtype…), every weight's bytes, and build_onnx's other arguments (opset, minimum size)."""
    modules = tuple(
        (name, type(m), type(m).forward, tuple(sorted((k, repr(v)) for k, v in vars(m).items() if k[0] != "_")))
        for name, m in wrapped.named_modules()
    )
    weights = hashlib.sha256()
    for name, tensor in wrapped.state_dict().items():
        weights.update(f"{name}{tensor.dtype}{tuple(tensor.shape)}".encode())
        weights.update(tensor.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy().tobytes())
    return modules, weights.hexdigest(), repr(args)


@pytest.fixture(scope="session", autouse=True)
def each_generator_traced_once():
    """torch.onnx.export takes 10–35 s per generator on 2 cores, and most tests export the same small seeded
    generator: trace each distinct generator (weights, code and arguments: `_trace_key`) once per test run and hand
    out copies. A test that changes a weight, a module or an option gets a trace of its own."""
    traced: dict[tuple, onnx.ModelProto] = {}
    build = export.pipeline.build_onnx

    def build_once(wrapped, *args):
        key = _trace_key(wrapped, *args)
        if key not in traced:
            traced[key] = build(wrapped, *args)
        copy = onnx.ModelProto()
        copy.CopyFrom(traced[key])
        return copy

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(export.pipeline, "build_onnx", build_once)
        yield


@pytest.fixture(scope="session")
def exported_style(tmp_path_factory):
    """(model.safetensors, style.onnx) of a small random-weight johnson generator, exported once per test run."""
    root = tmp_path_factory.mktemp("exported-style")
    path, _ = trained_model(root / "run", "johnson", "instance")
    export_model(path, root / "exported", name="style", check=False, engine=False)
    return path, root / "exported" / "style.onnx"


STANDINS = Path(__file__).parent / "standins"


def _standin_modules() -> list[str]:
    return [name for name in sys.modules if name in ("tensorrt", "cuda") or name.startswith("cuda.")]


@contextmanager
def standins():
    """The TensorRT and cuda-python stand-ins (tests/standins) in place of the real packages, on a fresh "device";
    yields (tensorrt, cuda.bindings.runtime). Subprocesses get them too (PYTHONPATH)."""
    saved = {name: sys.modules.pop(name) for name in _standin_modules()}
    sys.path.insert(0, str(STANDINS))
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("PYTHONPATH", os.pathsep.join(filter(None, [str(STANDINS), os.environ.get("PYTHONPATH")])))
        try:
            import tensorrt
            from cuda.bindings import runtime as cudart

            assert Path(tensorrt.__file__).is_relative_to(STANDINS)
            cudart.reset()
            yield tensorrt, cudart
        finally:
            for name in _standin_modules():
                del sys.modules[name]
            sys.path.remove(str(STANDINS))
            sys.modules.update(saved)


@pytest.fixture
def tensorrt_standin():
    with standins() as modules:
        yield modules


OWN_INTERPRETER = "TOOLKIT_TESTS_OWN_INTERPRETER"  # set in the child interpreter that runs them
OWN_INTERPRETER_RUNNER = "test_the_tests_that_need_their_own_interpreter_pass_there"
DELEGATED = pytest.StashKey[dict[str, list[str]]]()  # module name -> node ids of its tests left to the runner


@pytest.hookimpl(trylast=True)  # after -k, -m and --deselect: the runner must still be there to leave them to it
def pytest_collection_modifyitems(config, items):
    """Tests marked own_interpreter leave native state behind in the process that ran them, or should not share one
    with what the rest of the suite leaves: after ray.shutdown() nine of Ray's threads are still running and its crash
    handler has replaced Python's, so a later crash anywhere in the run would print no traceback; training (torch's
    own threads, as `toolkit train` runs) should not share a process with the ONNX Runtime, OpenVINO and gRPC threads
    earlier tests leave. Where the runner for a module (tests/test_own_interpreter.py) is selected too, the module's
    selected tests are left to it, which runs them (by node id) in a child interpreter; otherwise they run here."""
    config.stash[DELEGATED] = {}
    if os.environ.get(OWN_INTERPRETER):
        return
    runners = {item.callspec.params["module"] for item in items
               if item.originalname == OWN_INTERPRETER_RUNNER and hasattr(item, "callspec")}  # fmt: skip
    isolated = [item for item in items if item.get_closest_marker("own_interpreter") and item.path.name in runners]
    for item in isolated:
        config.stash[DELEGATED].setdefault(item.path.name, []).append(item.nodeid)
    if isolated:
        config.hook.pytest_deselected(items=isolated)
        left = {id(item) for item in isolated}
        items[:] = [item for item in items if id(item) not in left]
