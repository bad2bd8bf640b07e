"""Model registry: ``model.kind`` in a config names one of :data:`MODELS`.

Every model is a set of hooks on the one time loop of :class:`~vrnn.models.base.SequenceModel`:

* ``rnn``   RNN baselines (Chung et al. 2015)                    :mod:`.rnn`
* ``vrnn``  VRNN and VRNN-I (Chung et al. 2015)                  :mod:`.vrnn`
* ``srnn``  Stochastic RNN (Fraccaro et al. 2016)                :mod:`.srnn`
* ``dmm``   Deep Markov Model (Krishnan et al. 2017)             :mod:`.dmm`
"""
from __future__ import annotations

from ..errors import VrnnError
from ..settings import build_dataclass
from .base import ModelConfig, SequenceModel, StepTerms
from .dmm import DMM
from .rnn import RNN
from .srnn import SRNN
from .vrnn import VRNN

MODELS: dict[str, type[SequenceModel]] = {"rnn": RNN, "vrnn": VRNN, "srnn": SRNN, "dmm": DMM}


def model_class(kind: str) -> type[SequenceModel]:
    if kind not in MODELS:
        raise VrnnError(f"unknown model.kind {kind!r}; choose one of {sorted(MODELS)}")
    return MODELS[kind]


def build_model(cfg: ModelConfig) -> SequenceModel:
    if cfg.x_dim < 1:
        raise VrnnError("model.x_dim must be set (it is filled in from the data by `vrnn train`)")
    return model_class(cfg.kind)(cfg)


def model_config_from_dict(raw: dict, where: str = "config") -> ModelConfig:
    """The ``[model]`` section ``raw`` describes, as its kind's config class, every value checked; errors
    name ``where``. A checkpoint's ``config["model"]`` alone rebuilds its model through this."""
    kind = raw.get("kind", ModelConfig.kind) if isinstance(raw, dict) else ModelConfig.kind
    if not isinstance(kind, str) or kind not in MODELS:
        raise VrnnError(f"{where}: unknown model.kind {kind!r}; choose one of {sorted(MODELS)}")
    cfg = build_dataclass(MODELS[kind].config_class, raw, where, "model")
    cfg.check(where)
    return cfg


__all__ = ["MODELS", "ModelConfig", "SequenceModel", "StepTerms", "build_model", "model_class",
           "model_config_from_dict"]
