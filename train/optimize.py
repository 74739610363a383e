"""The slow method the fast generators imitate (Gatys, Ecker, Bethge 2016): optimize the image itself.

Starting from the content photo, the pixels are updated with L-BFGS (or Adam) to lower the same perceptual loss
that `toolkit train` uses, and kept in 0–255 after every step.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import torch

from train.errors import UserError
from train.losses import PerceptualLoss


@dataclass
class OptimizeResult:
    image: torch.Tensor  # 1×3×H×W, 0–255
    losses: list[dict[str, float]]  # after each step, with "step"
    seconds: float


def optimize_image(
    content: torch.Tensor, loss_fn: PerceptualLoss, steps: int = 300, method: str = "lbfgs", lr: float | None = None,
    on_step=lambda step, losses: None,
) -> OptimizeResult:  # fmt: skip
    if method not in ("lbfgs", "adam"):
        raise UserError(f"--method must be lbfgs or adam, not {method!r}")
    if steps <= 0:
        raise UserError("--steps must be positive")
    # The pixels are optimized in 0–1 units: in 0–255 units the gradients are 255× smaller and L-BFGS barely moves.
    pixels = (content / 255.0).clone(memory_format=torch.contiguous_format).requires_grad_(True)
    if method == "lbfgs":
        optimizer = torch.optim.LBFGS(
            [pixels], lr=lr or 1.0, max_iter=1, history_size=50, line_search_fn="strong_wolfe"
        )
    else:
        optimizer = torch.optim.Adam([pixels], lr=lr or 0.01)
    history = []
    start = time.perf_counter()
    last: dict[str, torch.Tensor] = {}

    def closure():
        optimizer.zero_grad(set_to_none=True)
        terms = loss_fn(pixels * 255.0, content)
        terms["total"].backward()
        last.update(terms)
        return terms["total"]

    for step in range(1, steps + 1):
        optimizer.step(closure)
        with torch.no_grad():
            pixels.clamp_(0, 1)
        losses = {k: float(v.detach()) for k, v in last.items()}
        if not all(v == v and abs(v) != float("inf") for v in losses.values()):
            raise UserError(f"the loss became infinite or NaN at step {step}; lower --lr or the loss weights")
        history.append({"step": step, **losses})
        on_step(step, losses)
    return OptimizeResult(pixels.detach() * 255.0, history, time.perf_counter() - start)
