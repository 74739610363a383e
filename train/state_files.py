"""Reading state dicts from files we did not write, without ever running code from them."""

from __future__ import annotations

from pathlib import Path

import torch
from torch import Tensor

from runtime.errors import UserError


def read_state_dict(path: Path, what: str) -> dict[str, Tensor]:
    """A flat dict of tensors from `.safetensors` or a torch `.pth`; `what` names the expected content in errors."""
    if not path.is_file():
        raise UserError(f"{what} file not found: {path}")
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        try:
            return load_file(str(path))
        except Exception as exc:
            raise UserError(f"{path}: not a readable safetensors file ({exc})") from None
    try:
        # weights_only: a .pth is a pickle, and an untrusted pickle must never run code.
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # the unpickler raises many types on malformed input
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise UserError(
            f"{path}: not a PyTorch weights file that can be loaded safely ({first}); give a {what} state dict "
            "or a .safetensors file"
        ) from None
    for wrapper in ("state_dict", "model"):
        if isinstance(state, dict) and isinstance(state.get(wrapper), dict):
            state = state[wrapper]
    if not isinstance(state, dict) or not all(isinstance(v, Tensor) for v in state.values()):
        raise UserError(f"{path}: expected a state dict of tensors, found {type(state).__name__}")
    return state
