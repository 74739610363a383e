"""How much a stylized video flickers: the warping error of the video-stylization literature, and the change in
regions where the input stands still. Needs OpenCV (`pip install opencv-python-headless`) for optical flow.

- warping error: stylized frame t against stylized frame t−1 warped to t by the optical flow of the *input* frames
  (Farnebäck's, which is not the flow runtime.temporal blends with, so the measure is not the blend's own), over
  the pixels that flow says are visible in both (forward-backward consistency, as Ruder et al. 2016
  mask occlusions), mean absolute difference in 0–255 units. A perfectly stable stylization that follows the
  motion scores what the input itself scores (interpolation and flow errors).
- still difference: mean |S_t − S_{t−1}| where the input does not change (blurred grey difference < 1 and flow
  under a quarter pixel): texture that crawls over a still sky shows here.

Pairs across a scene cut (runtime.temporal's thumbnail test) are left out.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from runtime.temporal import DEFAULT_CUT, pixel_grid, thumbnail


def _cv2():
    try:
        import cv2
    except ImportError:
        raise ImportError("measuring flicker needs OpenCV: pip install opencv-python-headless") from None
    return cv2


@dataclass
class FlickerMeter:
    """Feed (input frame, stylized frame) pairs in order with `add`; read `result()`."""

    warping: list[float] = field(default_factory=list)
    still: list[float] = field(default_factory=list)
    cuts: int = 0
    _previous: tuple | None = None

    def __post_init__(self) -> None:
        cv2 = _cv2()
        self._cv2 = cv2
        self._flow = lambda a, b: cv2.calcOpticalFlowFarneback(a, b, None, 0.5, 4, 21, 3, 7, 1.5, 0)

    def add(self, frame: np.ndarray, stylized: np.ndarray) -> None:
        cv2 = self._cv2
        grey = cv2.cvtColor(frame, cv2.COLOR_RGB2GRAY)
        small = thumbnail(frame)
        if self._previous is not None:
            before, before_grey, before_small = self._previous
            if before_grey.shape != grey.shape or float(np.abs(small - before_small).mean()) > DEFAULT_CUT:
                self.cuts += 1
            else:
                self._pair(before_grey, grey, before, stylized)
        self._previous = (stylized, grey, small)

    def _pair(self, grey0: np.ndarray, grey1: np.ndarray, styled0: np.ndarray, styled1: np.ndarray) -> None:
        cv2 = self._cv2
        back = self._flow(grey1, grey0)  # frame 1's pixel x was at x + back(x) in frame 0
        forth = self._flow(grey0, grey1)
        h, w = grey1.shape
        xs, ys = pixel_grid(h, w)
        map_x, map_y = xs + back[..., 0], ys + back[..., 1]
        warped = cv2.remap(styled0, map_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT)
        forth_at = cv2.remap(forth, map_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT)
        round_trip = np.sum((back + forth_at) ** 2, axis=-1)
        visible = round_trip <= 0.01 * (np.sum(back**2, -1) + np.sum(forth_at**2, -1)) + 0.5
        visible &= (map_x >= 0) & (map_x <= w - 1) & (map_y >= 0) & (map_y <= h - 1)
        difference = np.abs(styled1.astype(np.float32) - warped.astype(np.float32)).mean(-1)
        if visible.any():
            self.warping.append(float(difference[visible].mean()))
        change = np.abs(cv2.GaussianBlur(grey1, (5, 5), 0).astype(np.float32)
                        - cv2.GaussianBlur(grey0, (5, 5), 0).astype(np.float32))  # fmt: skip
        still = (change < 1.0) & (np.sum(back**2, -1) < 0.0625)
        if still.any():
            moved = np.abs(styled1.astype(np.float32) - styled0.astype(np.float32)).mean(-1)
            self.still.append(float(moved[still].mean()))

    def result(self) -> dict:
        return {
            "warping_error": float(np.mean(self.warping)) if self.warping else None,
            "still_difference": float(np.mean(self.still)) if self.still else None,
            "pairs": len(self.warping),
            "scene_cuts": self.cuts,
        }
