"""Where a config's ``data.source`` points, in which format, and reading it (``load_dataset``)."""
from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np

from ..errors import VrnnError
from .core import SPLITS, DataConfig, SequenceData, load_prepared, validate_sequences
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
