"""Where a config's ``data.source`` points, in which format, and reading it (``load_dataset``); a user's
sequences from any data argument (``read_sequences``: ``score --data``, ``sample --prime``, ``analyze --input``)."""
from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np

from ..errors import VrnnError
from .core import SPLITS, DataConfig, SequenceData, load_prepared, validate_sequences
from .audio import AUDIO_EXTENSIONS, read_frames
from .readers import read_arrays, read_boulanger, read_srnn_npz
from .resolve import locate
from .strokes import is_stroke3_npz, read_stroke3_npz


def _resolve(cfg: DataConfig) -> tuple[Path, str]:
    path, prepared = locate(cfg.source)
    if prepared:
        return path, "prepared"
    fmt = cfg.format
    if fmt == "auto":
        if path.suffix in (".pickle", ".pkl"):
            fmt = "boulanger"
        elif path.suffix == ".npz":
            keys = set(_read_or_fail(path, lambda: np.load(path, allow_pickle=False).files))
            fmt = "srnn" if "x_train" in keys else "prepared" if "meta" in keys else "arrays"
            if fmt == "arrays":
                fmt = "stroke3" if is_stroke3_npz(path) else fmt  # drawings of varying length as object arrays
        elif path.suffix == ".npy":
            fmt = "arrays"
        else:
            raise VrnnError(f"data.source {path}: unknown file type {path.suffix!r}; use .pickle, .npz or .npy "
                            f"or set data.format")
    return path, fmt


def _read_or_fail(path: Path, read):
    """Run a reader; a file it cannot parse becomes one VrnnError naming the file."""
    try:
        return read()
    except VrnnError:
        raise
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as e:
        raise VrnnError(f"{path}: cannot read this data file ({type(e).__name__}: {e}); check the file or "
                        f"re-create it") from None


def load_dataset(cfg: DataConfig) -> SequenceData:
    """Read the data set a config names and validate every split."""
    path, fmt = _resolve(cfg)
    readers = {"prepared": load_prepared, "boulanger": read_boulanger, "srnn": read_srnn_npz, "arrays": read_arrays,
               "stroke3": read_stroke3_npz}
    if fmt not in readers:
        raise VrnnError(f"unknown data.format {fmt!r}; choose one of {sorted(readers)} or auto")
    data = _read_or_fail(path, lambda: readers[fmt](path))
    data.meta.setdefault("name", path.stem)
    if data.meta.get("source", str(path)) != str(path):  # a prepared set: the folder it was built from
        data.meta.setdefault("prepared_from", data.meta["source"])
    data.meta["source"] = str(path)
    missing = [s for s in SPLITS if s not in data.splits]
    if missing:
        raise VrnnError(f"{path}: no {missing[0]!r} split; provide train, valid and test")
    x_dim = None
    for split in SPLITS:
        data.splits[split] = validate_sequences(data.splits[split], f"{path} [{split}]", x_dim)
        x_dim = data.splits[split][0].shape[1]
    return data


def is_split_file(path: Path) -> bool:
    """True for a file that holds a whole data set (train/valid/test): a pickle or a data set's .npz."""
    if path.suffix in (".pickle", ".pkl"):
        return True
    if path.suffix != ".npz":
        return False
    try:
        with np.load(path, allow_pickle=False) as f:
            keys = set(f.files)
    except (OSError, ValueError) as e:
        raise VrnnError(f"{path}: cannot read the arrays ({e}); save them with numpy.save/savez") from None
    return bool(keys & {"x_train", "meta", "train"})


MANY, ONE = "(T, D) for one sequence or (N, T, D) for N", "(T, D) or (1, T, D), one sequence"


def read_sequences(source: str | Path, setting: str, x_dim: int | None = None, meta: dict | None = None,
                   seconds: float | None = None, one: bool = False) -> list[np.ndarray]:
    """A user's sequences in original units, from anything :func:`locate` accepts: a prepared name or a data
    set's file (its test split), a .npy (T, D) or (N, T, D), every array of a .npz without splits, or a
    recording framed like the checkpoint's audio (``meta``). ``seconds`` keeps only the first S seconds;
    ``one``: arrays must hold one sequence, (T, D) or (1, T, D) (a data set's file still gives its test split)."""
    meta = meta or {}
    path, prepared = locate(str(source), setting, "give a .npy, .npz or audio file of sequences, or a prepared "
                                                  "data set's name")
    suffix = path.suffix.lower()
    if prepared or is_split_file(path):
        seqs = load_dataset(DataConfig(source=str(path))).splits["test"]
    elif suffix in AUDIO_EXTENSIONS:
        return [read_frames(path, meta, seconds, setting)]
    elif suffix in (".npy", ".npz"):
        seqs = _read_arrays(path, setting, x_dim, one)
    else:
        raise VrnnError(f"{setting} {path}: unknown file type {path.suffix!r}; use .npy, .npz, .pickle, .wav, "
                        f".flac or .ogg")
    if seconds is not None and "rate" in meta:
        seqs = [a[: max(1, int(round(seconds * meta["rate"] / meta["frame_size"])))] for a in seqs]
    return validate_sequences(seqs, f"{setting} {path}", x_dim)


def _read_arrays(path: Path, setting: str, x_dim: int | None, one: bool) -> list[np.ndarray]:
    """The sequences of a .npy or .npz: each array (T, D), or (N, T, D) for N sequences (``one``: N = 1, and one
    array); (T,) too for one-feature models."""
    try:
        loaded = np.load(path, allow_pickle=False)
        if path.suffix == ".npz":
            with loaded as f:
                arrays = [f[k] for k in sorted(f.files)]
        else:
            arrays = [loaded]
    except (OSError, ValueError) as e:
        raise VrnnError(f"{setting} {path}: cannot read the arrays ({e}); save them with numpy.save/savez") from None
    shapes = ONE if one else MANY
    for a in arrays:
        if a.ndim not in (2, 3) and not (a.ndim == 1 and x_dim == 1):
            raise VrnnError(f"{setting} {path}: an array of shape {a.shape}; give {shapes}")
    seqs = [s for a in arrays for s in (a if a.ndim == 3 else [a])]
    if one and len(seqs) != 1:
        what = f"shape {arrays[0].shape}" if len(arrays) == 1 else f"{len(arrays)} arrays"
        raise VrnnError(f"{setting} {path}: {len(seqs)} sequences ({what}); give {shapes}, e.g. np.save(FILE, x[i])")
    return seqs
