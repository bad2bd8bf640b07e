"""Output distributions p(x_t | ·) shared by every model; ``model.emission.name`` names one of :data:`EMISSIONS`.

* ``gauss``      diagonal Gaussian                                  (:mod:`.standard`)
* ``gmm``        mixture of diagonal Gaussians (``MixtureSameFamily``) (:mod:`.standard`)
* ``bernoulli``  independent Bernoulli units on logits (piano rolls)   (:mod:`.standard`)
* ``strokes``    pen-up bit × mixture of correlated bivariate Gaussians (Graves 2013) (:mod:`.strokes`)
* ``nade``       binary frames, NADE within the frame (RNN-NADE's output) (:mod:`.autoregressive`)
* ``ar-gmm``     real frames, a Gaussian mixture per element given the earlier ones (MADE) (:mod:`.autoregressive`)
* ``dlogistic``  16-bit audio, a discretised logistic mixture per sample (PixelCNN++) (:mod:`.discretised`)
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ..errors import VrnnError
from .autoregressive import NADE, AutoregressiveGmmEmission, AutoregressiveMixture, NadeEmission
from .base import Emission, EmissionConfig, FusedNormal, diag_gaussian, positive_scale
from .discretised import DiscretisedLogisticEmission, DiscretisedLogisticMixture, to_grid
from .standard import BernoulliEmission, GaussianEmission, GaussianMixtureEmission
from .strokes import PenStroke, PenStrokeEmission

EMISSIONS: dict[str, type[Emission]] = {
    cls.name: cls for cls in (GaussianEmission, GaussianMixtureEmission, BernoulliEmission, PenStrokeEmission,
                              NadeEmission, AutoregressiveGmmEmission, DiscretisedLogisticEmission)
}


def emission_class(name: str) -> type[Emission]:
    if name not in EMISSIONS:
        raise VrnnError(f"unknown model.emission.name {name!r}; choose one of {sorted(EMISSIONS)}")
    return EMISSIONS[name]


def build_emission(cfg: EmissionConfig, in_features: int, x_dim: int) -> Emission:
    return emission_class(cfg.name)(cfg, in_features, x_dim)


def check_emission_data(name: str, seqs: Sequence[np.ndarray], where: str) -> None:
    """Raise a VrnnError naming ``where`` if sequences (T_i, D) lie outside emission ``name``'s support."""
    emission_class(name).check_data(np.concatenate(seqs), where)


__all__ = ["EMISSIONS", "NADE", "AutoregressiveMixture", "DiscretisedLogisticMixture", "Emission", "EmissionConfig",
           "FusedNormal", "PenStroke", "build_emission", "check_emission_data", "diag_gaussian", "emission_class",
           "positive_scale", "to_grid"]
