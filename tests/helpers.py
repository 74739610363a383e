"""Small inputs made on the spot: the tests need no downloaded or shared files."""

from __future__ import annotations

import os
import shutil
import socket
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from train.vgg import conv_shapes


def photo_like(size: tuple[int, int], seed: int) -> np.ndarray:
    """An H×W×3 uint8 image with smooth gradients, edges and noise, so that VGG features are not degenerate."""
    h, w = size
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w] / max(h, w)
    channels = []
    for c in range(3):
        fx, fy, phase = rng.uniform(2, 9), rng.uniform(2, 9), rng.uniform(0, 6.3)
        channels.append(0.5 + 0.35 * np.sin(fx * xx * 6.3 + phase) * np.cos(fy * yy * 6.3 + c))
    image = np.stack(channels, axis=-1)
    x0, y0 = rng.integers(0, w // 2 + 1), rng.integers(0, h // 2 + 1)
    image[y0 : y0 + h // 3, x0 : x0 + w // 3] = rng.uniform(0, 1, 3)
    image += rng.normal(0, 0.03, image.shape)
    return (np.clip(image, 0, 1) * 255).astype(np.uint8)


def write_images(folder: Path, count: int, size: tuple[int, int] = (40, 48), suffix: str = ".png") -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(count):
        path = folder / f"photo_{i:02d}{suffix}"
        Image.fromarray(photo_like(size, seed=i)).save(path)
        paths.append(path)
    return paths


def random_vgg_state(num_convs: int, arch: str = "vgg16", seed: int = 0, prefix: str = "") -> dict[str, torch.Tensor]:
    """A torchvision-layout VGG state dict (`N.weight` at torchvision's indices) with random weights."""
    generator = torch.Generator().manual_seed(seed)
    from train.vgg import layer_names

    conv_indices = [i for i, name in enumerate(layer_names(arch)) if name.startswith("conv")]
    state = {}
    for index, shape in zip(conv_indices[:num_convs], conv_shapes(arch), strict=False):
        fan_in = shape[1] * 9
        state[f"{prefix}{index}.weight"] = torch.randn(shape, generator=generator) * (2.0 / fan_in) ** 0.5
        state[f"{prefix}{index}.bias"] = torch.randn(shape[0], generator=generator) * 0.01
    return state


def write_vgg(path: Path, num_convs: int = 4, arch: str = "vgg16") -> Path:
    torch.save(random_vgg_state(num_convs, arch), path)
    return path


def assert_one_line_error(result, *fragments: str) -> None:
    """A CLI result that failed on bad input: exit code 2 and one `error:` line naming what is wrong."""
    assert result.exit_code == 2, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    for fragment in fragments:
        assert fragment in lines[0], lines[0]


def free_port() -> int:
    """A loopback port that is free, with the next two free as well (Triton takes HTTP, gRPC and metrics)."""
    while True:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        if port < 65000 and all(_free(port + i) for i in (1, 2)):
            return port


def _free(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
            return True
        except OSError:
            return False


def processes_mentioning(text: str) -> list[str]:
    """Command lines of the running processes (other than this one) that contain `text`."""
    found = []
    for proc in Path("/proc").iterdir():
        try:
            cmdline = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if text in cmdline and proc.name != str(os.getpid()):
            found.append(cmdline)
    return found


def descendants(pid: int) -> set[int]:
    """Every process below `pid` in the process tree."""
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    found, todo = set(), [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            if child not in found:
                found.add(child)
                todo.append(child)
    return found


def listening_addresses(pids: set[int]) -> list[tuple[str, int, int]]:
    """(address, port, pid) of each TCP socket that these processes listen on, read from /proc."""
    owners = {}
    for pid in pids:
        try:
            for fd in Path(f"/proc/{pid}/fd").iterdir():
                link = os.readlink(fd)
                if link.startswith("socket:["):
                    owners[int(link[8:-1])] = pid
        except OSError:  # the process ended meanwhile
            continue
    found = []
    for table, family in (("tcp", socket.AF_INET), ("tcp6", socket.AF_INET6)):
        for line in Path(f"/proc/net/{table}").read_text().splitlines()[1:]:
            fields = line.split()
            address, port = fields[1].split(":")
            if fields[3] != "0A" or int(fields[9]) not in owners:  # 0A: LISTEN
                continue
            raw = b"".join(bytes.fromhex(address[i : i + 8])[::-1] for i in range(0, len(address), 8))
            found.append((socket.inet_ntop(family, raw), int(port, 16), owners[int(fields[9])]))
    return found


@contextmanager
def ray_sandbox() -> Iterator[Path]:
    """Settings for a Ray started by a test: no usage stats, no token file in the home folder, its files under a new
    temporary folder (a short path: Ray's AF_UNIX sockets live there, limit 107 characters). Checks afterwards that
    nothing was written to ~/.ray. Listening on loopback only is left to the code under test."""
    temp = Path(tempfile.mkdtemp(prefix="ray", dir="/tmp"))
    home_ray = Path.home() / ".ray"
    had_home_ray = home_ray.exists()
    with pytest.MonkeyPatch.context() as patch:
        for key, value in {"RAY_USAGE_STATS_ENABLED": "0", "RAY_AUTH_MODE": "disabled", "RAY_TMPDIR": str(temp),
                           "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": ""}.items():  # fmt: skip
            patch.setenv(key, value)  # and restored afterwards, including what the code under test sets
        patch.delenv("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER")
        try:
            yield temp
        finally:
            shutil.rmtree(temp, ignore_errors=True)
    assert home_ray.exists() == had_home_ray


def nchw_model(path, nodes, inits=(), shape=("N", 3, "H", "W"), out_shape=("N", 3, "H", "W"), opset=17):
    """A small foreign ONNX model: x -> nodes -> y, float NCHW (a fixed size where the shape gives numbers)."""
    import onnx
    from onnx import TensorProto, helper

    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, list(shape))
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, list(out_shape))
    graph = helper.make_graph(nodes, "g", [x], [y], list(inits))
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)]), path)
    return path
