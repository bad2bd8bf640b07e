"""The emission interface: features -> a ``torch.distributions`` object over x_t.

An emission head maps a feature vector to a ``torch.distributions`` object whose
``log_prob(x)`` returns one log-density per time step (event dimensions summed).
Models never write a likelihood formula; the objective calls ``log_prob``.

The registry of emissions, by ``model.emission.name``, is :data:`vrnn.emissions.EMISSIONS`.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import nn
from torch.distributions import Distribution, Independent, Normal

from ..errors import VrnnError
from ..settings import POSITIVE, Check, Checked, above


@dataclass(frozen=True)
class EmissionConfig(Checked):
    """The output distribution p(x_t | ·): ``model.emission`` in a config. The name is checked
    against :data:`vrnn.emissions.EMISSIONS` by :class:`vrnn.models.ModelConfig` (the registry
    is built from the emission modules, which import this one)."""

    name: str = "gauss"  # gauss | gmm | bernoulli | strokes | nade | ar-gmm | dlogistic
    components: int = 20  # mixture components for gmm, strokes, ar-gmm, dlogistic (VRNN paper: 20)
    min_scale: float = 1e-3  # floor on Gaussian (and logistic) scales
    hidden: int = 150  # hidden units of the within-frame network of nade and ar-gmm

    SECTION: ClassVar[str] = "model.emission"
    CHECKS: ClassVar[dict[str, Check]] = {"components": POSITIVE, "min_scale": above(0), "hidden": POSITIVE}


_LOG_SQRT_2PI = math.log(math.sqrt(2 * math.pi))


class _NormalLogProb(torch.autograd.Function):
    """log N(x; μ, σ) elementwise: torch's ``Normal.log_prob`` formula, operation for operation (so the
    same values, bit for bit), computed in place; the gradient written out, ∂/∂μ = (x − μ)/σ²,
    ∂/∂σ = ((x − μ)²/σ² − 1)/σ, ∂/∂x = −∂/∂μ, instead of autograd's chain through a dozen temporaries."""

    @staticmethod
    def forward(value, loc, scale):
        # loc and scale have one shape (Normal broadcasts them), so x − μ has the output's shape
        return (value - loc).pow_(2).neg_().div_(2 * scale.pow(2)).sub_(scale.log()).sub_(_LOG_SQRT_2PI)

    @staticmethod
    def setup_context(ctx, inputs, output):
        ctx.save_for_backward(*inputs)

    @staticmethod
    def backward(ctx, grad):
        value, loc, scale = ctx.saved_tensors
        inv = scale.reciprocal()
        z = (value - loc).mul_(inv)  # (x − μ)/σ, the broadcast shape
        d_loc = z.mul(inv).mul_(grad)
        d_value = -d_loc if ctx.needs_input_grad[0] else None
        d_scale = z.pow_(2).sub_(1).mul_(inv).mul_(grad) if ctx.needs_input_grad[2] else None
        return (_sum_to(d_value, value), _sum_to(d_loc, loc) if ctx.needs_input_grad[1] else None,
                _sum_to(d_scale, scale))


def _sum_to(g: torch.Tensor | None, like: torch.Tensor) -> torch.Tensor | None:
    return g if g is None or g.shape == like.shape else g.sum_to_size(like.shape)


class FusedNormal(Normal):
    """``torch.distributions.Normal`` with a fused ``log_prob`` (:class:`_NormalLogProb`): the same
    values bit for bit, the same gradients to rounding. On a 20-component mixture over 200-sample frames
    (B 64, T 40, one thread, two other jobs running) the log-density's forward and backward took 745 ms
    with ``Normal``, over half of a VRNN-GMM training step, and take 318 ms; the whole step went from
    1.2 to 0.8 s (the rest is mostly the mixture's 128 → 4000 output layers). Everything else (sampling,
    entropy, KL, ``expand``) is ``Normal``'s."""

    def log_prob(self, value):
        return _NormalLogProb.apply(value, self.loc, self.scale)


def diag_gaussian(loc: torch.Tensor, scale: torch.Tensor) -> Independent:
    """N(loc, diag(scale^2)) with the last dimension as the event (:class:`FusedNormal`).

    Argument validation is off here and in every emission: it costs time on every step,
    and a diverging run is reported by the trainer's own finiteness check instead.
    """
    return Independent(FusedNormal(loc, scale, validate_args=False), 1, validate_args=False)


def positive_scale(raw: torch.Tensor, floor: float) -> torch.Tensor:
    return F.softplus(raw) + floor


class Emission(nn.Module):
    """Features (..., in_features) -> distribution over x_t (..., x_dim)."""

    name = "base"
    real_valued = True  # real-valued data are normalised with the training mean/std
    discrete = False  # log_prob is a probability mass (the evaluation adds bits per frame)
    normalized_columns: tuple[int, ...] | None = None  # the features normalised; None: all of them

    def __init__(self, cfg: EmissionConfig, in_features: int, x_dim: int):
        super().__init__()
        cfg.check("emission config")  # the one check of its values (EmissionConfig.CHECKS)
        self.cfg = cfg
        self.x_dim = x_dim

    def forward(self, h: torch.Tensor) -> Distribution:  # pragma: no cover - abstract
        raise NotImplementedError

    @classmethod
    def check_data(cls, x, where: str) -> None:
        """Raise a VrnnError naming ``where`` if ``x`` (a numpy array) is outside the support."""

    @classmethod
    def check_sampling(cls, bias: float, temperature: float) -> None:
        """Raise a VrnnError unless this emission can sample with ``bias`` and ``temperature``.

        Only the pen-stroke emission has biased sampling; every other one samples the model
        itself (bias 0, temperature 1).
        """
        if (bias, temperature) != (0.0, 1.0):
            raise VrnnError("--bias/--temperature apply only to models with model.emission.name=strokes")
