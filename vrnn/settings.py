"""Settings files: TOML (or JSON) tables read into frozen dataclasses, with ``--set`` overrides.

The generic machinery every section of a config uses; each section's dataclass lives with
the code it configures (:class:`vrnn.models.base.ModelConfig`, :class:`vrnn.data.DataConfig`,
:class:`vrnn.training.options.TrainConfig`), and :mod:`vrnn.config` puts them together.
"""
from __future__ import annotations

import dataclasses
import json
import tomllib
from dataclasses import fields
from pathlib import Path
from typing import Any

from .errors import VrnnError


def build_dataclass(cls, raw: Any, where: str):
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
            kwargs[name] = build_dataclass(f.default_factory, value, f"{where}.{name}")
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
