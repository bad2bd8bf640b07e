"""The Variational Recurrent Neural Network (Chung et al., NIPS 2015) and VRNN-I.

Equations of the paper (§3.2), with s_{t-1} = h_{t-1}:

* prior       p(z_t | h_{t-1})       = N(μ_0,t, diag σ_0,t²), [μ_0,t, σ_0,t] = φ_prior(h_{t-1})   (eq. 5)
* decoder     p(x_t | z_t, h_{t-1})  from φ_dec(φ_z(z_t), h_{t-1})                               (eq. 6)
* recurrence  h_t = f(φ_x(x_t), φ_z(z_t), h_{t-1}), f an LSTM (or GRU)                            (eq. 7)
* encoder     q(z_t | x_t, h_{t-1})  = N(μ_z,t, diag σ_z,t²), [μ_z,t, σ_z,t] = φ_enc(φ_x(x_t), h_{t-1})  (eq. 9)

``prior = "independent"`` gives VRNN-I: p(z_t) = N(0, I) at every step (the paper's
STORN-like variant); everything else is unchanged.

Deviation: standard deviations come from a softplus plus a small floor
(``min_scale``) rather than an unconstrained softplus, for numerical safety.
The decoder output distribution is any emission of :mod:`vrnn.emissions`.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch
from torch import nn

from ..emissions import build_emission, positive_scale
from ..settings import POSITIVE, PROBABILITY, Check, above, one_of
from .nets import SplitMLP, mlp
from .base import ModelConfig, SequenceModel
from .cells import SplitInputCell


@dataclass(frozen=True)
class VRNNConfig(ModelConfig):
    kind: str = "vrnn"
    rnn: str = "lstm"  # lstm | gru: the recurrence f
    hidden: int = 256  # size of h
    z_dim: int = 32
    width: int = 256  # units of every feature-extractor layer
    layers: int = 4  # ReLU layers in φx, φz, φprior, φenc, φdec (paper: 4)
    prior: str = "conditional"  # conditional (VRNN, eq. 5) | independent (VRNN-I: N(0, I))
    min_scale: float = 1e-3  # floor on latent standard deviations
    decoder_dropout: float = 0.0  # dropout on h_{t-1} where the decoder reads it (training only): the decoder
    # must lean on z_t for what h_{t-1} would tell it, against the posterior collapsing to the prior; 0 = off

    CHECKS: ClassVar[dict[str, Check]] = {
        **ModelConfig.CHECKS, "rnn": one_of(("lstm", "gru")), "prior": one_of(("conditional", "independent")),
        **dict.fromkeys(("hidden", "z_dim", "width", "layers"), POSITIVE), "min_scale": above(0),
        "decoder_dropout": PROBABILITY,
    }


class VRNN(SequenceModel):
    config_class = VRNNConfig
    posterior_is_filter = True  # q(z_t | x_t, h_{t-1}), eq. 9

    def __init__(self, cfg: VRNNConfig):
        super().__init__(cfg)
        cfg.check("model config")
        H, W, Z = cfg.hidden, cfg.width, cfg.z_dim
        self.z_dim = Z
        self.phi_x = mlp(cfg.x_dim, W, cfg.layers)
        self.phi_z = mlp(Z, W, cfg.layers)
        self.enc = SplitMLP([W, H], W, cfg.layers)  # φ_enc(φx(x_t), h_{t-1})
        self.enc_head = nn.Linear(W, 2 * Z)  # [μ_z, raw σ_z]
        if cfg.prior == "conditional":
            self.prior_net = mlp(H, W, cfg.layers)
            self.prior_head = nn.Linear(W, 2 * Z)  # [μ_0, raw σ_0]
        self.dec = mlp(W + H, W, cfg.layers)  # φ_dec(φz(z_t), h_{t-1})
        self.out = build_emission(cfg.emission, W, cfg.x_dim)
        self.cell = SplitInputCell(cfg.rnn, [W, W], H)  # input [φx(x_t), φz(z_t)]

    def encode(self, x, carry, mask=None):  # causal: the mask is not needed
        phi_x = self.phi_x(x)  # (B, T, W)
        ctx = {
            "enc_x": self.enc.first_layer(0, phi_x),  # φx's share of the encoder's first layer
            "rnn_x": self.cell.project(0, phi_x),  # φx's share of W_ih·u + b_ih
        }
        state = carry if carry is not None else self.cell.zero_state(x, x.shape[0])
        return ctx, state

    def posterior(self, state, ctx_t, prior_t):
        feat = self.enc.finish(ctx_t["enc_x"] + self.enc.first_layer(1, state[0]))
        return self._gaussian(self.enc_head(feat))

    def embed_z(self, z):
        return {"phi_z": self.phi_z(z)}

    def transition(self, state, ez, ctx_t):
        return self.cell.step(ctx_t["rnn_x"] + self.cell.project(1, ez["phi_z"]), state)

    def prior(self, s, ctx):
        if self.cfg.prior == "independent":
            shape = s.shape[:-1] + (self.z_dim,)
            return s.new_zeros(shape), s.new_ones(shape)
        feat = self.prior_net(s)
        return self._gaussian(self.prior_head(feat))

    def _gaussian(self, out: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        loc, raw = out.chunk(2, -1)
        return loc, positive_scale(raw, self.cfg.min_scale)

    def emission(self, s, ez, ctx):
        s = nn.functional.dropout(s, self.cfg.decoder_dropout, self.training) if self.cfg.decoder_dropout else s
        return self.out(self.dec(torch.cat([ez["phi_z"], s], -1)))

    def initial_state(self, ref, batch):
        return self.cell.zero_state(ref, batch)

    def embed_x(self, x):
        phi_x = self.phi_x(x)
        return {"rnn_x": self.cell.project(0, phi_x)}

    @property
    def display_name(self):
        base = "VRNN-I" if self.cfg.prior == "independent" else "VRNN"
        return f"{base}-{self.cfg.emission.name}"
