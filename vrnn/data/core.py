"""The in-memory data set, its on-disk form, normalisation and batching."""
from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar

import numpy as np
import torch

from ..errors import VrnnError
from ..io import atomic_write
from ..settings import Check, Checked, matches, one_of

SPLITS = ("train", "valid", "test")


@dataclass(frozen=True)
class DataConfig(Checked):
    """``[data]`` of a config: which data set, in which format, normalised how."""

    source: str = "chorales"  # a prepared data set name or a path to a data file
    format: str = "auto"  # auto | prepared | boulanger | srnn | arrays | stroke3
    normalize: str = "auto"  # auto (global for real-valued emissions) | global | none | per_feature

    FORMATS: ClassVar[tuple[str, ...]] = ("auto", "prepared", "boulanger", "srnn", "arrays", "stroke3")
    NORMALIZE: ClassVar[tuple[str, ...]] = ("auto", "global", "none", "per_feature")
    SECTION: ClassVar[str] = "data"
    CHECKS: ClassVar[dict[str, Check]] = {
        "source": matches(r".*\S.*", "a prepared data set's name (e.g. chorales) or a data file's path"),
        "format": one_of(FORMATS),
        "normalize": one_of(NORMALIZE),
    }


@dataclass
class SequenceData:
    """Splits of variable-length sequences, each a float32 array (T_i, D)."""

    splits: dict[str, list[np.ndarray]]
    meta: dict = field(default_factory=dict)  # name, kind (pianoroll | real | ...), framing, ...

    @property
    def x_dim(self) -> int:
        return int(self.splits["train"][0].shape[1])

    def describe(self) -> str:
        parts = [f"{s}: {len(v)} sequences, {sum(len(a) for a in v)} steps" for s, v in self.splits.items()]
        return f"{self.meta.get('name', '?')} ({self.x_dim} dims) — " + "; ".join(parts)


def data_dir() -> Path:
    """Where prepared data sets live: $VRNN_DATA_DIR, else ~/.cache/vrnn/data."""
    return Path(os.environ.get("VRNN_DATA_DIR", Path.home() / ".cache" / "vrnn" / "data"))


def validate_sequences(seqs: list, where: str, x_dim: int | None = None) -> list[np.ndarray]:
    """Check shape, emptiness and finiteness; return float32 arrays. Errors name ``where``."""
    out = []
    for i, a in enumerate(seqs):
        a = np.asarray(a)
        if a.ndim == 1 and x_dim == 1:
            a = a[:, None]
        if a.ndim != 2:
            raise VrnnError(f"{where}: sequence {i} has shape {a.shape}; each sequence must be (time, features)")
        if a.shape[0] == 0:
            raise VrnnError(f"{where}: sequence {i} is empty (0 time steps); remove it from the data")
        if not np.issubdtype(a.dtype, np.number) and a.dtype != bool:
            raise VrnnError(f"{where}: sequence {i} has non-numeric dtype {a.dtype}; store numbers")
        a = a.astype(np.float32)
        if x_dim is not None and a.shape[1] != x_dim:
            raise VrnnError(
                f"{where}: sequence {i} has {a.shape[1]} features but the model expects {x_dim} "
                f"(model.x_dim); use data with {x_dim} features or train a new model"
            )
        x_dim = a.shape[1]
        if not np.isfinite(a).all():
            bad = np.argwhere(~np.isfinite(a))[0]
            raise VrnnError(
                f"{where}: sequence {i} has a non-finite value ({a[tuple(bad)]}) at step {bad[0]}, "
                f"feature {bad[1]}; remove or impute NaN/inf before training"
            )
        out.append(a)
    if not out:
        raise VrnnError(f"{where}: no sequences; the split must hold at least one")
    return out


def save_prepared(path: Path, data: SequenceData) -> None:
    """Write ``data`` as one .npz (no pickles): per split the concatenated steps and lengths."""
    arrays = {}
    for split, seqs in data.splits.items():
        arrays[f"{split}_data"] = np.concatenate(seqs).astype(np.float32)
        arrays[f"{split}_lengths"] = np.array([len(a) for a in seqs], dtype=np.int64)
    arrays["meta"] = np.array(json.dumps(data.meta))
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_write(path) as tmp:
        np.savez_compressed(tmp, **arrays)


def load_prepared(path: Path) -> SequenceData:
    try:
        with np.load(path, allow_pickle=False) as f:
            meta = json.loads(str(f["meta"]))
            splits = {}
            for split in SPLITS:
                if f"{split}_data" in f:
                    data, lengths = f[f"{split}_data"], f[f"{split}_lengths"]
                    splits[split] = np.split(data, np.cumsum(lengths)[:-1])
    except (OSError, ValueError, KeyError) as e:
        raise VrnnError(f"{path}: not a prepared vrnn data set ({e}); run `vrnn prepare` again") from None
    return SequenceData(splits, meta)


@dataclass(frozen=True)
class Normalizer:
    """x_model = (x - mean) / std with global scalars from the training split (Chung et al. §4).

    ``columns`` names the features normalised (None: all). Pen strokes normalise only the
    offsets (Graves 2013): the pen-up bit stays 0/1.
    """

    mean: float = 0.0
    std: float = 1.0
    columns: tuple[int, ...] | None = None

    def __post_init__(self):
        if self.columns is not None:  # checkpoints store a list
            object.__setattr__(self, "columns", tuple(int(c) for c in self.columns))

    @classmethod
    def fit(cls, seqs: list[np.ndarray], columns: tuple[int, ...] | None = None) -> "Normalizer":
        allx = np.concatenate(seqs).astype(np.float64)
        if columns is not None:
            allx = allx[:, list(columns)]
        std = float(allx.std())
        return cls(float(allx.mean()), std if std > 0 else 1.0, columns)

    @property
    def identity(self) -> bool:
        return self.mean == 0.0 and self.std == 1.0

    def _apply(self, a, fn):
        if self.columns is None:
            return fn(a)
        out = a.clone() if isinstance(a, torch.Tensor) else np.array(a, dtype=np.result_type(a, np.float32))
        cols = list(self.columns)
        out[..., cols] = fn(out[..., cols])
        return out

    def __call__(self, a: np.ndarray) -> np.ndarray:
        return self._apply(np.asarray(a), lambda v: (v - self.mean) / self.std).astype(np.float32)

    def invert(self, a):
        return self._apply(a, lambda v: v * self.std + self.mean)

    def log_jacobian(self, x_dim: int) -> float:
        """log |d x_model / d x| per time step: add to a model-unit log-density for original units."""
        n = x_dim if self.columns is None else len(self.columns)
        return -n * float(np.log(self.std))

    def describe(self) -> str:
        where = "" if self.columns is None else f" on features {list(self.columns)} only"
        return f"normalised: (x - {self.mean:.6g}) / {self.std:.6g}{where}, global train mean/std"


def pad_batch(seqs: list[np.ndarray], device=None) -> tuple[torch.Tensor, torch.Tensor]:
    """Pad to (B, T_max, D) with zeros; mask (B, T_max) is True on real steps."""
    lengths = [len(a) for a in seqs]
    B, T, D = len(seqs), max(lengths), seqs[0].shape[1]
    x = np.zeros((B, T, D), dtype=np.float32)
    mask = np.zeros((B, T), dtype=bool)
    for i, a in enumerate(seqs):
        x[i, : len(a)] = a
        mask[i, : len(a)] = True
    return torch.from_numpy(x).to(device), torch.from_numpy(mask).to(device)
