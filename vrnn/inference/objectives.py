"""Objectives and reductions, written once for every model.

All terms arrive per step as (K, B, T) tensors with padded steps already zero
(see :class:`vrnn.models.StepTerms`); this module sums them over real steps only.

* ELBO (Chung et al. 2015, eq. 11):
  Σ_t E_q[ log p(x_t | z_≤t, x_<t) ] − KL(q(z_t | x_≤t, z_<t) ‖ p(z_t | x_<t, z_<t)), KL analytic.
* Importance-sampled log-likelihood with K posterior samples:
  log (1/K) Σ_k p(x, z^k) / q(z^k | x), computed for the whole sequence; as a training
  objective it is the IWAE bound (Burda et al. 2016). Its sequential counterpart, the FIVO
  bound, is :func:`vrnn.inference.smc.particle_filter`.
"""
from __future__ import annotations

import math
from collections.abc import Callable

import torch

from ..models.base import StepTerms


def sequence_elbo(terms: StepTerms) -> torch.Tensor:
    """ELBO of each sequence, averaged over the K samples: (B,)."""
    return (terms.log_px - terms.kl).sum(-1).mean(0)


def sequence_iw_log_likelihood(terms: StepTerms) -> torch.Tensor:
    """Importance-sampled estimate of log p(x) of each sequence: (B,)."""
    log_w = (terms.log_px + terms.log_pz - terms.log_qz).sum(-1)  # (K, B)
    return torch.logsumexp(log_w, 0) - math.log(log_w.shape[0])


def training_loss(terms: StepTerms, kl_weight: float,
                  sum_ranks: Callable[[torch.Tensor], torch.Tensor] | None = None,
                  free_bits: float = 0.0) -> tuple[torch.Tensor, dict]:
    """Negative ELBO per real time step (total over total steps), and its parts as floats.

    Normalising by the number of real steps, not B·T, keeps padded batches honest. The KL
    term is weighted by ``kl_weight`` (β of the warm-up, :func:`vrnn.training.schedules.kl_weight`);
    the reported ``elbo`` is unweighted.

    ``sum_ranks`` (multi-process training) sums a tensor over the ranks in place. Then the
    normaliser S is the global batch's real steps, so the loss is this rank's share
    −(Σ_r log p − β Σ_r KL) / S and the ranks' losses add up to the global batch's
    per-step loss; the floats (``loss``, ``elbo``, ``log_px``, ``kl``) are the global batch's.

    ``free_bits`` (nats per step, Kingma et al. 2016): while the global batch's KL per step is below it,
    the KL term counts as ``free_bits`` and passes no gradient; ``elbo`` stays the true ELBO.
    """
    log_px, kl = terms.log_px.sum(), terms.kl.sum()  # over the K samples and every real step
    totals = torch.stack([log_px.detach(), kl.detach(), (terms.mask.sum() * terms.log_px.shape[0]).to(log_px.dtype)])
    if sum_ranks is not None:
        sum_ranks(totals)
    steps = totals[2].clamp(min=1)
    px_step, kl_step = totals[0] / steps, totals[1] / steps  # the (global) batch's, per real step
    free = free_bits > 0 and bool(kl_step < free_bits)  # below the free bits: the KL term has no gradient
    loss = -(log_px / steps - kl_weight * ((kl.detach() if free else kl) / steps))
    kl_paid = kl_step.clamp(min=free_bits) if free_bits > 0 else kl_step
    value, elbo, px_float, kl_float = torch.stack([-(px_step - kl_weight * kl_paid), px_step - kl_step,
                                                   px_step, kl_step]).tolist()  # one device sync
    return loss, {"loss": value, "elbo": elbo, "log_px": px_float, "kl": kl_float}


def bound_loss(bound: torch.Tensor, mask: torch.Tensor,
               sum_ranks: Callable[[torch.Tensor], torch.Tensor] | None = None) -> tuple[torch.Tensor, dict]:
    """Negative of a per-sequence bound on log p(x) (B,) per real time step, and its value as a float.

    For the IWAE bound (:func:`sequence_iw_log_likelihood`, Burda et al. 2016) and the FIVO bound
    (:func:`vrnn.inference.smc.particle_filter`'s ``log_marginal``, Maddison et al. 2017), which have no
    KL term to anneal; ``sum_ranks`` as in :func:`training_loss`.
    """
    total = bound.sum()
    totals = torch.stack([total.detach(), mask.sum().to(total.dtype)])
    if sum_ranks is not None:
        sum_ranks(totals)
    steps = totals[1].clamp(min=1)
    value = (totals[0] / steps).item()
    return -total / steps, {"loss": -value, "bound": value}


def nats_to_bits(nats: float) -> float:
    """Nats to bits: nats / ln 2."""
    return nats / math.log(2)


def bits_per_frame(log_likelihood: dict) -> dict:
    """−log₂ p per frame from a log-likelihood's :func:`normalisations` (nats): its two per-step values in bits.
    Meaningful where p is a probability (discrete emissions on unnormalised data)."""
    return {k: -nats_to_bits(log_likelihood[k]) for k in ("per_step_total", "per_step_mean_of_sequences")}


def normalisations(totals: torch.Tensor, lengths: torch.Tensor) -> dict:
    """The three normalisations of a per-sequence total (nats):

    ``per_sequence``               mean over sequences of the sequence total
    ``per_step_total``             total over all sequences / total number of steps
    ``per_step_mean_of_sequences`` mean over sequences of (sequence total / its length)
    """
    totals, lengths = totals.double(), lengths.double()
    return {
        "per_sequence": totals.mean().item(),
        "per_step_total": (totals.sum() / lengths.sum()).item(),
        "per_step_mean_of_sequences": (totals / lengths).mean().item(),
    }
