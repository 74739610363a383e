"""A model's weights read once at load, for what no backend checks: NaN or infinite values, which would turn every
output black (uint8 I/O hides a NaN as 0) while every file is reported done."""

from __future__ import annotations

from pathlib import Path


def nonfinite_weights(path: str | Path) -> list[str]:
    """Names of the ONNX model's float initializers that hold NaN or infinity (empty when the `onnx` package, which
    reads them, is missing, or the file has none)."""
    try:
        import numpy as np
        import onnx
        from onnx import numpy_helper
    except ImportError:
        return []
    try:
        model = onnx.load(str(path), load_external_data=False)
    except Exception:  # the backend that loaded it reports what matters
        return []
    bad = []
    for tensor in model.graph.initializer:
        if tensor.data_location == onnx.TensorProto.EXTERNAL:
            continue
        values = numpy_helper.to_array(tensor)
        if values.dtype.kind == "f" and not np.isfinite(values).all():
            bad.append(tensor.name)
    return bad


def refuse_nonfinite(path: str | Path) -> None:
    bad = nonfinite_weights(path)
    if bad:
        raise ValueError(
            f"{path}: weights that are NaN or infinite ({', '.join(bad[:3])}): every output would be black; "
            "export it again from a training checkpoint that did not diverge"
        )
