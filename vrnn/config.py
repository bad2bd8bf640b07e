"""Typed, frozen configuration.

A run is described by one :class:`Config`: the model (whose fields depend on its
``kind``), the data and the training schedule. Configs are read from TOML files,
overridden with ``--set section.key=value`` and stored in every checkpoint, so a
checkpoint alone rebuilds its model.
"""
from __future__ import annotations

import dataclasses
import json
import tomllib
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from .errors import VrnnError


@dataclass(frozen=True)
class EmissionConfig:
    """The output distribution p(x_t | ·); see :mod:`vrnn.emissions`."""

    name: str = "gauss"  # gauss | gmm | bernoulli
    components: int = 20  # mixture components for gmm (VRNN paper: 20)
    min_scale: float = 1e-3  # floor on Gaussian standard deviations


@dataclass(frozen=True)
class ModelConfig:
    """Fields every model has; each model kind extends this with its own."""

    kind: str = "vrnn"
    x_dim: int = 0  # filled in from the data when 0
    emission: EmissionConfig = field(default_factory=EmissionConfig)


@dataclass(frozen=True)
class DataConfig:
    source: str = "chorales"  # a prepared data set name or a path to a data file
    format: str = "auto"  # auto | prepared | boulanger | srnn | arrays | stroke3
    normalize: str = "auto"  # auto (global for real-valued emissions) | global | none


@dataclass(frozen=True)
class TrainConfig:
    seed: int = 0
    batch_size: int = 64
    length_pool: int = 4  # batches per length-sorted pool (less padding); 1 = plain random batches
    lr: float = 1e-3
    lr_decay_start: int = 0  # steps at the full learning rate before it decays; 0 with lr_half_life 0 = constant
    lr_half_life: float = 0.0  # steps over which the learning rate halves after lr_decay_start; 0 = no decay
    max_steps: int = 2000
    ema: float = 0.0  # decay of an exponential moving average of the weights, which validation, checkpoints'
    # "model" and everything downstream use (0 = off; the raw weights are kept for resuming)
    clip_norm: float = 10.0  # gradient-norm clipping before every optimiser step; 0 disables
    kl_start: float = 1.0  # KL weight at step 0, raised linearly to 1 over kl_warmup_steps
    kl_warmup_steps: int = 0
    eval_every: int = 200  # steps between validation evaluations (and checkpoints)
    patience: int = 10  # evaluations without a better validation ELBO before stopping
    max_minutes: float = 0.0  # wall-clock budget, checked at evaluations; 0 = none (resume is then not exact)
    eval_batch_size: int = 128
    tbptt_steps: int = 0  # truncated BPTT: split each batch into chunks of this many steps, one update
    # per chunk, the model's final state carried (detached) across chunks; 0 = off. Steps count batches.
    device: str = "auto"  # auto | cpu | cuda | cuda:N


@dataclass(frozen=True)
class Config:
    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    train: TrainConfig = field(default_factory=TrainConfig)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    def replace(self, **sections) -> "Config":
        return dataclasses.replace(self, **sections)


def _build(cls, raw: Any, where: str):
    """Construct dataclass ``cls`` from a dict, rejecting unknown keys by name."""
    if not isinstance(raw, dict):
        raise VrnnError(f"{where}: expected a table of settings, got {raw!r}")
    known = {f.name: f for f in fields(cls)}
    unknown = sorted(set(raw) - set(known))
    if unknown:
        raise VrnnError(
            f"{where}: unknown setting {where}.{unknown[0]}; choose from {sorted(known)}"
        )
    kwargs = {}
    for name, value in raw.items():
        f = known[name]
        if dataclasses.is_dataclass(f.default_factory if f.default_factory is not dataclasses.MISSING else None):
            kwargs[name] = _build(f.default_factory, value, f"{where}.{name}")
            continue
        default = f.default if f.default is not dataclasses.MISSING else None
        kwargs[name] = _coerce(value, default, f"{where}.{name}")
    return cls(**kwargs)


def _coerce(value, default, where):
    if default is None or value is None:
        return value
    if isinstance(default, bool):
        if isinstance(value, bool):
            return value
    elif isinstance(default, int):
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    elif isinstance(default, float):
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
    elif isinstance(default, str):
        if isinstance(value, str):
            return value
    elif isinstance(default, tuple):
        if isinstance(value, (list, tuple)):
            return tuple(value)
    else:
        return value
    raise VrnnError(f"{where}: expected a {type(default).__name__}, got {value!r}")


def config_from_dict(raw: dict, where: str = "config") -> Config:
    from .models import MODELS  # the registry of model kinds and their config classes

    raw = dict(raw)
    unknown = sorted(set(raw) - {"model", "data", "train"})
    if unknown:
        raise VrnnError(f"{where}: unknown section [{unknown[0]}]; sections are [model], [data], [train]")
    model_raw = dict(raw.get("model", {}))
    kind = model_raw.get("kind", ModelConfig.kind)
    if kind not in MODELS:
        raise VrnnError(f"{where}: unknown model.kind {kind!r}; choose one of {sorted(MODELS)}")
    model_cls = MODELS[kind].config_class
    model = _build(model_cls, model_raw, f"{where}: model")
    data = _build(DataConfig, raw.get("data", {}), f"{where}: data")
    train = _build(TrainConfig, raw.get("train", {}), f"{where}: train")
    from .emissions import EMISSIONS

    if model.emission.name not in EMISSIONS:
        raise VrnnError(
            f"{where}: unknown model.emission.name {model.emission.name!r}; choose one of {sorted(EMISSIONS)}"
        )
    if data.normalize not in ("auto", "global", "none"):
        raise VrnnError(f"{where}: data.normalize must be auto, global or none, not {data.normalize!r}")
    if train.tbptt_steps < 0:
        raise VrnnError(f"{where}: train.tbptt_steps must be >= 0 (0 turns truncated BPTT off), not {train.tbptt_steps}")
    return Config(model=model, data=data, train=train)


def parse_override(text: str) -> tuple[list[str], Any]:
    """``"train.lr=3e-4"`` -> (["train", "lr"], 0.0003); values are TOML literals or bare strings."""
    if "=" not in text:
        raise VrnnError(f"--set {text!r}: expected section.key=value, e.g. --set train.lr=3e-4")
    key, value = text.split("=", 1)
    path = [p for p in key.strip().split(".") if p]
    if len(path) < 2:
        raise VrnnError(f"--set {text!r}: the key needs a section, e.g. model.{key.strip()}={value}")
    try:
        parsed = tomllib.loads(f"v = {value}")["v"]
    except tomllib.TOMLDecodeError:
        parsed = value
    return path, parsed


def apply_overrides(raw: dict, overrides: list[str]) -> dict:
    raw = json.loads(json.dumps(raw))  # deep copy of plain data
    for text in overrides:
        path, value = parse_override(text)
        node = raw
        for p in path[:-1]:
            node = node.setdefault(p, {})
            if not isinstance(node, dict):
                raise VrnnError(f"--set {text!r}: {p} is not a section")
        node[path[-1]] = value
    return raw


def read_config_file(path: str | Path) -> dict:
    path = Path(path)
    if not path.is_file():
        raise VrnnError(f"{path}: config file not found; pass --config with an existing .toml file (see configs/)")
    try:
        if path.suffix == ".json":
            return json.loads(path.read_text())
        return tomllib.loads(path.read_text())
    except (tomllib.TOMLDecodeError, json.JSONDecodeError, UnicodeDecodeError) as e:
        raise VrnnError(f"{path}: not a valid config file ({e}); fix the syntax") from None


def load_config(path: str | Path | None = None, overrides: list[str] | None = None) -> Config:
    """Read a TOML config file and apply ``--set`` style overrides."""
    raw = read_config_file(path) if path is not None else {}
    raw = apply_overrides(raw, overrides or [])
    return config_from_dict(raw, where=str(path) if path else "config")
