"""The configuration of a run: ``[model]``, ``[data]`` and ``[train]``.

A run is described by one :class:`Config`. Each section's dataclass lives with the code it
configures — the model kinds' configs beside their models (:mod:`vrnn.models`), the emission's
in :mod:`vrnn.emissions`, :class:`~vrnn.data.DataConfig` in :mod:`vrnn.data`,
:class:`~vrnn.training.options.TrainConfig` in :mod:`vrnn.training.options` — and this module
puts them together. Configs are read from TOML files, overridden with ``--set
section.key=value`` (:mod:`vrnn.settings`) and stored in every checkpoint, so a checkpoint
alone rebuilds its model. The run's config lives with the trainer, its one reader; what
rebuilds a model (:mod:`vrnn.checkpoint`) reads ``[model]`` alone
(:func:`vrnn.models.model_config_from_dict`), so the core never imports the trainer.
"""
from __future__ import annotations

import dataclasses
import difflib
from dataclasses import dataclass, field
from pathlib import Path

from ..data import DataConfig
from ..emissions import EmissionConfig
from ..errors import VrnnError
from ..models import MODELS, ModelConfig, model_config_from_dict
from ..settings import apply_overrides, build_dataclass, read_config_file
from .options import TrainConfig

__all__ = ["Config", "DataConfig", "EmissionConfig", "ModelConfig", "TrainConfig", "config_from_dict",
           "load_config"]


@dataclass(frozen=True)
class Config:
    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    train: TrainConfig = field(default_factory=TrainConfig)

    def __post_init__(self):  # a Config built in Python is checked too (config_from_dict names the file first)
        for section in (self.model, self.data, self.train):
            section.check("config")

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    def replace(self, **sections) -> "Config":
        return dataclasses.replace(self, **sections)


def config_from_dict(raw: dict, where: str = "config") -> Config:
    """The :class:`Config` a dict of sections describes (a section left out takes its defaults), every
    value checked by its section's dataclass (:class:`~vrnn.settings.Checked`); errors name ``where``."""
    raw = dict(raw)
    _check_sections(raw, where)
    model = model_config_from_dict(raw.get("model", {}), where)
    sections = {name: build_dataclass(cls, raw.get(name, {}), where, name)
                for name, cls in (("data", DataConfig), ("train", TrainConfig))}
    for section in sections.values():
        section.check(where)
    return Config(model=model, **sections)


def _check_sections(raw: dict, where: str) -> None:
    unknown = sorted(set(raw) - {"model", "data", "train"})
    if unknown:
        raise VrnnError(f"{where}: unknown section [{unknown[0]}]; sections are [model], [data], [train]")


def presets_folder() -> Path:
    """Where the shipped presets are: ``vrnn/presets/`` in an installed wheel (the repository's ``configs/``,
    packaged by setup.py), the checkout's ``configs/`` when vrnn runs from a checkout (editable install)."""
    package = Path(__file__).resolve().parents[1]
    packaged = package / "presets"
    return packaged if packaged.is_dir() else package.parent / "configs"


def preset_names() -> list[str]:
    """The shipped presets by name: ``srnn-polyphonic``, ``speech/small/srnn``, ..."""
    root = presets_folder()
    return sorted(p.relative_to(root).with_suffix("").as_posix() for p in root.rglob("*.toml"))


def config_path(path: str | Path) -> Path:
    """``path`` itself when it exists or names a file (``.toml``, ``.json``); a bare name without a suffix,
    e.g. ``srnn-polyphonic`` or ``speech/small/srnn``, is a shipped preset (:func:`presets_folder`)."""
    given = Path(path)
    if given.exists() or given.suffix:
        return given
    preset = presets_folder() / f"{given.as_posix()}.toml"
    if not preset.is_file():
        names = preset_names()
        near = "".join(f" (did you mean {n}?)" for n in difflib.get_close_matches(given.as_posix(), names, 1))
        raise VrnnError(f"--config {path}: no such file and no preset of that name{near}; give a .toml file or one "
                        f"of the presets: {', '.join(names)}")
    return preset


def load_config(path: str | Path | None = None, overrides: list[str] | None = None) -> Config:
    """Read a TOML config file, or a shipped preset by name (:func:`config_path`), and apply ``--set``
    style overrides.

    The file must have a ``[model]`` table that names ``model.kind``; ``[data]`` and ``[train]`` may
    be left out and then take their defaults. Without a file (``path=None``) everything is a default
    or an override.
    """
    path = config_path(path) if path is not None else None
    raw = read_config_file(path) if path is not None else {}
    if path is not None:
        if not isinstance(raw, dict):
            raise VrnnError(f"{path}: not a table of sections; start from a file in configs/")
        _check_sections(raw, str(path))
        model = raw.get("model")
        if not isinstance(model, dict) or "kind" not in model:
            missing = "no [model] table" if not isinstance(model, dict) else "no model.kind in [model]"
            empty = " (the file holds no settings)" if not raw else ""
            raise VrnnError(f"{path}: {missing}{empty}; a config needs [model] with kind = one of "
                            f"{sorted(MODELS)} ([data] and [train] may be left out for their defaults); "
                            f"start from a file in configs/")
    raw = apply_overrides(raw, overrides or [])
    return config_from_dict(raw, where=str(path) if path else "config")
