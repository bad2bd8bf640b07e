"""The Deep Markov Model of Krishnan, Shalit & Sontag (AAAI 2017),
"Structured Inference Networks for Nonlinear State Space Models".

* transition  p(z_t | z_{t-1}) = N(μ_t, diag σ_t²), the gated transition (§5):
                g_t = sigmoid(NN_g(z_{t-1})), h_t = NN_h(z_{t-1}),
                μ_t = (1 - g_t) ⊙ W z_{t-1} + g_t ⊙ h_t  (W starts as the identity),
                σ_t = softplus(V relu(h_t))
* emission    p(x_t | z_t): any emission of :mod:`vrnn.emissions` on an MLP of z_t
* inference   q(z_t | z_{t-1}, h^q_t) with the combiner of the paper:
                h^c_t = ½ (tanh(U z_{t-1}) + h^q_t), μ_q = Linear(h^c_t), σ_q = softplus(Linear(h^c_t))
    ``posterior = "smooth"``  h^q_t from an RNN run backwards over x_{t:T} (the paper's DKS / ST-R)
    ``posterior = "filter"``  h^q_t from an RNN run forwards over x_{1:t} (ST-L)

The inference RNN is one fused call over the whole sequence in :meth:`encode` (the
backward one within each sequence's own length); only the z-chain runs in the step.
Deviations: one learned z_0 serves both the prior and the posterior at t = 1 (Pyro's
example learns two); standard deviations get a small floor (``min_scale``).

The state is (z_{t-1},) for the smoother and (z_{t-1}, RNN state) for the filter, whose
forward RNN state truncated BPTT carries from one chunk to the next; a backward RNN
cannot be carried, so a chunk's smoother sees the future of that chunk only.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from ..emissions import build_emission, positive_scale
from ..settings import POSITIVE, Check, above, one_of
from .nets import mlp
from .base import ModelConfig, SequenceModel
from .cells import make_rnn, run_backward

POSTERIORS = ("smooth", "filter")
DMM_RNNS = ("gru", "lstm", "rnn")  # the inference RNN


@dataclass(frozen=True)
class DMMConfig(ModelConfig):
    kind: str = "dmm"
    z_dim: int = 100
    transition_hidden: int = 200  # units of NN_g and NN_h
    emission_hidden: int = 100
    emission_layers: int = 2  # ReLU layers of the emission MLP
    rnn: str = "gru"  # gru | lstm | rnn: the inference RNN
    rnn_hidden: int = 600
    posterior: str = "smooth"  # smooth (x_{t:T}) | filter (x_{1:t})
    min_scale: float = 1e-3  # floor on latent standard deviations

    CHECKS: ClassVar[dict[str, Check]] = {
        **ModelConfig.CHECKS, "rnn": one_of(DMM_RNNS), "posterior": one_of(POSTERIORS), "min_scale": above(0),
        **dict.fromkeys(("z_dim", "transition_hidden", "emission_hidden", "emission_layers", "rnn_hidden"), POSITIVE),
    }


class GatedTransition(nn.Module):
    """Parameterises p(z_t | z_{t-1}): location and scale of the gated transition."""

    def __init__(self, z_dim: int, hidden: int):
        super().__init__()
        self.gate = nn.Sequential(nn.Linear(z_dim, hidden), nn.ReLU(), nn.Linear(hidden, z_dim))
        self.proposal = nn.Sequential(nn.Linear(z_dim, hidden), nn.ReLU(), nn.Linear(hidden, z_dim))
        self.linear = nn.Linear(z_dim, z_dim)
        self.scale = nn.Linear(z_dim, z_dim)
        with torch.no_grad():  # start as the identity map, as in the paper
            self.linear.weight.copy_(torch.eye(z_dim))
            self.linear.bias.zero_()

    def forward(self, z_prev: torch.Tensor, min_scale: float) -> tuple[torch.Tensor, torch.Tensor]:
        g = torch.sigmoid(self.gate(z_prev))
        h = self.proposal(z_prev)
        loc = (1 - g) * self.linear(z_prev) + g * h
        return loc, positive_scale(self.scale(F.relu(h)), min_scale)


class Combiner(nn.Module):
    """Parameterises q(z_t | z_{t-1}, h^q_t): location and scale from ½ (tanh(U z_{t-1}) + h^q_t)."""

    def __init__(self, z_dim: int, rnn_hidden: int):
        super().__init__()
        self.z_to_h = nn.Linear(z_dim, rnn_hidden)
        self.loc, self.scale = nn.Linear(rnn_hidden, z_dim), nn.Linear(rnn_hidden, z_dim)

    def forward(self, z_prev, h_rnn, min_scale):
        h = 0.5 * (torch.tanh(self.z_to_h(z_prev)) + h_rnn)
        return self.loc(h), positive_scale(self.scale(h), min_scale)


class DMM(SequenceModel):
    """Deep Markov Model; see the module docstring for the equations."""

    config_class = DMMConfig

    def __init__(self, cfg: DMMConfig):
        super().__init__(cfg)
        cfg.check("model config")
        Z = self.z_dim = cfg.z_dim
        self.trans = GatedTransition(Z, cfg.transition_hidden)
        self.emitter = mlp(Z, cfg.emission_hidden, cfg.emission_layers)
        self.out = build_emission(cfg.emission, cfg.emission_hidden, cfg.x_dim)
        self.rnn = make_rnn(cfg.rnn, cfg.x_dim, cfg.rnn_hidden, DMM_RNNS)
        self.combiner = Combiner(Z, cfg.rnn_hidden)
        self.z_0 = nn.Parameter(torch.zeros(Z))

    @property
    def _rnn_state_size(self) -> int:  # tensors in the carried forward-RNN state
        return 0 if self.cfg.posterior == "smooth" else (2 if self.cfg.rnn == "lstm" else 1)

    def initial_state(self, ref, batch):
        z0 = self.z_0.to(ref.dtype).expand(batch, -1)
        h = ref.new_zeros(batch, self.cfg.rnn_hidden)
        return (z0,) + (h,) * self._rnn_state_size

    def encode(self, x, carry, mask=None):
        state = carry if carry is not None else self.initial_state(x, x.shape[0])
        if self.cfg.posterior == "smooth":
            return {"h": run_backward(self.rnn, x, mask)}, state  # h^q_t from x_{t:T}  (B, T, R)
        hx = tuple(s.unsqueeze(0).contiguous() for s in state[1:])
        h, last = self.rnn(x, hx if len(hx) == 2 else hx[0])  # h^q_t from x_{1:t}
        last = last if isinstance(last, tuple) else (last,)
        # the RNN's final state rides along unchanged through the steps, for the carry
        return {"h": h}, (state[0],) + tuple(s.squeeze(0) for s in last)

    def posterior(self, state, ctx_t, prior_t):
        return self.combiner(state[0], ctx_t["h"], self.cfg.min_scale)

    def transition(self, state, ez, ctx_t):
        return (ez["z"],) + tuple(state[1:])

    def prior(self, s, ctx):
        return self.trans(s, self.cfg.min_scale)

    def emission(self, s, ez, ctx):
        return self.out(self.emitter(ez["z"]))

    @property
    def posterior_is_filter(self) -> bool:
        return self.cfg.posterior == "filter"

    @property
    def display_name(self):
        return f"DMM({self.cfg.posterior})-{self.cfg.emission.name}"
