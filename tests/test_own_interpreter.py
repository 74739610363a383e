"""The tests marked own_interpreter, in a child interpreter of their own when the whole suite runs (conftest.py)."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import OWN_INTERPRETER

TESTS = Path(__file__).parent
FILES = ["test_ray.py", "test_ray_gpu.py"]  # the modules marked own_interpreter


def test_the_tests_that_need_their_own_interpreter_pass_there():
    pytest.importorskip("ray")
    for name in FILES:
        assert "pytest.mark.own_interpreter" in (TESTS / name).read_text(), name
    command = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *(str(TESTS / n) for n in FILES)]
    env = {**os.environ, OWN_INTERPRETER: "1"}
    result = subprocess.run(command, capture_output=True, text=True, timeout=900, cwd=TESTS.parent, env=env)
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-6000:]
    summary = output.strip().splitlines()[-1]
    assert " passed" in summary and "skipped" not in summary, summary  # they ran, not just collected
