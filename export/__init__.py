"""Export of trained generators to ONNX and TensorRT (`toolkit export`): not built yet, see issue 3."""
