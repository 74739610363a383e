"""Torch-free runtime for stylizing images and video (`toolkit run`): not built yet, see issue 4."""
