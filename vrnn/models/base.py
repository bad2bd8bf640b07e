"""The one time loop, written once for every model.

Every model in the library is a state-space model over a recurrent state s_t::

    generative  p(x, z) = Π_t p(z_t | s_{t-1}) p(x_t | z_t, s_{t-1})
    inference   q(z | x) = Π_t q(z_t | s_{t-1}, x)
    recurrence  s_t = update(s_{t-1}, z_t, x)

A model says what its pieces are through a handful of hooks (below); this class runs
the loop for inference (:meth:`forward`) and for generation (:meth:`generate`). Work
that does not depend on the previous step lives outside the loop: :meth:`encode`
computes every per-step feature of ``x`` for all (B, T) steps in one batched call, and
the prior, the emission and all log-probabilities are formed after the loop from the
stacked states. Only the posterior, the sample and the state update run per step.

``forward`` returns per-step terms of shape (K, B, T) (K posterior samples); the
ELBO, the importance-sampled likelihood and every reduction live in
:mod:`vrnn.objectives`.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn
from torch.distributions import Distribution, kl_divergence

from ..emissions import EmissionConfig, diag_gaussian

@dataclass(frozen=True)
class ModelConfig:
    """Fields every model has; each model kind extends this with its own (beside its model)."""

    kind: str = "vrnn"
    x_dim: int = 0  # filled in from the data when 0
    emission: EmissionConfig = field(default_factory=EmissionConfig)


State = tuple[torch.Tensor, ...]
Context = dict[str, torch.Tensor]


@dataclass
class StepTerms:
    """Per-step terms of one forward pass; padded steps hold zeros.

    ``log_px``  log p(x_t | z_t, s_{t-1})                     (K, B, T)
    ``kl``      KL(q(z_t | ·) || p(z_t | ·)), analytic          (K, B, T)
    ``log_pz``  log p(z_t | s_{t-1}) at the sampled z_t         (K, B, T)
    ``log_qz``  log q(z_t | s_{t-1}, x) at the sampled z_t      (K, B, T)
    """

    log_px: torch.Tensor
    kl: torch.Tensor
    log_pz: torch.Tensor
    log_qz: torch.Tensor
    mask: torch.Tensor  # (B, T) bool
    carry: Any = None  # the state after the last step, for truncated BPTT
    z: torch.Tensor | None = None  # (K, B, T, Z)
    q_loc: torch.Tensor | None = None
    q_scale: torch.Tensor | None = None
    p_loc: torch.Tensor | None = None
    p_scale: torch.Tensor | None = None


def _tile(t: torch.Tensor, k: int) -> torch.Tensor:
    """(B, ...) -> (K*B, ...), sample-major."""
    return t if k == 1 else t.repeat(k, *([1] * (t.dim() - 1)))


def _randn_like(t: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
    return torch.randn(t.shape, generator=generator, device=t.device, dtype=t.dtype)


class SequenceModel(nn.Module):
    """Base class: subclasses implement the hooks, never the loop."""

    config_class = ModelConfig
    z_dim: int = 0  # 0: no latent variables (the RNN baselines)

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.cfg = cfg

    # ---- hooks ---------------------------------------------------------------------
    def encode(self, x: torch.Tensor, carry: State | None,
               mask: torch.Tensor | None = None) -> tuple[Context, State]:
        """Batched per-step features of x, each (B, T, ·), and the initial state.

        ``carry`` is the final state of the previous chunk (truncated BPTT) or None
        for s_0. ``mask`` (B, T) marks real steps (padding at the end); features that
        look ahead (backward RNNs) must run over each sequence within its own length.
        Models without latent variables return the stacked summaries s_{t-1} under
        ``"summary"`` and skip the loop entirely.
        """
        raise NotImplementedError

    def summary(self, state: State) -> torch.Tensor:
        """The part of s_{t-1} the prior and emission read."""
        return state[0]

    def posterior(self, state: State, ctx_t: Context) -> tuple[torch.Tensor, ...]:
        """Location and scale of q(z_t | s_{t-1}, x).

        A model that computes p(z_t | s_{t-1}) on the way (SRNN's Res_q) returns
        (q_loc, q_scale, p_loc, p_scale); the loop then keeps that prior instead of
        computing it again from the stacked states.
        """
        raise NotImplementedError

    def embed_z(self, z: torch.Tensor) -> Context:
        """Features of z_t used by the update and the emission (any leading shape)."""
        return {"z": z}

    def transition(self, state: State, ez: Context, ctx_t: Context) -> State:
        """s_t from s_{t-1}, the features of z_t and the step's context."""
        raise NotImplementedError

    def prior(self, s: torch.Tensor, ctx: Context) -> tuple[torch.Tensor, torch.Tensor]:
        """Location and scale of p(z_t | s_{t-1}) (any leading shape)."""
        raise NotImplementedError

    def emission(self, s: torch.Tensor, ez: Context, ctx: Context) -> Distribution:
        """p(x_t | z_t, s_{t-1}) (any leading shape)."""
        raise NotImplementedError

    def initial_state(self, ref: torch.Tensor, batch: int) -> State:
        """s_0 for ``batch`` sequences; ``ref`` gives device and dtype."""
        raise NotImplementedError

    def pre_step(self, state: State, x_prev: torch.Tensor) -> tuple[State, Context]:
        """Generation only: context of step t that depends on x_{t-1} (e.g. SRNN's d_t)."""
        return state, {}

    def embed_x(self, x: torch.Tensor) -> Context:
        """Generation only: the per-step context of a freshly generated x_t."""
        return {}

    # ---- the loop ------------------------------------------------------------------
    def forward(
        self,
        x: torch.Tensor,
        mask: torch.Tensor | None = None,
        samples: int = 1,
        generator: torch.Generator | None = None,
        carry: State | None = None,
        noise: torch.Tensor | None = None,
    ) -> StepTerms:
        """Run inference over x (B, T, D) with ``samples`` posterior samples per sequence.

        The posterior noise ε_t ~ N(0, I) comes from ``generator``, or from ``noise``
        (K·B, T, Z) when given (sample-major: row k·B + b), so two code paths can be
        compared on identical draws.
        """
        B, T, _ = x.shape
        mask = x.new_ones(B, T, dtype=torch.bool) if mask is None else mask.bool()
        ctx, state = self.encode(x, carry, mask)
        if samples > 1:
            ctx = {k: _tile(v, samples) for k, v in ctx.items()}
            state = tuple(_tile(s, samples) for s in state)
        xs = _tile(x, samples)
        K = samples

        if self.z_dim == 0:
            summaries, ez = ctx["summary"], {}
            zero = xs.new_zeros(K * B, T)
            kl = log_pz = log_qz = zero
            z = q_loc = q_scale = p_loc = p_scale = None
        else:
            ss, locs, scales, zs, ezs, priors = [], [], [], [], [], []
            # One view per step from unbind: its backward stacks the T step gradients once,
            # where indexing v[:, t] in the loop would build a zero (B, T, ·) gradient per
            # step (O(T²) time and memory traffic in the backward pass).
            steps = {k: v.unbind(1) for k, v in ctx.items()}
            for t in range(T):
                ctx_t = {k: v[t] for k, v in steps.items()}
                ss.append(self.summary(state))
                loc, scale, *prior_t = self.posterior(state, ctx_t)
                if prior_t:
                    priors.append(prior_t)
                eps = _randn_like(loc, generator) if noise is None else noise[:, t]
                z_t = loc + scale * eps  # reparameterised sample
                ez_t = self.embed_z(z_t)
                state = self.transition(state, ez_t, ctx_t)
                locs.append(loc), scales.append(scale), zs.append(z_t), ezs.append(ez_t)
            summaries = torch.stack(ss, 1)  # (KB, T, S)
            z = torch.stack(zs, 1)  # (KB, T, Z)
            q_loc, q_scale = torch.stack(locs, 1), torch.stack(scales, 1)
            ez = {k: torch.stack([e[k] for e in ezs], 1) for k in ezs[0]}
            if priors:
                p_loc, p_scale = (torch.stack(v, 1) for v in zip(*priors))
            else:
                p_loc, p_scale = self.prior(summaries, ctx)
            q, p = diag_gaussian(q_loc, q_scale), diag_gaussian(p_loc, p_scale)
            kl, log_pz, log_qz = kl_divergence(q, p), p.log_prob(z), q.log_prob(z)

        log_px = self.emission(summaries, ez, ctx).log_prob(xs)  # (KB, T)
        m = _tile(mask, K)
        zero = torch.zeros((), device=x.device, dtype=x.dtype)

        def fold(v):  # mask where the term is formed, then (KB, T) -> (K, B, T)
            return torch.where(m, v, zero).view(K, B, T)

        def fold_z(v):
            return None if v is None else v.view(K, B, T, -1)

        return StepTerms(
            log_px=fold(log_px), kl=fold(kl), log_pz=fold(log_pz), log_qz=fold(log_qz),
            mask=mask, carry=state, z=fold_z(z), q_loc=fold_z(q_loc), q_scale=fold_z(q_scale),
            p_loc=fold_z(p_loc), p_scale=fold_z(p_scale),
        )

    @torch.no_grad()
    def generate(self, steps: int, n: int = 1, ref: torch.Tensor | None = None,
                 generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Ancestral sampling: x (n, steps, D) and z (n, steps, Z) or None, in model units."""
        ref = next(self.parameters()) if ref is None else ref
        state = self.initial_state(ref, n)
        x_prev = ref.new_zeros(n, self.cfg.x_dim)
        xs, zs = [], []
        for _ in range(steps):
            state, ctx_t = self.pre_step(state, x_prev)
            s = self.summary(state)
            if self.z_dim:
                loc, scale = self.prior(s, ctx_t)
                z_t = loc + scale * _randn_like(loc, generator)
                ez, _ = self.embed_z(z_t), zs.append(z_t)
            else:
                ez = {}
            x_t = self.emission(s, ez, ctx_t).sample()
            ctx_t = {**ctx_t, **self.embed_x(x_t)}
            state = self.transition(state, ez, ctx_t)
            xs.append(x_t)
            x_prev = x_t
        return torch.stack(xs, 1), (torch.stack(zs, 1) if zs else None)

    @property
    def display_name(self) -> str:
        return f"{type(self).__name__}-{self.cfg.emission.name}"
