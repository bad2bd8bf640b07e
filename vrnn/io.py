"""Writing files a user keeps: atomically, never over something that exists unless asked.

Every file the library writes (checkpoints, prepared data, arrays, MIDI, WAV, PNG) goes
through :func:`atomic_write`: the content is written to a temporary file in the same
folder, flushed to disk, then renamed over the target, so a crash or a full disk never
leaves a half-written file and never destroys the previous one. A failed write removes
its temporary file.
"""
from __future__ import annotations

import os
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from .errors import VrnnError


@contextmanager
def atomic_write(path: str | Path) -> Iterator[Path]:
    """``with atomic_write(p) as tmp: write(tmp)`` writes ``p`` all at once or not at all.

    ``tmp`` keeps ``p``'s suffix (numpy, matplotlib and soundfile choose formats by it).
    """
    path = Path(path)
    tmp = path.with_name(f".{path.stem}.tmp{path.suffix}")
    try:
        yield tmp
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def check_writable(paths: list[Path], overwrite: bool) -> None:
    """Refuse to replace existing outputs unless asked."""
    existing = [str(p) for p in paths if Path(p).exists()]
    if existing and not overwrite:
        raise VrnnError(f"{existing[0]}: already exists; pass --overwrite to replace it or choose another --out")
