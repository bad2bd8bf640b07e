"""Sequential Monte Carlo through the models' hooks: a particle filter for every model of the library.

For a state-space model p(x, z) = Π_t p(z_t | s_{t-1}) p(x_t | z_t, s_{t-1}) and a proposal
r(z_t | s_{t-1}, x) the filter carries K particles per sequence. At step t each particle draws
z_t ~ r, is weighted by the incremental weight

    α_t = p(x_t | z_t, s_{t-1}) p(z_t | s_{t-1}) / r(z_t | s_{t-1}, x),

and with W_{t-1} the normalised weights before the step,

    p̂(x_t | x_<t) = Σ_k W_{t-1}^k α_t^k,       log p̂(x) = Σ_t log p̂(x_t | x_<t).

When the effective sample size 1 / Σ_k (W_t^k)² falls below ``threshold · K`` the particles
are resampled (systematic resampling) and the weights reset to 1/K. Without resampling the
estimate is exactly the importance-sampled one, log (1/K) Σ_k Π_t α_t^k (:func:`vrnn.objectives
.sequence_iw_log_likelihood`); with it, the variance no longer grows exponentially with T.
The estimate of p(x) is unbiased, so E[log p̂(x)] ≤ log p(x): as a training objective it is
the FIVO bound (Maddison et al. 2017; Le et al. 2018; Naesseth et al. 2018). Gradients flow
through the weights and the reparameterised samples, not through the resampling choice
(the ancestor indices are discrete), as FIVO does.

Proposals: ``"posterior"`` is the model's own q (a filtering proposal when q does not look
ahead: VRNN, SRNN and DMM with ``posterior = "filter"``); ``"prior"`` is the bootstrap filter.
Only a proposal that does not look ahead makes p̂(x_t | x_<t) an estimate of the one-step
predictive density (a smoothing q has seen x_{t:T}); :func:`score_proposal` picks it.
Each sequence of a padded batch is filtered within its own length: a padded step has α = 1 and
never resamples. Models without latent variables (the RNN baselines) get their exact
per-step likelihoods.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from .emissions import diag_gaussian
from .errors import VrnnError
from .models import SequenceModel
from .models.base import randn_like, tile_samples

PROPOSALS = ("posterior", "prior")
RESAMPLING = ("ess", "always", "never")


@dataclass
class FilterResult:
    """What a particle filter returns for a batch of B sequences with K particles each.

    ``log_marginal``  log p̂(x) of each sequence                               (B,)
    ``increments``    log p̂(x_t | x_<t), zero on padded steps                 (B, T)
    ``ess``           effective sample size after weighting, before resampling (B, T)
    ``resampled``     whether the particles were resampled after step t        (B, T) bool
    ``log_weights``   normalised log weights after the last step               (K, B)
    ``state``         the particles' states after the last step, rows k·B + b
    """

    log_marginal: torch.Tensor
    increments: torch.Tensor
    ess: torch.Tensor
    resampled: torch.Tensor
    log_weights: torch.Tensor | None
    state: tuple


def score_proposal(model: SequenceModel) -> str:
    """The proposal whose increments estimate log p(x_t | x_<t): the posterior if it filters, else the prior."""
    return "posterior" if model.posterior_is_filter else "prior"


def systematic_resample(log_w: torch.Tensor, generator: torch.Generator | None,
                        uniform: torch.Tensor | None = None) -> torch.Tensor:
    """Ancestor indices (B, K) from normalised log weights (K, B): one uniform per sequence (Kitagawa 1996),
    drawn from ``generator`` or given as ``uniform`` (B,)."""
    K, B = log_w.shape
    w = log_w.exp().T  # (B, K)
    if uniform is None:
        uniform = torch.rand(B, generator=generator, device=w.device, dtype=w.dtype)
    u = (uniform.to(w.dtype)[:, None] + torch.arange(K, device=w.device, dtype=w.dtype)) / K
    cdf = w.cumsum(-1)
    cdf[:, -1] = 1.0  # guard against rounding: every u lands in a particle
    return torch.searchsorted(cdf, u).clamp_(max=K - 1)


def particle_filter(model: SequenceModel, x: torch.Tensor, mask: torch.Tensor | None = None, particles: int = 16,
                    generator: torch.Generator | None = None, proposal: str = "posterior", resample: str = "ess",
                    threshold: float = 0.5, noise: torch.Tensor | None = None,
                    uniforms: torch.Tensor | None = None) -> FilterResult:
    """Filter x (B, T, D) with ``particles`` particles per sequence; see the module docstring.

    ``noise`` (K·B, T, Z), sample-major, replaces the proposal's standard-normal draws (so SMC
    without resampling can be compared with importance sampling on identical noise), and
    ``uniforms`` (B, T) the resampling uniforms: with both drawn per sequence, a sequence's
    estimate does not depend on the batch it is in.
    """
    if proposal not in PROPOSALS:
        raise VrnnError(f"unknown proposal {proposal!r}; choose one of {list(PROPOSALS)}")
    if resample not in RESAMPLING:
        raise VrnnError(f"unknown resampling {resample!r}; choose one of {list(RESAMPLING)}")
    if particles < 1:
        raise VrnnError(f"--particles must be >= 1, got {particles}")
    B, T, _ = x.shape
    K = particles
    mask = x.new_ones(B, T, dtype=torch.bool) if mask is None else mask.bool()
    if model.z_dim == 0:  # deterministic state: the per-step likelihoods are exact
        terms = model(x, mask)
        inc = terms.log_px[0]
        return FilterResult(inc.sum(-1), inc, x.new_full((B, T), float(K)), torch.zeros_like(mask), None, terms.carry)
    ctx, state = model.encode(x, None, mask)
    ctx = {k: tile_samples(v, K) for k, v in ctx.items()}
    state = tuple(tile_samples(s, K) for s in state)
    xs = tile_samples(x, K).unbind(1)
    steps = {k: v.unbind(1) for k, v in ctx.items()}
    rows = torch.arange(B, device=x.device)
    log_w = x.new_full((K, B), -math.log(K))  # normalised log weights W_{t-1}
    incs, esss, res = [], [], []
    for t in range(T):
        ctx_t = {k: v[t] for k, v in steps.items()}
        s = model.readout(state)
        prior_t = model.step_prior(state, ctx_t)
        p = diag_gaussian(*(prior_t if prior_t is not None else model.prior(s, ctx_t)))
        q = diag_gaussian(*model.posterior(state, ctx_t, prior_t)) if proposal == "posterior" else p
        eps = randn_like(q.mean, generator) if noise is None else noise[:, t]
        z = q.mean + q.stddev * eps  # reparameterised: gradients reach the proposal
        ez = model.embed_z(z)
        alpha = model.emission(s, ez, ctx_t).log_prob(xs[t]) + p.log_prob(z) - q.log_prob(z)  # (KB,)
        real = mask[:, t]
        alpha = torch.where(real, alpha.view(K, B), alpha.new_zeros(()))  # a padded step has α = 1
        joint = log_w + alpha
        inc = torch.logsumexp(joint, 0)  # log p̂(x_t | x_<t)  (B,)
        log_w = joint - inc
        ess = 1.0 / log_w.mul(2).exp().sum(0)
        do = real & {"ess": ess < threshold * K, "always": torch.ones_like(real), "never": torch.zeros_like(real)}[resample]
        if do.any():
            anc = systematic_resample(log_w.detach(), generator, None if uniforms is None else uniforms[:, t])  # (B, K)
            anc = torch.where(do[:, None], anc, torch.arange(K, device=x.device).expand(B, K))
            idx = (anc.T * B + rows).reshape(-1)  # new row k·B + b takes old row anc[b, k]·B + b
            state = tuple(v[idx] for v in model.transition(state, ez, ctx_t))
            log_w = torch.where(do, log_w.new_full((), -math.log(K)), log_w)
        else:
            state = model.transition(state, ez, ctx_t)
        incs.append(torch.where(real, inc, inc.new_zeros(()))), esss.append(ess), res.append(do)
    increments = torch.stack(incs, 1)
    return FilterResult(increments.sum(-1), increments, torch.stack(esss, 1), torch.stack(res, 1), log_w, state)


@torch.no_grad()
def continue_sequences(model: SequenceModel, prefix: torch.Tensor, steps: int, n: int = 1, particles: int = 100,
                       generator: torch.Generator | None = None, **sampling) -> torch.Tensor:
    """``n`` continuations of ``steps`` steps of each whole prefix (B, T, D), in model units: (B, n, steps, D).

    The prefix is filtered with ``particles`` particles (the proposal of :func:`score_proposal`);
    each continuation starts from one particle drawn by its final weight, so its first step is
    drawn from p(z_{T+1} | s_T) p(x_{T+1} | ·) under the filtered state, and the rest is ancestral
    sampling (:meth:`SequenceModel.generate`; ``sampling``: its ``bias``/``temperature``).
    Models without latent variables continue from their exact state.
    """
    B, T, D = prefix.shape
    filt = particle_filter(model, prefix, None, particles, generator, proposal=score_proposal(model))
    if model.z_dim == 0:
        rows = torch.arange(B, device=prefix.device).repeat_interleave(n)
    else:  # row k·B + b holds particle k of sequence b
        pick = torch.multinomial(filt.log_weights.T.exp(), n, replacement=True, generator=generator)  # (B, n)
        rows = (pick * B + torch.arange(B, device=prefix.device)[:, None]).reshape(-1)
    start = tuple(v[rows] for v in filt.state), prefix[:, -1].repeat_interleave(n, 0)
    x, _ = model.generate(steps, B * n, ref=prefix, generator=generator, start=start, **sampling)
    return x.view(B, n, steps, D)
