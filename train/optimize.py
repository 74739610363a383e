"""The slow method the fast generators imitate (Gatys, Ecker, Bethge 2016): optimize the image itself.

Starting from the content photo, the pixels are updated with L-BFGS (or Adam) to lower the same perceptual loss
that `toolkit train` uses. The loss is taken of the pixels clipped to 0–255 (rather than clipping them after each
step, which changes the point behind L-BFGS's back: its curvature pairs then stop matching and it stalls).

Two more things kept L-BFGS from working with a Caffe-scale VGG (losses of 1e7 and more):
- float32 and the line search's absolute tolerances: at 1e7 the loss cannot resolve the small changes of a careful
  step, the strong-Wolfe search stalls, or it accepts a far point. The optimizer therefore sees the loss divided by
  the starting loss (a constant factor: the same minimum), which is about 1 whatever the loss network's scale.
- reporting: the last evaluation of a step can be a line-search trial that was rejected, so the loss reported for a
  step is the one at the point the optimizer accepted (the first evaluation of the next step).

A guard stays: a loss that is not finite or above DIVERGED × the starting loss counts as divergence; the best
picture so far is restored and the optimizer starts again with a tenth of the step, up to MAX_RESTARTS times,
then the run stops with an error. The picture returned is the best one seen, so a diverged result is never handed out.

A stall is caught too: where the pixels clamp, the loss has kinks, and there L-BFGS's strong-Wolfe search can find no
lower point and return a zero step. Its state then leads it into the same failed search at every later step (candy
with the johnson preset on camera.png at 512 px: 187 of 200 steps in place, and the near-photo written silently). A
step that leaves the picture unchanged drops the optimizer's history (the next step is a gradient step again); when
that does not move it either, the run stops early with a note.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field

import torch

from runtime.errors import UserError
from train.losses import PerceptualLoss

DIVERGED = 10.0  # a loss this many times the starting one means the optimizer has blown up
MAX_RESTARTS = 3


@dataclass
class OptimizeResult:
    image: torch.Tensor  # 1×3×H×W, 0–255: the best picture seen
    losses: list[dict[str, float]]  # at the point accepted after each step, with "step"
    seconds: float
    notes: list[str] = field(default_factory=list)  # restarts after divergence
    first: dict[str, float] = field(default_factory=dict)  # the loss of the content photo itself (step 0)
    best: dict[str, float] = field(default_factory=dict)  # the loss of `image`, with its step


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

    def make_optimizer(step_size: float):
        if method == "lbfgs":
            return torch.optim.LBFGS([pixels], lr=step_size, max_iter=1, history_size=50, line_search_fn="strong_wolfe")
        return torch.optim.Adam([pixels], lr=step_size)

    step_size = lr or (1.0 if method == "lbfgs" else 0.01)
    name = "L-BFGS" if method == "lbfgs" else "Adam"  # for the notes
    optimizer = make_optimizer(step_size)

    def picture() -> torch.Tensor:
        return pixels.clamp(0, 1) * 255.0

    with torch.no_grad():
        first = {k: float(v) for k, v in loss_fn(picture(), content).items()}
    if not math.isfinite(first["total"]) or first["total"] <= 0:
        raise UserError(f"the starting loss is {first['total']:.4g}; check the loss weights")
    unit = first["total"]
    # The loss at the point each step starts from, i.e. the point the previous step accepted.
    at_start: list[dict[str, float]] = []

    def closure():
        optimizer.zero_grad(set_to_none=True)
        terms = loss_fn(picture(), content)
        (terms["total"] / unit).backward()
        if not evaluated_this_step:
            evaluated_this_step.append(True)
            at_start.append({k: float(v.detach()) for k, v in terms.items()})
        return terms["total"].detach() / unit

    history: list[dict[str, float]] = []
    notes: list[str] = []
    best, best_pixels = {"step": 0, **first}, picture().detach()
    start = time.perf_counter()

    def accepted(step: int, losses: dict[str, float]) -> bool:
        """Record the loss of the picture after `step`; False when it diverged (and the best one is restored)."""
        nonlocal best, best_pixels, optimizer, step_size
        total = losses["total"]
        if not math.isfinite(total) or total > DIVERGED * unit:
            if len(notes) == MAX_RESTARTS:
                raise UserError(
                    f"the loss diverged at step {step} ({unit:.4g} → {total:.4g}) and did not recover; lower --lr, "
                    "the loss weights, or try --method adam; nothing was written"
                )
            step_size /= 10
            notes.append(
                f"{name} diverged at step {step} (loss {total:.4g}, from {unit:.4g}): restarted from step "
                f"{best['step']} with step size {step_size:g}"
            )
            with torch.no_grad():
                pixels.copy_(best_pixels / 255.0)
            optimizer = make_optimizer(step_size)
            return False
        if total < best["total"]:
            best, best_pixels = {"step": step, **losses}, picture().detach()
        history.append({"step": step, **losses})
        on_step(step, losses)
        return True

    fresh_after_stall = False  # the optimizer was just made anew because the step before did not move the picture
    stalled_at = 0  # the step after which a fresh optimizer also failed to move the picture; 0: never
    for step in range(1, steps + 1):
        evaluated_this_step: list[bool] = []
        before = pixels.detach().clone()
        optimizer.step(closure)
        # this step's first evaluation was at the point step - 1 left; a divergence there restarts the optimizer
        restarted = step > 1 and not accepted(step - 1, at_start[-1])
        if not restarted and torch.equal(pixels.detach(), before):
            # L-BFGS's line search found no step (it returns t = 0, typically after the clamp made the loss
            # non-smooth) and would repeat the same failed search every step after. Its history is dropped and it
            # starts again from a gradient step; when even that does not move, the run stops here and says so.
            if fresh_after_stall:
                stalled_at = step
                break
            optimizer = make_optimizer(step_size)
            fresh_after_stall = True
        else:
            fresh_after_stall = False
    with torch.no_grad():
        accepted(stalled_at or steps, {k: float(v) for k, v in loss_fn(picture(), content).items()})
    if stalled_at:
        notes.append(
            f"{name} stopped moving at step {stalled_at} of {steps}, after a restart too (a minimum, or a line "
            "search that finds no lower point): the picture is the best one up to there; if it is too close to the "
            "photo, try --method adam"
        )
    return OptimizeResult(best_pixels, history, time.perf_counter() - start, notes, {"step": 0, **first}, best)
