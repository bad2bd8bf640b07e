"""Evaluation: ELBO and log-likelihood of a split, with units and normalisation spelled out."""
from __future__ import annotations

import zlib

import numpy as np
import torch

from ..data import Normalizer, pad_batch
from ..emissions import emission_class
from ..errors import VrnnError
from ..models import SequenceModel
from ..data.dequantize import Dequantizer
from .objectives import bits_per_frame, normalisations, sequence_elbo, sequence_iw_log_likelihood
from .smc import particle_filter

EVAL_SEED = 1234  # evaluation draws its own noise: the same checkpoint always gives the same numbers
MAX_ROW_STEPS = 1 << 15  # (sequences x samples x steps) per evaluation batch: bounds memory, and keeps the
# after-loop tensors cache-sized (on a 2-core Xeon the K = 40 JSB test set took 6.6 s at 2^15, 11.6 s at 2^17)


def length_batches(lengths: list[int], batch_size: int, samples: int, max_row_steps: int = MAX_ROW_STEPS):
    """Indices in order of length, cut into batches of at most ``batch_size`` sequences whose
    padded size (sequences x samples x longest length) stays within ``max_row_steps``."""
    order = sorted(range(len(lengths)), key=lambda i: lengths[i])
    batch: list[int] = []
    for i in order:
        if batch and (len(batch) == batch_size or (len(batch) + 1) * samples * lengths[i] > max_row_steps):
            yield batch
            batch = []
        batch.append(i)
    if batch:
        yield batch


def split_keys(split: str, n: int) -> list[tuple[int, ...]]:
    """Noise keys of a split's ``n`` sequences: (a hash of the split's name, the index in the split)."""
    return [(zlib.crc32(split.encode()), i) for i in range(n)]


def sequence_seed(seed: int, key: tuple[int, ...]) -> int:
    """The seed of one sequence's evaluation noise: a hash of the evaluation ``seed`` and the
    sequence's ``key`` (its split and index), so a sequence's noise never depends on its batch."""
    return int(np.random.SeedSequence([seed, *key]).generate_state(1, np.uint64)[0])


def dequantized(deq: Dequantizer, seqs: list[np.ndarray], keys: list[tuple[int, ...]],
                seed: int = EVAL_SEED) -> list[np.ndarray]:
    """``seqs`` with one fixed dequantisation draw each (:mod:`vrnn.data.dequantize`), sequence i's from its key."""
    return deq.fixed(seqs, [sequence_seed(seed, (*key, 2)) for key in keys]) if deq else seqs


def sequence_noise(model: SequenceModel, lengths: list[int], keys: list[tuple[int, ...]], samples: int, seed: int,
                   device: torch.device, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """Posterior noise ε ~ N(0, I) for one batch, (K·B, T_max, Z) sample-major (row k·B + b), as
    :meth:`SequenceModel.forward` takes it; sequence b's (K, T_b, Z) block comes from its own stream
    (:func:`sequence_seed`) and its padded steps hold zeros."""
    gen = torch.Generator(device=device)
    noise = torch.zeros(samples, len(lengths), max(lengths), model.z_dim, device=device, dtype=dtype)  # (K, B, T, Z)
    for b, (n, key) in enumerate(zip(lengths, keys)):
        gen.manual_seed(sequence_seed(seed, key))
        noise[:, b, :n] = torch.randn(samples, n, model.z_dim, generator=gen, device=device, dtype=dtype)
    return noise.view(samples * len(lengths), max(lengths), model.z_dim)


def sequence_uniforms(lengths: list[int], keys: list[tuple[int, ...]], seed: int, device: torch.device) -> torch.Tensor:
    """The particle filter's resampling uniforms for one batch (B, T_max), each sequence's from its own stream."""
    gen = torch.Generator(device=device)
    out = torch.zeros(len(lengths), max(lengths), device=device, dtype=torch.float64)
    for b, (n, key) in enumerate(zip(lengths, keys)):
        gen.manual_seed(sequence_seed(seed, (*key, 1)))
        out[b, :n] = torch.rand(n, generator=gen, device=device, dtype=torch.float64)
    return out


@torch.no_grad()
def score_sequences(model: SequenceModel, seqs: list[np.ndarray], iw_samples: int = 1, batch_size: int = 128,
                    seed: int = EVAL_SEED, device: str | torch.device = "cpu",
                    keys: list[tuple[int, ...]] | None = None, smc: bool = False,
                    particles: tuple[int, ...] = ()) -> dict[str, torch.Tensor]:
    """Per-sequence ELBO, KL and log-likelihood (exact, or IS with ``iw_samples``), in model units;
    with ``smc`` also ``log_likelihood_smc``, a particle filter's estimate with as many particles
    (the model's posterior as proposal, :mod:`vrnn.inference.smc`) on the same noise. A latent model
    with ``particles`` also gets ``smc_at_K`` for each K: the particle filter alone with K particles
    (the same numbers as ``log_likelihood_smc`` of an evaluation with ``iw_samples = K``, without its
    importance-sampling pass; a K equal to ``iw_samples`` under ``smc`` reuses ``log_likelihood_smc``).

    Sequences are batched in order of length to keep padding small (and within
    :data:`MAX_ROW_STEPS` to bound memory); results come back in the input order. Sequence i's
    posterior noise comes from its own stream, seeded by ``seed`` and ``keys[i]`` (default ``(i,)``),
    so its numbers do not depend on ``batch_size`` or on the other sequences.
    """
    model.eval()
    device = torch.device(device)
    keys = [(i,) for i in range(len(seqs))] if keys is None else [tuple(k) for k in keys]
    if len(keys) != len(seqs):
        raise ValueError(f"{len(keys)} keys for {len(seqs)} sequences")
    k = iw_samples if model.has_latents else 1
    n = len(seqs)
    elbo, ll, kl, ll_smc = (torch.zeros(n, dtype=torch.float64) for _ in range(4))
    for idx in length_batches([len(a) for a in seqs], batch_size, k):
        x, mask = pad_batch([seqs[i] for i in idx], device)
        noise = sequence_noise(model, [len(seqs[i]) for i in idx], [keys[i] for i in idx], k, seed, device,
                               x.dtype) if model.has_latents else None
        terms = model(x, mask, samples=k, noise=noise)
        elbo[idx] = sequence_elbo(terms).double().cpu()
        kl[idx] = terms.kl.sum(-1).mean(0).double().cpu()
        ll[idx] = sequence_iw_log_likelihood(terms).double().cpu()
        if smc:
            ll_smc[idx] = _filter_batch(model, x, mask, [len(seqs[i]) for i in idx], [keys[i] for i in idx], k,
                                        seed, noise)
    lengths = torch.tensor([len(a) for a in seqs], dtype=torch.float64)
    out = {"elbo": elbo, "log_likelihood": ll, "kl": kl, "lengths": lengths} | ({"log_likelihood_smc": ll_smc}
                                                                                if smc else {})
    for kk in particles if model.has_latents else ():
        out[f"smc_at_{kk}"] = ll_smc.clone() if smc and kk == k else particle_filter_only(
            model, seqs, kk, batch_size, seed, device, keys)
    return out


def particle_filter_only(model: SequenceModel, seqs: list[np.ndarray], k: int, batch_size: int, seed: int,
                         device: torch.device, keys: list[tuple[int, ...]]) -> torch.Tensor:
    """Per-sequence particle-filter estimates with ``k`` particles, on the noise :func:`score_sequences` gives
    sequence i with ``iw_samples = k`` (its numbers, without the importance-sampling pass)."""
    est = torch.zeros(len(seqs), dtype=torch.float64)
    for idx in length_batches([len(a) for a in seqs], batch_size, k):
        x, mask = pad_batch([seqs[i] for i in idx], device)
        lens, ks = [len(seqs[i]) for i in idx], [keys[i] for i in idx]
        est[idx] = _filter_batch(model, x, mask, lens, ks, k, seed, sequence_noise(model, lens, ks, k, seed, device,
                                                                                   x.dtype))
    return est


def _filter_batch(model: SequenceModel, x: torch.Tensor, mask: torch.Tensor, lens: list[int],
                  keys: list[tuple[int, ...]], k: int, seed: int, noise: torch.Tensor) -> torch.Tensor:
    """One batch's particle-filter estimates (float64, CPU) on its posterior ``noise`` and its sequences' own
    resampling uniforms."""
    uniforms = sequence_uniforms(lens, keys, seed, x.device)
    return particle_filter(model, x, mask, k, noise=noise, uniforms=uniforms).log_marginal.double().cpu()


def evaluate(model: SequenceModel, seqs: list[np.ndarray], normalizer: Normalizer, iw_samples: int = 40,
             batch_size: int = 128, seed: int = EVAL_SEED, device="cpu", dataset: str = "?",
             split: str = "test", per_sequence: bool = False, keys: list[tuple[int, ...]] | None = None,
             estimator: str = "is", particles: tuple[int, ...] = (), dequantize: Dequantizer = Dequantizer()) -> dict:
    """The evaluation report: every number in nats, under three normalisations.

    ``seqs`` are in original units; they are normalised here with the model's normaliser.
    ``per_sequence`` adds ``sequences``: each sequence's ELBO, log-likelihood and KL totals
    (nats, model units) and its length, in the input order. Sequence i's noise is keyed by
    ``keys[i]``, by default (``split``, i) (:func:`split_keys`): the same sequence of the same
    split gets the same numbers in any batch. ``estimator = "smc"`` adds ``log_likelihood_smc``,
    the particle filter's estimate beside the importance-sampled one. Discrete emissions (bernoulli,
    nade, dlogistic) on unnormalised data add ``bits_per_frame``: −log₂ p per step from ``log_likelihood``.
    ``dequantize`` (the run's ``data.dequantize``): one fixed draw per sequence before normalising, and
    ``original_units`` bounds the gridded data's log-probability (:func:`original_units`; ``dequantized``).
    ``particles`` (a latent model): ``smc_particles`` adds the particle filter's estimate at each K, model units:
    ``{"K": {"log_likelihood": its normalisations, "sequences": per-sequence totals}}``.
    """
    if estimator not in ("is", "smc"):
        raise VrnnError(f"--estimator {estimator!r}: choose is or smc")
    keys = split_keys(split, len(seqs)) if keys is None else keys
    x = [normalizer(a) for a in dequantized(dequantize, seqs, keys, seed)]
    smc = estimator == "smc" and model.has_latents
    scores = score_sequences(model, x, iw_samples, batch_size, seed, device, keys, smc=smc, particles=particles)
    at_k = {kk: scores.pop(f"smc_at_{kk}") for kk in particles if f"smc_at_{kk}" in scores}
    lengths = scores["lengths"]
    exact = not model.has_latents
    report = {
        "model": model.display_name,
        "kind": model.cfg.kind,
        "dataset": dataset,
        "split": split,
        "num_sequences": len(seqs),
        "num_steps": int(lengths.sum().item()),
        "elbo": normalisations(scores["elbo"], lengths),
        "log_likelihood": normalisations(scores["log_likelihood"], lengths),
        "kl": normalisations(scores["kl"], lengths),
        "log_likelihood_method": "exact" if exact else "importance_sampling",
        "iw_samples": None if exact else iw_samples,
        "units": "nats",
        "data_scale": "original" if normalizer.identity else normalizer.describe(),
    }
    if smc:
        report["log_likelihood_smc"] = normalisations(scores["log_likelihood_smc"], lengths)
        report["smc"] = {"particles": iw_samples, "proposal": "posterior", "resampling": "systematic, ESS < K/2"}
    elif estimator == "smc":  # no latent variables: every estimator is the exact likelihood
        report["log_likelihood_smc"] = report["log_likelihood"]
        report["smc"] = {"particles": None, "proposal": "none: exact", "resampling": "none"}
    if at_k:
        report["smc_particles"] = {str(kk): {"log_likelihood": normalisations(v, lengths), "sequences": v.tolist()}
                                   for kk, v in at_k.items()}
    if emission_class(model.cfg.emission.name).discrete and normalizer.identity:  # a probability: bits compare
        report["bits_per_frame"] = bits_per_frame(report["log_likelihood"])
    if per_sequence:
        report["sequences"] = {k: v.tolist() for k, v in scores.items()}
    if dequantize:
        report["dequantized"] = dequantize.describe(model.cfg.x_dim)
    if not normalizer.identity or dequantize:
        report["original_units"] = original_units(scores, normalizer, dequantize, model.cfg.x_dim)
    return report


def original_units(scores: dict[str, torch.Tensor], normalizer: Normalizer, dequantize: Dequantizer,
                   x_dim: int) -> dict:
    """The ELBO and log-likelihoods in the data's own units: log p(x_original) = log p(x_normalised) +
    log|dx_norm/dx| at every step, plus D log w where dequantised (the bound on the gridded data's
    log-probability)."""
    lengths = scores["lengths"]
    jac = (normalizer.log_jacobian(x_dim) + dequantize.log_bin(x_dim)) * lengths
    return {key: normalisations(scores[key] + jac, lengths)
            for key in ("elbo", "log_likelihood", "log_likelihood_smc") if key in scores}


def estimate_label(report: dict, key: str = "log_likelihood") -> str:
    """How an :func:`evaluate` report's log-likelihood ``key`` was estimated: ``exact``, ``IS, K=40`` (importance
    sampling) or, for ``log_likelihood_smc``, ``SMC, K=40`` (``SMC: exact`` for a model without latent variables)."""
    if key == "log_likelihood_smc":
        k = report["smc"]["particles"]
        return f"SMC, K={k}" if k else "SMC: exact"
    return "exact" if report["log_likelihood_method"] == "exact" else f"IS, K={report['iw_samples']}"
