"""Everything `toolkit export` can be asked, in one frozen object, checked before any model is loaded."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from export.engine import ShapeProfile, make_profile
from export.onnx_export import DEFAULT_OPSET
from runtime.errors import UserError

IO_KINDS = ("uint8", "float")
CHANNEL_ORDERS = ("auto", "rgb", "bgr")
TRITON_DEVICES = ("cpu", "gpu")
OPSETS = range(18, 24)  # InstanceNormalization as our graphs use it, and the ops the tiling graphs add (Resize 18)


@dataclass(frozen=True)
class ExportOptions:
    name: str | None = None  # file name stem; default: the run folder's or the file's name
    fp16: bool = False  # also NAME.fp16.onnx (and its engine)
    int8: bool = False  # also NAME.int8.onnx (and its engine), calibrated on the photos in `calib`
    calib: Path | None = None
    opset: int = DEFAULT_OPSET
    io: str = "uint8"  # uint8 NHWC RGB bytes in and out, or float NCHW 0–255
    check: bool = True
    version: str = "0"  # the toolkit's, recorded in the metadata
    engine: bool | None = None  # TensorRT engines: True, False, or None = where TensorRT and a GPU are present
    min_shape: str | None = None  # the engine profile, N×H×W
    opt_shape: str | None = None
    max_shape: str | None = None
    workspace_gib: float = 4.0
    timing_cache: Path | None = None
    channel_order: str = "auto"  # of an imported ONNX model
    triton: Path | None = None  # also write a Triton model repository here
    triton_max_batch: int | None = None  # default: the engine profile's maximum batch, or 8 for ONNX
    triton_device: str | None = None  # default: gpu for an engine, cpu for ONNX

    def __post_init__(self) -> None:
        if self.io not in IO_KINDS:
            raise UserError(f"--io must be uint8 or float, not {self.io!r}")
        if self.channel_order not in CHANNEL_ORDERS:
            raise UserError(f"--channel-order must be auto, rgb or bgr, not {self.channel_order!r}")
        if self.opset not in OPSETS:
            raise UserError(f"--opset {self.opset}: choose {OPSETS.start}–{OPSETS.stop - 1}")
        if not self.workspace_gib > 0:
            raise UserError(f"--workspace must be positive (GiB), not {self.workspace_gib}")
        if self.triton_max_batch is not None and self.triton_max_batch < 1:
            raise UserError(f"--triton-max-batch must be at least 1, not {self.triton_max_batch}")
        if self.triton_device is not None and self.triton_device not in TRITON_DEVICES:
            raise UserError(f"--triton-device must be cpu or gpu, not {self.triton_device!r}")
        if self.name is not None and (not self.name or "/" in self.name or self.name in (".", "..")):
            raise UserError(f"--name {self.name!r}: give a file name stem without folders")
        if self.int8 and self.calib is None:
            raise UserError("--int8 needs --calib DIR: a folder of photos like the ones the model will see")
        if self.calib is not None and not Path(self.calib).is_dir():
            raise UserError(f"--calib {self.calib}: not a folder; give a folder of photos")
        if self.calib is not None and not self.int8:
            raise UserError("--calib is for --int8; add --int8 or leave --calib out")
        self.profile(1)  # the shape flags parse and min ≤ opt ≤ max

    def profile(self, min_side: int) -> ShapeProfile:
        """The engine's optimization profile, for a generator that needs sides of at least `min_side`."""
        return make_profile(self.min_shape, self.opt_shape, self.max_shape, min_side)
