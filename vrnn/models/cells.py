"""LSTM/GRU cell steps with the input projection supplied from outside.

The input-to-hidden product W_ih·u + b_ih of a recurrent cell does not depend on the
previous step, so models compute it for all steps at once and pass it in as ``gx``;
only the hidden-to-hidden product stays in the loop. Gate order and equations are
PyTorch's, so the math is exactly that of ``nn.LSTMCell``/``nn.GRUCell``.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import VrnnError

# model.rnn -> (fused sequence module, cell): the one registry of recurrent kinds
RNN_KINDS = {"lstm": (nn.LSTM, nn.LSTMCell), "gru": (nn.GRU, nn.GRUCell), "rnn": (nn.RNN, nn.RNNCell)}


def check_rnn_kind(kind: str, allowed: tuple[str, ...] = ("lstm", "gru")) -> str:
    """``kind`` if it is one of ``allowed`` recurrent kinds, else the one-line error naming ``model.rnn``."""
    if kind not in allowed:
        raise VrnnError(f"unknown model.rnn {kind!r}; choose one of {sorted(allowed)}")
    return kind


def make_rnn(kind: str, in_features: int, hidden: int, allowed: tuple[str, ...] = ("lstm", "gru")) -> nn.Module:
    """A batch-first fused ``nn.LSTM``/``nn.GRU``/``nn.RNN`` over whole sequences."""
    return RNN_KINDS[check_rnn_kind(kind, allowed)][0](in_features, hidden, batch_first=True)


def make_cell(kind: str, in_features: int, hidden: int) -> nn.Module:
    return RNN_KINDS[check_rnn_kind(kind)][1](in_features, hidden)


class SplitInputCell(nn.Module):
    """An LSTM or GRU cell whose input is the concatenation [u_0, u_1, ...] of several parts,
    with one block of W_ih per part.

    ``project(i, u_i)`` is part i's share of W_ih·u (+ b_ih for part 0), so a part known for
    every step in advance is projected outside the loop. Keeping the blocks as separate
    parameters (rather than slicing one W_ih inside the loop) spares the backward pass a
    full-size gradient per step. Initialised exactly like ``nn.LSTMCell``/``nn.GRUCell`` on the
    concatenated input; ``weight_ih()`` returns the concatenated matrix for PyTorch's own cells.
    """

    def __init__(self, kind: str, in_sizes: list[int], hidden: int):
        super().__init__()
        base = make_cell(kind, sum(in_sizes), hidden)  # PyTorch's initialisation
        self.kind, self.hidden_size = kind, hidden
        self.weight_ih_parts = nn.ParameterList(nn.Parameter(w.detach().clone())
                                                for w in base.weight_ih.split(in_sizes, 1))
        self.bias_ih, self.weight_hh, self.bias_hh = base.bias_ih, base.weight_hh, base.bias_hh

    def project(self, i: int, u: torch.Tensor) -> torch.Tensor:
        return F.linear(u, self.weight_ih_parts[i], self.bias_ih if i == 0 else None)

    def step(self, gx: torch.Tensor, state: tuple[torch.Tensor, ...]) -> tuple[torch.Tensor, ...]:
        return cell_step(gx, state, self.weight_hh, self.bias_hh)

    def weight_ih(self) -> torch.Tensor:
        return torch.cat(list(self.weight_ih_parts), 1)

    def zero_state(self, ref: torch.Tensor, batch: int) -> tuple[torch.Tensor, ...]:
        h = ref.new_zeros(batch, self.hidden_size)
        return (h, h.clone()) if self.kind == "lstm" else (h,)


def cell_step(gx: torch.Tensor, state: tuple[torch.Tensor, ...], weight_hh: torch.Tensor,
              bias_hh: torch.Tensor | None) -> tuple[torch.Tensor, ...]:
    """One LSTM (state (h, c)) or GRU (state (h,)) step given the input projection gx = W_ih·u + b_ih.

    Gate order and equations are PyTorch's, so the weights of nn.LSTM/nn.LSTMCell
    (nn.GRU/nn.GRUCell) plug in unchanged.
    """
    h = state[0]
    gh = F.linear(h, weight_hh, bias_hh)
    if len(state) == 2:
        i, f, g, o = (gx + gh).chunk(4, -1)
        c = torch.sigmoid(f) * state[1] + torch.sigmoid(i) * torch.tanh(g)
        return torch.sigmoid(o) * torch.tanh(c), c
    xr, xz, xn = gx.chunk(3, -1)
    hr, hz, hn = gh.chunk(3, -1)
    r, u = torch.sigmoid(xr + hr), torch.sigmoid(xz + hz)
    n = torch.tanh(xn + r * hn)
    return ((1 - u) * n + u * h,)


def flip_padded(x: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
    """Reverse each sequence of x (B, T, ·) in time within its own length.

    ``mask`` (B, T) marks real steps, padding at the end. Step t < L_b of sequence b
    goes to L_b - 1 - t; padded steps stay where they are, so the flip is its own
    inverse and a recurrent net run over the flipped batch meets every real step
    before any padding.
    """
    if mask is None:
        return x.flip(1)
    T = x.shape[1]
    t = torch.arange(T, device=x.device)
    lengths = mask.sum(1, keepdim=True)  # (B, 1)
    idx = torch.where(t < lengths, lengths - 1 - t, t)  # (B, T)
    return x.gather(1, idx.unsqueeze(-1).expand_as(x))


def run_backward(rnn: nn.Module, u: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
    """Outputs a_t = f(a_{t+1}, u_t) of a batch-first ``nn.RNN``/``nn.GRU``/``nn.LSTM`` run from each
    sequence's last real step back to its first, in one fused call: (B, T, H), a_{T+1} = 0."""
    out, _ = rnn(flip_padded(u, mask))
    return flip_padded(out, mask)
