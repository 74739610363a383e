"""A stand-in for Triton's onnxruntime backend, for testing model repositories with the tritonserver that PyTriton
ships (which has only the Python backend; the C++ onnxruntime backend comes in NVIDIA's container).

Triton looks for `libtriton_onnxruntime.so` in BACKEND_DIR/onnxruntime/ and, when it is missing, runs this file as a
Python-based backend of that name. Like the real backend it loads VERSION/model.onnx and runs each request's batch as
it comes; the repository, its config and Triton's own loading, validation and batching are what the tests check.
"""

import os

import onnxruntime
import triton_python_backend_utils as pb_utils


class TritonPythonModel:
    def initialize(self, args):
        path = os.path.join(args["model_repository"], args["model_version"], "model.onnx")
        self.session = onnxruntime.InferenceSession(path, providers=["CPUExecutionProvider"])
        self.input = self.session.get_inputs()[0].name
        self.output = self.session.get_outputs()[0].name

    def execute(self, requests):
        responses = []
        for request in requests:
            image = pb_utils.get_input_tensor_by_name(request, self.input).as_numpy()
            stylized = self.session.run([self.output], {self.input: image})[0]
            responses.append(pb_utils.InferenceResponse([pb_utils.Tensor(self.output, stylized)]))
        return responses
