"""The tests marked own_interpreter, in a child interpreter of their own when the whole suite runs (conftest.py)."""

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import OWN_INTERPRETER

TESTS = Path(__file__).parent


def marked_modules() -> list[Path]:
    """The test modules marked own_interpreter (conftest.py takes them out of the parent's run)."""
    me = Path(__file__).name
    return sorted(p for p in TESTS.glob("test_*.py") if p.name != me and "pytest.mark.own_interpreter" in p.read_text())


def test_the_tests_that_need_their_own_interpreter_pass_there():
    pytest.importorskip("ray")
    modules = marked_modules()
    assert {p.name for p in modules} >= {"test_ray.py", "test_ray_gpu.py"}
    command = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *map(str, modules)]
    # its own session: on a timeout the whole group goes, Ray's GCS and raylet with it
    env = {**os.environ, OWN_INTERPRETER: "1"}
    child = subprocess.Popen(command, cwd=TESTS.parent, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                             text=True, start_new_session=True)  # fmt: skip
    try:
        output, _ = child.communicate(timeout=900)
    except subprocess.TimeoutExpired:
        os.killpg(child.pid, signal.SIGKILL)
        output, _ = child.communicate()
        pytest.fail(f"the child run took over 900 s:\n{output[-6000:]}")
    assert child.returncode == 0, output[-6000:]
    summary = output.strip().splitlines()[-1]
    assert " passed" in summary and "deselected" not in summary, summary  # they ran (a GPU machine skips one)
