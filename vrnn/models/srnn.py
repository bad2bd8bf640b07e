"""The Stochastic RNN of Fraccaro, Sønderby, Paquet & Winther (NIPS 2016),
"Sequential Neural Models with Stochastic Layers".

A deterministic GRU layer d_t feeds a state-space layer z_t (§2, Fig. 1):

* deterministic  d_t = GRU(d_{t-1}, u_t), u_t = x_{t-1}, x_0 = 0, d_0 = 0          (eq. 1)
* prior          p(z_t | z_{t-1}, d_t) = N(μ_p,t, diag σ_p,t²),
                 μ_p,t = NN(z_{t-1}, d_t), σ_p,t = softplus(NN(z_{t-1}, d_t)), z_0 = 0   (eq. 3)
* emission       p(x_t | z_t, d_t): any emission of :mod:`vrnn.emissions` on NN(z_t, d_t)
* inference      q(z_t | z_{t-1}, a_t) = N(μ_q,t, diag σ_q,t²) on NN(z_{t-1}, a_t)      (eq. 10)
    ``posterior = "smooth"``  a_t = GRU_back(a_{t+1}, [d_t, x_t]), so q sees d_t and x_{t:T}  (eq. 7, 10)
    ``posterior = "filter"``  a_t = NN(d_t, x_t), so q sees x_{1:t}
    ``res_q = true``          μ_q,t = μ_p,t + NN(z_{t-1}, a_t): q learns the residual to the prior  (eq. 12)

With ``embed_layers = L > 0`` the GRUs read a learned embedding e(x_t) (L layers of
``width`` units, shared by u_t and x_t, as in the paper's released code) instead of x_t.
``dropout`` and ``input_dropout`` (training only) are the released code's dropout on the
non-recurrent uses of d_t and z_t and on the GRUs' inputs; the paper's model has none.

Since d_{1:T} depends on x only, both GRUs run over the whole sequence as single fused
calls in :meth:`encode` (the backward one within each sequence's own length); only the
z-chain runs in the step of :class:`~vrnn.models.base.SequenceModel` (with Res_q the prior
is formed there too, once, by ``step_prior``, and the step keeps it for the KL). The hidden layers use the paper's clipped leaky ReLU (leakiness 1/3, clipped at ±3) by
default; the KL temperature (0.2 → 1 in the paper) is the trainer's ``train.kl_start``
and ``train.kl_warmup_steps``.

The state s_{t-1} = (z_{t-1}, d_{t-1}, x_{t-1}) is what truncated BPTT carries from one
chunk to the next. Deviation: standard deviations get a small floor (``min_scale``)
after the softplus, as everywhere in the library.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from ..emissions import build_emission, positive_scale
from ..settings import POSITIVE, PROBABILITY, Check, above, at_least, one_of
from .nets import ACTIVATIONS, SplitMLP, mlp
from .base import ModelConfig, SequenceModel
from .cells import cell_step, run_backward

POSTERIORS = ("smooth", "filter")


@dataclass(frozen=True)
class SRNNConfig(ModelConfig):
    kind: str = "srnn"
    hidden: int = 300  # size of d_t (GRU)
    a_hidden: int = 300  # size of a_t (backward GRU for smooth, NN output for filter)
    z_dim: int = 100
    width: int = 500  # units of every hidden layer of the prior, posterior and emission nets
    layers: int = 1  # hidden layers in each of those nets (paper, polyphonic: one layer of 500)
    activation: str = "leaky_clip"  # leaky ReLU, leakiness 1/3, clipped at ±3 (paper) | relu | tanh
    posterior: str = "smooth"  # smooth | filter
    res_q: bool = True  # eq. 12: posterior mean = prior mean + learned residual
    min_scale: float = 1e-3  # floor on latent standard deviations
    embed_layers: int = 0  # layers of `width` units embedding x_t before both GRUs, shared by u_t and x_t
    # (the paper's released code uses 2); 0 = the GRUs read x_t itself
    dropout: float = 0.0  # training only: dropout on d_t where the prior, posterior and emission read it,
    # and on z_t where the emission reads it (the recurrences themselves see no dropout)
    input_dropout: float = 0.0  # training only: dropout on the inputs of the two GRUs (u_t and x_t,
    # after the embedding when there is one), with independent masks

    CHECKS: ClassVar[dict[str, Check]] = {
        **ModelConfig.CHECKS, **dict.fromkeys(("hidden", "a_hidden", "z_dim", "width", "layers"), POSITIVE),
        "activation": one_of(sorted(ACTIVATIONS)), "posterior": one_of(POSTERIORS), "min_scale": above(0),
        "embed_layers": at_least(0, " (0: no input embedding)"), "dropout": PROBABILITY, "input_dropout": PROBABILITY,
    }


class SRNN(SequenceModel):
    """SRNN; see the module docstring for the equations."""

    config_class = SRNNConfig

    def __init__(self, cfg: SRNNConfig):
        super().__init__(cfg)
        cfg.check("model config")
        self.drop, self.in_drop = nn.Dropout(cfg.dropout), nn.Dropout(cfg.input_dropout)
        D, H, A, W, Z, L, act = cfg.x_dim, cfg.hidden, cfg.a_hidden, cfg.width, cfg.z_dim, cfg.layers, cfg.activation
        self.z_dim = Z
        self.embed = mlp(D, W, cfg.embed_layers, act) if cfg.embed_layers else nn.Identity()  # x_t's features
        E = W if cfg.embed_layers else D
        self.gru = nn.GRU(E, H, batch_first=True)  # d_t = GRU(d_{t-1}, x_{t-1})
        self.prior_net = SplitMLP([Z, H], W, L, act)  # NN(z_{t-1}, d_t)
        self.prior_loc, self.prior_scale = nn.Linear(W, Z), nn.Linear(W, Z)
        if cfg.posterior == "smooth":
            self.a_rnn = nn.GRU(H + E, A, batch_first=True)  # run backwards in time
        else:
            self.a_net = mlp(H + E, A, 1, act)
        self.post_net = SplitMLP([Z, A], W, L, act)  # NN(z_{t-1}, a_t)
        self.post_loc, self.post_scale = nn.Linear(W, Z), nn.Linear(W, Z)
        self.dec = mlp(Z + H, W, L, act)  # NN(z_t, d_t)
        self.out = build_emission(cfg.emission, W, D)

    def initial_state(self, ref, batch):
        c = self.cfg
        return ref.new_zeros(batch, c.z_dim), ref.new_zeros(batch, c.hidden), ref.new_zeros(batch, c.x_dim)

    def encode(self, x, carry, mask=None):
        z0, d0, x0 = carry if carry is not None else self.initial_state(x, x.shape[0])
        ex = self.embed(x)  # (B, T, E), for all steps at once
        u = self.in_drop(torch.cat([self.embed(x0).unsqueeze(1), ex[:, :-1]], 1))  # u_t = x_{t-1}
        d, _ = self.gru(u, d0.unsqueeze(0).contiguous())  # d_1..d_T  (B, T, H)
        dd = self.drop(d)  # d_t where the nets read it; the GRU carries d itself
        dx = torch.cat([dd, self.in_drop(ex)], -1)
        a = run_backward(self.a_rnn, dx, mask) if self.cfg.posterior == "smooth" else self.a_net(dx)  # (B, T, A)
        ctx = {
            "d": d,
            "d_read": dd,
            "x": x,
            "prior_d": self.prior_net.first_layer(1, dd),  # d_t's share of the prior net's first layer
            "post_a": self.post_net.first_layer(1, a),  # a_t's share of the posterior net's first layer
        }
        return ctx, (z0, d0, x0)

    def _prior(self, z_prev, prior_d):
        feat = self.prior_net.finish(prior_d + self.prior_net.first_layer(0, z_prev))
        return self.prior_loc(feat), positive_scale(self.prior_scale(feat), self.cfg.min_scale)

    def prior(self, s, ctx):
        return self._prior(s, ctx["prior_d"])

    def step_prior(self, state, ctx_t):  # Res_q builds q on the prior: form it in the step, once
        return self._prior(state[0], ctx_t["prior_d"]) if self.cfg.res_q else None

    def posterior(self, state, ctx_t, prior_t):
        feat = self.post_net.finish(ctx_t["post_a"] + self.post_net.first_layer(0, state[0]))
        loc, scale = self.post_loc(feat), positive_scale(self.post_scale(feat), self.cfg.min_scale)
        if self.cfg.res_q:  # eq. 12: μ_q = μ_p + residual; the step keeps prior_t for the KL
            loc = loc + prior_t[0]
        return loc, scale

    def transition(self, state, ez, ctx_t):
        return ez["z"], ctx_t["d"], ctx_t["x"]

    def emission(self, s, ez, ctx):
        return self.out(self.dec(torch.cat([self.drop(ez["z"]), ctx["d_read"]], -1)))

    def pre_step(self, state):  # d_t = GRU(d_{t-1}, x_{t-1}): the fused GRU's step
        g = self.gru
        gx = F.linear(self.embed(state[2]), g.weight_ih_l0, g.bias_ih_l0)
        (d,) = cell_step(gx, (state[1],), g.weight_hh_l0, g.bias_hh_l0)
        return state, {"d": d, "d_read": d, "prior_d": self.prior_net.first_layer(1, d)}

    def embed_x(self, x):
        return {"x": x}

    @property
    def posterior_is_filter(self) -> bool:
        return self.cfg.posterior == "filter"

    @property
    def display_name(self):
        resq = "+Res_q" if self.cfg.res_q else ""
        return f"SRNN({self.cfg.posterior}{resq})-{self.cfg.emission.name}"
