"""Model registry: ``model.kind`` in a config names one of :data:`MODELS`."""
from __future__ import annotations

from ..config import ModelConfig
from ..errors import VrnnError
from .base import SequenceModel, StepTerms
from .dmm import DMM
from .rnn import RNN
from .srnn import SRNN
from .vrnn import VRNN

MODELS: dict[str, type[SequenceModel]] = {"rnn": RNN, "vrnn": VRNN, "srnn": SRNN, "dmm": DMM}


def register_model(kind: str):
    def deco(cls):
        MODELS[kind] = cls
        return cls

    return deco


def build_model(cfg: ModelConfig) -> SequenceModel:
    if cfg.kind not in MODELS:
        raise VrnnError(f"unknown model.kind {cfg.kind!r}; choose one of {sorted(MODELS)}")
    if cfg.x_dim < 1:
        raise VrnnError("model.x_dim must be set (it is filled in from the data by `vrnn train`)")
    return MODELS[cfg.kind](cfg)


__all__ = ["MODELS", "SequenceModel", "StepTerms", "build_model", "register_model"]
