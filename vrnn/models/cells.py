"""LSTM/GRU cell steps with the input projection supplied from outside.

The input-to-hidden product W_ih·u + b_ih of a recurrent cell does not depend on the
previous step, so models compute it for all steps at once and pass it in as ``gx``;
only the hidden-to-hidden product stays in the loop. Parameters live in an
``nn.LSTMCell``/``nn.GRUCell`` so the math is exactly PyTorch's.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import VrnnError

CELLS = {"lstm": nn.LSTMCell, "gru": nn.GRUCell}


def make_cell(kind: str, in_features: int, hidden: int) -> nn.Module:
    if kind not in CELLS:
        raise VrnnError(f"unknown model.rnn {kind!r}; choose one of {sorted(CELLS)}")
    return CELLS[kind](in_features, hidden)


def input_projection(cell: nn.Module, u: torch.Tensor, lo: int, hi: int, bias: bool) -> torch.Tensor:
    """The share of W_ih·u (+ b_ih) from input columns [lo, hi) of the cell."""
    return F.linear(u, cell.weight_ih[:, lo:hi], cell.bias_ih if bias else None)


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


def zero_state(cell: nn.Module, ref: torch.Tensor, batch: int) -> tuple[torch.Tensor, ...]:
    h = ref.new_zeros(batch, cell.hidden_size)
    return (h, h.clone()) if isinstance(cell, nn.LSTMCell) else (h,)


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
