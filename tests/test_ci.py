""".ci/post_mortem: after a crash that printed nothing, CI shows where it happened from the core dump."""

import resource
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
CRASH_ON_A_THREAD = """
import ctypes, threading
def crash_here():
    ctypes.string_at(0)
thread = threading.Thread(target=crash_here)
thread.start()
thread.join()
"""


def _core_pattern() -> str:
    try:
        return Path("/proc/sys/kernel/core_pattern").read_text().strip()
    except OSError:
        return ""


def test_the_post_mortem_names_the_crashing_threads_python_frames_and_removes_the_dump(tmp_path):
    if _core_pattern() != "core" or shutil.which("gdb") is None:
        pytest.skip("needs kernel.core_pattern 'core' (a file in the working folder) and gdb, as on CI's machines")

    def allow_cores():
        resource.setrlimit(resource.RLIMIT_CORE, (resource.RLIM_INFINITY, resource.RLIM_INFINITY))

    crashed = subprocess.run([sys.executable, "-c", CRASH_ON_A_THREAD], cwd=tmp_path, preexec_fn=allow_cores,
                             capture_output=True)  # fmt: skip
    assert crashed.returncode == -11 and (tmp_path / "core").is_file()
    report = subprocess.run([str(ROOT / ".ci" / "post_mortem")], capture_output=True, text=True, timeout=300)
    assert report.returncode == 0, report.stderr
    assert f"=== {tmp_path / 'core'}" in report.stdout
    assert "Program terminated with signal SIGSEGV" in report.stdout
    assert "line 4, in crash_here" in report.stdout  # the crashing thread's Python frame, from CPython's gdb script
    assert not (tmp_path / "core").exists()


def test_the_cpu_line_names_the_model_and_the_vector_extensions():
    line = subprocess.run([str(ROOT / ".ci" / "post_mortem"), "--cpu"], capture_output=True, text=True).stdout
    assert line.startswith("CPU: ") and " cores, " in line and line.count("\n") == 1
