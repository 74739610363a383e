import json

import pytest
from typer.testing import CliRunner

from export.engine import DEFAULT_MAX, DEFAULT_MIN, DEFAULT_OPT, make_profile, parse_shape
from runtime.cuda_device import tensorrt_unavailable
from runtime.engine_sidecar import SIDECAR_FORMAT, engine_mismatches, read_sidecar, sidecar_path
from runtime.errors import UserError
from tests.test_export import trained_model
from toolkit.cli import app

NO_TENSORRT = tensorrt_unavailable()


def test_shape_flags_parse_and_profiles_are_validated():
    assert parse_shape(None, "--min-shape", DEFAULT_MIN) == (1, 64, 64)
    assert parse_shape("720x1280", "--opt-shape", DEFAULT_OPT) == (1, 720, 1280)
    assert parse_shape("4x1080x1920", "--max-shape", DEFAULT_MAX) == (4, 1080, 1920)
    with pytest.raises(UserError, match="--min-shape 'big': write NxHxW"):
        parse_shape("big", "--min-shape", DEFAULT_MIN)
    with pytest.raises(UserError, match=r"height: need min ≤ opt ≤ max, got 800, 720, 2160"):
        make_profile("800x800", None, None, 8)
    with pytest.raises(UserError, match="batch: need min ≤ opt ≤ max, got 1, 8, 4"):
        make_profile(None, "8x720x1280", "4x2160x3840", 8)
    with pytest.raises(UserError, match="at least 64 px"):
        make_profile("1x32x32", None, None, 64)
    profile = make_profile("1x64x64", "2x256x256", "8x512x512", 8)
    assert profile.input_shapes("uint8") == ((1, 64, 64, 3), (2, 256, 256, 3), (8, 512, 512, 3))
    assert profile.input_shapes("float")[2] == (8, 3, 512, 512)


SIDECAR = {
    "format": SIDECAR_FORMAT,
    "tensorrt": {"version": "11.4.0.106"},
    "gpu": {"name": "NVIDIA H100 80GB HBM3", "compute_capability": "9.0"},
    "precision": "fp16",
}


def test_engine_built_elsewhere_is_detected_from_its_sidecar(tmp_path):
    engine = tmp_path / "style.fp16.engine"
    engine.write_bytes(b"plan")
    sidecar_path(engine).write_text(json.dumps(SIDECAR))
    sidecar = read_sidecar(engine)
    assert engine_mismatches(sidecar, "11.4.0.106", "NVIDIA H100 80GB HBM3", "9.0") == []
    other_gpu = engine_mismatches(sidecar, "11.4.0.106", "NVIDIA A10", "8.6")
    assert (
        len(other_gpu) == 1 and "built for NVIDIA H100 80GB HBM3" in other_gpu[0] and "NVIDIA A10 (8.6)" in other_gpu[0]
    )
    same_arch_other_card = engine_mismatches(sidecar, "11.4.0.106", "NVIDIA H200", "9.0")
    assert len(same_arch_other_card) == 1 and "NVIDIA H200" in same_arch_other_card[0]
    other_trt = engine_mismatches(sidecar, "10.16.0", "NVIDIA H100 80GB HBM3", "9.0")
    assert other_trt == ["built with TensorRT 11.4.0.106, this machine has 10.16.0"]


def test_missing_or_foreign_sidecar_is_an_error(tmp_path):
    engine = tmp_path / "style.engine"
    with pytest.raises(ValueError, match=r"style\.engine\.json is missing"):
        read_sidecar(engine)
    sidecar_path(engine).write_text(json.dumps({"format": "something else"}))
    with pytest.raises(ValueError, match="not a fast-style-toolkit/tensorrt-engine file"):
        read_sidecar(engine)


@pytest.mark.skipif(NO_TENSORRT is None, reason="TensorRT is present: an engine is built instead")
def test_without_tensorrt_the_onnx_is_written_and_the_reason_printed(tmp_path):
    path, _ = trained_model(tmp_path / "run", "johnson", "instance")
    result = CliRunner().invoke(app, ["export", str(path), "-o", str(tmp_path / "out"), "--engine", "--no-check"])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "out" / "run.onnx").is_file() and not list((tmp_path / "out").glob("*.engine"))
    assert f"TensorRT engines not built: {NO_TENSORRT}" in result.stderr


@pytest.mark.gpu
@pytest.mark.tensorrt
@pytest.mark.skipif(NO_TENSORRT is not None, reason=f"needs TensorRT and a GPU: {NO_TENSORRT}")
def test_fp16_engine_builds_matches_the_onnx_and_records_its_machine(tmp_path):
    from export.pipeline import export_model
    from runtime.cuda_device import gpu_identity

    path, _ = trained_model(tmp_path / "run", "johnson", "instance")
    result = export_model(path, tmp_path / "out", fp16=True, engine=True, min_shape="1x64x64", opt_shape="2x256x256",
                          max_shape="2x512x512")  # fmt: skip
    assert result.ok, [c for c in result.checks if not c.ok]
    for stem in ("run", "run.fp16"):
        sidecar = read_sidecar(tmp_path / "out" / f"{stem}.engine")
        assert (sidecar["gpu"]["name"], sidecar["gpu"]["compute_capability"]) == gpu_identity()
        assert sidecar["profiles"][0]["max"] == [2, 512, 512, 3]
    assert any(c.name.startswith("fp16 engine") and c.ok for c in result.checks)


def test_re_export_removes_an_engine_built_from_the_previous_onnx(tmp_path):
    from export.pipeline import export_model

    path, _ = trained_model(tmp_path / "run", "johnson", "instance")
    (tmp_path / "out").mkdir()
    stale = tmp_path / "out" / "run.engine"
    stale.write_bytes(b"old plan")
    sidecar_path(stale).write_text(json.dumps(SIDECAR))
    result = export_model(path, tmp_path / "out", check=False, engine=False)
    assert not stale.exists() and not sidecar_path(stale).exists()
    assert "removed run.engine: it was built from the previous run.onnx" in result.notes
