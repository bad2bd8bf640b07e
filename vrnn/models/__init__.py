"""Model registry: ``model.kind`` in a config names one of :data:`MODELS`, or a model outside the
library as ``"package.module:Class"`` (importable from the Python path or the working directory;
see ``examples/storn.py`` and the README's "Add your own model").

Every model is one step (:meth:`~vrnn.models.base.SequenceModel.step`) that every driver runs:

* ``rnn``   RNN baselines (Chung et al. 2015)                    :mod:`.rnn`
* ``vrnn``  VRNN and VRNN-I (Chung et al. 2015)                  :mod:`.vrnn`
* ``srnn``  Stochastic RNN (Fraccaro et al. 2016)                :mod:`.srnn`
* ``dmm``   Deep Markov Model (Krishnan et al. 2017)             :mod:`.dmm`
"""
from __future__ import annotations

import importlib
import os
import sys

from ..errors import VrnnError
from ..settings import build_dataclass
from .base import ModelConfig, SequenceModel, Step, StepTerms
from .dmm import DMM
from .rnn import RNN
from .srnn import SRNN
from .vrnn import VRNN

MODELS: dict[str, type[SequenceModel]] = {"rnn": RNN, "vrnn": VRNN, "srnn": SRNN, "dmm": DMM}


def model_class(kind: str) -> type[SequenceModel]:
    """The class ``model.kind`` names: a key of :data:`MODELS` or ``"package.module:Class"``."""
    if kind in MODELS:
        return MODELS[kind]
    if not isinstance(kind, str) or kind.count(":") != 1:
        raise VrnnError(f"unknown model.kind {kind!r}; choose one of {sorted(MODELS)} "
                        f"or name your own model as 'package.module:Class'")
    module, name = kind.split(":")
    cls = getattr(_import(module, kind), name, None)
    if not (isinstance(cls, type) and issubclass(cls, SequenceModel)):
        raise VrnnError(f"model.kind {kind!r}: {module} has no SequenceModel subclass {name!r}")
    return cls


def _import(module: str, kind: str):
    """Import ``module`` from the Python path, or else from the working directory."""
    try:
        return importlib.import_module(module)
    except ModuleNotFoundError as e:
        if os.getcwd() in sys.path or e.name != module.split(".")[0]:
            raise VrnnError(f"model.kind {kind!r}: cannot import {module} ({e}); run from the folder "
                            f"that holds it or install it") from None
    sys.path.append(os.getcwd())  # a model file beside the user's configs: `vrnn` run from that folder
    return _import(module, kind)


def build_model(cfg: ModelConfig) -> SequenceModel:
    if cfg.x_dim < 1:
        raise VrnnError("model.x_dim must be set (it is filled in from the data by `vrnn train`)")
    return model_class(cfg.kind)(cfg)


def model_config_from_dict(raw: dict, where: str = "config") -> ModelConfig:
    """The ``[model]`` section ``raw`` describes, as its kind's config class, every value checked; errors
    name ``where``. A checkpoint's ``config["model"]`` alone rebuilds its model through this."""
    kind = raw.get("kind", ModelConfig.kind) if isinstance(raw, dict) else ModelConfig.kind
    try:
        cls = model_class(kind)
    except VrnnError as e:
        raise VrnnError(f"{where}: {e}") from None
    cfg = build_dataclass(cls.config_class, raw, where, "model")
    cfg.check(where)
    return cfg


__all__ = ["MODELS", "ModelConfig", "SequenceModel", "Step", "StepTerms", "build_model", "model_class",
           "model_config_from_dict"]
