"""The textbook VRNN training step: one Python iteration per time step, every head inside it.

This is how public implementations of the VRNN (Chung et al. 2015) and its family write
the model: at each step t, φx(x_t), the encoder, the prior, the sample, φz(z_t), the
decoder, log p(x_t | ·), the KL term and PyTorch's LSTM cell on cat([φx(x_t), φz(z_t)])
all run inside the loop. It is the baseline of ``vrnn bench`` and the "plain path" of
the equivalence test (tests/models/test_fastpath.py).

:class:`ReferenceVRNN` shares the modules of a library :class:`vrnn.models.vrnn.VRNN`
(``ReferenceVRNN(model)``), so both hold the same parameters, and draws the posterior
noise in the library's order (one ``(K·B, Z)`` draw per step, steps in order), so with
the same generator state both compute the same function of the same noise.
Only its loop structure differs from the library's.
"""
from __future__ import annotations

import torch
from torch import nn
from torch.distributions import kl_divergence

from ...emissions import diag_gaussian, positive_scale
from ...models.vrnn import VRNN


class ReferenceVRNN(nn.Module):
    """Per-step VRNN over the modules of ``model`` (a library VRNN or VRNN-I)."""

    def __init__(self, model: VRNN):
        super().__init__()
        if not isinstance(model, VRNN):
            raise TypeError(f"ReferenceVRNN wraps a vrnn.models.vrnn.VRNN, not {type(model).__name__}")
        self.m = model  # registered as a submodule: same parameters, same state_dict entries

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None, samples: int = 1,
                generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Per-step log p(x_t | z_t, h_{t-1}) and KL(q ‖ p), each (K, B, T), padded steps zero."""
        m, cfg = self.m, self.m.cfg
        B, T, _ = x.shape
        mask = x.new_ones(B, T, dtype=torch.bool) if mask is None else mask.bool()
        if samples > 1:  # the K samples as one batch, sample-major like the library
            x, mask = x.repeat(samples, 1, 1), mask.repeat(samples, 1)
        n = x.shape[0]
        h = x.new_zeros(n, cfg.hidden)
        c = h.clone()
        lstm = m.cell.kind == "lstm"
        w_ih, w_hh, b_ih, b_hh = m.cell.weight_ih(), m.cell.weight_hh, m.cell.bias_ih, m.cell.bias_hh
        log_px, kl = [], []
        for t in range(T):
            x_t = x[:, t]
            phi_x = m.phi_x(x_t)
            enc = m.enc(phi_x, h)  # φ_enc(φx(x_t), h_{t-1}), eq. 9
            q_loc, q_raw = m.enc_head(enc).chunk(2, -1)
            q_scale = positive_scale(q_raw, cfg.min_scale)
            if cfg.prior == "conditional":  # φ_prior(h_{t-1}), eq. 5
                pri = m.prior_net(h)
                p_loc, p_raw = m.prior_head(pri).chunk(2, -1)
                p_scale = positive_scale(p_raw, cfg.min_scale)
            else:  # VRNN-I
                p_loc, p_scale = torch.zeros_like(q_loc), torch.ones_like(q_scale)
            eps = torch.randn(q_loc.shape, generator=generator, device=x.device, dtype=x.dtype)
            z = q_loc + q_scale * eps
            phi_z = m.phi_z(z)
            dist = m.out(m.dec(torch.cat([phi_z, h], -1)))  # φ_dec(φz(z_t), h_{t-1}), eq. 6
            zero = x.new_zeros(())
            log_px.append(torch.where(mask[:, t], dist.log_prob(x_t), zero))
            kl_t = kl_divergence(diag_gaussian(q_loc, q_scale), diag_gaussian(p_loc, p_scale))
            kl.append(torch.where(mask[:, t], kl_t, zero))
            u = torch.cat([phi_x, phi_z], -1)  # eq. 7
            if lstm:  # PyTorch's own cell kernels (what nn.LSTMCell / nn.GRUCell call)
                h, c = torch.lstm_cell(u, (h, c), w_ih, w_hh, b_ih, b_hh)
            else:
                h = torch.gru_cell(u, h, w_ih, w_hh, b_ih, b_hh)
        return (torch.stack(log_px, 1).view(samples, B, T), torch.stack(kl, 1).view(samples, B, T))

    def loss(self, x, mask=None, generator=None, kl_weight: float = 1.0) -> torch.Tensor:
        """Negative ELBO per real time step, as :func:`vrnn.inference.objectives.training_loss`."""
        log_px, kl = self(x, mask, generator=generator)
        mask = x.new_ones(x.shape[:2], dtype=torch.bool) if mask is None else mask
        steps = mask.sum().clamp(min=1)
        return -(log_px.sum() - kl_weight * kl.sum()) / steps
