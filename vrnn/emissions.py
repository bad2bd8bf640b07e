"""Output distributions p(x_t | ·) shared by every model.

An emission head maps a feature vector to a ``torch.distributions`` object whose
``log_prob(x)`` returns one log-density per time step (event dimensions summed).
Models never write a likelihood formula; the objective calls ``log_prob``.

New emissions register with :func:`register_emission`; the config names them by
``model.emission.name``.
"""
from __future__ import annotations


import torch
import torch.nn.functional as F
from torch import nn
from torch.distributions import Bernoulli, Categorical, Distribution, Independent, MixtureSameFamily, Normal

from .config import EmissionConfig
from .errors import VrnnError

EMISSIONS: dict[str, type["Emission"]] = {}


def register_emission(name: str):
    def deco(cls):
        cls.name = name
        EMISSIONS[name] = cls
        return cls

    return deco


def build_emission(cfg: EmissionConfig, in_features: int, x_dim: int) -> "Emission":
    if cfg.name not in EMISSIONS:
        raise VrnnError(f"unknown model.emission.name {cfg.name!r}; choose one of {sorted(EMISSIONS)}")
    return EMISSIONS[cfg.name](cfg, in_features, x_dim)


def diag_gaussian(loc: torch.Tensor, scale: torch.Tensor) -> Independent:
    """N(loc, diag(scale^2)) with the last dimension as the event.

    Argument validation is off here and in every emission: it costs time on every step,
    and a diverging run is reported by the trainer's own finiteness check instead.
    """
    return Independent(Normal(loc, scale, validate_args=False), 1, validate_args=False)


def positive_scale(raw: torch.Tensor, floor: float) -> torch.Tensor:
    return F.softplus(raw) + floor


class Emission(nn.Module):
    """Features (..., in_features) -> distribution over x_t (..., x_dim)."""

    name = "base"
    real_valued = True  # real-valued data are normalised with the training mean/std
    normalized_columns: tuple[int, ...] | None = None  # the features normalised; None: all of them
    required_x_dim: int | None = None  # the number of features it models, if fixed (pen strokes: 3)

    def __init__(self, cfg: EmissionConfig, in_features: int, x_dim: int):
        super().__init__()
        self.cfg = cfg
        self.x_dim = x_dim

    def forward(self, h: torch.Tensor) -> Distribution:  # pragma: no cover - abstract
        raise NotImplementedError

    @classmethod
    def check_data(cls, x, where: str) -> None:
        """Raise a VrnnError naming ``where`` if ``x`` (a numpy array) is outside the support."""

    def mean(self, dist: Distribution) -> torch.Tensor:
        return dist.mean


@register_emission("gauss")
class GaussianEmission(Emission):
    """Diagonal Gaussian N(μ(h), diag σ(h)²), σ by softplus."""

    def __init__(self, cfg, in_features, x_dim):
        super().__init__(cfg, in_features, x_dim)
        self.loc = nn.Linear(in_features, x_dim)
        self.scale = nn.Linear(in_features, x_dim)

    def forward(self, h):
        return diag_gaussian(self.loc(h), positive_scale(self.scale(h), self.cfg.min_scale))


@register_emission("gmm")
class GaussianMixtureEmission(Emission):
    """Mixture of K diagonal Gaussians (VRNN paper: K = 20), as ``MixtureSameFamily``."""

    def __init__(self, cfg, in_features, x_dim):
        super().__init__(cfg, in_features, x_dim)
        if cfg.components < 1:
            raise VrnnError(f"model.emission.components must be >= 1, got {cfg.components}")
        k = cfg.components
        self.logits = nn.Linear(in_features, k)
        self.loc = nn.Linear(in_features, k * x_dim)
        self.scale = nn.Linear(in_features, k * x_dim)

    def forward(self, h):
        k, d = self.cfg.components, self.x_dim
        shape = h.shape[:-1] + (k, d)
        loc = self.loc(h).view(shape)  # (..., K, D)
        scale = positive_scale(self.scale(h), self.cfg.min_scale).view(shape)
        mix = Categorical(logits=self.logits(h), validate_args=False)
        return MixtureSameFamily(mix, diag_gaussian(loc, scale), validate_args=False)


@register_emission("bernoulli")
class BernoulliEmission(Emission):
    """Independent Bernoulli units on logits (piano rolls)."""

    real_valued = False

    def __init__(self, cfg, in_features, x_dim):
        super().__init__(cfg, in_features, x_dim)
        self.logits = nn.Linear(in_features, x_dim)

    def forward(self, h):
        return Independent(Bernoulli(logits=self.logits(h), validate_args=False), 1, validate_args=False)

    @classmethod
    def check_data(cls, x, where):
        import numpy as np

        bad = ~np.isin(x, (0.0, 1.0))
        if bad.any():
            value = x[bad].flat[0]
            raise VrnnError(
                f"{where}: the bernoulli emission needs binary data (0/1), found {value!r}; "
                f"use model.emission.name=gauss for real-valued data or binarise it"
            )


from . import emission_strokes  # noqa: E402,F401  registers "strokes" (pen-stroke mixture, Graves 2013)
