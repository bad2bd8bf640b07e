"""User-facing errors.

Anything a user can cause (a wrong path, a bad option, malformed data) raises
:class:`VrnnError` with a one-line message that names the file or field and the fix.
The CLI prints these without a traceback and exits non-zero; anything else is a bug.
"""
from __future__ import annotations

import errno
import os


class VrnnError(Exception):
    """A mistake in the user's input, reported as one line."""


class TrainingDiverged(VrnnError):
    """The loss became non-finite; the message says which checkpoint, if any, keeps the last good state."""


# errno -> what went wrong with a path the user chose; only these are the user's to fix (others are bugs)
UNWRITABLE = {
    errno.ENOSPC: "no space left on the device",
    errno.EDQUOT: "disk quota exceeded",
    errno.EROFS: "read-only file system",
    errno.EACCES: "permission denied",
    errno.EPERM: "operation not permitted",
    errno.ENOTDIR: "a part of the path is not a folder",
    errno.EISDIR: "is a folder",
    errno.EEXIST: "a file of that name is in the way",
    errno.ENOENT: "the folder cannot be created there",
    errno.ENAMETOOLONG: "the name is too long",
}


class UnwritablePath(VrnnError):
    """A file or folder the user chose (``setting``: ``--out``, ``$VRNN_DATA_DIR``, ...) could not be written."""

    def __init__(self, path: str | os.PathLike, err: OSError, setting: str = "--out"):
        self.path, self.err, self.setting = os.fspath(path), err, setting
        if err.errno in (errno.ENOSPC, errno.EDQUOT):
            fix = f"free space on {_mount_point(self.path)} or choose another {setting}"
        else:
            fix = f"choose a writable {setting}"
        super().__init__(f"{self.path}: cannot write ({UNWRITABLE[err.errno]}); {fix}")

    @staticmethod
    def converts(err: BaseException) -> bool:
        return isinstance(err, OSError) and err.errno in UNWRITABLE

    def for_setting(self, setting: str) -> UnwritablePath:
        """The same error, naming the setting that chose the path."""
        return UnwritablePath(self.path, self.err, setting)


def _mount_point(path: str) -> str:
    """The file system ``path`` lies on, named by its mount point (what ``df`` shows)."""
    p = os.path.abspath(path)
    while not os.path.exists(p) or not os.path.ismount(p):
        parent = os.path.dirname(p)
        if parent == p:
            break
        p = parent
    return p


def memory_hint(err: BaseException, command: str | None) -> str | None:
    """The one-line message for an allocation that failed (``None`` when ``err`` is something else):
    what ran out and the setting of ``command`` that lowers the memory it needs."""
    text = str(err)
    oom = isinstance(err, MemoryError) or type(err).__name__ == "OutOfMemoryError" or (
        isinstance(err, RuntimeError) and ("can't allocate memory" in text or "out of memory" in text.lower()))
    if not oom:
        return None
    what = "GPU memory" if "CUDA" in text or "GPU" in text else "memory"
    lower = MEMORY_SETTINGS.get(command, "the sizes of the run")
    return f"out of {what} in `vrnn {command}`; lower {lower} and run again"


MEMORY_SETTINGS = {  # command -> the settings that size its largest tensors
    "eval": "--iw-samples or --batch-size (each batch is tiled --iw-samples times)",
    "train": "train.batch_size or train.eval_batch_size (--set train.batch_size=N)",
    "sample": "--num or --steps",
    "analyze": "--seconds",
    "waveforms": "--seconds",
    "experiment": "train.batch_size or train.eval_batch_size (--set train.batch_size=N)",
}
