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
IN_MEMORY = "in-memory"  # the name (and checkpoint data source) of data passed from Python


@dataclass(frozen=True)
class DataConfig(Checked):
    """``[data]`` of a config: which data set, in which format, normalised how."""

    source: str = "chorales"  # a prepared data set name or a path to a data file
    format: str = "auto"  # auto | prepared | boulanger | srnn | arrays | stroke3
    normalize: str = "auto"  # auto (global for real-valued emissions) | global | none | per_feature
    dequantize: float = 0.0  # the grid width the modelled features were rounded to (data units); 0: off

    FORMATS: ClassVar[tuple[str, ...]] = ("auto", "prepared", "boulanger", "srnn", "arrays", "stroke3")
    NORMALIZE: ClassVar[tuple[str, ...]] = ("auto", "global", "none", "per_feature")
    SECTION: ClassVar[str] = "data"
    CHECKS: ClassVar[dict[str, Check]] = {
        "source": matches(r".*\S.*", "a prepared data set's name (e.g. chorales) or a data file's path"),
        "format": one_of(FORMATS),
        "normalize": one_of(NORMALIZE),
        "dequantize": Check(lambda v: isinstance(v, (int, float)) and not isinstance(v, bool) and v >= 0,
                            "a grid width >= 0 in the data's units (0: off), e.g. 1.0 for integer pixel offsets"),
    }


@dataclass
class SequenceData:
    """Splits of variable-length sequences, each a float32 array (T_i, D)."""

    splits: dict[str, list[np.ndarray]]
    meta: dict = field(default_factory=dict)  # name, kind (pianoroll | real | ...), framing, ...

    @classmethod
    def from_arrays(cls, train, valid, test, name: str = IN_MEMORY, **meta) -> "SequenceData":
        """Data from Python: each split an (N, T, D) array or a list of (T_i, D) arrays; ``meta`` e.g.
        ``kind="real"``. Checkpoints of runs trained on it record ``name`` and the arrays' sha256."""
        splits = {s: validate_sequences(list(v), f"{name} [{s}]") for s, v in zip(SPLITS, (train, valid, test))}
        return cls(splits, {"name": name, **meta})

    @property
    def x_dim(self) -> int:
        return int(self.splits["train"][0].shape[1])

    @property
    def name(self) -> str:
        """``meta["name"]``, or ``in-memory`` for data built in Python without one."""
        return str(self.meta.get("name", IN_MEMORY))

    def describe(self) -> str:
        parts = [f"{s}: {len(v)} sequences, {sum(len(a) for a in v)} steps" for s, v in self.splits.items()]
        return f"{self.name} ({self.x_dim} dims) — " + "; ".join(parts)


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
    """x_model = (x - mean) / std with statistics of the training split.

    ``mean``/``std`` are global scalars (Chung et al. §4: ``data.normalize = "global"``) or one
    value per normalised feature (``"per_feature"``, for features of different scales).
    ``columns`` names the features normalised (None: all). Pen strokes normalise only the
    offsets (Graves 2013): the pen-up bit stays 0/1. Checkpoints store ``dataclasses.asdict``
    of it; files written before per-feature statistics existed hold scalars and load unchanged.
    """

    mean: float | tuple[float, ...] = 0.0
    std: float | tuple[float, ...] = 1.0
    columns: tuple[int, ...] | None = None

    def __post_init__(self):
        if self.columns is not None:  # checkpoints store a list
            object.__setattr__(self, "columns", tuple(int(c) for c in self.columns))
        for name in ("mean", "std"):
            v = getattr(self, name)
            object.__setattr__(self, name, float(v) if np.ndim(v) == 0 else tuple(float(u) for u in v))
        if self.per_feature and (np.ndim(self.mean) == 0 or len(self.mean) != len(self.std)):
            raise ValueError(f"per-feature Normalizer needs as many means as stds, got {self.mean!r}, {self.std!r}")

    @classmethod
    def fit(cls, seqs: list[np.ndarray], columns: tuple[int, ...] | None = None,
            per_feature: bool = False) -> "Normalizer":
        """Mean and standard deviation of every step of ``seqs`` (the training split), over all
        (normalised) features at once or, with ``per_feature``, of each feature; a constant
        feature keeps std 1."""
        allx = np.concatenate(seqs).astype(np.float64)
        if columns is not None:
            allx = allx[:, list(columns)]
        axis = 0 if per_feature else None
        mean, std = allx.mean(axis), allx.std(axis)
        std = np.where(std > 0, std, 1.0)
        return cls(tuple(mean) if per_feature else float(mean), tuple(std) if per_feature else float(std), columns)

    @property
    def per_feature(self) -> bool:
        return np.ndim(self.std) == 1

    @property
    def identity(self) -> bool:
        return bool(np.all(np.asarray(self.mean) == 0.0) and np.all(np.asarray(self.std) == 1.0))

    def _apply(self, a, fn):
        mean, std = self.mean, self.std  # scalars stay Python floats: the data's float dtype is kept
        if self.per_feature and isinstance(a, torch.Tensor):
            mean, std = (torch.as_tensor(v, dtype=a.dtype, device=a.device) for v in (mean, std))
        elif self.per_feature:
            dtype = a.dtype if np.issubdtype(a.dtype, np.floating) else np.float64
            mean, std = np.asarray(mean, dtype=dtype), np.asarray(std, dtype=dtype)
        if self.columns is None:
            return fn(a, mean, std)
        out = a.clone() if isinstance(a, torch.Tensor) else np.array(a, dtype=np.result_type(a, np.float32))
        cols = list(self.columns)
        out[..., cols] = fn(out[..., cols], mean, std)
        return out

    def __call__(self, a: np.ndarray) -> np.ndarray:
        return self._apply(np.asarray(a), lambda v, m, s: (v - m) / s).astype(np.float32)

    def invert(self, a):
        return self._apply(a, lambda v, m, s: v * s + m)

    def log_jacobian(self, x_dim: int) -> float:
        """log |d x_model / d x| per time step, Σ_d −log σ_d over the normalised features: add to a
        model-unit log-density for original units."""
        n = x_dim if self.columns is None else len(self.columns)
        if self.per_feature:
            if len(self.std) != n:
                raise ValueError(f"normaliser has {len(self.std)} per-feature stds for {n} normalised features")
            return -float(np.log(self.std).sum())
        return -n * float(np.log(self.std))

    def describe(self) -> str:
        where = "" if self.columns is None else f" on features {list(self.columns)} only"
        if self.per_feature:
            return (f"normalised per feature: (x_d - mean_d) / std_d{where}, train mean/std of each of "
                    f"{len(self.std)} features (std {min(self.std):.6g} to {max(self.std):.6g})")
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
