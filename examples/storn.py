"""STORN (Bayer & Osendorfer 2014, "Learning stochastic recurrent networks"), written as one step.

* generative RNN  h_t = GRU([x_{t-1}, z_t], h_{t-1}),  x_0 = 0, h_0 = 0          (§3, Fig. 1)
* prior           p(z_t) = N(0, I), independent of the past
* emission        p(x_t | h_t): any emission of vrnn.emissions on h_t
* recognition     q(z_t | x_{1:t}) = N(μ_t, diag σ_t²) from a recognition RNN over x_{1:t}

The recognition RNN does not depend on z, so ``encode`` runs it over the whole sequence at once;
only the generative GRU runs per step. Deviation: standard deviations get a softplus and a small
floor, as everywhere in vrnn. Use it with ``model.kind = "examples.storn:STORN"`` (examples/storn.toml).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from vrnn.emissions import build_emission, positive_scale
from vrnn.models import ModelConfig, SequenceModel, Step
from vrnn.models.base import randn_like


@dataclass(frozen=True)
class STORNConfig(ModelConfig):
    kind: str = "examples.storn:STORN"
    hidden: int = 64  # size of h_t and of the recognition RNN
    z_dim: int = 8


class STORN(SequenceModel):
    config_class = STORNConfig
    posterior_is_filter = True  # q(z_t | x_{1:t}): the particle filter's increments are predictive

    def __init__(self, cfg: STORNConfig):
        super().__init__(cfg)
        D, H, Z = cfg.x_dim, cfg.hidden, cfg.z_dim
        self.z_dim = Z
        self.recognition = nn.GRU(D, H, batch_first=True)
        self.q_head = nn.Linear(H, 2 * Z)  # [μ_t, raw σ_t]
        self.cell = nn.GRUCell(D + Z, H)
        self.out = build_emission(cfg.emission, H, D)

    def initial_state(self, ref, batch):  # (h_0, x_0)
        return ref.new_zeros(batch, self.cfg.hidden), ref.new_zeros(batch, self.cfg.x_dim)

    def encode(self, x, carry, mask=None):  # the recognition RNN, causal: no mask needed
        r, _ = self.recognition(x)  # (B, T, H)
        loc, raw = self.q_head(r).chunk(2, -1)
        inputs = {"x": x, "q_loc": loc, "q_scale": positive_scale(raw, 1e-3)}
        return inputs, carry if carry is not None else self.initial_state(x, x.shape[0])

    def step(self, state, inputs, proposal="posterior", noise=None, generator=None, observe=None):
        h, x_prev = state
        if proposal == "posterior":
            q = inputs["q_loc"], inputs["q_scale"]
        elif proposal == "prior":
            q = None
        else:
            raise ValueError(f"STORN has latent variables: proposal must be posterior or prior, got {proposal!r}")
        loc, scale = q if q is not None else self.prior(h, {})
        z = loc + scale * (noise if noise is not None else randn_like(loc, generator))
        h = self.cell(torch.cat([x_prev, z], -1), h)
        x = observe(self.emission(h, {}, {})) if observe is not None else None
        return (h, x if x is not None else inputs["x"]), Step(z=z, q=q, read={"s": h}, x=x)

    def prior(self, s, ctx):  # N(0, I) at every step; score() forms it, batched, at what the step read
        shape = s.shape[:-1] + (self.z_dim,)
        return s.new_zeros(shape), s.new_ones(shape)

    def emission(self, s, ez, ctx):  # p(x_t | h_t)
        return self.out(s)
