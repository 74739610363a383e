"""The styles that ship in runtime/styles/: present, recorded, exact on the CPU, and instance-normalized."""

import dataclasses
import importlib.util
import json
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch

from runtime.bundled import DEFAULT_STYLE, bundled_styles
from runtime.stylizer import Stylizer
from tests.helpers import photo_like
from train.checkpoint import load_model
from train.onnx_weights import generator_from_onnx

REPO = Path(__file__).resolve().parent.parent
STYLES = bundled_styles()
NAMES = [style.name for style in STYLES]


def test_at_least_three_styles_ship_and_the_default_is_one_of_them():
    assert len(STYLES) >= 3
    assert DEFAULT_STYLE in NAMES


@pytest.mark.parametrize("style", STYLES, ids=NAMES)
def test_each_style_is_a_half_width_fp32_instance_norm_model_with_its_provenance(style):
    size = style.path.stat().st_size
    assert 1_000_000 < size < 3_000_000
    model = onnx.load(str(style.path))
    ops = {node.op_type for node in model.graph.node}
    assert "InstanceNormalization" in ops and "BatchNormalization" not in ops
    floats = {init.data_type for init in model.graph.initializer} - {onnx.TensorProto.INT64}
    assert floats == {onnx.TensorProto.FLOAT}
    record = style.provenance
    training = record["training"]
    assert training["steps"] >= 750 and training["wall_seconds"] > 0
    # stage 1 from scratch (or from another style's base: starts_from), each later stage from the one before
    commands = training["commands"]
    assert all("toolkit train" in c and "--norm" not in c for c in commands)
    # our relative-scale loss, then for mosaic, candy and starry-night Johnson et al.'s own (JOHNSON'S LOSS, OPEN SKIES)
    ours = [c for c in commands if "--loss-scale relative" in c]
    assert commands[: len(ours)] == ours and all("--preset johnson --width" in c for c in commands[len(ours) :])
    assert ("--init" in commands[0]) == bool(training["starts_from"])
    assert all("--init" in c for c in commands[1:])
    assert "--range-weight" in ours[-1]  # our last stage judged the picture as saved, clipped to 0–255
    assert "--histogram-weight" in commands[-1]  # the last stage matched the distribution of its colours (palette)
    assert training["data"].startswith("16 photos")
    assert {"content", "style", "tv"} <= set(training["final_losses"])
    assert record["machine"] and record["style_image"]
    embedded = json.loads({e.key: e.value for e in model.metadata_props}["training"])
    assert "/" not in embedded["data"] + embedded["vgg_weights"]  # no folder of the machine that trained it
    assert not [e for n in model.graph.node for e in n.metadata_props if e.key == "pkg.torch.onnx.stack_trace"]


@pytest.mark.parametrize("style", STYLES, ids=NAMES)
def test_each_style_runs_on_any_size_and_ignores_the_photos_contrast(style):
    with Stylizer.load(style.name, backend="onnxruntime", device="cpu") as stylizer:
        for shape in [(1, 1), (7, 13), (67, 93)]:
            assert stylizer(photo_like(shape, 3)).shape == (*shape, 3)
        photo = photo_like((96, 128), 5)
        styled = stylizer(photo).astype(np.float32)
        dull = stylizer(np.rint(photo * 0.5 + 64).astype(np.uint8)).astype(np.float32)
    assert np.abs(styled - photo).mean() > 20  # it changes the photo
    assert np.abs(styled - dull).mean() < 3  # but not with the photo's contrast: instance norm at test time


@pytest.mark.parametrize("style", STYLES, ids=NAMES)
def test_each_style_ships_an_int8_file_that_its_record_describes_and_that_runs_close_to_fp32(style):
    import onnx

    from export.checks import check_fp32_instance_norm, psnr
    from export.int8 import check_tensorrt_qdq, check_weights_fit_cpus_without_vnni

    int8_path = style.path.with_name(f"{style.name}.int8.onnx")
    model = onnx.load(str(int8_path))
    record = style.provenance["int8"]
    assert record["file"] == int8_path.name and record["worst_psnr_db"] >= record["min_psnr_db"] == 32
    assert json.loads({e.key: e.value for e in model.metadata_props}["int8"]) == {
        k: v for k, v in record.items() if k != "file"
    }
    assert check_tensorrt_qdq(model).ok and check_fp32_instance_norm(model).ok
    assert check_weights_fit_cpus_without_vnni(model).ok  # 7-bit weights: right on CPUs without VNNI too
    photo = photo_like((96, 128), 7)
    with Stylizer.load(style.name, backend="onnxruntime", precision="fp32") as fp32:
        expected = fp32(photo)
    for backend in ("onnxruntime", "openvino"):
        with Stylizer.load(style.name, backend=backend, precision="int8") as int8:
            assert psnr(int8(photo), expected) > 25


def test_the_first_run_needs_neither_torch_nor_a_download(tmp_path):
    script = (
        "import sys; sys.modules['torch'] = None; sys.modules['torchvision'] = None\n"
        "import socket\n"
        "def refuse(*a, **k): raise OSError('network used')\n"
        "socket.socket.connect = refuse\n"
        "from toolkit.cli import app\n"
        f"app(['demo', {str(tmp_path / 'demo')!r}])\n"
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    for name in NAMES:
        assert len(list((tmp_path / "demo" / name).glob("*.jpg"))) == 4
    assert (tmp_path / "demo" / "contact-sheet.jpg").stat().st_size > 10_000


def test_the_wheel_carries_the_styles_and_their_records(tmp_path):
    root = STYLES[0].path.parents[2]
    command = [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(tmp_path)]
    subprocess.run([*command, str(root)], check=True, capture_output=True, timeout=300)
    (wheel,) = tmp_path.glob("*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    for name in NAMES:
        assert {f"runtime/styles/{name}{suffix}" for suffix in (".onnx", ".json", ".int8.onnx")} <= names
    assert json.loads(zipfile.ZipFile(wheel).read(f"runtime/styles/{DEFAULT_STYLE}.json"))["training"]["steps"]


def _recipe_script():
    """scripts/train_bundled_styles.py as a module (it is a script, not part of the package)."""
    spec = importlib.util.spec_from_file_location("train_bundled_styles", REPO / "scripts" / "train_bundled_styles.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("style", STYLES, ids=NAMES)
def test_each_record_lists_the_commands_the_training_script_runs_for_that_style(style, tmp_path):
    script = _recipe_script()
    assets, data = tmp_path / "assets", tmp_path / "runs" / "train16"
    stages = script.plan(style.name, script.STYLES[style.name], script.REPO / "runs" / "bundled")
    commands = [script.train_command(assets, data, s.run_dir, style.provenance["style_image"], s.steps, s.recipe,
                                     s.init) for s in stages]  # fmt: skip
    assert [script.as_recorded(c, assets, data) for c in commands] == style.provenance["training"]["commands"]


def test_a_style_can_start_from_a_bundled_styles_weights(tmp_path):
    """A style without a base stage in this checkout's runs starts from a shipped style's file (--init NAME)."""
    script = _recipe_script()
    style = script.Style("x.jpg", "a painting", 0, script.BUNDLED + "starry-night", 10, range_steps=5)
    stages = script.plan("new", style, tmp_path / "runs")
    first = script.train_command(tmp_path, tmp_path, stages[0].run_dir, "x.jpg", 10, stages[0].recipe, stages[0].init)
    assert first[first.index("--init") + 1] == "starry-night"
    assert stages[1].init == tmp_path / "runs" / "new" / "model.safetensors"
    assert "runtime/styles/starry-night.json" in script.starts_from(style)
    from_run = script.Style("x.jpg", "a painting", 0, "mosaic-base", 10)
    assert script.plan("new", from_run, tmp_path)[0].init == tmp_path / "mosaic-base" / "model.safetensors"


def test_a_relit_stage_follows_the_photo_stage_of_a_style_without_skies(tmp_path):
    """RELIT goes on from the last stage with that stage's loss: the sky stage's where there is one, else the photo
    stage's (no --sky)."""
    script = _recipe_script()
    style = script.Style("x.jpg", "a painting", 0, script.BUNDLED + "starry-night", 10, range_steps=5,
                         histogram_steps=5, photo_steps=5, relight_steps=7)  # fmt: skip
    stages = script.plan("new", style, tmp_path)
    assert [s.run_dir.name for s in stages] == ["new", "new-r", "new-h", "new-p", "new-l"]
    relit, photo = stages[-1], stages[-2]
    assert relit.steps == 7 and relit.init == photo.run_dir / "model.safetensors"
    assert relit.recipe == [*photo.recipe, "--relight-weight", "1000", "--relight-amount", "0.25"]
    with_sky = script.plan("new", dataclasses.replace(style, sky_steps=3), tmp_path)
    assert [s.run_dir.name for s in with_sky][-2:] == ["new-k", "new-l"]
    assert with_sky[-1].recipe == [*with_sky[-2].recipe, "--relight-weight", "1000", "--relight-amount", "0.25"]
    assert "--sky" in with_sky[-1].recipe
    no_relight = script.plan("new", dataclasses.replace(style, relight_steps=0), tmp_path)
    assert [s.run_dir.name for s in no_relight][-1] == "new-p"


def test_a_figures_stage_goes_last_with_the_loss_of_the_stage_before_it(tmp_path):
    """FIGURES (pasted shapes) follows whichever finishing stages a style has, or its photo stage; a style whose
    photo stage is missing stops there, finishing stages or not."""
    script = _recipe_script()
    style = script.Style("x.jpg", "a painting", 1, "new-base", 10, range_steps=5, histogram_steps=5, photo_steps=5,
                         paste_steps=9)  # fmt: skip
    stages = script.plan("new", style, tmp_path)
    assert [s.run_dir.name for s in stages] == ["new-base", "new", "new-r", "new-h", "new-p", "new-f"]
    figures, photo = stages[-1], stages[-2]
    assert figures.steps == 9 and figures.init == photo.run_dir / "model.safetensors"
    assert figures.recipe == [*photo.recipe, "--paste-weight", "3000"]
    everything = script.plan("new", dataclasses.replace(style, sky_steps=3, relight_steps=7), tmp_path)
    assert [s.run_dir.name for s in everything][-4:] == ["new-p", "new-k", "new-l", "new-f"]
    assert everything[-1].recipe == [*everything[-2].recipe, "--paste-weight", "3000"]
    assert "--sky" in everything[-1].recipe and "--relight-weight" in everything[-1].recipe
    weaker = script.plan("new", dataclasses.replace(style, paste_weight=1000), tmp_path)
    assert weaker[-1].recipe == [*photo.recipe, "--paste-weight", "1000"]
    no_photo = script.plan("new", dataclasses.replace(style, photo_steps=0), tmp_path)
    assert [s.run_dir.name for s in no_photo][-1] == "new-h"


def test_figures_ii_follows_figures_with_its_loss_and_its_band(tmp_path):
    """FIGURES II goes on from FIGURES with FIGURES' loss, --paste-band and --paste-scale added (the last value of an
    option counts; FIGURES' own by default); without a FIGURES stage there is no FIGURES II."""
    script = _recipe_script()
    style = script.Style("x.jpg", "a painting", 1, "new-base", 10, range_steps=5, histogram_steps=5, photo_steps=5,
                         paste_steps=9, figures2_steps=4, figures2_band=1, figures2_scale=4)  # fmt: skip
    stages = script.plan("new", style, tmp_path)
    again, figures = stages[-1], stages[-2]
    assert [figures.run_dir.name, again.run_dir.name] == ["new-f", "new-f2"]
    assert again.steps == 4 and again.init == figures.run_dir / "model.safetensors"
    assert again.recipe == [*figures.recipe, "--paste-band", "1", "--paste-scale", "4"]
    same = script.plan("new", dataclasses.replace(style, figures2_band=6, figures2_scale=8), tmp_path)
    assert same[-1].recipe == [*figures.recipe, "--paste-band", "6", "--paste-scale", "8"]
    no_figures = script.plan("new", dataclasses.replace(style, paste_steps=0), tmp_path)
    assert [s.run_dir.name for s in no_figures][-1] == "new-p"


def test_johnsons_loss_replaces_the_loss_after_the_last_stage_and_open_skies_follow_it(tmp_path):
    """JOHNSON'S LOSS goes on from the last stage's weights with Johnson et al.'s loss alone (none of the relative-scale
    terms before it); each OPEN SKIES stage goes on from the one before with its loss, synthetic skies, content weighed
    by structure, its seed and, where set, the histogram term (NAME-jh, else NAME-js)."""
    script = _recipe_script()
    style = script.Style("x.jpg", "a painting", 1, "new-base", 10, range_steps=5, histogram_steps=5, photo_steps=5,
                         paste_steps=9, johnson_steps=4, johnson_style_size=512, johnson_seed=7,
                         open_skies=((3, 8, ""), (2, 9, "3e7")))  # fmt: skip
    stages = script.plan("new", style, tmp_path)
    assert [s.run_dir.name for s in stages][-4:] == ["new-f", "new-j", "new-js", "new-jh"]
    figures, johnson, skies, palette = stages[-4:]
    assert johnson.steps == 4 and johnson.init == figures.run_dir / "model.safetensors"
    assert johnson.recipe == script.johnsons_loss(512, 7)
    assert johnson.recipe[johnson.recipe.index("--preset") + 1] == "johnson"
    assert not {"--loss-scale", "--paste-weight", "--histogram-weight", "--range-weight"} & set(johnson.recipe)
    assert skies.init == johnson.run_dir / "model.safetensors"
    assert skies.recipe == [*johnson.recipe, "--seed", "8", "--sky", "0.5", "--content-structure", "8"]
    assert palette.steps == 2 and palette.init == skies.run_dir / "model.safetensors"
    assert palette.recipe == [*skies.recipe, "--seed", "9", "--sky", "0.5", "--content-structure", "8",
                              "--histogram-weight", "3e7"]  # fmt: skip
    at_once = script.plan("new", dataclasses.replace(style, open_skies=((2, 9, "3e7"),)), tmp_path)
    assert [s.run_dir.name for s in at_once][-2:] == ["new-j", "new-jh"]
    none = script.plan("new", dataclasses.replace(style, johnson_steps=0), tmp_path)
    assert [s.run_dir.name for s in none][-1] == "new-f"


def test_the_training_script_takes_recorded_stages_back_from_the_bundled_file(tmp_path):
    """On a checkout without runs/, a new last stage trains from the bundled weights, not from scratch."""
    script = _recipe_script()
    style = next(s for s in STYLES if s.name == "starry-night")
    assets, data, runs = tmp_path / "assets", tmp_path / "train16", tmp_path / "runs"
    stages = script.plan(style.name, script.STYLES[style.name], runs)
    shown = [script.as_recorded(script.train_command(assets, data, s.run_dir, "x.jpg", s.steps, s.recipe, s.init),
                                assets, data) for s in stages]  # fmt: skip
    record = {**style.provenance, "training": {**style.provenance["training"], "commands": shown}}
    # the bundled file is the last stage's export: without that stage's command in the record, nothing is taken
    fewer = {**record, "training": {**record["training"], "commands": shown[:-1]}}
    assert script.recover(stages, shown, fewer, style.path) is None
    assert not any(runs.glob("*/model.safetensors"))
    held = script.recover(stages, shown, record, style.path)
    assert held["stages"] == len(stages) and held["steps"] == style.provenance["training"]["steps"]
    rebuilt, _ = load_model(stages[-1].run_dir / "model.safetensors")
    start, _ = generator_from_onnx(style.path)
    for (name, a), b in zip(start.state_dict().items(), rebuilt.state_dict().values(), strict=True):
        assert torch.equal(a, b), name
    assert script.recover(stages, shown, None, style.path) == held  # a second run counts those stages once


def test_a_record_trained_on_several_machines_names_each_ones_stages():
    script = _recipe_script()
    assert script.machines_until("AMD", 7) == "AMD (stages 1–7)"
    earlier = "Intel; CPU only (stages 1–6); AMD; CPU only (the rest)"  # as older records say it
    assert script.machines_until(earlier, 7) == "Intel; CPU only (stages 1–6); AMD; CPU only (stage 7)"
    assert script.machines_until("Intel (stages 1–5); AMD (the rest)", 7) == "Intel (stages 1–5); AMD (stages 6–7)"
    named = "Intel (stages 1–6); AMD (stage 7)"
    assert script.machines_until(named, 7) == named
