"""Small building blocks shared by the models."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import VrnnError


class ClippedLeakyReLU(nn.Module):
    """Leaky ReLU clipped to [-clip, clip] (SRNN paper: leakiness 1/3, clip 3)."""

    def __init__(self, slope: float = 1 / 3, clip: float = 3.0):
        super().__init__()
        self.slope, self.clip = slope, clip

    def forward(self, x):
        return torch.clamp(F.leaky_relu(x, self.slope), -self.clip, self.clip)


ACTIVATIONS = {
    "relu": nn.ReLU,
    "tanh": nn.Tanh,
    "leaky_clip": ClippedLeakyReLU,
}


def activation(name: str) -> nn.Module:
    if name not in ACTIVATIONS:
        raise VrnnError(f"unknown activation {name!r}; choose one of {sorted(ACTIVATIONS)}")
    return ACTIVATIONS[name]()


def mlp(in_features: int, width: int, layers: int, act: str = "relu") -> nn.Sequential:
    """``layers`` fully connected layers of ``width`` units, each followed by ``act``."""
    mods: list[nn.Module] = []
    for i in range(layers):
        mods += [nn.Linear(in_features if i == 0 else width, width), activation(act)]
    return nn.Sequential(*mods)


class SplitMLP(nn.Module):
    """An MLP on the concatenation of several inputs, with the first layer split by input.

    ``SplitMLP([a, b], ...)(xa, xb)`` equals ``mlp(a + b, ...)(cat([xa, xb]))`` but lets a
    caller compute one input's share of the first layer (``first(i, x)``) ahead of time,
    e.g. for all time steps at once outside the recurrent loop.
    """

    def __init__(self, in_sizes: list[int], width: int, layers: int, act: str = "relu"):
        super().__init__()
        assert layers >= 1
        self.first = nn.ModuleList(nn.Linear(n, width, bias=(i == 0)) for i, n in enumerate(in_sizes))
        self.act = activation(act)
        self.rest = mlp(width, width, layers - 1, act)

    def first_layer(self, i: int, x: torch.Tensor) -> torch.Tensor:
        return self.first[i](x)

    def finish(self, pre: torch.Tensor) -> torch.Tensor:
        """Apply the activation and the remaining layers to a summed first-layer pre-activation."""
        return self.rest(self.act(pre))

    def forward(self, *xs: torch.Tensor) -> torch.Tensor:
        return self.finish(sum(self.first_layer(i, x) for i, x in enumerate(xs)))
