"""Emissions autoregressive within the frame: p(x_t | c_t) = Π_i p(x_{t,i} | x_{t,<i}, c_t).

* ``nade``    binary frames (piano rolls): NADE with shared hidden weights (Larochelle & Murray 2011,
  eqs. 2-3) whose hidden and output biases come from the model's emission features c_t, as in
  RNN-NADE (Boulanger-Lewandowski et al. 2012, eq. 7). With an RNN this is RNN-NADE; with VRNN,
  SRNN or DMM the features carry z_t too.
* ``ar-gmm``  real frames: a MADE network (:mod:`.made`) gives each element a mixture of
  ``components`` Gaussians conditioned on the earlier elements of its frame and on c_t.

Why NADE and not MADE for binary frames, by measurement (scripts/emission_speed.py, 1 thread of a
shared 2-core Xeon, torch 2.13 CPU, H = 150, ``srnn-polyphonic`` bench shapes: B 16, T 100, 88 keys,
features 500). With NADE's dense form (D hidden vectors per frame), log_prob forward + backward:
Bernoulli 6 ms, NADE 390 ms, a conditional MADE of one masked hidden layer 16 ms; a whole SRNN
training step: Bernoulli 249 ms, NADE 634 ms (2.6×). The issue's target is NADE's log_prob ≤ 2× the
Bernoulli training step: NADE met it even so, and we kept NADE, the model of the published RNN-NADE
results the issue compares against. Binary frames now take the segment form of
:meth:`NADE.conditional_logits` (one hidden vector per key that is on, the same numbers): on the
bench's random frames (10 % of keys on) NADE's log_prob fell from 470 to 171 ms and the SRNN step
from 812 to 614 ms, measured under the same load (benchmarks/polyphonic/emission_speed.json holds the
current figures); on piano rolls (at most 4 keys at once in the JSB arrays, 9 in Nottingham's) a
VRNN-NADE training step fell 2.9× (1.44 to 0.50 s, batch 32 × 100 steps, two other jobs running). ``ar-gmm`` uses MADE: for audio frames (D = 200) of real values
NADE's (frames, D, H) tensors would be too large.

Keys are scored in the data's column order (low to high pitch for piano rolls); ``log_prob`` is
exact, ``sample`` draws element by element (D passes).
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn
from torch.distributions import Categorical, Distribution, MixtureSameFamily, constraints

from .base import Emission, FusedNormal, positive_scale
from .made import MADE
from .standard import check_binary

ROWS = 4096  # frames per chunk of NADE's (frames, segments, D or H) tensors: bounds memory at evaluation


def _expand_params(dist, new, batch_shape, names):
    """Copy ``dist`` into ``new`` with the per-frame tensors ``names`` expanded to ``batch_shape``."""
    batch_shape = torch.Size(batch_shape)
    for name in names:
        v = getattr(dist, name)
        setattr(new, name, v.expand(batch_shape + v.shape[-1:]))
    Distribution.__init__(new, batch_shape, dist.event_shape, validate_args=False)
    new._validate_args = dist._validate_args
    return new


class NADE(Distribution):
    """NADE over binary frames (D,): hidden_bias (S, H) and logit_bias (S, D) per frame; the shared
    input weights ``w`` (D, H) and output weights ``v`` (D, H).

    a_i = hidden_bias + Σ_{j<i} x_j w_j,  p(x_i = 1 | x_{<i}) = σ(logit_bias_i + v_i · σ(a_i)).
    """

    arg_constraints = {"hidden_bias": constraints.independent(constraints.real, 1),
                       "logit_bias": constraints.independent(constraints.real, 1)}
    support = constraints.independent(constraints.boolean, 1)
    has_rsample = False

    def __init__(self, hidden_bias, logit_bias, w, v, validate_args: bool | None = None):
        self.hidden_bias, self.logit_bias, self.w, self.v = hidden_bias, logit_bias, w, v
        super().__init__(logit_bias.shape[:-1], logit_bias.shape[-1:], validate_args=validate_args)

    def expand(self, batch_shape, _instance=None) -> NADE:
        new = self._get_checked_instance(NADE, _instance)
        new.w, new.v = self.w, self.v
        return _expand_params(self, new, batch_shape, ("hidden_bias", "logit_bias"))

    def conditional_logits(self, x: torch.Tensor) -> torch.Tensor:
        """logit p(x_i = 1 | x_{<i}) for every key at once (..., D).

        For a binary frame the running sum a_i = Σ_{j<i} x_j w_j changes only after a key that is on,
        so a frame with k keys on has k + 1 distinct hidden vectors: key i reads segment s_i = Σ_{j<i}
        x_j. They are computed once each, (..., k + 1, H), and every segment's logits for all keys,
        (..., k + 1, D), are two matrix products, from which key i takes row s_i. Cost O(k D H) per
        frame instead of O(D² H): on a batch of Nottingham's training chunks (32 × 100 frames, at most
        5 keys on, H = 150, one thread) forward and backward took 56 ms against the dense form's 1.2 s.

        Frames that are not binary (a relaxation, or the Jacobian tests) take the dense form: the
        strictly lower-triangular masked frame (..., D, D) times w, differentiable in x.
        """
        if torch.is_grad_enabled() and x.requires_grad or not ((x == 0) | (x == 1)).all():
            d = x.shape[-1]
            past = (x.unsqueeze(-2) * x.new_ones(d, d).tril(-1)) @ self.w  # (..., D, H)
            h = torch.sigmoid(self.hidden_bias.unsqueeze(-2) + past)
            return self.logit_bias + torch.einsum("...dh,dh->...d", h, self.v)
        on = x.long()  # counted in integers, exact in any dtype of x
        before = on.cumsum(-1) - on  # s_i: keys on before key i
        k = int(on.sum(-1).max()) + 1 if x.numel() else 1
        s = torch.arange(k, device=x.device)
        first = x.unsqueeze(-2) * (before.unsqueeze(-2) < s.unsqueeze(-1)).to(x.dtype)  # (..., k+1, D)
        h = torch.sigmoid(self.hidden_bias.unsqueeze(-2) + first @ self.w)  # (..., k+1, H)
        every = h @ self.v.T  # (..., k+1, D): segment s's logit for every key
        return self.logit_bias + every.gather(-2, before.unsqueeze(-2)).squeeze(-2)

    def log_prob(self, x: torch.Tensor) -> torch.Tensor:
        if self._validate_args:
            self._validate_sample(x)
        shape = torch.broadcast_shapes(x.shape[:-1], self.batch_shape)
        x = x.expand(shape + self.event_shape).reshape(-1, *self.event_shape)
        hb = self.hidden_bias.expand(shape + self.hidden_bias.shape[-1:]).reshape(x.shape[0], -1)
        lb = self.logit_bias.expand(shape + self.event_shape).reshape(x.shape)
        out = []
        for i in range(0, x.shape[0], ROWS):  # in chunks of frames
            part = NADE(hb[i:i + ROWS], lb[i:i + ROWS], self.w, self.v, validate_args=False)
            logits = part.conditional_logits(x[i:i + ROWS])
            out.append(-F.binary_cross_entropy_with_logits(logits, x[i:i + ROWS], reduction="none").sum(-1))
        return torch.cat(out).view(shape) if out else x.new_zeros(shape)

    @torch.no_grad()
    def sample(self, sample_shape=torch.Size()) -> torch.Tensor:
        shape = self._extended_shape(sample_shape)[:-1]
        a = self.hidden_bias.expand(shape + self.hidden_bias.shape[-1:]).clone()
        lb = self.logit_bias.expand(shape + self.event_shape)
        x = lb.new_zeros(shape + self.event_shape)
        for i in range(x.shape[-1]):  # key by key
            x[..., i] = torch.bernoulli(torch.sigmoid(lb[..., i] + (torch.sigmoid(a) * self.v[i]).sum(-1)))
            a += x[..., i:i + 1] * self.w[i]
        return x


class NadeEmission(Emission):
    """Features c_t -> :class:`NADE`: the hidden bias (H = ``model.emission.hidden``) and the D output
    biases are linear in c_t; the NADE weights w, v are shared by every step."""

    name = "nade"
    real_valued = False
    discrete = True

    def __init__(self, cfg, in_features, x_dim):
        super().__init__(cfg, in_features, x_dim)
        H = cfg.hidden
        self.hidden_bias = nn.Linear(in_features, H)
        self.logit_bias = nn.Linear(in_features, x_dim)
        self.w = nn.Parameter(torch.empty(x_dim, H).uniform_(-1 / math.sqrt(x_dim), 1 / math.sqrt(x_dim)))
        self.v = nn.Parameter(torch.empty(x_dim, H).uniform_(-1 / math.sqrt(H), 1 / math.sqrt(H)))

    def forward(self, h):
        return NADE(self.hidden_bias(h), self.logit_bias(h), self.w, self.v, validate_args=False)

    @classmethod
    def check_data(cls, x, where):
        check_binary(x, where, cls.name)


class AutoregressiveMixture(Distribution):
    """Real frames (D,), element i a mixture of K Gaussians whose weights, locations and scales
    come from ``made`` (:class:`.made.MADE`, 3K parameters per element) given x_{<i} and the
    per-frame biases hidden_bias (S, H) and out_bias (S, D·3K)."""

    arg_constraints = {"hidden_bias": constraints.independent(constraints.real, 1),
                       "out_bias": constraints.independent(constraints.real, 1)}
    support = constraints.independent(constraints.real, 1)
    has_rsample = False

    def __init__(self, made, hidden_bias, out_bias, min_scale: float, validate_args: bool | None = None):
        self.made, self.hidden_bias, self.out_bias, self.min_scale = made, hidden_bias, out_bias, min_scale
        super().__init__(out_bias.shape[:-1], torch.Size([made.x_dim]), validate_args=validate_args)

    def expand(self, batch_shape, _instance=None) -> AutoregressiveMixture:
        new = self._get_checked_instance(AutoregressiveMixture, _instance)
        new.made, new.min_scale = self.made, self.min_scale
        return _expand_params(self, new, batch_shape, ("hidden_bias", "out_bias"))

    def conditionals(self, x: torch.Tensor):
        """Mixture log-weights, locations and scales of every element given the earlier ones, (..., D, K) each."""
        logits, loc, raw = self.made(x, self.hidden_bias, self.out_bias).chunk(3, -1)
        return logits.log_softmax(-1), loc, positive_scale(raw, self.min_scale)

    def log_prob(self, x: torch.Tensor) -> torch.Tensor:
        if self._validate_args:
            self._validate_sample(x)
        return _mixture(*self.conditionals(x)).log_prob(x).sum(-1)

    @torch.no_grad()
    def sample(self, sample_shape=torch.Size()) -> torch.Tensor:
        shape = self._extended_shape(sample_shape)
        x = self.out_bias.new_zeros(shape)
        for i in range(shape[-1]):  # element by element
            x[..., i] = _mixture(*(v[..., i, :] for v in self.conditionals(x))).sample()
        return x


def _mixture(log_w: torch.Tensor, loc: torch.Tensor, scale: torch.Tensor) -> MixtureSameFamily:
    """One Gaussian mixture per element: weights, locations and scales (..., K) -> batch (...)."""
    return MixtureSameFamily(Categorical(logits=log_w, validate_args=False),
                             FusedNormal(loc, scale, validate_args=False), validate_args=False)


class AutoregressiveGmmEmission(Emission):
    """Features c_t -> :class:`AutoregressiveMixture`: a MADE of ``model.emission.hidden`` units and
    ``model.emission.components`` Gaussians per element; c_t gives its hidden and output biases."""

    name = "ar-gmm"

    def __init__(self, cfg, in_features, x_dim):
        super().__init__(cfg, in_features, x_dim)
        self.made = MADE(x_dim, cfg.hidden, 3 * cfg.components)
        self.hidden_bias = nn.Linear(in_features, cfg.hidden)
        self.out_bias = nn.Linear(in_features, x_dim * 3 * cfg.components)

    def forward(self, h):
        return AutoregressiveMixture(self.made, self.hidden_bias(h), self.out_bias(h), self.cfg.min_scale,
                                     validate_args=False)
