"""A discretised logistic mixture over 16-bit audio samples (PixelCNN++, Salimans et al. 2017, eq. 2).

Quantisation: linear 16-bit PCM. A sample s ∈ {−32768, …, 32767} is the value x = s / 32768 ∈
[−1, 1 − 2⁻¹⁵] (what reading a 16-bit WAV as floats gives); every bin is 2⁻¹⁵ wide. The data must
lie on that grid (:func:`to_grid` puts int16 samples there) and are not normalised. Each sample of
the frame has a mixture of ``components`` logistics whose mass on its bin is

    P(x) = Σ_k π_k [σ((x + δ − μ_k)/s_k) − σ((x − δ − μ_k)/s_k)],   δ = 2⁻¹⁶,

with the edge bins taking the tails (x = −1: σ(·) from −∞; x = 1 − 2⁻¹⁵: up to +∞), so the masses of
the 65536 bins sum to 1 and every likelihood is a probability: log p ≤ 0 and bits per frame
(−log₂ p, :func:`vrnn.inference.objectives.nats_to_bits`) compare across papers (Havtorn et al. 2022).
The samples of a frame are independent given c_t (PixelCNN++'s linear coupling of channels is not
used; ``ar-gmm`` is the within-frame autoregressive output). The scale floor is ``min_scale``.
"""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.distributions import Categorical, Distribution, constraints

from ..errors import VrnnError, shown
from .base import Emission, positive_scale

LEVELS = 1 << 16
STEP = 2.0 / LEVELS  # one bin: 2⁻¹⁵
LOW, HIGH = -1.0, 1.0 - STEP  # the lowest and highest values


def to_grid(samples: np.ndarray) -> np.ndarray:
    """16-bit PCM samples (int16) -> the values x = s / 32768 the ``dlogistic`` emission scores (float32)."""
    return (np.asarray(samples, dtype=np.int64) / (LEVELS // 2)).astype(np.float32)


def off_grid(x: np.ndarray) -> np.ndarray:
    """Where ``x`` is not a value s / 32768 for an int16 s."""
    s = np.asarray(x, dtype=np.float64) * (LEVELS // 2)
    return ~np.isfinite(s) | (np.abs(s - np.round(s)) > 1e-3) | (s < -LEVELS // 2) | (s > LEVELS // 2 - 1)


class _Grid(constraints.Constraint):
    event_dim = 1

    def check(self, value):
        s = value * (LEVELS // 2)
        return ((s == s.round()) & (value >= LOW) & (value <= HIGH)).all(-1)


class DiscretisedLogisticMixture(Distribution):
    """Frames (D,) of 16-bit samples; logits, loc, scale (S, D, K)."""

    arg_constraints = {"logits": constraints.independent(constraints.real, 2),
                       "loc": constraints.independent(constraints.real, 2),
                       "scale": constraints.independent(constraints.positive, 2)}
    support = _Grid()
    has_rsample = False

    def __init__(self, logits, loc, scale, validate_args: bool | None = None):
        self.logits, self.loc, self.scale = logits, loc, scale
        super().__init__(loc.shape[:-2], loc.shape[-2:-1], validate_args=validate_args)

    def expand(self, batch_shape, _instance=None) -> DiscretisedLogisticMixture:
        new = self._get_checked_instance(DiscretisedLogisticMixture, _instance)
        batch_shape = torch.Size(batch_shape)
        new.logits, new.loc, new.scale = (v.expand(batch_shape + v.shape[-2:]) for v in
                                          (self.logits, self.loc, self.scale))
        super(DiscretisedLogisticMixture, new).__init__(batch_shape, self.event_shape, validate_args=False)
        new._validate_args = self._validate_args
        return new

    def log_prob(self, x: torch.Tensor) -> torch.Tensor:
        """log P(x) summed over the frame, stably: log(σ(a) − σ(b)) = log σ(a) + log(1 − σ(b)) + log(1 − e^(b−a))."""
        if self._validate_args:
            self._validate_sample(x)
        x = x.unsqueeze(-1)  # (..., D, 1)
        a = (x + STEP / 2 - self.loc) / self.scale  # upper edge of the bin, standardised
        b = (x - STEP / 2 - self.loc) / self.scale
        upper = -F.softplus(-a)  # log σ(a)
        lower = -F.softplus(b)  # log(1 − σ(b))
        width = torch.log(-torch.expm1(-STEP / self.scale))  # log(1 − e^(b−a)), b − a = −STEP/s
        log_mass = torch.where(x <= LOW, upper, torch.where(x >= HIGH, lower, upper + lower + width))
        return torch.logsumexp(self.logits.log_softmax(-1) + log_mass, -1).sum(-1)

    @torch.no_grad()
    def sample(self, sample_shape=torch.Size()) -> torch.Tensor:
        shape = self._extended_shape(sample_shape)  # (..., D)
        k = Categorical(logits=self.logits.expand(shape + self.logits.shape[-1:]), validate_args=False).sample()
        loc, scale = (v.expand(shape + v.shape[-1:]).gather(-1, k.unsqueeze(-1))[..., 0] for v in (self.loc, self.scale))
        u = torch.rand(shape, dtype=loc.dtype, device=loc.device).clamp(1e-6, 1 - 1e-6)
        x = loc + scale * (u.log() - (-u).log1p())  # a logistic draw
        return ((x.clamp(LOW, HIGH) - LOW) / STEP).round() * STEP + LOW


class DiscretisedLogisticEmission(Emission):
    """Features -> :class:`DiscretisedLogisticMixture`: K logistics per sample (weights, locations, scales)."""

    name = "dlogistic"
    real_valued = False  # scored on the 16-bit grid itself: never normalised
    discrete = True

    def __init__(self, cfg, in_features, x_dim):
        super().__init__(cfg, in_features, x_dim)
        self.params = nn.Linear(in_features, 3 * cfg.components * x_dim)

    def forward(self, h):
        logits, loc, raw = self.params(h).unflatten(-1, (self.x_dim, 3 * self.cfg.components)).chunk(3, -1)
        return DiscretisedLogisticMixture(logits, loc, positive_scale(raw, self.cfg.min_scale), validate_args=False)

    @classmethod
    def check_data(cls, x, where):
        bad = off_grid(x)
        if bad.any():
            raise VrnnError(f"{where}: the dlogistic emission needs 16-bit samples as s/32768 in [-1, 1), found "
                            f"{shown(np.asarray(x)[bad].flat[0])}; quantise with vrnn.emissions.to_grid(int16 samples)")
