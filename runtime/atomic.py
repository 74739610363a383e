"""Files that appear whole or not at all: the one way the toolkit writes a file (torch-free; every stage uses it).

A file is written under a temporary name in the target's folder and renamed over the target when complete
(`os.replace` is atomic within a file system), so a reader, a resumed job or a crash never meets half a file. The
temporary name is short and of fixed length, `.toolkit-<16 hex of the target's name>-<8 random hex>.partial`, so a
target whose own name is at the file system's 255-byte limit can still be written, and a later run can find the
temporaries that a killed run left for its targets (`stale_temporaries`).
"""

from __future__ import annotations

import hashlib
import os
import uuid
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path

PREFIX, SUFFIX = ".toolkit-", ".partial"


def _key(name: str) -> str:
    return hashlib.sha256(name.encode("utf-8", "surrogateescape")).hexdigest()[:16]


def temporary_name(target: Path) -> Path:
    return target.with_name(f"{PREFIX}{_key(target.name)}-{uuid.uuid4().hex[:8]}{SUFFIX}")


def stale_temporaries(folder: Path, names: Iterable[str]) -> list[Path]:
    """Temporary files in `folder` that were being written for one of `names` (by a run that was killed)."""
    keys = {_key(name) for name in names}
    return [p for p in folder.glob(f"{PREFIX}*{SUFFIX}") if p.name[len(PREFIX) : len(PREFIX) + 16] in keys]


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


@contextmanager
def atomic_path(target: str | Path, durable: bool = False) -> Iterator[Path]:
    """A temporary path to write `target`'s content to; renamed to `target` when the block ends without an
    exception, removed when it raises (Ctrl-C included). `durable`: flush the file to disk before the rename (for
    files a power cut must not leave empty, such as training checkpoints)."""
    target = Path(target)
    tmp = temporary_name(target)
    try:
        yield tmp
        if durable:
            with open(tmp, "rb") as handle:
                os.fsync(handle.fileno())
        os.chmod(tmp, 0o666 & ~_umask())  # some writers create files 0600; give it a normal file's permissions
        os.replace(tmp, target)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def write_atomic(data: bytes, path: str | Path, durable: bool = False) -> None:
    """Write `data` to `path`, whole or not at all."""
    with atomic_path(path, durable) as tmp, open(tmp, "wb") as handle:
        handle.write(data)
