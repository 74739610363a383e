import os
import sys
from contextlib import contextmanager
from pathlib import Path

import pytest

from export.pipeline import export_model
from tests.test_export import trained_model


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
