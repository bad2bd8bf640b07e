"""The configuration of a run: ``[model]``, ``[data]`` and ``[train]``.

A run is described by one :class:`Config`. Each section's dataclass lives with the code it
configures — the model kinds' configs beside their models (:mod:`vrnn.models`), the emission's
in :mod:`vrnn.emissions`, :class:`~vrnn.data.DataConfig` in :mod:`vrnn.data`,
:class:`~vrnn.training.options.TrainConfig` in :mod:`vrnn.training.options` — and this module
puts them together. Configs are read from TOML files, overridden with ``--set
section.key=value`` (:mod:`vrnn.settings`) and stored in every checkpoint, so a checkpoint
alone rebuilds its model.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path

from .data import DataConfig
from .emissions import EMISSIONS, EmissionConfig
from .errors import VrnnError
from .models import MODELS, ModelConfig
from .settings import apply_overrides, build_dataclass, read_config_file
from .training.options import TrainConfig

__all__ = ["Config", "DataConfig", "EmissionConfig", "ModelConfig", "TrainConfig", "config_from_dict",
           "load_config"]


@dataclass(frozen=True)
class Config:
    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    train: TrainConfig = field(default_factory=TrainConfig)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    def replace(self, **sections) -> "Config":
        return dataclasses.replace(self, **sections)


def config_from_dict(raw: dict, where: str = "config") -> Config:
    raw = dict(raw)
    unknown = sorted(set(raw) - {"model", "data", "train"})
    if unknown:
        raise VrnnError(f"{where}: unknown section [{unknown[0]}]; sections are [model], [data], [train]")
    model_raw = dict(raw.get("model", {}))
    kind = model_raw.get("kind", ModelConfig.kind)
    if kind not in MODELS:
        raise VrnnError(f"{where}: unknown model.kind {kind!r}; choose one of {sorted(MODELS)}")
    model = build_dataclass(MODELS[kind].config_class, model_raw, f"{where}: model")
    data = build_dataclass(DataConfig, raw.get("data", {}), f"{where}: data")
    train = build_dataclass(TrainConfig, raw.get("train", {}), f"{where}: train")
    if model.emission.name not in EMISSIONS:
        raise VrnnError(
            f"{where}: unknown model.emission.name {model.emission.name!r}; choose one of {sorted(EMISSIONS)}"
        )
    if data.normalize not in ("auto", "global", "none"):
        raise VrnnError(f"{where}: data.normalize must be auto, global or none, not {data.normalize!r}")
    if train.tbptt_steps < 0:
        raise VrnnError(f"{where}: train.tbptt_steps must be >= 0 (0 turns truncated BPTT off), not {train.tbptt_steps}")
    return Config(model=model, data=data, train=train)


def load_config(path: str | Path | None = None, overrides: list[str] | None = None) -> Config:
    """Read a TOML config file and apply ``--set`` style overrides."""
    raw = read_config_file(path) if path is not None else {}
    raw = apply_overrides(raw, overrides or [])
    return config_from_dict(raw, where=str(path) if path else "config")
