"""Folder jobs on a Ray cluster: the same tasks as a local `toolkit run`, spread over a pool of Stylizer actors.

The driver plans the job (names, skipping outputs that exist) exactly as a local run does; each actor holds one
Stylizer and runs `runtime.jobs.run_images` on its share of the files, so decoding, EXIF, alpha, resizing, encoding
and the temp-then-rename writes are the local code and the outputs are the same bytes. Inputs, outputs and the
model file must be on a filesystem that every node sees (bundled styles are found in each node's installed package).
"""

from __future__ import annotations

import json
import os
import socket
import sys
from collections.abc import Callable
from typing import Any

import numpy as np

from runtime.jobs import JobError, Outcome, Task, pending, run_images
from runtime.stylizer import ModelError, Stylizer

UNAVAILABLE = "unavailable"  # a row's status when its actor could not load the model
# The pipeline moves only file names and outcomes through Ray's object store (actors read and write the images
# themselves), so a local instance needs little of it; Ray's default is 30% of RAM in /dev/shm.
LOCAL_OBJECT_STORE_BYTES = 256 * 2**20


def actor_location() -> str:
    import ray

    gpus = ray.get_gpu_ids()
    return ray.util.get_node_ip_address() + (f" with GPU {', '.join(str(g) for g in gpus)}" if gpus else "")


class StylizeFiles:
    """A Ray actor: one Stylizer, fed batches of (source, target) rows; returns one outcome row per file."""

    def __init__(
        self,
        model,
        backend,
        device,
        strength,
        preserve_color,
        tile,
        batch_size,
        max_size,
        max_pixels,
        format,
        precision="auto",
        cutouts="alone",
    ):
        # A model that cannot load is reported in the rows rather than raised: Ray would print its own tracebacks
        # and a generic "actor died", where the user needs our one line naming the node, its GPU and the fix.
        self.stylizer, self.unavailable = None, ""
        try:
            self.stylizer = Stylizer.load(model, backend, device, strength, preserve_color, tile, precision, cutouts)
        except (ModelError, JobError) as exc:
            self.unavailable = f"the Stylizer actor on {actor_location()} cannot run the model: {exc}"
        self.options = dict(overwrite=True, batch_size=batch_size, max_size=max_size, max_pixels=max_pixels,
                            format=format, workers=1)  # fmt: skip

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        tasks = [Task(str(s), str(t), "image") for s, t in zip(batch["source"], batch["target"], strict=True)]
        if self.stylizer is None:
            outcomes = [Outcome(t.source, t.target, UNAVAILABLE, self.unavailable) for t in tasks]
        else:
            outcomes = run_images(tasks, self.stylizer, **self.options)
        # The Stylizer's notes not handed out yet (from loading the model, then from running it) ride on the batch's
        # first row as a JSON list (a note may hold several lines), so that the driver can show them as a local run
        # does.
        notes = ["[]"] * len(outcomes)
        if outcomes and self.stylizer:
            notes[0] = json.dumps(self.stylizer.fresh_notes())
        return {
            "source": np.array([o.source for o in outcomes], dtype=object),
            "target": np.array([o.target for o in outcomes], dtype=object),
            "status": np.array([o.status for o in outcomes], dtype=object),
            "reason": np.array([o.reason for o in outcomes], dtype=object),
            "seconds": np.array([o.seconds for o in outcomes], dtype=np.float64),
            "notes": np.array(notes, dtype=object),
        }


def connect(address: str):
    """`local`: start a Ray instance on this machine (loopback only); `auto`: the running cluster (RAY_ADDRESS);
    anything else: that cluster's address. A Ray already initialized in this process is used as it is."""
    if address == "local":
        # Off, a local Ray takes the node's IP and listens on every interface. Ray reads this when it is imported,
        # so set it first; an app that imported Ray already gets the constant set as well (below).
        os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
    try:
        import ray
    except ImportError:
        raise JobError("--ray needs Ray Data (pip install 'fast-style-toolkit[ray]')") from None
    if ray.is_initialized():
        return ray
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    try:
        if address == "local":
            constants: Any = sys.modules.get("ray._private.ray_constants")  # a module, or None
            cluster_mode = getattr(constants, "ENABLE_RAY_CLUSTER", None)
            if os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] == "0" and cluster_mode is not None:
                constants.ENABLE_RAY_CLUSTER = False
            try:
                ray.init(include_dashboard=False, log_to_driver=False, configure_logging=False,
                         object_store_memory=LOCAL_OBJECT_STORE_BYTES)  # fmt: skip
            finally:
                if cluster_mode is not None:
                    constants.ENABLE_RAY_CLUSTER = cluster_mode
        else:
            target = os.environ.get("RAY_ADDRESS", "") if address == "auto" else address
            check_reachable(target, shown=f"auto (RAY_ADDRESS={target})" if address == "auto" else address)
            ray.init(address=address, log_to_driver=False, configure_logging=False)
    except (ConnectionError, RuntimeError, ValueError) as exc:
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise JobError(f"--ray {address}: cannot start or reach the Ray cluster ({first})") from None
    return ray


def check_reachable(address: str, shown: str, timeout: float = 10.0) -> None:
    """Fail fast on a HOST:PORT (or ray://HOST:PORT) nobody listens on: Ray itself retries for minutes, silently.
    `shown` is how the error names it."""
    host, _, port = address.removeprefix("ray://").rpartition(":")
    if not host or not port.isdigit():
        return  # no RAY_ADDRESS for "auto", and other forms Ray resolves itself
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=timeout).close()
    except OSError as exc:
        reason = exc.strerror or str(exc) or type(exc).__name__
        raise JobError(f"--ray {shown}: cannot reach the Ray cluster ({reason}); is it running?") from None


def run_images_on_ray(
    tasks: list[Task], model, *, address: str = "local", actors: int = 2, backend: str = "auto",
    device: str | None = None, strength: float = 1.0, preserve_color: bool = False, tile: str = "auto",
    precision: str = "auto", cutouts: str = "alone", overwrite: bool = False, batch_size: int = 4,
    max_size: int | None = None, max_pixels: int,
    format: str | None = None, report: Callable[[Outcome], None] = lambda outcome: None,
    on_note: Callable[[str], None] = lambda note: None,
) -> list[Outcome]:  # fmt: skip
    """Stylize image files on a Ray cluster; `on_note` gets each distinct note of the actors' Stylizers once."""
    outcomes: list[Outcome] = []

    def finish(outcome: Outcome) -> None:
        outcomes.append(outcome)
        report(outcome)

    todo, skipped = pending(tasks, overwrite)
    for outcome in skipped:
        finish(outcome)
    if not todo:
        return outcomes
    ray = connect(address)
    import importlib
    import logging

    importlib.import_module("ray.data")  # importing it configures its loggers, so it comes before the levels below

    logging.getLogger("ray.data").setLevel(logging.WARNING)  # our own progress and summary say what happened
    logging.getLogger("ray.data._internal.progress").setLevel(logging.ERROR)  # "progress bars disabled": by us
    ray.data.DataContext.get_current().enable_progress_bars = False
    gpus = ray.cluster_resources().get("GPU", 0) if device != "cpu" else 0
    # One GPU per actor on a GPU cluster; otherwise a fraction of a CPU, since actors holding whole CPUs can take
    # every slot of a small node and leave none for the tasks that feed them (Ray then waits forever, silently).
    resources = {"num_gpus": 1} if gpus >= 1 else {"num_cpus": 0.5}
    dataset = ray.data.from_items([{"source": t.source, "target": t.target} for t in todo])
    results = dataset.map_batches(
        StylizeFiles,
        fn_constructor_kwargs=dict(model=model, backend=backend, device=device if not gpus else "cuda",
                                   strength=strength, preserve_color=preserve_color, tile=tile,
                                   batch_size=batch_size, max_size=max_size, max_pixels=max_pixels, format=format,
                                   precision=precision, cutouts=cutouts),
        batch_size=max(batch_size, 1), batch_format="numpy",
        compute=ray.data.ActorPoolStrategy(size=min(actors, len(todo))), **resources,
    )  # fmt: skip
    notes_seen: set[str] = set()
    for row in results.iter_rows():
        for note in json.loads(row["notes"]):
            if note not in notes_seen:  # every actor loads the model and says the same
                notes_seen.add(note)
                on_note(note)
        if row["status"] == UNAVAILABLE:
            fix = "; on a cluster with GPUs the actors run on CUDA: install a CUDA backend there or pass --device cpu"
            raise JobError(f"--ray: {row['reason']}" + (fix if gpus and "CUDA" in row["reason"] else ""))
        finish(Outcome(row["source"], row["target"], row["status"], row["reason"], float(row["seconds"])))
    return outcomes
