"""scripts/continue_style.py: the LONGER stage's command from the shipped weights, and runs stopped in time, saved."""

import dataclasses
import sys

from scripts.continue_style import continuation, run_all
from scripts.train_bundled_styles import STYLES, Style, flat_free, grainless, longer, plan


def finishing_stage(tmp_path, **stages):
    """The last stage of a style with the earlier stages every finishing stage follows, plus `stages`, and the one
    before it; the last goes on from the one before's weights."""
    style = Style("x.jpg", "a painting", 1, "new-base", 10, range_steps=5, histogram_steps=5, photo_steps=5,
                  paste_steps=9, **stages)  # fmt: skip
    planned = plan("new", style, tmp_path)
    last, before = planned[-1], planned[-2]
    assert last.init == before.run_dir / "model.safetensors"
    return style, last, before


def test_longer_goes_last_with_the_last_stages_loss_at_a_slower_rate(tmp_path):
    style, long, before = finishing_stage(tmp_path, figures2_steps=4, longer_steps=7)
    assert [before.run_dir.name, long.run_dir.name] == ["new-f2", "new-long"]
    assert long.steps == 7
    assert long.recipe == [*before.recipe, "--lr", "5e-4", "--lr-decay", "0.5", "--lr-decay-every", "500"]
    slower = plan("new", dataclasses.replace(style, longer_halving=2000), tmp_path)[-1]
    assert slower.recipe[-2:] == ["--lr-decay-every", "2000"]
    assert [s.run_dir.name for s in plan("new", dataclasses.replace(style, longer_steps=0), tmp_path)][-1] == "new-f2"


def test_flat_free_goes_last_with_the_last_stages_loss_at_longers_rate_and_content_weighed_by_structure(tmp_path):
    style, free, before = finishing_stage(tmp_path, figures2_steps=4, structure_steps=6, structure_at=5)
    assert [before.run_dir.name, free.run_dir.name] == ["new-f2", "new-cs"]
    assert free.steps == 6
    assert free.recipe == [*longer(before.recipe), "--content-structure", "5"] == flat_free(before.recipe, 5)
    after_longer = plan("new", dataclasses.replace(style, longer_steps=7), tmp_path)
    assert [s.run_dir.name for s in after_longer[-2:]] == ["new-long", "new-cs"]


def test_grainless_goes_last_with_the_last_stages_loss_at_longers_rate_and_the_grain_term(tmp_path):
    style, grain, before = finishing_stage(tmp_path, grain_steps=6, grain_weight=700)
    assert [before.run_dir.name, grain.run_dir.name] == ["new-f", "new-g"]
    assert grain.steps == 6
    assert grain.recipe == [*longer(before.recipe), "--grain-weight", "700"] == grainless(before.recipe, 700)
    after_free = plan("new", dataclasses.replace(style, structure_steps=7), tmp_path)
    assert [s.run_dir.name for s in after_free[-2:]] == ["new-cs", "new-g"]


def test_a_continuation_trains_a_bundled_style_from_its_shipped_weights_with_its_last_loss(tmp_path):
    command = continuation("mosaic", tmp_path / "assets", tmp_path / "data", tmp_path, 3000, "cuda", 1500)
    stages = plan("mosaic", STYLES["mosaic"], tmp_path)
    last = stages[-2] if stages[-1].run_dir.name == "mosaic-long" else stages[-1]
    assert " ".join(longer(last.recipe, 1500)) in " ".join(command)  # with mosaic's --paste-band 2
    assert command[:3] == [sys.executable, "-m", "toolkit.cli"]
    assert command[command.index("--init") + 1] == "mosaic"  # the bundled weights, not a run folder
    assert command[command.index("--out") + 1] == str(tmp_path / "mosaic-long")
    assert command[command.index("--steps") + 1] == "3000"
    assert command[-2:] == ["--device", "cuda"] and command[command.index("--precision") + 1] == "fp32"
    assert command[command.index("--checkpoint-every", command.index("--quiet")) + 1] == "100"  # the last one counts


SAVES_ON_CTRL_C = """
import signal, sys, time
from pathlib import Path
def stop(*_):
    Path(sys.argv[1]).write_text("saved")
    sys.exit(130)
signal.signal(signal.SIGINT, stop)
time.sleep(60)
"""


def test_runs_get_ctrl_c_after_the_time_limit_and_are_waited_for_while_they_save(tmp_path):
    commands = [[sys.executable, "-c", SAVES_ON_CTRL_C, str(tmp_path / f"{n}.txt")] for n in ("a", "b")]
    codes = run_all(commands, seconds=2.0, env={"PATH": ""}, grace=30.0)
    assert codes == [130, 130]
    assert all((tmp_path / f"{n}.txt").read_text() == "saved" for n in ("a", "b"))


def test_a_run_that_ignores_ctrl_c_is_killed_after_the_grace_period(tmp_path):
    ignores = "import signal, time; signal.signal(signal.SIGINT, signal.SIG_IGN); time.sleep(60)"
    stubborn = [sys.executable, "-c", ignores]
    codes = run_all([stubborn], seconds=0.5, env={"PATH": ""}, grace=1.0)
    assert codes == [-9]


def test_runs_that_finish_within_the_time_limit_are_not_signalled():
    assert run_all([[sys.executable, "-c", "pass"]], seconds=60.0, env={"PATH": ""}) == [0]
