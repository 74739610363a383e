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
