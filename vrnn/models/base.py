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
stacked readouts of the states. Only the posterior (with the prior, where the posterior
is built on it), the sample and the state update run per step.

``forward`` returns per-step terms of shape (K, B, T) (K posterior samples); the
ELBO, the importance-sampled likelihood and every reduction live in
:mod:`vrnn.objectives`.
"""
from __future__ import annotations

from contextlib import contextmanager

import torch
from torch import nn
from torch.distributions import Distribution, kl_divergence

from ..emissions import diag_gaussian, emission_class
from .contract import Context, ModelConfig, State, StepTerms

__all__ = ["Context", "ModelConfig", "SequenceModel", "State", "StepTerms"]


def tile_samples(t: torch.Tensor, k: int) -> torch.Tensor:
    """(B, ...) -> (K*B, ...), sample-major."""
    return t if k == 1 else t.repeat(k, *([1] * (t.dim() - 1)))


def randn_like(t: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
    return torch.randn(t.shape, generator=generator, device=t.device, dtype=t.dtype)


@contextmanager
def _seeded_global_rng(seed: int, device: torch.device):
    """Within the block, the global RNG of the CPU (and of ``device`` if it is a GPU) starts from
    ``seed``; both are restored on exit."""
    cuda = device.type == "cuda"
    with torch.random.fork_rng(devices=[device] if cuda else []):
        torch.default_generator.manual_seed(seed)
        if cuda:
            with torch.cuda.device(device):
                torch.cuda.manual_seed(seed)
        yield


class SequenceModel(nn.Module):
    """Base class: subclasses implement the hooks, never the loop.

    Models with latent variables implement encode, initial_state, posterior, transition,
    prior and emission (and may override readout, step_prior, embed_z, pre_step, embed_x);
    models without (``z_dim = 0``) implement encode, initial_state, readouts, transition,
    emission and embed_x, and inference runs no loop.
    """

    config_class = ModelConfig
    z_dim: int = 0  # 0: no latent variables (the RNN baselines)
    posterior_is_filter: bool = False  # q(z_t | ·) reads x_{1:t} only (no look-ahead): see vrnn.smc

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.cfg = cfg

    # ---- hooks: every model returns the same things from the same hooks --------------
    def encode(self, x: torch.Tensor, carry: State | None,
               mask: torch.Tensor | None = None) -> tuple[Context, State]:
        """Batched per-step features of x, each (B, T, ·), and the state the loop starts from.

        ``carry`` is the final state of the previous chunk (truncated BPTT) or None
        for s_0. ``mask`` (B, T) marks real steps (padding at the end); features that
        look ahead (backward RNNs) must run over each sequence within its own length.
        """
        raise NotImplementedError

    def readout(self, state: State) -> torch.Tensor:
        """The part of s_{t-1} the prior and emission read."""
        return state[0]

    def readouts(self, ctx: Context) -> torch.Tensor:
        """Models without latent variables only: the readouts of s_0..s_{T-1} (B, T, S), stacked;
        their state depends on x alone, so :meth:`encode` runs the whole recurrence at once."""
        raise NotImplementedError(f"{type(self).__name__} has z_dim = 0 and must implement readouts(ctx)")

    def step_prior(self, state: State, ctx_t: Context) -> tuple[torch.Tensor, torch.Tensor] | None:
        """Location and scale of p(z_t | s_{t-1}) where the posterior is built on it (SRNN's Res_q):
        the loop passes it to :meth:`posterior` and keeps it for the KL, computed once per step.
        None (the default): the prior is formed after the loop, batched over the stacked readouts."""
        return None

    def posterior(self, state: State, ctx_t: Context,
                  prior_t: tuple[torch.Tensor, torch.Tensor] | None) -> tuple[torch.Tensor, torch.Tensor]:
        """Location and scale of q(z_t | s_{t-1}, x); ``prior_t`` is :meth:`step_prior`'s result."""
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
    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None, samples: int = 1,
                generator: torch.Generator | None = None, carry: State | None = None,
                noise: torch.Tensor | None = None) -> StepTerms:
        """Run inference over x (B, T, D) with ``samples`` posterior samples per sequence.

        The posterior noise ε_t ~ N(0, I) comes from ``generator``, or from ``noise``
        (K·B, T, Z) when given (sample-major: row k·B + b), so two code paths can be
        compared on identical draws.
        """
        B, T, _ = x.shape
        mask = x.new_ones(B, T, dtype=torch.bool) if mask is None else mask.bool()
        ctx, state = self.encode(x, carry, mask)
        if samples > 1:
            ctx = {k: tile_samples(v, samples) for k, v in ctx.items()}
            state = tuple(tile_samples(s, samples) for s in state)
        xs = tile_samples(x, samples)
        K = samples

        if self.z_dim == 0:
            reads, ez = self.readouts(ctx), {}  # (KB, T, S)
            zero = xs.new_zeros(K * B, T)
            kl = log_pz = log_qz = zero
            q_loc = q_scale = p_loc = p_scale = None
        else:
            rs, locs, scales, zs, ezs, priors = [], [], [], [], [], []
            # One view per step from unbind: its backward stacks the T step gradients once,
            # where indexing v[:, t] in the loop would build a zero (B, T, ·) gradient per
            # step (O(T²) time and memory traffic in the backward pass).
            steps = {k: v.unbind(1) for k, v in ctx.items()}
            for t in range(T):
                ctx_t = {k: v[t] for k, v in steps.items()}
                rs.append(self.readout(state))
                prior_t = self.step_prior(state, ctx_t)
                if prior_t is not None:
                    priors.append(prior_t)
                loc, scale = self.posterior(state, ctx_t, prior_t)
                eps = randn_like(loc, generator) if noise is None else noise[:, t]
                z_t = loc + scale * eps  # reparameterised sample
                ez_t = self.embed_z(z_t)
                state = self.transition(state, ez_t, ctx_t)
                locs.append(loc), scales.append(scale), zs.append(z_t), ezs.append(ez_t)
            reads = torch.stack(rs, 1)  # (KB, T, S)
            z = torch.stack(zs, 1)  # (KB, T, Z)
            q_loc, q_scale = torch.stack(locs, 1), torch.stack(scales, 1)
            ez = {k: torch.stack([e[k] for e in ezs], 1) for k in ezs[0]}
            if priors:
                p_loc, p_scale = (torch.stack(v, 1) for v in zip(*priors))
            else:  # batched over all (KB, T) steps at once
                p_loc, p_scale = self.prior(reads, ctx)
            q, p = diag_gaussian(q_loc, q_scale), diag_gaussian(p_loc, p_scale)
            kl, log_pz, log_qz = kl_divergence(q, p), p.log_prob(z), q.log_prob(z)

        log_px = self.emission(reads, ez, ctx).log_prob(xs)  # (KB, T)
        m = tile_samples(mask, K)
        zero = torch.zeros((), device=x.device, dtype=x.dtype)

        def fold(v):  # mask where the term is formed, then (KB, T) -> (K, B, T)
            return torch.where(m, v, zero).view(K, B, T)

        def fold_z(v):  # (KB, T, Z) -> (K, B, T, Z)
            return None if v is None else v.view(K, B, T, -1)

        return StepTerms(
            log_px=fold(log_px), kl=fold(kl), log_pz=fold(log_pz), log_qz=fold(log_qz),
            mask=mask, carry=state, q_loc=fold_z(q_loc), q_scale=fold_z(q_scale),
            p_loc=fold_z(p_loc), p_scale=fold_z(p_scale),
        )

    @torch.no_grad()
    def generate(self, steps: int, n: int = 1, ref: torch.Tensor | None = None, *,
                 generator: torch.Generator | None = None, bias: float = 0.0, temperature: float = 1.0,
                 start: tuple[State, torch.Tensor] | None = None) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Ancestral sampling: x (n, steps, D) and z (n, steps, Z) or None, in model units.

        ``start`` = (state s_T, last observation x_T) continues sequences from a filtered state
        (:func:`vrnn.smc.continue_sequences`) instead of s_0 and x_0 = 0.

        Every random number comes from ``generator``: equal generator seeds give equal samples
        whatever the global RNG's state, and the global RNG is left as it was. ``bias`` and
        ``temperature`` sample a pen-stroke emission biased (Graves 2013, §5.4) or tempered
        (Ha & Eck 2018); the defaults sample the model itself, and other emissions refuse others.
        """
        emission_class(self.cfg.emission.name).check_sampling(bias, temperature)  # fail before any work
        tempered = (bias, temperature) != (0.0, 1.0)
        ref = next(self.parameters()) if ref is None else ref
        state, x_prev = start if start is not None else (self.initial_state(ref, n), ref.new_zeros(n, self.cfg.x_dim))
        xs, zs = [], []
        # z: explicit noise from the generator. x: the emission's own sample(), which takes no
        # generator (like every torch distribution; explicit noise would need a noise-to-sample map
        # per emission), run on a fork of the global RNG seeded from the generator, then restored.
        seed = int(torch.randint(2 ** 62, (), generator=generator,
                                 device=generator.device if generator is not None else "cpu"))
        with _seeded_global_rng(seed, ref.device):
            for _ in range(steps):
                state, ctx_t = self.pre_step(state, x_prev)
                s = self.readout(state)
                if self.z_dim:
                    loc, scale = self.prior(s, ctx_t)
                    z_t = loc + scale * randn_like(loc, generator)
                    ez, _ = self.embed_z(z_t), zs.append(z_t)
                else:
                    ez = {}
                dist = self.emission(s, ez, ctx_t)
                x_t = (dist.biased(bias, temperature) if tempered else dist).sample()
                ctx_t = {**ctx_t, **self.embed_x(x_t)}
                state = self.transition(state, ez, ctx_t)
                xs.append(x_t)
                x_prev = x_t
        return torch.stack(xs, 1), (torch.stack(zs, 1) if zs else None)

    @property
    def display_name(self) -> str:
        return f"{type(self).__name__}-{self.cfg.emission.name}"
