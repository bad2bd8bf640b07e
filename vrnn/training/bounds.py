"""The training objectives in one table, and the module that DistributedDataParallel wraps.

``train.objective`` names a row of :data:`OBJECTIVES`; everything that differs between the
objectives — what a batch computes, how it is reduced to a loss, whether truncated BPTT
applies, which validation score estimates it — is that row, and nothing else asks which
objective is trained.

* ``elbo``  the step-wise ELBO (KL weighted by β), averaged over ``train.particles`` samples
            (Chung et al. 2015, eq. 11)
* ``iwae``  the importance-weighted bound with K = ``train.particles`` (Burda et al. 2016)
* ``fivo``  the particle filter's bound (:func:`vrnn.inference.smc.particle_filter`, Maddison et al. 2017)

:class:`Bound` puts a model and its objective in one ``nn.Module`` whose ``forward`` computes
the objective's per-step terms or per-sequence bound: under ``torchrun`` the learner wraps it,
so every objective runs through DistributedDataParallel's ``forward`` whichever driver (the
model's time loop, the particle filter) computes it, and its gradients are all-reduced.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn

from ..models import SequenceModel
from ..inference.objectives import bound_loss, sequence_iw_log_likelihood, training_loss
from ..inference.smc import particle_filter

SumRanks = Callable[[torch.Tensor], torch.Tensor]


def _elbo_terms(model: SequenceModel, x: torch.Tensor, mask: torch.Tensor, particles: int,
                generator: torch.Generator | None, carry=None, noise: torch.Tensor | None = None):
    return model(x, mask, samples=particles, generator=generator, carry=carry, noise=noise)


def _elbo_loss(terms, mask: torch.Tensor, beta: float, sum_ranks: SumRanks | None, free_bits: float = 0.0):
    loss, stats = training_loss(terms, beta, sum_ranks, free_bits)
    return loss, stats, tuple(c.detach() for c in terms.carry)  # carried (detached) into the next chunk


def _iwae_bound(model: SequenceModel, x: torch.Tensor, mask: torch.Tensor, particles: int,
                generator: torch.Generator | None, carry=None, noise: torch.Tensor | None = None) -> torch.Tensor:
    return sequence_iw_log_likelihood(model(x, mask, samples=particles, generator=generator, noise=noise))


def _fivo_bound(model: SequenceModel, x: torch.Tensor, mask: torch.Tensor, particles: int,
                generator: torch.Generator | None, carry=None, noise: torch.Tensor | None = None,
                uniforms: torch.Tensor | None = None) -> torch.Tensor:
    return particle_filter(model, x, mask, particles, generator, noise=noise, uniforms=uniforms).log_marginal


def _bound_loss(bound: torch.Tensor, mask: torch.Tensor, beta: float, sum_ranks: SumRanks | None,
                free_bits: float = 0.0):
    return (*bound_loss(bound, mask, sum_ranks), None)  # no KL to anneal, no state to carry


@dataclass(frozen=True)
class Objective:
    """One row of :data:`OBJECTIVES`.

    ``compute(model, x, mask, particles, generator, carry, **draws)``  the batch's per-step terms
        (:class:`~vrnn.models.StepTerms`) or per-sequence bound (B,); ``draws`` (``noise``, and for
        the filter ``uniforms``) replace the generator's draws
    ``reduce(out, mask, beta, sum_ranks, free_bits)``  the loss per real step of the global batch, its statistics
        as floats and the state carried into the next truncated-BPTT chunk (None: nothing carried)
    ``whole_sequences``  the bound is over whole sequences: truncated BPTT does not apply
    ``score``, ``smc``   the key of :func:`vrnn.inference.evaluate.score_sequences` that estimates it on
        validation, and whether that estimate needs the particle filter
    ``tightens``  the bound tightens with K (IWAE, FIVO): validation uses ``train.particles``
        samples and names K; the ELBO's expectation does not depend on K, one sample estimates it
    """

    name: str
    compute: Callable
    reduce: Callable
    whole_sequences: bool
    score: str
    smc: bool = False
    tightens: bool = True

    def label(self, particles: int) -> str:
        """How the log and the result name this objective's validation score."""
        return f"{self.name} (K = {particles})" if self.tightens else self.name

    def eval_particles(self, particles: int) -> int:
        """Samples per sequence when validation estimates this objective."""
        return particles if self.tightens else 1


OBJECTIVES: dict[str, Objective] = {o.name: o for o in (
    Objective("elbo", _elbo_terms, _elbo_loss, whole_sequences=False, score="elbo", tightens=False),
    Objective("iwae", _iwae_bound, _bound_loss, whole_sequences=True, score="log_likelihood"),
    Objective("fivo", _fivo_bound, _bound_loss, whole_sequences=True, score="log_likelihood_smc", smc=True),
)}


def trained(tc) -> Objective:
    """The objective ``train.objective`` of the :class:`~vrnn.training.options.TrainConfig` ``tc`` names."""
    return OBJECTIVES[tc.objective]


def watched(tc) -> Objective:
    """The objective whose validation estimate early stopping and ``best.pt`` follow: the trained one, or
    with ``train.stop_on = "elbo"`` the ELBO. A tighter bound can be trained while the ELBO of its proposal
    falls (Rainforth et al. 2018), so stopping a bound's run on the ELBO stops it at the wrong place."""
    return OBJECTIVES["elbo"] if tc.stop_on == "elbo" else trained(tc)


class Bound(nn.Module):
    """A model and the objective it is trained on: ``forward`` computes the objective on a batch.

    Its parameters are the model's (named ``model.*``); the learner saves the model's own
    state dict, so checkpoints hold the plain model's names.
    """

    def __init__(self, model: SequenceModel, objective: Objective, particles: int):
        super().__init__()
        self.model, self.objective, self.particles = model, objective, particles

    def forward(self, x: torch.Tensor, mask: torch.Tensor, generator: torch.Generator | None = None, carry=None,
                **draws):
        return self.objective.compute(self.model, x, mask, self.particles, generator, carry, **draws)
