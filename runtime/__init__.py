"""Torch-free runtime for stylizing images and video: `Stylizer` (numpy + Pillow; backends imported lazily)."""

from runtime.stylizer import ModelError, Stylizer

__all__ = ["ModelError", "Stylizer"]
