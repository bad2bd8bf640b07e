"""A masked autoencoder for distribution estimation (MADE; Germain et al. 2015), conditioned on features.

One hidden layer of ``hidden`` units between the frame x (..., D) and ``params`` outputs per element:
output i reads only x_{<i} (input degrees 1..D, hidden degrees cycling over 1..D-1, output i of
degree i connected to hidden degrees < i, Germain et al. eqs. 12-13). The emission features enter
unmasked, as a bias of the hidden layer and of the outputs (as RNN-NADE conditions its NADE,
Boulanger-Lewandowski et al. 2012), so x_1's parameters come from the features alone.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class MaskedLinear(nn.Linear):
    """A linear layer whose weight is multiplied by a fixed 0/1 ``mask`` (out, in)."""

    def __init__(self, in_features: int, out_features: int, mask: torch.Tensor):
        super().__init__(in_features, out_features)
        self.register_buffer("mask", mask.to(self.weight.dtype), persistent=False)

    def forward(self, x):
        return F.linear(x, self.weight * self.mask, self.bias)


class MADE(nn.Module):
    """x (..., D), a hidden bias (..., H) and an output bias (..., D·P) -> parameters (..., D, P),
    those of element i a function of x_{<i} and the biases only."""

    def __init__(self, x_dim: int, hidden: int, params: int):
        super().__init__()
        self.x_dim, self.params = x_dim, params
        d_in = torch.arange(1, x_dim + 1)
        d_hidden = torch.arange(hidden) % max(x_dim - 1, 1) + 1
        d_out = d_in.repeat_interleave(params)  # rows ordered (element, parameter)
        self.inp = MaskedLinear(x_dim, hidden, d_hidden[:, None] >= d_in[None, :])
        self.out = MaskedLinear(hidden, x_dim * params, d_out[:, None] > d_hidden[None, :])

    def forward(self, x, hidden_bias, out_bias):
        h = torch.relu(self.inp(x) + hidden_bias)  # (..., H)
        return (self.out(h) + out_bias).unflatten(-1, (self.x_dim, self.params))  # (..., D, P)
