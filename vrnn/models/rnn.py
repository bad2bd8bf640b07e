"""RNN baselines of Chung et al. 2015: the VRNN's recurrence without latent variables.

h_t = f(φ_x(x_t), h_{t-1}) with f an LSTM (or GRU), and p(x_t | x_{<t}) = p(x_t | h_{t-1})
from φ_dec(h_{t-1}), so log p(x) = Σ_t log p(x_t | h_{t-1}) is exact. Inference runs
the whole sequence through one fused ``nn.LSTM``/``nn.GRU`` call in :meth:`encode`, so
h_{t-1} is one of step t's inputs and the inference step only reads it; the generative step
(``inputs=None``) draws x_t and advances the same weights through :func:`cell_step`.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch
from torch import nn

from ..emissions import build_emission
from ..settings import POSITIVE, Check, one_of
from .nets import mlp
from .base import ModelConfig, SequenceModel, Step
from .cells import cell_step, make_rnn


@dataclass(frozen=True)
class RNNConfig(ModelConfig):
    kind: str = "rnn"
    rnn: str = "lstm"
    hidden: int = 256
    width: int = 256
    layers: int = 4  # ReLU layers in φx and φdec

    CHECKS: ClassVar[dict[str, Check]] = {**ModelConfig.CHECKS, "rnn": one_of(("lstm", "gru")),
                                          "hidden": POSITIVE, "width": POSITIVE, "layers": POSITIVE}


class RNN(SequenceModel):
    config_class = RNNConfig

    def __init__(self, cfg: RNNConfig):
        super().__init__(cfg)
        cfg.check("model config")
        self.phi_x = mlp(cfg.x_dim, cfg.width, cfg.layers)
        self.rnn = make_rnn(cfg.rnn, cfg.width, cfg.hidden)
        self.dec = mlp(cfg.hidden, cfg.width, cfg.layers)
        self.out = build_emission(cfg.emission, cfg.width, cfg.x_dim)

    @property
    def _lstm(self) -> bool:
        return isinstance(self.rnn, nn.LSTM)

    def initial_state(self, ref, batch):
        h = ref.new_zeros(batch, self.cfg.hidden)
        return (h, h.clone()) if self._lstm else (h,)

    def encode(self, x, carry, mask=None):  # causal: the mask is not needed
        state = carry if carry is not None else self.initial_state(x, x.shape[0])
        hx = tuple(s.unsqueeze(0) for s in state)
        out, last = self.rnn(self.phi_x(x), hx if self._lstm else hx[0])  # out: h_1..h_T (B, T, H)
        last = last if self._lstm else (last,)
        h_prev = torch.cat([state[0].unsqueeze(1), out[:, :-1]], 1)  # h_0..h_{T-1}  (B, T, H)
        return {"h_prev": h_prev}, tuple(s.squeeze(0) for s in last)

    def step(self, state, inputs, proposal="none", noise=None, generator=None, observe=None):
        """Inference: h_{t-1} is an input (``encode`` ran the recurrence) and the state, already final,
        passes through. Generation (``inputs=None``): x_t ~ p(x_t | h_{t-1}), then h_t = f(φx(x_t), h_{t-1})."""
        if proposal != "none":
            raise ValueError(f"{self.display_name} has no latent variables: proposal must be 'none', got {proposal!r}")
        if inputs is not None:
            return state, Step(read={"s": inputs["h_prev"]})
        s = state[0]
        x = observe(self.emission(s, {}, {}))
        r = self.rnn
        gx = torch.nn.functional.linear(self.phi_x(x), r.weight_ih_l0, r.bias_ih_l0)
        return cell_step(gx, state, r.weight_hh_l0, r.bias_hh_l0), Step(read={"s": s}, x=x)

    def emission(self, s, ez, ctx):
        return self.out(self.dec(s))
