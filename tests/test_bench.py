import json

import pytest
from PIL import Image
from typer.testing import CliRunner

from runtime.bench import parse_sizes
from toolkit.cli import app
from train.flops import conv_gflop
from train.johnson import TransformerNet


def test_sizes_and_flops():
    assert parse_sizes("256, 720p,48x64") == [("256", (256, 256)), ("720p", (720, 1280)), ("48x64", (48, 64))]
    with pytest.raises(ValueError, match="'huge' is not N"):
        parse_sizes("huge")
    # pytorch/examples TransformerNet at 256²: 10.08 G multiply-adds (hand count in benchmarks/NOTES.md)
    assert conv_gflop(TransformerNet(), 256, 256) == pytest.approx(20.158, abs=1e-3)
    assert conv_gflop(TransformerNet(), 512, 512) == pytest.approx(4 * 20.158, abs=4e-3)


def test_bench_measures_each_backend_and_size_and_draws_a_plot(exported_style, tmp_path):
    checkpoint, onnx_path = exported_style
    for model, backend, flops in ((onnx_path, "onnxruntime", False), (checkpoint, "torch", True)):
        plot = tmp_path / f"{backend}.png"
        result = CliRunner().invoke(app, ["bench", "--model", str(model), "--backend", backend, "--sizes", "32,24x40",
                                          "--max-seconds", "0.2", "--json", "--plot", str(plot)])  # fmt: skip
        assert result.exit_code == 0, result.output
        report = json.loads(result.stdout.strip().splitlines()[-1])
        assert report["sgemm_gflops"] > 0
        rows = report["rows"]
        assert [(r["backend"], r["height"], r["width"]) for r in rows] == [(backend, 32, 32), (backend, 24, 40)]
        assert all(r["median_ms"] > 0 and r["p90_ms"] >= r["median_ms"] and r["images_per_s"] > 0 for r in rows)
        assert (rows[0]["gflops"] is not None) == flops
        assert Image.open(plot).size[0] > 0
