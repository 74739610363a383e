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
    for model, backend in ((onnx_path, "onnxruntime"), (checkpoint, "torch")):
        plot = tmp_path / f"{backend}.png"
        result = CliRunner().invoke(app, ["bench", "--model", str(model), "--backend", backend, "--sizes", "32,24x40",
                                          "--max-seconds", "0.2", "--json", "--plot", str(plot)])  # fmt: skip
        assert result.exit_code == 0, result.output
        report = json.loads(result.stdout.strip().splitlines()[-1])
        assert report["sgemm_gflops"] > 0
        rows = report["rows"]
        assert [(r["backend"], r["height"], r["width"]) for r in rows] == [(backend, 32, 32), (backend, 24, 40)]
        assert all(r["median_ms"] > 0 and r["p90_ms"] >= r["median_ms"] and r["images_per_s"] > 0 for r in rows)
        assert rows[0]["gflops"] > 0  # counted on the generator its metadata names, for an ONNX file too
        assert rows[0]["psnr_db"] is None and rows[0]["precision"] == "fp32"  # the reference row (null, not inf)
        assert Image.open(plot).size[0] > 0


def test_bench_puts_int8_and_bf16_next_to_fp32_with_their_gemm_share_and_psnr(exported_style, tmp_path):
    from export.pipeline import export_model
    from tests.helpers import write_images

    checkpoint, _ = exported_style
    write_images(tmp_path / "calib", 3, size=(48, 64))
    export_model(checkpoint, tmp_path, name="style", check=False, engine=False, int8=True, calib=tmp_path / "calib")
    result = CliRunner().invoke(app, ["bench", "--model", str(tmp_path / "style.onnx"), "--backend",
                                      "onnxruntime,openvino:int8,openvino:bf16,onnxruntime:bf16", "--sizes", "48",
                                      "--max-seconds", "0.2", "--json"])  # fmt: skip
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout.strip().splitlines()[-1], parse_constant=lambda name: pytest.fail(name))
    assert report["int8_gemm_gops"] > 0 and report["sgemm_gflops"] > 0
    rows = {(r["backend"], r["precision"]): r for r in report["rows"]}
    assert set(rows) == {("onnxruntime", "fp32"), ("openvino", "int8"), ("openvino", "bf16")}
    assert "onnxruntime:bf16 skipped: onnxruntime has no bf16 mode" in result.stderr
    int8 = rows[("openvino", "int8")]
    assert 20 < int8["psnr_db"] < float("inf")  # compared with the fp32 row, and not the same file
    assert rows[("onnxruntime", "fp32")]["psnr_db"] is None  # the reference itself: strict JSON has no Infinity
    assert int8["of_sgemm"] == pytest.approx(int8["gflops"] / report["int8_gemm_gops"])
