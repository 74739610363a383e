"""A model's weights read once at load, for what no backend checks: NaN or infinite values, which would turn every
output black (uint8 I/O hides a NaN as 0) while every file is reported done."""

from __future__ import annotations

from pathlib import Path


def nonfinite_initializers(model) -> list[str]:
    """Names of an ONNX ModelProto's float initializers (those stored in the file) that hold NaN or infinity."""
    import numpy as np
    import onnx
    from onnx import numpy_helper

    bad = []
    for tensor in model.graph.initializer:
        if tensor.data_location == onnx.TensorProto.EXTERNAL:
            continue
        values = numpy_helper.to_array(tensor)
        if values.dtype.kind == "f" and not np.isfinite(values).all():
            bad.append(tensor.name)
    return bad


def nonfinite_weights(path: str | Path) -> list[str]:
    """`nonfinite_initializers` of the ONNX file (empty when the `onnx` package, which reads them, is missing, or
    the file has none)."""
    try:
        import onnx
    except ImportError:
        return []
    try:
        model = onnx.load(str(path), load_external_data=False)
    except Exception:  # the backend that loaded it reports what matters
        return []
    return nonfinite_initializers(model)


def refuse_nonfinite(path: str | Path) -> None:
    bad = nonfinite_weights(path)
    if bad:
        raise ValueError(
            f"{path}: weights that are NaN or infinite ({', '.join(bad[:3])}): every output would be black; "
            "export it again from a training checkpoint that did not diverge"
        )
