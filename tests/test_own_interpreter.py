"""The test modules marked own_interpreter, each in a child interpreter of its own when the whole suite runs
(conftest.py leaves their tests to this runner)."""

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import DELEGATED, OWN_INTERPRETER

TESTS = Path(__file__).parent


def marked_modules() -> list[str]:
    """The test modules marked own_interpreter (conftest.py takes their tests out of the parent's run)."""
    me = Path(__file__).name
    return sorted(p.name for p in TESTS.glob("test_*.py") if p.name != me and "mark.own_interpreter" in p.read_text())


def test_the_marked_modules_are_the_ones_that_need_it():
    assert set(marked_modules()) >= {"test_ray.py", "test_ray_gpu.py", "test_train.py"}


@pytest.mark.parametrize("module", marked_modules())
def test_the_tests_that_need_their_own_interpreter_pass_there(module, request):
    selected = request.config.stash[DELEGATED].get(module, [])  # what -k, -m or node ids left of the module
    if not selected:
        pytest.skip(f"no test of {module} is selected here (or it skipped itself at collection) to run in a child")
    command = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *selected]
    # its own session: on a timeout the whole group goes (Ray's GCS and raylet with it). Its working folder is the
    # project's, where a crash leaves its core dump for .ci/post_mortem.
    env = {**os.environ, OWN_INTERPRETER: "1"}
    child = subprocess.Popen(command, cwd=TESTS.parent, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                             text=True, start_new_session=True)  # fmt: skip
    try:
        output, _ = child.communicate(timeout=900)
    except subprocess.TimeoutExpired:
        os.killpg(child.pid, signal.SIGKILL)
        output, _ = child.communicate()
        pytest.fail(f"the child run took over 900 s:\n{output[-6000:]}")
    if child.returncode < 0:
        pytest.fail(f"the child run died of {signal.Signals(-child.returncode).name}:\n{output[-6000:]}")
    summary = output.strip().splitlines()[-1]
    if child.returncode == 0 and " passed" not in summary and " skipped" in summary:
        pytest.skip(f"{module}: {summary}")  # e.g. Ray not installed: the child's reasons are in its output
    assert child.returncode == 0, output[-6000:]
    assert " passed" in summary and "deselected" not in summary, summary  # they ran (a GPU machine skips one)
