"""The torch backend on CUDA (skipped without a GPU): fp16/bf16 with fp32 instance norms, CUDA graphs replaying
the same result as eager runs, and the result close to the CPU's fp32 one. Run by benchmarks/gpu_speed.py."""

import numpy as np
import pytest
import torch

from tests.helpers import photo_like
from tests.test_export import trained_model

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU"),
]


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    path, _ = trained_model(tmp_path_factory.mktemp("gpu") / "run", "johnson", "instance")
    return path


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return float("inf") if mse == 0 else 10 * np.log10(255.0**2 / mse)


@pytest.mark.parametrize("precision", ["fp16", "bf16"])
def test_half_precision_on_cuda_is_close_to_fp32_on_the_cpu(model, precision):
    from runtime.backends.torch_backend import TorchBackend

    batch = np.stack([photo_like((120, 160), i) for i in range(2)])
    reference = TorchBackend(model, "cpu").run(batch)
    cuda = TorchBackend(model, "cuda", precision=precision, cuda_graphs=False)
    assert cuda.device == "cuda"
    assert psnr(cuda.run(batch), reference) > (40 if precision == "fp16" else 32)


def test_cuda_graph_replays_give_the_eager_result_for_every_shape(model):
    from runtime.backends.torch_backend import TorchBackend

    eager = TorchBackend(model, "cuda", cuda_graphs=False)
    graphed = TorchBackend(model, "cuda", cuda_graphs=True)
    for shape in [(1, 64, 96, 3), (2, 64, 96, 3), (1, 64, 96, 3), (1, 72, 100, 3)]:
        for seed in range(3):  # the first batch of a shape runs eagerly, the second is captured, then replays
            batch = np.stack([photo_like(shape[1:3], seed * 10 + i) for i in range(shape[0])])
            assert np.array_equal(graphed.run(batch), eager.run(batch))
    assert set(graphed._graphs) == {(1, 64, 96, 3), (2, 64, 96, 3), (1, 72, 100, 3)}


def test_the_stylizer_picks_cuda_for_a_safetensors_model(model):
    from runtime import Stylizer

    torch.backends.cudnn.benchmark = False
    with Stylizer.load(model) as stylizer:
        assert (stylizer.backend_name, stylizer.backend.device) == ("torch", "cuda")
        assert torch.backends.cudnn.benchmark  # what benchmarks/gpu_speed.py measures is what the backend runs
        assert stylizer(photo_like((33, 47), 1)).shape == (33, 47, 3)
