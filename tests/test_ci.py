""".ci/post_mortem: after a crash that printed nothing, CI shows where it happened from the core dump."""

import resource
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
CRASH_ON_A_THREAD = """
import ctypes, resource, threading
resource.setrlimit(resource.RLIMIT_CORE, (resource.getrlimit(resource.RLIMIT_CORE)[1],) * 2)  # as ulimit -c does
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
    if _core_pattern() != "core" or shutil.which("gdb") is None or resource.getrlimit(resource.RLIMIT_CORE)[1] == 0:
        pytest.skip("needs kernel.core_pattern 'core' (a file in the working folder), core dumps allowed, and gdb")
    (tmp_path / "core").write_text("a file named core, not a dump: left alone\n")
    (tmp_path / "crash").mkdir()
    crashed = subprocess.run([sys.executable, "-c", CRASH_ON_A_THREAD], cwd=tmp_path / "crash", capture_output=True)
    assert crashed.returncode == -11
    (dump,) = (tmp_path / "crash").glob("core*")  # core, or core.PID with kernel.core_uses_pid
    report = subprocess.run([str(ROOT / ".ci" / "post_mortem"), str(tmp_path)], capture_output=True, text=True,
                            timeout=300)  # fmt: skip
    assert report.returncode == 0, report.stderr
    assert f"=== {dump} (" in report.stdout and f"=== {tmp_path / 'core'}" not in report.stdout
    crashing = report.stdout.split("=== the crashing thread")[-1]
    assert "Program terminated with signal SIGSEGV" in crashing
    assert "line 5, in crash_here" in crashing  # its Python frame, from CPython's gdb script
    assert not dump.exists() and (tmp_path / "core").exists()


def test_the_cpu_line_names_the_model_and_the_vector_extensions():
    line = subprocess.run([str(ROOT / ".ci" / "post_mortem"), "--cpu"], capture_output=True, text=True).stdout
    assert line.startswith("CPU: ") and " cores, " in line and line.count("\n") == 1
