"""Very large photos in tiles, without seams, with instance norm's statistics shared by every tile.

Instance norm normalizes each feature map by its mean and variance over the whole image, so running tiles
independently would give each tile its own statistics and a visible seam at every tile border. Here the
statistics of every instance-norm layer are measured once, on a downscaled copy of the photo (the "thumbnail
instance normalization" of Chen et al., AAAI 2022), and every tile is normalized with them. With the statistics
fixed the network is a plain convolutional network, so overlapping the tiles by its receptive field makes the tiled
output equal to the untiled one; the approximation is only that the statistics come from the thumbnail.

The same two graphs give cut-outs (images with alpha) the statistics of the subject alone: a masked stats graph
weighs every pixel by its opacity (the alpha, resized to each layer's resolution), so the transparent area, whatever
RGB it holds, does not enter the mean and variance, and the picture then runs with those statistics.

Derived from the exported ONNX model, in memory, with the `onnx` package:
- the stats graph: the model up to its last instance norm, outputting every layer's per-channel mean and variance
  (N×S, float32); its masked variant takes the opacity (N×1×H×W, 0–1) as a second input;
- the tile graph: the model with each InstanceNormalization replaced by (x − mean) / sqrt(var + ε) · scale + bias,
  taking the N×S statistics as a second input.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from PIL import Image

from runtime.backends.base import Backend

if TYPE_CHECKING:
    from onnxruntime import InferenceSession

STATS = "tile_stats"
KEEP = "temporal_keep"  # the temporal graph's share of the carried statistics, N×1 in 0–1
NEXT_STATS = "temporal_stats"  # … and its output: the statistics to carry to the next frame
WEIGHTS = "tile_weights"  # the masked stats graph's second input: per-pixel weight (opacity) N×1×H×W in 0–1
# How far (in input pixels) one output pixel sees, rounded up to a multiple of 4. Johnson: 9×9 conv (4), two stride-2
# 3×3 convs (1 + 2), ten 3×3 convs at 1/4 scale (40), two 3×3 convs after upsampling (2 + 1), 9×9 conv (4) = 54.
# Texture net: three 3×3 convs at 1/32 after 32×32 average pooling, then three more at each finer scale ≈ 220.
RECEPTIVE_MARGIN = {"johnson": 56, "texture": 256}
# Tiles start on multiples of the network's total downsampling, so that every tile sees the same pooling and
# strided-convolution grid as the whole image.
ALIGN = {"johnson": 4, "texture": 32}
WHOLE_PICTURE = 1 << 30  # a tile side no picture reaches: one tile, the whole picture
DEFAULT_TILE = 768  # side of the part of each tile that is kept
DEFAULT_TILE_ABOVE = 4_000_000  # pixels; smaller images run whole (exact statistics)
DEFAULT_STATS_PIXELS = 2_000_000  # the thumbnail the statistics are measured on


class TilingUnavailable(Exception):
    """This model cannot be run in tiles; the message says why."""


def _opset(model) -> int:
    return next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), 0)


def _instance_norms(model) -> list:
    nodes = [n for n in model.graph.node if n.op_type == "InstanceNormalization" and n.domain in ("", "ai.onnx")]
    if not nodes:
        raise TilingUnavailable("the model has no InstanceNormalization node")
    if _opset(model) < 18:
        raise TilingUnavailable(f"opset {_opset(model)} < 18 (re-export the model with `toolkit export`)")
    return nodes


def _channels(model, node) -> int:
    inits = {init.name: init for init in model.graph.initializer}
    scale = inits.get(node.input[1])
    if scale is None or len(scale.dims) != 1:
        raise TilingUnavailable(f"InstanceNormalization {node.name!r} has no constant 1-D scale")
    return int(scale.dims[0])


def _prune(graph, outputs: list[str]) -> None:
    """Drop the nodes that the graph's outputs do not need."""
    needed, keep = set(outputs), []
    for node in reversed(graph.node):
        if any(o in needed for o in node.output):
            keep.append(node)
            needed.update(i for i in node.input if i)
    kept = list(reversed(keep))
    del graph.node[:]
    graph.node.extend(kept)
    used = {i for n in graph.node for i in n.input}
    initializers = [init for init in graph.initializer if init.name in used]
    del graph.initializer[:]
    graph.initializer.extend(initializers)


def stats_layout(model) -> list[int]:
    """Channels of each instance norm, in graph order: the stats vector is [mean_1, var_1, mean_2, var_2, …]."""
    return [_channels(model, node) for node in _instance_norms(model)]


def _measure(xs: list[str], output: str) -> list:
    """Nodes that concatenate each tensor's per-channel mean and variance over H×W into `output` (N×S)."""
    from onnx import helper

    parts, nodes = [], []
    for k, x in enumerate(xs):
        p = f"{output}_{k}"
        nodes += [
            helper.make_node("ReduceMean", [x, "tile_axes_hw"], [f"{p}_mean4"], keepdims=1),
            helper.make_node("Sub", [x, f"{p}_mean4"], [f"{p}_centered"]),
            helper.make_node("Mul", [f"{p}_centered", f"{p}_centered"], [f"{p}_squared"]),
            helper.make_node("ReduceMean", [f"{p}_squared", "tile_axes_hw"], [f"{p}_var4"], keepdims=1),
            helper.make_node("Squeeze", [f"{p}_mean4", "tile_axes_hw"], [f"{p}_mean"]),
            helper.make_node("Squeeze", [f"{p}_var4", "tile_axes_hw"], [f"{p}_var"]),
        ]
        parts += [f"{p}_mean", f"{p}_var"]
    nodes.append(helper.make_node("Concat", parts, [output], axis=1))
    return nodes


def _normalize(node, mean: str, var: str, eps: str, p: str) -> list:
    """Nodes computing `node` (an InstanceNormalization) with the given N×C×1×1 mean and variance."""
    from onnx import helper

    x, scale, bias = node.input[0], node.input[1], node.input[2]
    return [
        helper.make_node("Add", [var, eps], [f"{p}_vareps"], name=f"{p}_e"),
        helper.make_node("Sqrt", [f"{p}_vareps"], [f"{p}_std"], name=f"{p}_f"),
        helper.make_node("Sub", [x, mean], [f"{p}_centered"], name=f"{p}_g"),
        helper.make_node("Div", [f"{p}_centered", f"{p}_std"], [f"{p}_normed"], name=f"{p}_h"),
        helper.make_node("Unsqueeze", [scale, "tile_axes_0hw"], [f"{p}_scale"], name=f"{p}_i"),
        helper.make_node("Mul", [f"{p}_normed", f"{p}_scale"], [f"{p}_scaled"], name=f"{p}_j"),
        helper.make_node("Unsqueeze", [bias, "tile_axes_0hw"], [f"{p}_bias"], name=f"{p}_k"),
        helper.make_node("Add", [f"{p}_scaled", f"{p}_bias"], list(node.output), name=f"{p}_out"),
    ]


def _measure_weighted_one(x: str, p: str) -> tuple[list, str, str]:
    """Nodes measuring `x`'s per-channel mean and variance with each pixel weighted by WEIGHTS resized to the layer's
    H×W (antialiased bilinear, so a stride-2 layer sees the mean opacity of the pixels it covers): Σw·x/Σw and
    Σw·(x − mean)²/Σw. Returns the nodes and the names of the N×C×1×1 mean and variance; `{p}_mean` and `{p}_var`
    are the same squeezed to N×C."""
    from onnx import helper

    nodes = [
        helper.make_node("Shape", [x], [f"{p}_shape"], start=2),
        helper.make_node("Concat", ["tile_weights_n1", f"{p}_shape"], [f"{p}_sizes"], axis=0),
        helper.make_node("Resize", [WEIGHTS, "", "", f"{p}_sizes"], [f"{p}_w"], mode="linear", antialias=1),
        helper.make_node("ReduceSum", [f"{p}_w", "tile_axes_hw"], [f"{p}_wsum_raw"], keepdims=1),
        helper.make_node("Max", [f"{p}_wsum_raw", "tile_weight_floor"], [f"{p}_wsum"]),
        helper.make_node("Mul", [x, f"{p}_w"], [f"{p}_wx"]),
        helper.make_node("ReduceSum", [f"{p}_wx", "tile_axes_hw"], [f"{p}_wxsum"], keepdims=1),
        helper.make_node("Div", [f"{p}_wxsum", f"{p}_wsum"], [f"{p}_mean4"]),
        helper.make_node("Sub", [x, f"{p}_mean4"], [f"{p}_centered"]),
        helper.make_node("Mul", [f"{p}_centered", f"{p}_centered"], [f"{p}_squared"]),
        helper.make_node("Mul", [f"{p}_squared", f"{p}_w"], [f"{p}_wsquared"]),
        helper.make_node("ReduceSum", [f"{p}_wsquared", "tile_axes_hw"], [f"{p}_wsqsum"], keepdims=1),
        helper.make_node("Div", [f"{p}_wsqsum", f"{p}_wsum"], [f"{p}_var4"]),
        helper.make_node("Squeeze", [f"{p}_mean4", "tile_axes_hw"], [f"{p}_mean"]),
        helper.make_node("Squeeze", [f"{p}_var4", "tile_axes_hw"], [f"{p}_var"]),
    ]
    return nodes, f"{p}_mean4", f"{p}_var4"


def stats_graph(model_bytes: bytes, masked: bool = False) -> bytes:
    """The model up to its last instance norm, returning every layer's statistics (N×S). `masked`: a second input
    WEIGHTS (N×1×H×W, float 0–1) weighs each pixel, so only the opaque part of a cut-out counts."""
    import onnx
    from onnx import TensorProto, helper

    model = onnx.load_from_string(model_bytes)
    norms = _instance_norms(model)
    stats_layout(model)
    graph = model.graph
    graph.initializer.append(helper.make_tensor("tile_axes_hw", TensorProto.INT64, [2], [2, 3]))
    if masked:
        # Every instance norm is replaced by one that uses the weighted statistics of its own input, so that each
        # deeper layer is measured on features normalized the way the picture will run (with the subject's
        # statistics), not with the whole frame's: otherwise the transparent area still shapes the deeper layers.
        graph.input.append(helper.make_tensor_value_info(WEIGHTS, TensorProto.FLOAT, ["N", 1, "H", "W"]))
        graph.initializer.append(helper.make_tensor("tile_weight_floor", TensorProto.FLOAT, [], [1e-6]))
        graph.initializer.append(helper.make_tensor("tile_axes_0hw", TensorProto.INT64, [3], [0, 2, 3]))
        rebuilt = [helper.make_node("Shape", [WEIGHTS], ["tile_weights_n1"], end=2)]
        parts = []
        for node in list(graph.node):
            if node not in norms:
                rebuilt.append(node)
                continue
            k = norms.index(node)
            measure, mean, var = _measure_weighted_one(node.input[0], f"{STATS}_{k}")
            eps = next((a.f for a in node.attribute if a.name == "epsilon"), 1e-5)
            graph.initializer.append(helper.make_tensor(f"{STATS}_{k}_eps", TensorProto.FLOAT, [], [eps]))
            rebuilt += measure + _normalize(node, mean, var, f"{STATS}_{k}_eps", f"{STATS}_{k}_norm")
            parts += [f"{STATS}_{k}_mean", f"{STATS}_{k}_var"]
        rebuilt.append(helper.make_node("Concat", parts, [STATS], axis=1))
        del graph.node[:]
        graph.node.extend(rebuilt)
    else:
        graph.node.extend(_measure([node.input[0] for node in norms], STATS))
    del graph.output[:]
    graph.output.append(helper.make_tensor_value_info(STATS, TensorProto.FLOAT, ["N", "S"]))
    _prune(graph, [STATS])
    return model.SerializeToString()


def tile_graph(model_bytes: bytes, temporal: bool = False) -> bytes:
    """The model with every instance norm's statistics taken from the STATS input (N×S). `temporal`: each layer's
    statistics are instead those of a mixture of KEEP of STATS and 1 − KEEP of its own input's (_blend), with KEEP
    (N×1, 0–1) a second input, and those blended statistics come out as NEXT_STATS (N×S): an exponential moving
    average over the frames of a video (runtime.temporal). KEEP = 0 is the plain model."""
    import onnx
    from onnx import TensorProto, helper

    model = onnx.load_from_string(model_bytes)
    _instance_norms(model)
    graph = model.graph
    consts = [
        helper.make_tensor("tile_axes_1", TensorProto.INT64, [1], [1]),
        helper.make_tensor("tile_axes_hw", TensorProto.INT64, [2], [2, 3]),
        helper.make_tensor("tile_axes_0hw", TensorProto.INT64, [3], [0, 2, 3]),
    ]
    graph.initializer.extend(consts)
    rebuilt, offset, k, blended = [], 0, -1, []
    for node in list(graph.node):
        if node.op_type != "InstanceNormalization" or node.domain not in ("", "ai.onnx"):
            rebuilt.append(node)
            continue
        k += 1
        channels = _channels(model, node)
        eps = next((a.f for a in node.attribute if a.name == "epsilon"), 1e-5)
        bounds = [(f"tile_mean_at_{k}", offset), (f"tile_var_at_{k}", offset + channels)]
        for name, start in bounds:
            graph.initializer.append(helper.make_tensor(f"{name}_s", TensorProto.INT64, [1], [start]))
            graph.initializer.append(helper.make_tensor(f"{name}_e", TensorProto.INT64, [1], [start + channels]))
        graph.initializer.append(helper.make_tensor(f"tile_eps_{k}", TensorProto.FLOAT, [], [eps]))
        p = f"tile_norm_{k}"
        rebuilt += [
            helper.make_node("Slice", [STATS, f"tile_mean_at_{k}_s", f"tile_mean_at_{k}_e", "tile_axes_1"],
                             [f"{p}_mean2"], name=f"{p}_a"),
            helper.make_node("Unsqueeze", [f"{p}_mean2", "tile_axes_hw"], [f"{p}_mean"], name=f"{p}_b"),
            helper.make_node("Slice", [STATS, f"tile_var_at_{k}_s", f"tile_var_at_{k}_e", "tile_axes_1"],
                             [f"{p}_var2"], name=f"{p}_c"),
            helper.make_node("Unsqueeze", [f"{p}_var2", "tile_axes_hw"], [f"{p}_var"], name=f"{p}_d"),
        ]  # fmt: skip
        mean, var = f"{p}_mean", f"{p}_var"
        if temporal:
            rebuilt += _blend(node.input[0], mean, var, p)
            mean, var = f"{p}_bmean", f"{p}_bvar"
            blended += [f"{p}_bmean2", f"{p}_bvar2"]
        rebuilt += _normalize(node, mean, var, f"tile_eps_{k}", p)
        offset += 2 * channels
    del graph.node[:]
    graph.node.extend(rebuilt)
    graph.input.append(helper.make_tensor_value_info(STATS, TensorProto.FLOAT, ["N", offset]))
    if temporal:
        graph.input.append(helper.make_tensor_value_info(KEEP, TensorProto.FLOAT, ["N", 1]))
        graph.initializer.append(helper.make_tensor("tile_one", TensorProto.FLOAT, [], [1.0]))
        graph.initializer.append(helper.make_tensor("tile_zero", TensorProto.FLOAT, [], [0.0]))
        keep = [helper.make_node("Unsqueeze", [KEEP, "tile_axes_hw"], ["tile_keep4"], name="tile_keep_a"),
                helper.make_node("Sub", ["tile_one", "tile_keep4"], ["tile_take4"], name="tile_keep_b")]  # fmt: skip
        graph.node.insert(0, keep[1])
        graph.node.insert(0, keep[0])
        graph.node.append(helper.make_node("Concat", blended, [NEXT_STATS], axis=1, name="tile_next"))
        graph.output.append(helper.make_tensor_value_info(NEXT_STATS, TensorProto.FLOAT, ["N", offset]))
    return model.SerializeToString()


def _blend(x: str, mean: str, var: str, p: str) -> list:
    """Nodes blending the given N×C×1×1 `mean`/`var` with `x`'s own as a mixture, KEEP of the given and 1 − KEEP of
    its own: mean KEEP·m + (1 − KEEP)·m_own, variance from the blended second moments, KEEP·(v + m²) + (1 − KEEP)·
    (v_own + m_own²) − mean² (so a shift of the mean counts as spread), as `{p}_bmean` and `{p}_bvar` (and squeezed to
    N×C as `{p}_bmean2`, `{p}_bvar2`)."""
    from onnx import helper

    def node(op: str, inputs: list[str], output: str, **attrs):
        return helper.make_node(op, inputs, [f"{p}_{output}"], name=f"{p}_n_{output}", **attrs)

    return [
        node("ReduceMean", [x, "tile_axes_hw"], "own_mean", keepdims=1),
        node("Sub", [x, f"{p}_own_mean"], "own_c"),
        node("Mul", [f"{p}_own_c", f"{p}_own_c"], "own_sq"),
        node("ReduceMean", [f"{p}_own_sq", "tile_axes_hw"], "own_var", keepdims=1),
        node("Mul", [mean, "tile_keep4"], "kmean"),
        node("Mul", [f"{p}_own_mean", "tile_take4"], "tmean"),
        node("Add", [f"{p}_kmean", f"{p}_tmean"], "bmean"),
        node("Mul", [mean, mean], "m2"),
        node("Add", [var, f"{p}_m2"], "s2"),
        node("Mul", [f"{p}_own_mean", f"{p}_own_mean"], "own_m2"),
        node("Add", [f"{p}_own_var", f"{p}_own_m2"], "own_s2"),
        node("Mul", [f"{p}_s2", "tile_keep4"], "ks2"),
        node("Mul", [f"{p}_own_s2", "tile_take4"], "ts2"),
        node("Add", [f"{p}_ks2", f"{p}_ts2"], "bs2"),
        node("Mul", [f"{p}_bmean", f"{p}_bmean"], "bmean_sq"),
        node("Sub", [f"{p}_bs2", f"{p}_bmean_sq"], "bvar_raw"),
        node("Max", [f"{p}_bvar_raw", "tile_zero"], "bvar"),
        node("Squeeze", [f"{p}_bmean", "tile_axes_hw"], "bmean2"),
        node("Squeeze", [f"{p}_bvar", "tile_axes_hw"], "bvar2"),
    ]


def _release_memory_after():
    """ONNX Runtime run options that hand the arena's free memory back after the run, so that the stats pass's
    peak is not still held while the tiles run (the tiles' own arena is kept: they reuse it)."""
    try:
        import onnxruntime as ort
    except ImportError:  # the graphs run on OpenVINO, which has no arena to shrink
        return None
    options = ort.RunOptions()
    options.add_run_config_entry("memory.enable_memory_arena_shrinkage", "cpu:0")
    return options


def _spans(length: int, core: int, margin: int) -> list[tuple[int, int, int, int]]:
    """(start, stop) of each kept part and (start, stop) of the tile run for it, along one axis (`core` and
    `margin` are multiples of the network's downsampling, so every start is too)."""
    spans = []
    for start in range(0, length, core):
        stop = min(length, start + core)
        spans.append((start, stop, max(0, start - margin), min(length, stop + margin)))
    return spans


class TiledBackend(Backend):
    """Wraps a backend that takes statistics (ONNX Runtime, OpenVINO): images above `tile_above` pixels run in
    tiles with thumbnail statistics."""

    def __init__(self, inner, arch: str, tile: int = DEFAULT_TILE, tile_above: float = DEFAULT_TILE_ABOVE,
                 stats_pixels: int = DEFAULT_STATS_PIXELS):  # fmt: skip
        c = inner.contract
        if (c.layout, c.dtype) != ("NHWC", "uint8") or c.fixed_size:
            raise TilingUnavailable("only models with uint8 N×H×W×3 input of any size (our exports) run in tiles")
        if arch not in RECEPTIVE_MARGIN:
            raise TilingUnavailable(f"unknown receptive field for arch {arch!r}")
        if tile < 64 or tile % ALIGN[arch]:
            raise ValueError(f"the tile side must be a multiple of {ALIGN[arch]} ({arch}), at least 64, not {tile}")
        self.inner, self.name, self.contract, self.device = inner, inner.name, c, inner.device
        self.tile, self.tile_above, self.stats_pixels = tile, tile_above, stats_pixels
        self.margin = RECEPTIVE_MARGIN[arch]
        self._sessions: tuple[InferenceSession, InferenceSession] | None = None  # stats graph, tile graph
        self._masked_session = None

    @property
    def notes(self) -> tuple[str, ...]:  # type: ignore[override]
        return self.inner.notes

    @classmethod
    def wrap(cls, inner, tile: int = DEFAULT_TILE, tile_above: float = DEFAULT_TILE_ABOVE) -> TiledBackend:
        return cls(inner, inner.metadata.get("arch", ""), tile, tile_above)

    def _open(self):
        if self._sessions is None:
            try:
                import onnx  # noqa: F401
            except ImportError:
                raise TilingUnavailable("tiling needs the onnx package (pip install onnx)") from None
            data = Path(self.inner.path).read_bytes()
            self._sessions = (self.inner.session_like(stats_graph(data)), self.inner.session_like(tile_graph(data)))
        return self._sessions

    def stats(self, batch: np.ndarray, weights: np.ndarray | None = None) -> np.ndarray:
        """Every instance norm's mean and variance, measured on a thumbnail of each image (N×S float32). `weights`
        (N×H×W, 0–1): each pixel counts that much (a cut-out's opacity); None: every pixel counts fully."""
        _, h, w, _ = batch.shape
        scale = min(1.0, (self.stats_pixels / (h * w)) ** 0.5)
        size = (max(self.contract.min_size, round(w * scale)), max(self.contract.min_size, round(h * scale)))

        def thumbnails(images: np.ndarray) -> np.ndarray:
            if size == (w, h):
                return images
            return np.stack([np.asarray(Image.fromarray(i).resize(size, Image.Resampling.LANCZOS)) for i in images])

        stats_session, _ = self._open()
        feeds = {stats_session.get_inputs()[0].name: thumbnails(batch)}
        if weights is not None:
            stats_session = self._masked()
            feeds[WEIGHTS] = np.ascontiguousarray(thumbnails(weights.astype(np.float32))[:, None])
        return stats_session.run(None, feeds, _release_memory_after())[0]

    def _masked(self):
        if self._masked_session is None:
            self._masked_session = self.inner.session_like(stats_graph(Path(self.inner.path).read_bytes(), True))
        return self._masked_session

    def run_masked(self, batch: np.ndarray, weights: np.ndarray) -> np.ndarray:
        """Run `batch` with instance-norm statistics taken from each pixel in proportion to `weights` (N×H×W,
        0–1): a cut-out is normalized by its subject alone. In tiles when the images are large."""
        return self.run_tiles(batch, self.stats(batch, weights))

    def run_tiles(self, batch: np.ndarray, stats: np.ndarray) -> np.ndarray:
        _, tile_session = self._open()
        name = tile_session.get_inputs()[0].name
        _, h, w, _ = batch.shape
        out = np.empty_like(batch)
        for y0, y1, ys, ye in _spans(h, self.tile, self.margin):
            for x0, x1, xs, xe in _spans(w, self.tile, self.margin):
                part = np.ascontiguousarray(batch[:, ys:ye, xs:xe])
                result = tile_session.run(None, {name: part, STATS: stats})[0]
                out[:, y0:y1, x0:x1] = result[:, y0 - ys : y1 - ys, x0 - xs : x1 - xs]
        return out

    def run(self, batch: np.ndarray) -> np.ndarray:
        if batch.shape[1] * batch.shape[2] <= self.tile_above:
            return self.inner.run(batch)
        return self.run_tiles(batch, self.stats(batch))

    def close(self) -> None:
        self._sessions = self._masked_session = None
        self.inner.close()
