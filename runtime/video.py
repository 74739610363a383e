"""Video files: not supported yet (PyAV-based decoding and encoding comes next)."""

from __future__ import annotations

from runtime.jobs import Outcome, Task


def run_videos(tasks: list[Task], stylizer, progress, *, overwrite, batch_size, max_size, report) -> list[Outcome]:
    outcomes = []
    for task in tasks:
        outcome = Outcome(task.source, task.target, "failed", f"{task.source}: video input is not supported yet")
        report(outcome)
        outcomes.append(outcome)
    return outcomes
