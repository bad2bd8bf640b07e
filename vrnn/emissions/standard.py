"""Gaussian, Gaussian-mixture and Bernoulli emissions (VRNN paper: Gauss, GMM; piano rolls: Bernoulli)."""
from __future__ import annotations

import numpy as np
from torch import nn
from torch.distributions import Bernoulli, Categorical, Independent, MixtureSameFamily

from ..errors import VrnnError, shown
from .base import Emission, diag_gaussian, positive_scale


class GaussianEmission(Emission):
    """Diagonal Gaussian N(μ(h), diag σ(h)²), σ by softplus."""

    name = "gauss"

    def __init__(self, cfg, in_features, x_dim):
        super().__init__(cfg, in_features, x_dim)
        self.loc = nn.Linear(in_features, x_dim)
        self.scale = nn.Linear(in_features, x_dim)

    def forward(self, h):
        return diag_gaussian(self.loc(h), positive_scale(self.scale(h), self.cfg.min_scale))


class GaussianMixtureEmission(Emission):
    """Mixture of K diagonal Gaussians (VRNN paper: K = 20), as ``MixtureSameFamily``."""

    name = "gmm"

    def __init__(self, cfg, in_features, x_dim):
        super().__init__(cfg, in_features, x_dim)
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


class BernoulliEmission(Emission):
    """Independent Bernoulli units on logits (piano rolls)."""

    name = "bernoulli"
    real_valued = False
    discrete = True

    def __init__(self, cfg, in_features, x_dim):
        super().__init__(cfg, in_features, x_dim)
        self.logits = nn.Linear(in_features, x_dim)

    def forward(self, h):
        return Independent(Bernoulli(logits=self.logits(h), validate_args=False), 1, validate_args=False)

    @classmethod
    def check_data(cls, x, where):
        check_binary(x, where, cls.name)


def check_binary(x, where: str, name: str) -> None:
    """Raise a VrnnError naming ``where`` unless every value of ``x`` is 0 or 1."""
    bad = ~np.isin(x, (0.0, 1.0))
    if bad.any():
        value = x[bad].flat[0]
        raise VrnnError(
            f"{where}: the {name} emission needs binary data (0/1), found {shown(value)}; "
            f"use model.emission.name=gauss for real-valued data or binarise it"
        )
