"""`Stylizer`: the object apps embed. Load a model once, then stylize PIL images, arrays, batches or streams.

    from runtime import Stylizer
    with Stylizer.load("exported/mosaic.onnx") as stylizer:
        stylizer(Image.open("photo.jpg")).save("out.jpg")

Not thread-safe: GPU backends hold one stream and one set of buffers. Use one Stylizer per thread.
"""

from __future__ import annotations

import contextlib
import queue
import threading
from collections.abc import Iterable, Iterator
from pathlib import Path

import numpy as np
from PIL import Image

from runtime.backends.base import Backend, BackendUnavailable
from runtime.backends.table import BACKENDS, candidates
from runtime.contract import Contract
from runtime.errors import ModelError
from runtime.postprocess import blend, preserve_colors
from runtime.precision import choose_file, cpu_has_int8_dot, gpu_runs_onnx, precision_of, prefer_int8


def resolve_model(model: str | Path | None) -> Path:
    """A path to a model file, or the name of a bundled style (None: the default style)."""
    from runtime.bundled import find_style, is_style_name

    if model is not None:
        path = Path(model)
        if path.exists():
            return path
        if not (isinstance(model, str) and is_style_name(model)):
            raise ModelError(f"model not found: {path}")
    try:
        return find_style(None if model is None else str(model)).path
    except ValueError as exc:
        raise ModelError(str(exc)) from None


def open_backend(
    model: str | Path | None, backend: str = "auto", device: str | None = None, precision: str = "auto"
) -> tuple[Backend, list[str]]:
    """The first backend that can run `model` (or the one named) in `precision` (runtime.precision: auto, fp32, fp16,
    int8); returns it with notes on those passed over."""
    if backend not in ("auto", *BACKENDS):
        raise ModelError(f"unknown backend {backend!r}: choose auto, {', '.join(BACKENDS)}")
    path = choose_file(resolve_model(model), precision)
    possible = candidates(path)
    chosen = [(k, f) for k, f in possible if k.name == backend or (backend == "auto" and k.in_auto)]
    if not chosen:
        kinds = ", ".join(kind.name for kind, _ in possible)
        raise ModelError(f"--backend {backend} cannot run {path.name}; for this file use {kinds}")
    notes: list[str] = []
    int8: Path | None = path if precision_of(path) == "int8" else None
    passed_over: str | None = None
    if precision == "auto" and int8 is None:
        int8, passed_over = prefer_int8(path, device)
    if passed_over and backend == "auto":
        notes.append(passed_over)
    on_gpu = device == "cuda" or (device is None and gpu_runs_onnx())  # then ONNX Runtime's CUDA provider comes first
    if backend == "auto" and int8 is not None and not on_gpu:
        # OpenVINO runs int8 convolutions 3× faster than fp32 on a VNNI CPU; ONNX Runtime's are not faster than its
        # fp32 ones. After a GPU's engine, before ONNX Runtime.
        chosen.insert(sum(kind.suffix == ".engine" for kind, _ in chosen), (BACKENDS["openvino"], int8))
    for kind, file in chosen:
        if not file.exists():
            if backend != "auto":
                raise ModelError(f"--backend {kind.name}: {file} does not exist")
            continue
        try:
            opened = kind.open(file, device)
            if file != path and file == int8:
                why = "has int8 dot products" if cpu_has_int8_dot() else "has AVX2 and the file's weights fit in 7 bits"
                notes.append(f"running {int8.name} (int8 convolutions, fp32 instance norms) on OpenVINO: this CPU "
                             f"{why}; --precision fp32 runs the fp32 file")  # fmt: skip
            return opened, notes
        except BackendUnavailable as exc:
            if backend != "auto":
                raise ModelError(f"--backend {kind.name} cannot run {file.name}: {exc}") from None
            notes.append(f"{kind.name} not used for {file.name}: {exc}")
        except ValueError as exc:
            if file != path and file == int8:  # the int8 file auto chose cannot be read here: the fp32 one runs
                notes.append(f"{int8.name} not used: {exc}")
                continue
            raise ModelError(str(exc)) from None
    raise ModelError(f"no backend can run {path}: " + "; ".join(notes))


def _with_tiles(backend: Backend, tile: str | int, notes: list[str]) -> Backend:
    """A backend that takes statistics (ONNX Runtime, OpenVINO) wrapped so that it can take instance-norm
    statistics from outside: tiles for large photos, and cut-outs normalized by their opaque pixels ("off": no
    tiles, the second use only)."""
    from runtime.tiling import DEFAULT_TILE, DEFAULT_TILE_ABOVE, WHOLE_PICTURE, TiledBackend, TilingUnavailable

    if backend.metadata.get("noise_channels", "0") != "0":
        # a texture net's noise comes from each pixel's position: a tile would start it again at its own corner
        if tile not in ("auto", "off"):
            raise ModelError(f"--tile {tile}: this texture net draws its noise from each pixel's position, which "
                             "tiles would restart; run it with --tile off")  # fmt: skip
        side, above = WHOLE_PICTURE, float("inf")  # still wrapped: cut-outs take their subject's statistics
        notes.append("this texture net's noise comes from each pixel's position, so it runs every photo whole, "
                     "without tiles: a large photo needs memory in proportion")  # fmt: skip
    elif tile == "off":
        side, above = DEFAULT_TILE, float("inf")
    elif tile == "auto":
        side, above = DEFAULT_TILE, DEFAULT_TILE_ABOVE
    else:
        try:
            side = int(tile)
        except ValueError:
            raise ModelError(f"tile must be auto, off or a tile side in pixels, not {tile!r}") from None
        above = side * side
    try:
        return TiledBackend.wrap(backend, side, above)
    except TilingUnavailable as exc:
        if tile not in ("auto", "off"):
            raise ModelError(f"--tile {tile}: {exc}") from None
        return backend  # foreign and fixed-size models simply run whole
    except ValueError as exc:
        raise ModelError(f"--tile {tile}: {exc}") from None


def _mirror_to(image: np.ndarray, size: int, axis: int) -> np.ndarray:
    """Mirror the end of `axis` until it is `size` long, as train.padding does inside the generators (repeated
    reflection, so tiny images come out exactly as the PyTorch model gives them)."""
    while image.shape[axis] < size:
        length = image.shape[axis]
        if length == 1:
            return np.repeat(image, size, axis=axis)
        widths = [(0, 0)] * image.ndim
        widths[axis] = (0, min(size - length, length - 1))
        image = np.pad(image, widths, mode="reflect")
    return image


CUTOUTS = ("alone", "on-grey")  # how a cut-out is stylized: `Stylizer.load`'s `cutouts`


class Stylizer:
    def __init__(
        self, backend: Backend, strength: float = 1.0, preserve_color: bool = False, notes=(), cutouts: str = "alone"
    ):
        if not 0.0 <= strength <= 1.0:
            raise ModelError(f"strength must be between 0 and 1, not {strength}")
        if cutouts not in CUTOUTS:
            raise ModelError(f"cutouts must be {' or '.join(CUTOUTS)}, not {cutouts!r}")
        self.cutouts = cutouts
        self.backend = backend
        self.contract: Contract = backend.contract
        self.strength = strength
        self.preserve_color = preserve_color
        self.notes = list(notes)
        self._reported: set[str] = set()
        self.closed = False

    @classmethod
    def load(
        cls,
        model: str | Path | None = None,
        backend: str = "auto",
        device: str | None = None,
        strength: float = 1.0,
        preserve_color: bool = False,
        tile: str | int = "auto",
        precision: str = "auto",
        cutouts: str = "alone",
    ) -> Stylizer:
        """`model`: a .onnx/.engine/.safetensors path, a bundled style's name, or None for the default style.
        `backend`: auto (TensorRT, then ONNX Runtime, then torch), or one of those by name. `device`: None (the best
        available), "cpu" or "cuda". `tile` (ONNX Runtime only): "auto" runs photos above 4 Mpx in 768-px tiles
        with instance-norm statistics from a thumbnail (runtime.tiling), N tiles every image larger than N×N, "off"
        runs every image whole (as texture nets with noise channels always do). `cutouts`, for pictures with
        transparency: "alone" stylizes the subject as if it were the whole picture (instance-norm statistics from
        its opaque pixels: ONNX Runtime and OpenVINO with our exports, torch; other backends, with a note, fall back
        to "on-grey"), "on-grey" as if it were pasted on a mid-grey photo (the grey shares in the statistics; the
        same on every backend); the alpha is put back either way. `precision`: auto (the file given, or
        NAME.int8.onnx beside it on a CPU with int8 dot products, or with AVX2 when the file's weights are within
        ±64, and OpenVINO installed), fp32, fp16 or int8 (that file)."""
        chosen, notes = open_backend(model, backend, device, precision)
        notes.extend(chosen.notes)
        if chosen.takes_statistics:
            chosen = _with_tiles(chosen, tile, notes)
        elif tile not in ("off", "auto"):
            notes.append(f"--tile applies to onnxruntime and openvino; {chosen.name} runs every image whole")
        return cls(chosen, strength, preserve_color, notes, cutouts)

    @classmethod
    def remote(
        cls,
        url: str,
        model_name: str = "stylize",
        strength: float = 1.0,
        preserve_color: bool = False,
        cutouts: str = "alone",
    ):
        """A Stylizer whose model runs on a Triton server (`toolkit serve`, or Triton with a `--triton` repository);
        reading, resizing, blending and writing stay here."""
        from runtime.backends.triton_backend import TritonBackend

        try:
            return cls(TritonBackend(url, model_name), strength, preserve_color, cutouts=cutouts)
        except (BackendUnavailable, ValueError) as exc:
            raise ModelError(str(exc)) from None

    def fresh_notes(self) -> list[str]:
        """Notes on how the model runs (a backend passed over, a guessed channel order, a fallback for images the
        backend cannot take) that this method has not returned before: call it after loading and after a job."""
        new = [n for n in dict.fromkeys([*self.notes, *self.backend.notes]) if n not in self._reported]
        self._reported.update(new)
        return new

    @property
    def backend_name(self) -> str:
        return self.backend.name

    # -- the one path every input takes -------------------------------------------------------------------------
    def _fit(self, rgb: np.ndarray) -> np.ndarray:
        """Resize to a fixed-size model's size, or mirror-pad up to the model's minimum side."""
        c = self.contract
        h, w = rgb.shape[:2]
        if c.fixed_size:
            if (h, w) == tuple(c.fixed_size):
                return rgb
            size = (c.fixed_size[1], c.fixed_size[0])
            return np.asarray(Image.fromarray(rgb).resize(size, Image.Resampling.LANCZOS))
        return _mirror_to(_mirror_to(rgb, c.min_size, 0), c.min_size, 1)

    def _unfit(self, out: np.ndarray, h: int, w: int) -> np.ndarray:
        if self.contract.fixed_size and out.shape[:2] != (h, w):
            return np.asarray(Image.fromarray(out).resize((w, h), Image.Resampling.LANCZOS))
        return out[:h, :w]

    def model_input(self, images: list[np.ndarray]) -> np.ndarray:
        """Equally sized H×W×3 uint8 RGB images as the batch the backend takes (resized/padded, laid out, typed)."""
        return self._to_model(np.stack([self._fit(image) for image in images]))

    def _to_model(self, batch: np.ndarray) -> np.ndarray:
        c = self.contract
        if c.channels == "BGR":
            batch = batch[..., ::-1]
        if c.layout == "NCHW":
            batch = batch.transpose(0, 3, 1, 2)
        return np.ascontiguousarray(batch, dtype=np.float32 if c.dtype == "float32" else np.uint8)

    def _from_model(self, out: np.ndarray) -> np.ndarray:
        c = self.contract
        if c.layout == "NCHW":
            out = out.transpose(0, 2, 3, 1)
        if c.channels == "BGR":
            out = out[..., ::-1]
        if out.dtype != np.uint8:
            out = np.clip(np.rint(out), 0, 255).astype(np.uint8)
        return np.ascontiguousarray(out)

    def _run_same_size(self, images: list[np.ndarray], alphas: list[np.ndarray] | None = None) -> list[np.ndarray]:
        """Equally sized images; `alphas` (H×W uint8 each) marks them as cut-outs, run as `_run_cutouts` says."""
        step = self.contract.max_batch or len(images)
        if len(images) > step:  # a model with a fixed batch size takes the images a few at a time
            return [
                out
                for i in range(0, len(images), step)
                for out in self._run_same_size(images[i : i + step], alphas[i : i + step] if alphas else None)
            ]
        if alphas is not None:
            outputs = self._run_cutouts(images, alphas)
        else:
            outputs = self._from_model(self._checked_run(self.backend.run, self.model_input(images)))
        return [self._finish(image, out) for image, out in zip(images, outputs, strict=True)]

    def _run_cutouts(self, images: list[np.ndarray], alphas: list[np.ndarray]) -> np.ndarray:
        """Cut-outs: the transparent area (often black underneath) would enter instance norm's statistics and wash
        the subject out. The network sees the subject on mid-grey; with `cutouts="alone"`, where the backend has
        `run_masked` (ONNX Runtime and OpenVINO with our exports, torch), each layer's statistics come from the
        opaque pixels alone, weighed by opacity; otherwise the grey counts as background, as if the subject were
        pasted on it."""
        weights = np.stack(alphas).astype(np.float32) / 255.0
        on_grey = np.stack(images) * weights[..., None] + 128.0 * (1.0 - weights[..., None])
        on_grey = np.clip(np.rint(on_grey), 0, 255).astype(np.uint8)
        run_masked = getattr(self.backend, "run_masked", None)
        if self.cutouts == "on-grey" or run_masked is None or self.contract.fixed_size:
            if self.cutouts == "alone":
                why = ("this model takes one fixed size" if self.contract.fixed_size else
                       f"{self.backend_name} cannot run this model with statistics from the opaque pixels")  # fmt: skip
                note = (f"cut-outs ran pasted on mid-grey (--cutouts on-grey): {why}; ONNX Runtime, OpenVINO or "
                        "torch with our exports stylize the subject alone")  # fmt: skip
                if note not in self.notes:
                    self.notes.append(note)
            return self._from_model(self._checked_run(self.backend.run, self.model_input(list(on_grey))))
        return self._from_model(
            self._checked_run(lambda batch: run_masked(batch, weights), self.model_input(list(on_grey)))
        )

    def _checked_run(self, run, batch: np.ndarray) -> np.ndarray:
        """The backend's output for `batch`, which must be an image batch of the same size (a model that pools its
        input down, say, is not a style model: its 1×1 output must not be written as a picture)."""
        out = run(batch)
        nchw = self.contract.layout == "NCHW"
        sides_in = batch.shape[2:4] if nchw else batch.shape[1:3]
        sides_out = out.shape[2:4] if nchw and out.ndim == 4 else out.shape[1:3] if out.ndim == 4 else None
        channels = (out.shape[1] if nchw else out.shape[3]) if out.ndim == 4 else None
        if out.ndim != 4 or out.shape[0] != batch.shape[0] or sides_out != sides_in or channels != 3:
            raise ModelError(f"the model returned {tuple(out.shape)} for an input of {tuple(batch.shape)}; a style "
                             "model returns an image of its input's size: this one cannot be used")  # fmt: skip
        return out

    def _finish(self, original: np.ndarray, out: np.ndarray) -> np.ndarray:
        out = self._unfit(out, *original.shape[:2])
        if self.preserve_color:
            out = preserve_colors(original, out)
        return blend(original, out, self.strength)

    # -- public -------------------------------------------------------------------------------------------------
    def stylize_arrays(
        self, images: list[np.ndarray], batch_size: int = 8, alphas: list[np.ndarray | None] | None = None
    ) -> list[np.ndarray]:
        """H×W×3 uint8 RGB arrays → stylized arrays of the same sizes; images of one size run as one batch.
        `alphas`: an H×W uint8 opacity per image (or None): a cut-out is normalized by its opaque part only.
        An image with no pixels (0×W) comes back as it is: there is nothing to stylize."""
        self._check_open()
        if not isinstance(batch_size, int) or batch_size < 1:
            raise ValueError(f"batch_size must be a whole number of at least 1, not {batch_size!r}")
        if alphas is not None and len(alphas) != len(images):
            raise ValueError(f"{len(alphas)} alphas for {len(images)} images")
        results: list[np.ndarray | None] = [None] * len(images)
        alphas = alphas if alphas is not None else [None] * len(images)
        groups: dict[tuple[int, int, bool], list[int]] = {}
        for index, image in enumerate(images):
            if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
                raise ValueError(f"expected H×W×3 uint8 RGB arrays, got {image.shape} {image.dtype}")
            alpha = alphas[index]
            if alpha is not None and alpha.shape != image.shape[:2]:
                raise ValueError(f"alpha of shape {alpha.shape} for an image of {image.shape[:2]}")
            if image.size == 0:
                results[index] = image.copy()
                continue
            cutout = alpha is not None and bool(alpha.min() < 255)
            groups.setdefault((image.shape[0], image.shape[1], cutout), []).append(index)
        for (_, _, cutout), indices in groups.items():
            for start in range(0, len(indices), batch_size):
                chunk = indices[start : start + batch_size]
                chunk_alphas = [alphas[i] for i in chunk] if cutout else None
                outputs = self._run_same_size([images[i] for i in chunk], chunk_alphas)  # type: ignore[arg-type]
                for index, out in zip(chunk, outputs, strict=True):
                    results[index] = out
        return results  # type: ignore[return-value]

    def __call__(self, image):
        """A PIL image, an H×W×3 (or RGBA H×W×4) uint8 array, an N×H×W×3 batch, or a list of those; returns the
        same kind. Transparent pictures (PIL with alpha, RGBA arrays) keep their alpha and are normalized by their
        opaque part."""
        if isinstance(image, (list, tuple)):
            return [self(item) for item in image]
        if isinstance(image, Image.Image):
            return self._stylize_pil(image)
        array = np.asarray(image)
        if array.ndim == 4:
            return np.stack(self.stylize_arrays(list(array))) if len(array) else array.copy()
        if array.ndim == 2:
            array = np.repeat(array[..., None], 3, axis=2)
        if array.ndim == 3 and array.shape[2] == 4:  # RGBA: a cut-out, its alpha kept
            rgb = self.stylize_arrays([np.ascontiguousarray(array[..., :3])], alphas=[array[..., 3]])[0]
            return np.dstack([rgb, array[..., 3]])
        if array.ndim != 3 or array.shape[2] != 3:
            raise ValueError(f"expected an H×W×3 (RGB), H×W×4 (RGBA) or H×W (grey) image, got shape {array.shape}")
        return self.stylize_arrays([array])[0]

    def _stylize_pil(self, image: Image.Image) -> Image.Image:
        from runtime.images import Photo, photo_from_pil

        photo: Photo = photo_from_pil(image)
        rgb = self.stylize_arrays([photo.rgb], alphas=[photo.alpha])[0]
        if photo.alpha is not None:
            return Image.fromarray(np.dstack([rgb, photo.alpha]), "RGBA")
        return Image.fromarray(rgb, "RGB")

    @contextlib.contextmanager
    def temporal(self, on: bool = True, keep: float | None = None, blend: float | None = None):
        """Within the block the images given to this Stylizer are the frames of one video, in order: instance norm's
        statistics are carried from frame to frame (runtime.temporal; reset at scene cuts), so the picture does
        not flicker as objects move, and the previous stylized frame is blended in along the optical flow where the
        scene is the same (`blend`: its share; None: runtime.temporal.DEFAULT_BLEND; 0: no blending). ONNX Runtime,
        OpenVINO (our exports) and PyTorch carry the statistics; other backends (TensorRT, Triton) give each frame its
        own and only blend (a note says so). With `on` False, or where neither can be done, the frames are
        stylized on their own (a note says why)."""
        from runtime.temporal import DEFAULT_BLEND, DEFAULT_KEEP, TemporalBackend, TemporalUnavailable

        original = self.backend
        if on and isinstance(original, TemporalBackend):  # already inside a temporal block: frames go on as they are
            yield self
            return
        if on:
            try:
                share = DEFAULT_BLEND if blend is None else blend
                self.backend = TemporalBackend(original, DEFAULT_KEEP if keep is None else keep, blend=share)
            except TemporalUnavailable as exc:
                note = f"frames stylized on their own, not steadied: {exc}"
                if note not in self.notes:
                    self.notes.append(note)
        try:
            yield self
        finally:
            if self.backend is not original:
                self.notes += [n for n in self.backend.notes if n not in self.notes]  # reported after the block
                self.backend.close()
                self.backend = original

    def stream(self, frames: Iterable[np.ndarray], batch_size: int = 1, temporal: bool = True) -> Iterator[np.ndarray]:
        """Stylize an iterator of equally sized frames, in order, with instance-norm statistics carried across frames
        unless `temporal` is False (see `temporal`). A thread reads and prepares the next batch while the current
        one runs."""
        self._check_open()
        if not isinstance(batch_size, int) or batch_size < 1:
            raise ValueError(f"batch_size must be a whole number of at least 1, not {batch_size!r}")
        ready: queue.Queue = queue.Queue(maxsize=2)
        done = object()
        stop = threading.Event()

        def put(item) -> bool:
            while not stop.is_set():
                try:
                    ready.put(item, timeout=0.1)
                    return True
                except queue.Full:
                    continue
            return False  # the consumer went away

        def produce():
            try:
                batch = []
                for frame in frames:
                    batch.append(np.asarray(frame))
                    if len(batch) == batch_size:
                        if not put(batch):
                            return
                        batch = []
                if batch and not put(batch):
                    return
                put(done)
            except BaseException as exc:  # handed to the consumer, which raises it
                put(exc)

        self._producer = threading.Thread(target=produce, daemon=True)
        self._producer.start()
        try:
            with self.temporal(temporal):
                while (item := ready.get()) is not done:
                    if isinstance(item, BaseException):
                        raise item
                    yield from self.stylize_arrays(item, batch_size=len(item))
        finally:
            stop.set()  # a consumer that stops early releases the producer (and the frame source)

    def _check_open(self) -> None:
        if self.closed:
            raise ModelError("this Stylizer is closed; load a new one with Stylizer.load()")

    def close(self) -> None:
        """Release the model and its device resources. Idempotent; the Stylizer cannot run afterwards."""
        if not self.closed:
            self.closed = True
            self.backend.close()
            base = getattr(self.backend, "tiled", None)  # inside a temporal block: the backend it wraps
            if base is not None:
                base.close()

    def __enter__(self) -> Stylizer:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
