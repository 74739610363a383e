"""How a `toolkit run` job runs: here (a Stylizer), with its model on a Triton server (a remote Stylizer), or on a
Ray cluster. The CLI plans the job, opens it here, shows progress from the callbacks, and prints the summary."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from runtime.errors import JobError
from runtime.images import DEFAULT_MAX_PIXELS
from runtime.jobs import Outcome, Task, pending, run_images
from runtime.stylizer import CUTOUTS, Stylizer, resolve_model
from runtime.video import run_videos


@dataclass(frozen=True)
class JobSettings:
    model: str | None = None
    backend: str = "auto"
    device: str | None = None
    strength: float = 1.0
    preserve_color: bool = False
    tile: str = "auto"
    precision: str = "auto"  # runtime.precision
    cutouts: str = "alone"  # pictures with transparency: the subject alone, or "on-grey" (Stylizer.load)
    temporal: str = "auto"  # video: instance-norm statistics carried across frames (runtime.temporal); or "off"
    flicker: bool = False  # measure each video's flicker (runtime.flicker) into its outcome
    batch_size: int = 4
    max_size: int | None = None
    max_pixels: int = DEFAULT_MAX_PIXELS
    format: str | None = None
    overwrite: bool = False
    server: str | None = None  # HOST:PORT or grpc://HOST:PORT: the model runs there
    model_name: str = "stylize"
    ray: str | None = None  # local, auto or ADDRESS: the images run on Ray actors
    ray_actors: int = 2

    def __post_init__(self) -> None:
        if self.batch_size < 1 or (self.max_size is not None and self.max_size < 1) or not 0 <= self.strength <= 1:
            raise JobError("--batch-size and --max-size must be positive and --strength between 0 and 1")
        if self.server and (self.model or self.backend != "auto" or self.device):
            raise JobError("--server runs the server's model: drop --model, --backend and --device")
        if self.ray and self.ray_actors < 1:
            raise JobError("--ray-actors must be at least 1")
        if self.temporal not in ("auto", "off"):
            raise JobError(f"--temporal must be auto or off, not {self.temporal!r}")
        if self.cutouts not in CUTOUTS:
            raise JobError(f"--cutouts must be {' or '.join(CUTOUTS)}, not {self.cutouts!r}")


class Job:
    """Opens what the job runs on (a cluster is joined only when there is work left); a context manager."""

    def __init__(self, tasks: list[Task], settings: JobSettings):
        self.settings = settings
        self.stylizer: Stylizer | None = None
        self.ray_notes: list[str] = []  # the actors' notes under --ray, shown after the run
        self.images = [t for t in tasks if t.kind == "image"]
        self.videos = [t for t in tasks if t.kind == "video"]
        if settings.ray:
            if self.videos or any(t.target == "-" for t in tasks):
                raise JobError("--ray runs image files and folders; run videos and stdin without --ray")
            self.ray_model = str(resolve_model(settings.model))  # a missing model fails before a cluster starts
            if pending(tasks, settings.overwrite)[0]:  # a finished job does not start a cluster
                from runtime.ray_jobs import connect

                connect(settings.ray)
        elif settings.server:
            self.stylizer = Stylizer.remote(settings.server, settings.model_name, settings.strength,
                                            settings.preserve_color, settings.cutouts)  # fmt: skip
        else:
            s = settings
            self.stylizer = Stylizer.load(
                s.model, s.backend, s.device, s.strength, s.preserve_color, s.tile, s.precision, s.cutouts
            )

    @property
    def where(self) -> tuple[str, str]:
        """(device, backend) the job runs on, for its summary."""
        if self.stylizer is None:
            return f"{self.settings.ray}, {self.settings.ray_actors} actors", "ray"
        return self.stylizer.backend.device, self.stylizer.backend_name

    def notes(self) -> list[str]:
        """Notes on how the model runs that were not handed out yet (after opening, and after running; under --ray,
        the actors' notes, each once, after running)."""
        if self.stylizer is not None:
            return self.stylizer.fresh_notes()
        fresh, self.ray_notes = self.ray_notes, []
        return fresh

    def run(
        self,
        on_image: Callable[[Outcome], None] = lambda outcome: None,
        on_video: Callable[[Outcome], None] = lambda outcome: None,
        on_frames: Callable[[Task, int, int | None], None] = lambda task, count, total: None,
    ) -> list[Outcome]:
        s = self.settings
        outcomes: list[Outcome] = []
        if self.images and self.stylizer is None:
            from runtime.ray_jobs import run_images_on_ray

            outcomes += run_images_on_ray(
                self.images, self.ray_model, address=s.ray or "local", actors=s.ray_actors, backend=s.backend,
                device=s.device, strength=s.strength, preserve_color=s.preserve_color, tile=s.tile,
                precision=s.precision, cutouts=s.cutouts, overwrite=s.overwrite, batch_size=s.batch_size,
                max_size=s.max_size, max_pixels=s.max_pixels, format=s.format, report=on_image,
                on_note=self.ray_notes.append,
            )  # fmt: skip
        elif self.images:
            assert self.stylizer is not None
            outcomes += run_images(
                self.images, self.stylizer, overwrite=s.overwrite, batch_size=s.batch_size, max_size=s.max_size,
                max_pixels=s.max_pixels, format=s.format, report=on_image,
            )  # fmt: skip
        if self.videos:
            assert self.stylizer is not None  # --ray refuses videos
            outcomes += run_videos(self.videos, self.stylizer, overwrite=s.overwrite, batch_size=s.batch_size,
                                   max_size=s.max_size, report=on_video, on_frames=on_frames,
                                   temporal=s.temporal != "off", measure_flicker=s.flicker)  # fmt: skip
        return outcomes

    def close(self) -> None:
        if self.stylizer is not None:
            self.stylizer.close()

    def __enter__(self) -> Job:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
