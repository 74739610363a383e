"""Video that does not flicker: instance-norm statistics carried across frames, and the previous stylized frame
blended in along the optical flow.

Instance norm gives every frame its own per-layer mean and variance; as objects move, those statistics move, and the
whole frame's colours and texture strength shift with them. Here each frame runs a graph derived from the model
(runtime.tiling.tile_graph with `temporal=True`; on PyTorch, hooks on the norms with the same rule) in which every
instance norm uses the statistics of a mixture, `keep` of the carried ones and `1 − keep` its own (mean blended,
variance from the blended second moments), and hands those on to the next frame: an exponential moving average
whose time constant is about 1 / (1 − keep) frames. It costs one pass per frame, like the plain model. At the first
frame, after a scene cut (the frames' thumbnails differ by more than `cut` on average) or a size change, `keep` is 0
and the frame gets exactly its own statistics, as the plain model gives.

Measured on the shared clip (docs/video.md), carrying the statistics alone hardly changes the flicker: the generator
turns small input changes (noise, compression, sub-pixel motion) into large texture changes, whatever the
statistics. What halves it is FlowBlend, which keeps what the previous frame drew where the scene is the same.
"""

from __future__ import annotations

import functools
from pathlib import Path

import numpy as np

from runtime.backends.base import Backend

DEFAULT_KEEP = 0.9
DEFAULT_CUT = 20.0  # mean absolute difference of 32×18 grey thumbnails, 0–255, above which a frame starts a scene
DEFAULT_BLEND = 0.8  # share of the previous stylized frame (moved along the flow) where the input matches it
DEFAULT_TOLERANCE = 12.0  # input difference (0–255, blurred grey) at which the blend falls to 0: new content


class TemporalUnavailable(Exception):
    """The model or backend cannot carry statistics; the message says why."""


@functools.lru_cache(maxsize=4)
def pixel_grid(h: int, w: int) -> tuple[np.ndarray, np.ndarray]:
    """x and y coordinates of every pixel (float32, read-only), made once per frame size for flow warping."""
    xs, ys = np.meshgrid(np.arange(w, dtype=np.float32), np.arange(h, dtype=np.float32))
    xs.flags.writeable = ys.flags.writeable = False
    return xs, ys


def thumbnail(frame: np.ndarray) -> np.ndarray:
    """A 32×18 grey thumbnail (float) for scene-cut detection, from an H×W×3 uint8 frame."""
    from PIL import Image

    return np.asarray(Image.fromarray(frame).convert("L").resize((32, 18), Image.Resampling.BOX), np.float32)


class FlowBlend:
    """The previous stylized frame, moved along the optical flow of the input (DIS, OpenCV), blended into the new
    one where the moved previous *input* matches the new input: out = S + b·m·(warp(out_prev) − S), with m falling
    from 1 to 0 as the blurred input difference goes from 0 to `tolerance` (occlusions, new content, lighting
    changes get the new frame alone). The generator turns small input changes (noise, compression, sub-pixel
    motion) into large texture changes; this keeps what the previous frame drew where the scene is the same."""

    def __init__(self, share: float = DEFAULT_BLEND, tolerance: float = DEFAULT_TOLERANCE):
        try:
            import cv2
        except ImportError:
            raise TemporalUnavailable(
                "blending along the flow needs OpenCV (pip install opencv-python-headless)"
            ) from None
        self.cv2, self.share, self.tolerance = cv2, share, tolerance
        self.flow = cv2.DISOpticalFlow.create(cv2.DISOPTICAL_FLOW_PRESET_ULTRAFAST)
        self.reset()

    def reset(self) -> None:
        self.previous: tuple[np.ndarray, np.ndarray] | None = None  # grey input, stylized output

    def __call__(self, frame: np.ndarray, styled: np.ndarray) -> np.ndarray:
        cv2 = self.cv2
        grey = cv2.cvtColor(frame, cv2.COLOR_RGB2GRAY)
        out = styled
        if self.previous is not None and self.previous[0].shape == grey.shape:
            grey0, out0 = self.previous
            back = self.flow.calc(
                grey, grey0, np.zeros((*grey.shape, 2), np.float32)
            )  # this frame's pixel x was at x + back(x) before
            xs, ys = pixel_grid(*grey.shape)
            map_x, map_y = xs + back[..., 0], ys + back[..., 1]
            moved = cv2.remap(out0, map_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
            moved_in = cv2.remap(grey0, map_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
            mismatch = cv2.GaussianBlur(np.abs(moved_in.astype(np.float32) - grey), (5, 5), 0)
            weight = (self.share * np.clip(1.0 - mismatch / self.tolerance, 0.0, 1.0))[..., None]
            out = np.clip(np.rint(styled + weight * (moved.astype(np.float32) - styled)), 0, 255).astype(np.uint8)
        self.previous = (grey, out)
        return out


class TemporalBackend(Backend):
    """Wraps a backend so that frames run in order, steadied. Statistics are carried from the frames before where the
    backend can run the model with statistics supplied from outside: runtime.tiling's TiledBackend over ONNX Runtime
    or OpenVINO (a derived graph), or PyTorch (`run_carried`, hooks on the norms). Any other backend (TensorRT,
    Triton) runs the frames with their own statistics, batched as given, and only the flow blend steadies them, with
    a note; it is the larger part of the steadying (docs/video.md). Frames above the tiled backend's tile threshold
    run as it runs them (tiles, own statistics), with a note. Raises TemporalUnavailable where nothing can be done:
    statistics not carried and no flow blend."""

    def __init__(
        self, tiled, keep: float = DEFAULT_KEEP, cut: float = DEFAULT_CUT, blend: float | None = DEFAULT_BLEND
    ):
        if not 0.0 <= keep < 1.0:
            raise ValueError(f"keep must be in [0, 1), not {keep}")
        self.tiled, self.keep, self.cut = tiled, keep, cut
        self.session = None
        self.carry_note: str | None = None
        uncarried = ""  # why the statistics cannot be carried
        try:
            self._step = self._carrier(tiled)
        except TemporalUnavailable as exc:
            uncarried = str(exc)
            c = tiled.contract
            if (c.layout, c.dtype) != ("NHWC", "uint8"):  # the blend works on pictures: uint8 N×H×W×3 out
                raise TemporalUnavailable(f"{exc}; nor blend frames along the flow (float N×3×H×W out)") from None
            self._step = None
            self.carry_note = f"frames get their own instance-norm statistics, only blended along the flow: {exc}"
        self.blend: FlowBlend | None = None
        self.blend_note: str | None = None
        self.big_note: str | None = None
        if blend:
            try:
                self.blend = FlowBlend(blend)
            except TemporalUnavailable as exc:
                if self._step is None:
                    raise TemporalUnavailable(f"{uncarried}; and {exc}") from None
                self.blend_note = f"statistics carried across frames, no blending along the flow: {exc}"
        elif self._step is None:
            raise TemporalUnavailable(uncarried)
        self.name, self.contract, self.device = tiled.name, tiled.contract, tiled.device
        self.reset()

    def _carrier(self, tiled):
        """step(frame batch of 1, carried state or None, keep) → (output batch, state to carry), for `tiled`."""
        if hasattr(tiled, "run_carried"):  # PyTorch: the norms' hooks blend the statistics (train.norm)
            return tiled.run_carried
        inner = getattr(tiled, "inner", None)
        if inner is None or not hasattr(inner, "session_like"):
            raise TemporalUnavailable(f"{tiled.name} cannot run a model with statistics supplied from outside")
        try:
            import onnx

            from runtime.tiling import TilingUnavailable, stats_layout, tile_graph
        except ImportError:
            raise TemporalUnavailable("carrying statistics needs the onnx package (pip install onnx)") from None
        try:
            data = Path(inner.path).read_bytes()
            graph = tile_graph(data, temporal=True)
            self.width = 2 * sum(stats_layout(onnx.load_from_string(data)))
            session = inner.session_like(graph)
        except TilingUnavailable as exc:
            raise TemporalUnavailable(str(exc)) from None
        except Exception as exc:  # the backend's library refusing the derived graph, an unreadable file
            first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
            raise TemporalUnavailable(f"the derived graph did not load ({first})") from None
        self.session, self.input_name = session, session.get_inputs()[0].name
        return self._run_graph

    def _run_graph(self, frames: np.ndarray, state: np.ndarray | None, keep: float):
        """One frame through the derived graph: its output and the statistics to carry (`state` None: its own)."""
        from runtime.tiling import KEEP, STATS

        if self.session is None:
            raise RuntimeError("the backend is closed")
        state = np.zeros((1, self.width), np.float32) if state is None else state
        feeds = {self.input_name: frames, STATS: state, KEEP: np.full((1, 1), keep, np.float32)}
        out, state = self.session.run(None, feeds)
        return out, state

    @property
    def notes(self) -> tuple[str, ...]:  # type: ignore[override]
        return (*self.tiled.notes, *(n for n in (self.carry_note, self.blend_note, self.big_note) if n))

    def reset(self) -> None:
        """Forget the carried statistics: the next frame starts a scene."""
        self.state = None
        self.previous: np.ndarray | None = None
        self.shape: tuple | None = None
        self.cuts = 0
        if self.blend is not None:
            self.blend.reset()

    def _new_scene(self, frame: np.ndarray) -> bool:
        """Whether `frame` starts a scene (the first frame, a size change, a cut), noted for the next one."""
        small = thumbnail(frame)
        new_scene = self.previous is None or self.shape != frame.shape
        if not new_scene and float(np.abs(small - self.previous).mean()) > self.cut:
            new_scene = True
            self.cuts += 1
        self.previous, self.shape = small, frame.shape
        return new_scene

    def run(self, batch: np.ndarray) -> np.ndarray:
        if batch.shape[1] * batch.shape[2] > getattr(self.tiled, "tile_above", float("inf")):
            self.reset()
            self.big_note = (f"frames above {self.tiled.tile_above / 1e6:g} Mpx run in tiles, each with its own "
                             "statistics and without the flow blend (not steadied)")  # fmt: skip
            return self.tiled.run(batch)
        plain = self.tiled.run(batch) if self._step is None else None  # own statistics: the batch in one go
        outputs = []
        for i, frame in enumerate(batch):
            new_scene = self._new_scene(frame)
            if plain is not None:
                out = plain[i : i + 1]
            else:
                assert self._step is not None
                carried = None if new_scene else self.state
                out, self.state = self._step(frame[None], carried, 0.0 if new_scene else self.keep)
            if self.blend is not None:
                if new_scene:
                    self.blend.reset()
                out = self.blend(frame, out[0])[None]
            outputs.append(out[0])
        return np.stack(outputs)

    def close(self) -> None:
        self.session = None
