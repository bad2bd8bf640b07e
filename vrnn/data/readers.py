"""Readers for the published formats and for a user's own arrays."""
from __future__ import annotations

import pickle
import zipfile
from pathlib import Path

import numpy as np

from ..errors import VrnnError
from .core import SPLITS, SequenceData
from .splits import seeded_split

PIANO_LOW, PIANO_KEYS = 21, 88  # MIDI 21 (A0) .. 108 (C8)


def lowest_pitch(meta: dict, keys: int) -> int | None:
    """The MIDI pitch of column 0 of a data set's frames (``meta``: its metadata, e.g. a checkpoint's
    ``data_meta``): :data:`PIANO_LOW` for the 88-key piano rolls every reader and recipe here writes (the JSB
    pickle, the SRNN arrays, ``vrnn prepare midi``), None for other data."""
    return PIANO_LOW if meta.get("kind") == "pianoroll" and keys == PIANO_KEYS else None


class _PlainUnpickler(pickle.Unpickler):
    """Only plain containers and numbers (numpy scalars included): a data pickle must not run code."""

    _NUMPY_SCALARS = {("numpy.core.multiarray", "scalar"), ("numpy._core.multiarray", "scalar"), ("numpy", "dtype")}

    def find_class(self, module, name):
        if (module, name) in self._NUMPY_SCALARS:
            return np.dtype if name == "dtype" else _numpy_scalar
        raise pickle.UnpicklingError(f"refusing to load {module}.{name}: a data pickle may hold only lists, "
                                     f"tuples, dicts and numbers")


def _numpy_scalar(dtype, data=None):
    """Rebuild a numpy scalar from its dtype and raw bytes (what numpy's pickles store)."""
    if data is None:
        return np.zeros((), dtype)[()]
    if isinstance(data, str):  # Python 2 pickles read with encoding="latin1"
        data = data.encode("latin1")
    return np.frombuffer(data, dtype=dtype)[0]


def notes_to_roll(steps, where: str) -> np.ndarray:
    """A piece as a list of steps, each an iterable of MIDI note numbers -> (T, 88) 0/1 array."""
    roll = np.zeros((len(steps), PIANO_KEYS), dtype=np.float32)
    for t, notes in enumerate(steps):
        for n in notes:
            k = int(n) - PIANO_LOW
            if not 0 <= k < PIANO_KEYS:
                raise VrnnError(f"{where}: MIDI note {n} at step {t} is outside the piano range 21..108")
            roll[t, k] = 1.0
    return roll


def read_boulanger(path: Path) -> SequenceData:
    """The Boulanger-Lewandowski et al. (2012) pickle: {split: [piece: [step: (notes...)]]}.

    Split names ``train``/``valid``/``test``; each piece becomes an 88-key piano roll at
    the pickle's framing (quarter notes for JSB Chorales).
    """
    try:
        with open(path, "rb") as f:
            raw = _PlainUnpickler(f, encoding="latin1").load()
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError) as e:
        raise VrnnError(f"{path}: not a Boulanger-Lewandowski piano-roll pickle ({e})") from None
    if not isinstance(raw, dict) or not all(s in raw for s in SPLITS):
        raise VrnnError(f"{path}: expected a dict with keys train, valid and test")
    splits = {s: [notes_to_roll(p, f"{path} [{s}] piece {i}") for i, p in enumerate(raw[s])] for s in SPLITS}
    return SequenceData(splits, {"name": path.stem, "kind": "pianoroll", "framing": "as in the pickle",
                                 "step_seconds": None})


def read_srnn_npz(path: Path) -> SequenceData:
    """The arrays of Fraccaro et al. (2016): x_{split} (N, T, 88) with optional mask_{split}.

    Training and validation data come as 100-step chunks; test data as whole pieces with
    a mask. The u_* arrays (x shifted by one step) are not needed: models shift x themselves.
    """
    splits = {}
    with np.load(path, allow_pickle=False) as f:
        for s in SPLITS:
            if f"x_{s}" not in f:
                raise VrnnError(f"{path}: no x_{s} array; this is not an SRNN-format npz")
            x = f[f"x_{s}"]
            if x.ndim != 3:
                raise VrnnError(f"{path}: x_{s} has shape {x.shape}; expected (N, T, D)")
            lengths = f[f"mask_{s}"].sum(1).astype(int) if f"mask_{s}" in f else np.full(len(x), x.shape[1])
            splits[s] = [x[i, :n] for i, n in enumerate(lengths)]
    return SequenceData(splits, {"name": path.stem, "kind": "pianoroll", "framing": "SRNN arrays"})


def read_arrays(path: Path) -> SequenceData:
    """A user's own arrays.

    ``.npz`` with arrays ``train``, ``valid``, ``test``; each either (N, T, D) with an
    optional ``{split}_mask`` (N, T) or ``{split}_lengths`` (N,), or (sum T, D) with
    ``{split}_lengths``. ``.npy``: one (N, T, D) array, split 80/10/10 by sequence with seed 0.
    """
    try:
        if path.suffix == ".npy":
            x = np.load(path, allow_pickle=False)
            if x.ndim != 3:
                raise VrnnError(f"{path}: array has shape {x.shape}; a .npy must be (sequences, time, features)")
            parts = seeded_split(list(range(len(x))), 0, (0.8, 0.1, 0.1))
            return SequenceData({s: [x[i] for i in idx] for s, idx in parts.items()},
                                {"name": path.stem, "kind": "real", "split": "80/10/10 by sequence, seed 0"})
        splits = {}
        with np.load(path, allow_pickle=False) as f:
            for s in SPLITS:
                if s not in f:
                    raise VrnnError(f"{path}: no array named {s!r}; a .npz needs train, valid and test")
                x = f[s]
                if f"{s}_lengths" in f:
                    lengths = f[f"{s}_lengths"].astype(int)
                elif f"{s}_mask" in f:
                    lengths = f[f"{s}_mask"].sum(1).astype(int)
                else:
                    lengths = None
                if x.ndim == 3:
                    lengths = np.full(len(x), x.shape[1]) if lengths is None else lengths
                    splits[s] = [x[i, :n] for i, n in enumerate(lengths)]
                elif x.ndim == 2 and lengths is not None:
                    if lengths.sum() != len(x):
                        raise VrnnError(f"{path}: {s}_lengths sum to {lengths.sum()} but {s} has {len(x)} rows")
                    splits[s] = np.split(x, np.cumsum(lengths)[:-1])
                else:
                    raise VrnnError(f"{path}: {s} has shape {x.shape}; use (N, T, D), or (steps, D) with {s}_lengths")
    except (OSError, ValueError, zipfile.BadZipFile) as e:
        raise VrnnError(f"{path}: cannot read the arrays ({e}); save them with numpy.save/savez") from None
    return SequenceData(splits, {"name": path.stem, "kind": "real"})
