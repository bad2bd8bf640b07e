"""The pen-stroke output distribution of online handwriting (Graves 2013, §4.1; VRNN paper §5).

A step of a drawing is x_t = (Δx, Δy, pen-up): the pen's offset from the previous point and
a bit that is 1 when the pen is lifted after this point (stroke-3 format). Following Graves
(2013, eqs. 18-25) the density of a step is

    p(x_t) = Bernoulli(pen-up; e_t) · Σ_k π_k N₂(Δx, Δy; μ_k, σ_k, ρ_k)

a Bernoulli on the pen bit times a mixture of K bivariate Gaussians, each with its own
correlation ρ_k. The VRNN paper's handwriting "Gauss" models are K = 1 and its "GMM" models
K = 20 (``model.emission.components``).

Deviations from Graves: σ comes from a softplus plus ``min_scale`` (not exp), and
ρ = (1 − 10⁻³)·tanh(·), so the covariance stays positive definite in float32.
Only (Δx, Δy) are normalised by the trainer (``normalized_columns``); the pen bit stays 0/1.
"""
from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.distributions import Distribution, constraints

from ..errors import VrnnError, shown
from .base import Emission, positive_scale

MAX_CORR = 1.0 - 1e-3


class _PenStrokeEvent(constraints.Constraint):
    """Events (Δx, Δy, pen): Δx, Δy real, pen in {0, 1}."""

    event_dim = 1

    def check(self, value: torch.Tensor) -> torch.Tensor:
        if value.shape[-1:] != (3,):
            return torch.zeros(value.shape[:-1], dtype=torch.bool, device=value.device)
        offsets = value[..., :2]
        real = (offsets == offsets) & offsets.isfinite()  # NaN and ±inf are not real numbers
        pen = (value[..., 2] == 0) | (value[..., 2] == 1)
        return real.all(-1) & pen


class _OpenInterval(constraints.Constraint):
    """lower < value < upper (a correlation of ±1 would make the covariance singular)."""

    def __init__(self, lower: float, upper: float):
        super().__init__()
        self.lower, self.upper = lower, upper

    def check(self, value):
        return (self.lower < value) & (value < self.upper)


pen_stroke_event = _PenStrokeEvent()


def check_sampling_options(bias: float, temperature: float) -> None:
    if bias < 0 or temperature <= 0:
        raise VrnnError(f"need bias >= 0 and temperature > 0, got bias={bias}, temperature={temperature}")


class PenStroke(Distribution):
    """Bernoulli pen-up bit × mixture of K correlated bivariate Gaussians over (Δx, Δy).

    Parameters, with batch shape ``S``: ``logits`` (S, K) mixture weights; ``loc`` and ``scale``
    (S, K, 2); ``corr`` (S, K) in (−1, 1); ``pen_logits`` (S,) logit of pen-up. Events are
    (Δx, Δy, pen) of shape (3,); ``log_prob`` returns one log-density per batch element.
    :meth:`biased` is the distribution of biased or tempered sampling.
    """

    arg_constraints = {
        "logits": constraints.independent(constraints.real, 1),
        "loc": constraints.independent(constraints.real, 2),
        "scale": constraints.independent(constraints.positive, 2),
        "corr": constraints.independent(_OpenInterval(-1.0, 1.0), 1),
        "pen_logits": constraints.real,
    }
    support = pen_stroke_event
    has_rsample = False

    def __init__(self, logits, loc, scale, corr, pen_logits, validate_args: bool | None = None):
        self.logits, self.loc, self.scale, self.corr, self.pen_logits = logits, loc, scale, corr, pen_logits
        super().__init__(pen_logits.shape, torch.Size([3]), validate_args=validate_args)

    def expand(self, batch_shape, _instance=None) -> PenStroke:
        new = self._get_checked_instance(PenStroke, _instance)
        batch_shape = torch.Size(batch_shape)
        k = self.logits.shape[-1:]
        new.logits, new.corr = self.logits.expand(batch_shape + k), self.corr.expand(batch_shape + k)
        new.loc, new.scale = (v.expand(batch_shape + v.shape[-2:]) for v in (self.loc, self.scale))
        new.pen_logits = self.pen_logits.expand(batch_shape)
        super(PenStroke, new).__init__(batch_shape, self.event_shape, validate_args=False)
        new._validate_args = self._validate_args
        return new

    def biased(self, bias: float = 0.0, temperature: float = 1.0) -> PenStroke:
        """The distribution of biased sampling (Graves 2013, §5.4: π ∝ exp(π̂(1 + b)), σ = σ̂·e^(−b))
        at temperature τ (Ha & Eck 2018: mixture and pen logits divided by τ, variances times τ).
        ``bias=0, temperature=1`` is the model itself."""
        check_sampling_options(bias, temperature)
        b, tau = float(bias), float(temperature)
        return PenStroke(self.logits * (1 + b) / tau, self.loc, self.scale * (math.exp(-b) * math.sqrt(tau)),
                         self.corr, self.pen_logits / tau, validate_args=self._validate_args)

    def mixture_log_prob(self, d: torch.Tensor) -> torch.Tensor:
        """log Σ_k π_k N₂(d; μ_k, σ_k, ρ_k) for offsets d (S, 2)  (Graves eqs. 24-25)."""
        z = (d.unsqueeze(-2) - self.loc) / self.scale  # (S, K, 2)
        zx, zy, rho = z[..., 0], z[..., 1], self.corr
        one_m_r2 = 1 - rho * rho
        log_n = (-math.log(2 * math.pi) - self.scale.log().sum(-1) - 0.5 * one_m_r2.log()
                 - (zx * zx + zy * zy - 2 * rho * zx * zy) / (2 * one_m_r2))  # (S, K)
        return torch.logsumexp(self.logits.log_softmax(-1) + log_n, -1)

    def log_prob(self, x: torch.Tensor) -> torch.Tensor:
        if self._validate_args:
            self._validate_sample(x)
        pen_logits, pen = torch.broadcast_tensors(self.pen_logits, x[..., 2])  # x may carry sample dims
        log_pen = -F.binary_cross_entropy_with_logits(pen_logits, pen, reduction="none")
        return self.mixture_log_prob(x[..., :2]) + log_pen

    @property
    def mean(self) -> torch.Tensor:
        w = self.logits.softmax(-1).unsqueeze(-1)  # (S, K, 1)
        return torch.cat([(w * self.loc).sum(-2), torch.sigmoid(self.pen_logits).unsqueeze(-1)], -1)

    @torch.no_grad()
    def sample(self, sample_shape=torch.Size()) -> torch.Tensor:
        shape = self._extended_shape(sample_shape)[:-1]  # sample_shape + batch_shape
        logits = self.logits.expand(shape + self.logits.shape[-1:])
        k = torch.distributions.Categorical(logits=logits, validate_args=False).sample().unsqueeze(-1)  # (..., 1)
        loc = self.loc.expand(shape + self.loc.shape[-2:]).gather(-2, k.unsqueeze(-1).expand(*shape, 1, 2))
        scale = self.scale.expand(shape + self.scale.shape[-2:]).gather(-2, k.unsqueeze(-1).expand(*shape, 1, 2))
        rho = self.corr.expand(shape + self.corr.shape[-1:]).gather(-1, k)[..., 0]
        loc, scale = loc.squeeze(-2), scale.squeeze(-2)
        e = torch.randn(shape + (2,), device=loc.device, dtype=loc.dtype)
        dx = loc[..., 0] + scale[..., 0] * e[..., 0]
        dy = loc[..., 1] + scale[..., 1] * (rho * e[..., 0] + (1 - rho * rho).sqrt() * e[..., 1])
        pen = torch.bernoulli(torch.sigmoid(self.pen_logits).expand(shape))
        return torch.stack([dx, dy, pen], -1)


class PenStrokeEmission(Emission):
    """Features -> :class:`PenStroke`: 6K + 1 outputs (π̂, μx, μy, σx, σy, ρ per component; pen logit)."""

    name = "strokes"

    normalized_columns = (0, 1)  # the offsets; the pen-up bit stays 0/1

    def __init__(self, cfg, in_features, x_dim):
        super().__init__(cfg, in_features, x_dim)
        if x_dim != 3:
            raise VrnnError(f"model.emission.name=strokes needs 3 features per step (dx, dy, pen_up), the data has "
                            f"{x_dim}; use stroke-3 data (vrnn prepare omniglot) or another emission")
        k = cfg.components
        self.logits = nn.Linear(in_features, k)
        self.loc = nn.Linear(in_features, 2 * k)
        self.scale = nn.Linear(in_features, 2 * k)
        self.corr = nn.Linear(in_features, k)
        self.pen = nn.Linear(in_features, 1)

    def forward(self, h):
        shape = h.shape[:-1] + (self.cfg.components, 2)
        return PenStroke(
            self.logits(h),
            self.loc(h).view(shape),  # (..., K, 2)
            positive_scale(self.scale(h), self.cfg.min_scale).view(shape),
            MAX_CORR * torch.tanh(self.corr(h)),  # (..., K)
            self.pen(h).squeeze(-1),  # (...,)
            validate_args=False,
        )

    @classmethod
    def check_sampling(cls, bias, temperature):
        check_sampling_options(bias, temperature)

    @classmethod
    def check_data(cls, x, where):
        if x.ndim != 2 or x.shape[1] != 3:
            raise VrnnError(f"{where}: the strokes emission needs (dx, dy, pen_up) rows, found {x.shape[1:]} "
                            f"features; convert the drawings to stroke-3 format")
        bad = ~np.isin(x[:, 2], (0.0, 1.0))
        if bad.any():
            raise VrnnError(f"{where}: the pen-up column (feature 2) must be 0 or 1, found {shown(x[bad, 2][0])}; "
                            f"use stroke-3 data with a binary pen-lift bit")
