"""The one time step, and the drivers written once for every model.

Every model in the library is a state-space model over a recurrent state s_t::

    generative  p(x, z) = Π_t p(z_t | s_{t-1}) p(x_t | z_t, s_{t-1})
    inference   q(z | x) = Π_t q(z_t | s_{t-1}, x)
    recurrence  s_t = update(s_{t-1}, z_t, x_t)

A model is its one step, :meth:`SequenceModel.step`: given s_{t-1}, the inputs at t (the
features of x that :meth:`~SequenceModel.encode` computes for all steps at once, or None when
x_t is to be drawn from the model) and a proposal (``"posterior"``, ``"prior"``, or ``"none"``
for a model without latent variables), it draws z_t and returns s_t and a :class:`Step`. What
does not feed the recurrence — the emission's and the prior's densities — the step leaves to
:meth:`SequenceModel.score`, so that each driver forms them where it is cheapest. The drivers
never call a model's inner hooks:

* :meth:`SequenceModel.forward` (ELBO, IWAE) runs the step over t and scores the stacked steps
  in one batched call over all (K·B, T) steps;
* the particle filter (:func:`vrnn.inference.smc.particle_filter`; SMC evaluation, FIVO)
  scores each step as it goes, to weight and resample;
* :meth:`SequenceModel.generate` (sampling, and continuation from a filtered state) runs the
  step with ``inputs=None`` and an ``observe`` callback that draws x_t from the emission.

The default :meth:`~SequenceModel.step` composes a latent model from small hooks (``posterior``,
``prior``, ``embed_z``, ``transition``, ``emission``, ...; see :class:`SequenceModel`); a model
may instead override ``step`` and ``score`` themselves (the RNN baselines do; so does
``examples/storn.py``).
"""
from __future__ import annotations

from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import dataclass, field

import torch
from torch import nn
from torch.distributions import Distribution, kl_divergence

from ..emissions import diag_gaussian, emission_class
from .contract import Context, ModelConfig, State, StepTerms

__all__ = ["Context", "ModelConfig", "PROPOSALS", "SequenceModel", "State", "Step", "StepTerms"]

PROPOSALS = ("posterior", "prior", "none")
Gaussian = tuple[torch.Tensor, torch.Tensor]  # location, scale of a diagonal Gaussian


@dataclass
class Step:
    """What one step returns; every tensor has the step's leading shape (N,), or (N, T) once stacked.

    ``z``     z_t, or None for a model without latent variables               (N, Z)
    ``q``     location and scale of the posterior that drew z_t; None when the prior drew it
    ``p``     location and scale of p(z_t | s_{t-1}) where the step formed it (SRNN's Res_q,
              generation); None leaves it to :meth:`SequenceModel.score`, batched
    ``read``  what the prior and the emission read: the readout of s_{t-1} (key ``"s"``) and the
              features of z_t
    ``x``     x_t drawn from the emission (generation only)
    """

    z: torch.Tensor | None = None
    q: Gaussian | None = None
    p: Gaussian | None = None
    read: Context = field(default_factory=dict)
    x: torch.Tensor | None = None

    @staticmethod
    def stack(steps: list[Step], dim: int = 1) -> Step:
        """The steps of t = 1..T as one Step with a time dimension at ``dim``."""
        first = steps[0]

        def pairs(name):
            if getattr(first, name) is None:
                return None
            return tuple(torch.stack(v, dim) for v in zip(*(getattr(s, name) for s in steps)))

        return Step(z=None if first.z is None else torch.stack([s.z for s in steps], dim),
                    q=pairs("q"), p=pairs("p"),
                    read={k: torch.stack([s.read[k] for s in steps], dim) for k in first.read})


@dataclass
class Scores:
    """The step's log-densities, (N,) per step or (N, T) for stacked steps; zeros without latents."""

    log_px: torch.Tensor  # log p(x_t | z_t, s_{t-1})
    log_pz: torch.Tensor  # log p(z_t | s_{t-1}) at the drawn z_t
    log_qz: torch.Tensor  # log of the proposal's density at z_t (the prior's, when the prior drew it)
    kl: torch.Tensor  # KL(q ‖ p), analytic; 0 when the prior drew z_t
    p: Gaussian | None = None  # the prior's location and scale


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
    """Base class: a model is :meth:`step` (with :meth:`encode`, :meth:`initial_state` and
    :meth:`score`); the drivers are written here once.

    The default :meth:`step` and :meth:`score` compose a latent-variable model from hooks that
    only they call: ``posterior``, ``prior``, ``embed_z``, ``transition`` and ``emission``, and
    optionally ``readout``, ``step_prior`` (a prior the posterior is built on, SRNN's Res_q),
    ``pre_step`` (generation: the context of step t from the past alone, e.g. SRNN's d_t) and
    ``embed_x`` (generation: the features of a freshly drawn x_t).
    """

    config_class = ModelConfig
    z_dim: int = 0  # size of z_t; 0: no latent variables (the RNN baselines)
    posterior_is_filter: bool = False  # q(z_t | ·) reads x_{1:t} only (no look-ahead): see vrnn.inference.smc

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.cfg = cfg

    @property
    def has_latents(self) -> bool:
        """Whether the model has latent variables z_t (the one place that asks)."""
        return self.z_dim > 0

    # ---- the model's part: encode, initial_state, step, score ----------------------
    def encode(self, x: torch.Tensor, carry: State | None,
               mask: torch.Tensor | None = None) -> tuple[Context, State]:
        """Batched per-step inputs of x, each (B, T, ·), and the state the loop starts from.

        ``carry`` is the final state of the previous chunk (truncated BPTT) or None
        for s_0. ``mask`` (B, T) marks real steps (padding at the end); features that
        look ahead (backward RNNs) must run over each sequence within its own length.
        """
        raise NotImplementedError

    def initial_state(self, ref: torch.Tensor, batch: int) -> State:
        """s_0 for ``batch`` sequences; ``ref`` gives device and dtype."""
        raise NotImplementedError

    def step(self, state: State, inputs: Context | None, proposal: str = "posterior",
             noise: torch.Tensor | None = None, generator: torch.Generator | None = None,
             observe: Callable[[Distribution], torch.Tensor] | None = None) -> tuple[State, Step]:
        """One time step: s_{t-1} -> (s_t, :class:`Step`).

        ``inputs`` are step t's inputs (``encode``'s features at t) or None: then x_t is drawn
        by ``observe`` from the emission (generation). ``proposal`` draws z_t from the posterior
        or the prior; ``noise`` (N, Z) is its standard-normal draw, else one comes from ``generator``.
        """
        if proposal not in ("posterior", "prior"):
            raise ValueError(f"{type(self).__name__} has latent variables: proposal must be posterior or prior, "
                             f"got {proposal!r}")
        if inputs is None:
            state, inputs = self.pre_step(state)
        s = self.readout(state)
        p = self.step_prior(state, inputs)
        q = self.posterior(state, inputs, p) if proposal == "posterior" else None
        if q is None and p is None:
            p = self.prior(s, inputs)
        loc, scale = q if q is not None else p
        eps = randn_like(loc, generator) if noise is None else noise
        z = loc + scale * eps  # reparameterised sample
        ez = self.embed_z(z)
        x = None
        if observe is not None:
            x = observe(self.emission(s, ez, inputs))
            inputs = {**inputs, **self.embed_x(x)}
        return self.transition(state, ez, inputs), Step(z=z, q=q, p=p, read={"s": s, **ez}, x=x)

    def score(self, step: Step, inputs: Context, x: torch.Tensor) -> Scores:
        """The densities a step left to its driver, at x (N, [T,] D): the emission's, and the prior's where
        the step did not form it; any leading shape, so ``forward`` scores all (K·B, T) steps at once."""
        log_px = self.emission(step.read["s"], step.read, inputs).log_prob(x)
        if step.z is None:
            zero = log_px.new_zeros(())
            return Scores(log_px, zero, zero, zero)
        p = diag_gaussian(*(step.p if step.p is not None else self.prior(step.read["s"], inputs)))
        q = diag_gaussian(*step.q) if step.q is not None else p
        log_pz = p.log_prob(step.z)
        kl = kl_divergence(q, p) if step.q is not None else torch.zeros_like(log_pz)
        return Scores(log_px, log_pz, q.log_prob(step.z), kl, (p.mean, p.stddev))

    # ---- hooks of the default step (called by step and score only) -----------------
    def readout(self, state: State) -> torch.Tensor:
        """The part of s_{t-1} the prior and emission read."""
        return state[0]

    def step_prior(self, state: State, ctx_t: Context) -> Gaussian | None:
        """Location and scale of p(z_t | s_{t-1}) where the posterior is built on it (SRNN's Res_q):
        :meth:`step` passes it to :meth:`posterior` and keeps it for the KL, formed once per step.
        None (the default): the prior is formed by :meth:`score`, batched over the stacked readouts."""
        return None

    def posterior(self, state: State, ctx_t: Context, prior_t: Gaussian | None) -> Gaussian:
        """Location and scale of q(z_t | s_{t-1}, x); ``prior_t`` is :meth:`step_prior`'s result."""
        raise NotImplementedError

    def embed_z(self, z: torch.Tensor) -> Context:
        """Features of z_t used by the update and the emission (any leading shape)."""
        return {"z": z}

    def transition(self, state: State, ez: Context, ctx_t: Context) -> State:
        """s_t from s_{t-1}, the features of z_t and the step's context."""
        raise NotImplementedError

    def prior(self, s: torch.Tensor, ctx: Context) -> Gaussian:
        """Location and scale of p(z_t | s_{t-1}) (any leading shape)."""
        raise NotImplementedError

    def emission(self, s: torch.Tensor, ez: Context, ctx: Context) -> Distribution:
        """p(x_t | z_t, s_{t-1}) (any leading shape)."""
        raise NotImplementedError

    def pre_step(self, state: State) -> tuple[State, Context]:
        """Generation only: the context of step t from the past alone (e.g. SRNN's d_t from x_{t-1})."""
        return state, {}

    def embed_x(self, x: torch.Tensor) -> Context:
        """Generation only: the per-step context of a freshly generated x_t."""
        return {}

    # ---- drivers -------------------------------------------------------------------
    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None, samples: int = 1,
                generator: torch.Generator | None = None, carry: State | None = None,
                noise: torch.Tensor | None = None) -> StepTerms:
        """Run inference over x (B, T, D) with ``samples`` posterior samples per sequence: the step over
        t = 1..T, then one batched :meth:`score` of all (K·B, T) steps.

        The posterior noise ε_t ~ N(0, I) comes from ``generator``, or from ``noise``
        (K·B, T, Z) when given (sample-major: row k·B + b), so two code paths can be
        compared on identical draws.
        """
        B, T, _ = x.shape
        K = samples
        mask = x.new_ones(B, T, dtype=torch.bool) if mask is None else mask.bool()
        inputs, state = self.encode(x, carry, mask)
        if K > 1:
            inputs = {k: tile_samples(v, K) for k, v in inputs.items()}
            state = tuple(tile_samples(s, K) for s in state)
        proposal = "posterior" if self.has_latents else "none"
        # One view per step from unbind: its backward stacks the T step gradients once,
        # where indexing v[:, t] in the loop would build a zero (B, T, ·) gradient per
        # step (O(T²) time and memory traffic in the backward pass).
        per_step = {k: v.unbind(1) for k, v in inputs.items()}
        steps = []
        for t in range(T):
            state, out = self.step(state, {k: v[t] for k, v in per_step.items()}, proposal,
                                   None if noise is None else noise[:, t], generator)
            steps.append(out)
        steps = Step.stack(steps)  # (KB, T, ·)
        sc = self.score(steps, inputs, tile_samples(x, K))
        m = tile_samples(mask, K)
        zero = torch.zeros((), device=x.device, dtype=x.dtype)

        def fold(v):  # mask where the term is formed, then (KB, T) -> (K, B, T)
            return torch.where(m, v, zero).view(K, B, T) if v.dim() else x.new_zeros(K, B, T)

        def fold_z(v):  # (KB, T, Z) -> (K, B, T, Z)
            return None if v is None else v.view(K, B, T, -1)

        q, p = steps.q or (None, None), sc.p or (None, None)
        return StepTerms(log_px=fold(sc.log_px), kl=fold(sc.kl), log_pz=fold(sc.log_pz), log_qz=fold(sc.log_qz),
                         mask=mask, carry=state, q_loc=fold_z(q[0]), q_scale=fold_z(q[1]),
                         p_loc=fold_z(p[0]), p_scale=fold_z(p[1]))

    @torch.no_grad()
    def generate(self, steps: int, n: int = 1, ref: torch.Tensor | None = None, *,
                 generator: torch.Generator | None = None, bias: float = 0.0, temperature: float = 1.0,
                 start: State | None = None) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Ancestral sampling: x (n, steps, D) and z (n, steps, Z) or None, in model units.

        ``start`` (a state s_T) continues sequences from a filtered state
        (:func:`vrnn.inference.smc.continue_sequences`) instead of s_0.

        Every random number comes from ``generator``: equal generator seeds give equal samples
        whatever the global RNG's state, and the global RNG is left as it was. ``bias`` and
        ``temperature`` sample a pen-stroke emission biased (Graves 2013, §5.4) or tempered
        (Ha & Eck 2018); the defaults sample the model itself, and other emissions refuse others.
        """
        emission_class(self.cfg.emission.name).check_sampling(bias, temperature)  # fail before any work
        tempered = (bias, temperature) != (0.0, 1.0)
        ref = next(self.parameters()) if ref is None else ref
        state = start if start is not None else self.initial_state(ref, n)
        proposal = "prior" if self.has_latents else "none"

        def observe(dist: Distribution) -> torch.Tensor:
            return (dist.biased(bias, temperature) if tempered else dist).sample()

        xs, zs = [], []
        # z: explicit noise from the generator. x: the emission's own sample(), which takes no
        # generator (like every torch distribution; explicit noise would need a noise-to-sample map
        # per emission), run on a fork of the global RNG seeded from the generator, then restored.
        seed = int(torch.randint(2 ** 62, (), generator=generator,
                                 device=generator.device if generator is not None else "cpu"))
        with _seeded_global_rng(seed, ref.device):
            for _ in range(steps):
                state, out = self.step(state, None, proposal, generator=generator, observe=observe)
                xs.append(out.x)
                if out.z is not None:
                    zs.append(out.z)
        return torch.stack(xs, 1), (torch.stack(zs, 1) if zs else None)

    @property
    def display_name(self) -> str:
        return f"{type(self).__name__}-{self.cfg.emission.name}"
