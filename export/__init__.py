"""Export of trained generators to ONNX (`toolkit export`); TensorRT engines are not built yet (issue 3)."""
