"""User-facing errors.

Anything a user can cause (a wrong path, a bad option, malformed data) raises
:class:`VrnnError` with a one-line message that names the file or field and the fix.
The CLI prints these without a traceback and exits non-zero; anything else is a bug.
"""
from __future__ import annotations

import errno
import os
import shlex


class VrnnError(Exception):
    """A mistake in the user's input, reported as one line."""


class TrainingDiverged(VrnnError):
    """The loss became non-finite; the message says which checkpoint, if any, keeps the last good state."""


class TrainingInterrupted(KeyboardInterrupt):
    """Ctrl-C stopped a training run, its steps saved in ``last.pt``; the message says where it stopped and the
    command that continues it (a ``KeyboardInterrupt``, so code that catches those catches this too)."""

    def __init__(self, step: int, out: str | os.PathLike):
        self.step, self.out = step, os.fspath(out)
        super().__init__(f"interrupted at step {step}; resume with: vrnn train --out {shlex.quote(self.out)} --resume")


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


def check_count(value: int, option: str) -> None:
    """A count the user gives (``--steps``, ``--num``, ``--particles``, ...) is at least 1."""
    if value < 1:
        raise VrnnError(f"{option} must be >= 1, got {value}")


def numpy_scalar(value) -> bool:
    """Whether ``value`` is a numpy scalar (``np.float32(0.5)``, ``np.int64(3)``), without importing numpy."""
    return type(value).__module__ == "numpy" and getattr(value, "ndim", None) == 0 and hasattr(value, "item")


def shown(value) -> str:
    """``value`` as a message shows it: ``repr`` for Python values, a numpy scalar as the plain number (or
    string) it holds, in its own precision (numpy 2's ``repr`` is ``np.float32(6.8370028)``, an f-string's
    ``6.837002754211426``; this is ``6.8370028``)."""
    if isinstance(value, (list, tuple)):
        inner = ", ".join(shown(v) for v in value)
        return f"[{inner}]" if isinstance(value, list) else f"({inner}{',' if len(value) == 1 else ''})"
    if numpy_scalar(value):
        plain = value.item()
        return repr(plain) if isinstance(plain, (str, bytes)) else str(value)
    return repr(value)


def with_article(noun: str) -> str:
    """``an int``, ``a float``: the noun with its indefinite article."""
    return f"{'an' if noun[:1].lower() in 'aeiou' else 'a'} {noun}"


# the errnos that mean the user may not write there (as opposed to: there is no room)
NOT_WRITABLE = {errno.EROFS, errno.EACCES, errno.EPERM}


class UnwritablePath(VrnnError):
    """A file or folder the user chose (``setting``: ``--out``, ``$VRNN_DATA_DIR``, ...) could not be written."""

    def __init__(self, path: str | os.PathLike, err: OSError, setting: str = "--out"):
        self.path, self.err, self.setting = os.fspath(path), err, setting
        if err.errno in (errno.ENOSPC, errno.EDQUOT):
            fix = f"free space on {_mount_point(self.path)} or choose another {setting}"
        else:
            fix = f"choose a writable {setting}"
        how = "not writable" if err.errno in NOT_WRITABLE else "cannot write"
        super().__init__(f"{self.path}: {how} ({UNWRITABLE[err.errno]}); {fix}")

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
