"""The particle filter against exact answers: the Kalman filter on the linear-Gaussian model of
test_kalman.py, importance sampling on identical noise, and the RNN baselines' exact likelihood."""
from __future__ import annotations

import math

import pytest
import torch

from conftest import KINDS, build_kind, tiny_config
from test_kalman import A, C, Q, R, LinearGaussianSSM, data, sample_sequences  # noqa: F401  (data: fixture)
from vrnn.training.config import config_from_dict
from vrnn.models import build_model
from vrnn.inference.objectives import sequence_elbo, sequence_iw_log_likelihood
from vrnn.inference.smc import particle_filter, score_proposal, systematic_resample


def kalman_increments(x: torch.Tensor) -> torch.Tensor:
    """Exact log p(x_t | x_<t) of one sequence (T, D), float64."""
    Am, Qm, Rm = torch.diag(A), torch.diag(Q), torch.diag(R)
    mean, cov, out = torch.zeros(2, dtype=torch.float64), torch.zeros(2, 2, dtype=torch.float64), []
    for x_t in x:
        mean, cov = Am @ mean, Am @ cov @ Am.T + Qm
        S = C @ cov @ C.T + Rm
        out.append(torch.distributions.MultivariateNormal(C @ mean, S).log_prob(x_t))
        K = cov @ C.T @ torch.linalg.inv(S)
        mean, cov = mean + K @ (x_t - C @ mean), (torch.eye(2, dtype=torch.float64) - K @ C) @ cov
    return torch.stack(out)


def gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def test_without_resampling_smc_is_importance_sampling_on_the_same_noise(data):
    x, mask, exact = data
    model = LinearGaussianSSM("filter")
    K, (B, T, _) = 8, x.shape
    noise = torch.randn(K * B, T, 2, generator=gen(3), dtype=torch.float64)
    with torch.no_grad():
        smc = particle_filter(model, x, mask, K, proposal="posterior", resample="never", noise=noise)
        iw = sequence_iw_log_likelihood(model(x, mask, samples=K, noise=noise))
    torch.testing.assert_close(smc.log_marginal, iw, rtol=1e-12, atol=1e-10)
    assert not smc.resampled.any()


def test_with_the_exact_posterior_and_no_resampling_the_estimate_is_exact(data):
    """With q the true (smoothing) posterior every whole-sequence weight is p(x), so the filter without
    resampling gives the Kalman value to 1e-9; resampling on its step-wise weights (which are not
    constant: q looked ahead) keeps it unbiased but no longer exact."""
    x, mask, exact = data
    model = LinearGaussianSSM("exact")
    with torch.no_grad():
        smc = particle_filter(model, x, mask, 4, gen(0), resample="never")
        resampled = particle_filter(model, x, mask, 4, gen(0), resample="always")
    torch.testing.assert_close(smc.log_marginal, exact, rtol=1e-9, atol=1e-9)
    assert ((resampled.log_marginal - exact).abs() > 1e-6).any()


@pytest.mark.parametrize("proposal", ["prior", "posterior"])
def test_smc_converges_to_the_kalman_likelihood_and_tracks_its_increments(data, proposal):
    """K = 1000: within 0.5 % of the Kalman value on average over the four sequences (each within 1 %:
    the bootstrap filter's weights are peaked, R is small), closer than at K = 50; every increment
    tracks the Kalman filter's log p(x_t | x_<t)."""
    x, mask, exact = data
    model = LinearGaussianSSM("filter")
    with torch.no_grad():
        smc = particle_filter(model, x, mask, 1000, gen(1), proposal=proposal)
        few = torch.stack([particle_filter(model, x, mask, 50, gen(s), proposal=proposal).log_marginal
                           for s in range(8)])
    rel = (smc.log_marginal - exact).abs() / exact.abs()
    print(f"{proposal}: K=1000 relative errors {[round(v, 4) for v in rel.tolist()]}")
    assert rel.mean() < 0.005 and (rel < 0.01).all(), (smc.log_marginal.tolist(), exact.tolist())
    assert (smc.log_marginal - exact).abs().mean() < (few - exact).abs().mean()
    for b in range(len(exact)):
        n = int(mask[b].sum())
        truth = kalman_increments(x[b, :n])
        assert (smc.increments[b, :n] - truth).abs().max() < 0.25, (smc.increments[b, :n] - truth).abs().max()
        assert (smc.increments[b, n:] == 0).all()  # padded steps contribute nothing
    assert smc.resampled.any() and not (smc.resampled & ~mask).any()  # resampled, and only on real steps


def test_on_long_sequences_smc_beats_importance_sampling_at_the_same_k():
    """T = 200: the importance weights degenerate (one sample carries everything), SMC's do not."""
    seqs = [s for s in sample_sequences(1, seed=7) for _ in range(1)]
    g = gen(11)
    z, xs = torch.zeros(2, dtype=torch.float64), []
    for _ in range(200):
        z = A * z + Q.sqrt() * torch.randn(2, generator=g, dtype=torch.float64)
        xs.append(C @ z + R.sqrt() * torch.randn(3, generator=g, dtype=torch.float64))
    x = torch.stack(xs)[None]
    truth = kalman_increments(x[0]).sum()
    model, K = LinearGaussianSSM("filter"), 100
    errors = {"is": [], "smc": []}
    with torch.no_grad():
        for seed in range(3):
            is_est = sequence_iw_log_likelihood(model(x, samples=K, generator=gen(seed)))[0]
            smc_est = particle_filter(model, x, particles=K, generator=gen(seed)).log_marginal[0]
            errors["is"].append(abs(is_est - truth).item())
            errors["smc"].append(abs(smc_est - truth).item())
    print(f"T=200, K={K}: |IS - exact| {errors['is']}, |SMC - exact| {errors['smc']} nats (exact {truth:.2f})")
    assert max(errors["smc"]) < min(errors["is"]), errors
    assert seqs  # the module's sequences are untouched by this test


@pytest.mark.parametrize("name", list(KINDS))
def test_every_model_filters_and_the_rnn_is_exact(name):
    model = build_kind(name).double().eval()
    smooth = KINDS[name].get("posterior", "smooth") == "smooth" and KINDS[name]["kind"] in ("srnn", "dmm")
    assert score_proposal(model) == ("none" if name == "rnn" else "prior" if smooth else "posterior")
    x = torch.randn(3, 7, 3, generator=gen(0), dtype=torch.float64)
    mask = torch.ones(3, 7, dtype=torch.bool)
    mask[1, 4:] = False
    with torch.no_grad():
        smc = particle_filter(model, x, mask, 5, gen(1), proposal=score_proposal(model))
        terms = model(x, mask, samples=5, generator=gen(2))
    assert smc.increments.shape == (3, 7) and torch.isfinite(smc.log_marginal).all()
    assert (smc.increments[1, 4:] == 0).all()
    if name == "rnn":  # no latent variables: the filter is the exact likelihood
        torch.testing.assert_close(smc.log_marginal, terms.log_px[0].sum(-1))


def test_bounds_and_k1_and_gradients_under_masking(data):
    """ELBO ≤ IWAE and FIVO ≤ log p(x) in expectation; at K = 1 both are the single-sample ELBO on the
    same noise; gradients through the FIVO bound are finite with padding."""
    x, mask, exact = data
    model = LinearGaussianSSM("filter")
    reps, K, B = 200, 16, x.shape[0]
    with torch.no_grad():  # expectations over `reps` independent estimates, each with K samples
        elbo = sequence_elbo(model(x, mask, samples=4000, generator=gen(0)))
        terms = model(x, mask, samples=reps * K, generator=gen(1))
        log_w = (terms.log_px + terms.log_pz - terms.log_qz).sum(-1).view(reps, K, B)
        iwae = (torch.logsumexp(log_w, 1) - math.log(K)).mean(0)
        many = particle_filter(model, x.repeat(reps, 1, 1), mask.repeat(reps, 1), K, gen(2)).log_marginal
        fivo = many.view(reps, B).mean(0)
    print(f"ELBO {elbo.tolist()}\nIWAE {iwae.tolist()}\nFIVO {fivo.tolist()}\nexact {exact.tolist()}")
    assert (elbo < iwae).all() and (iwae < exact).all() and (fivo < exact).all(), (elbo, iwae, fivo, exact)
    noise = torch.randn(x.shape[0], x.shape[1], 2, generator=gen(5), dtype=torch.float64)
    with torch.no_grad():
        terms = model(x, mask, samples=1, noise=noise)
        single = (terms.log_px + terms.log_pz - terms.log_qz).sum(-1)[0]  # log p(x, z) − log q(z | x)
        for resample in ("ess", "always"):
            k1 = particle_filter(model, x, mask, 1, noise=noise, resample=resample).log_marginal
            torch.testing.assert_close(k1, single, rtol=1e-12, atol=1e-10)
        torch.testing.assert_close(sequence_iw_log_likelihood(terms), single, rtol=1e-12, atol=1e-10)
    vr = build_model(tiny_config("vrnn", "conditional", "gauss", x_dim=3).model)
    xv = torch.randn(4, 9, 3, generator=gen(0))
    mv = torch.ones(4, 9, dtype=torch.bool)
    mv[0, 3:] = False
    fivo_bound = particle_filter(vr, xv, mv, 4, gen(0), resample="always").log_marginal.sum()
    fivo_bound.backward()
    grads = [p.grad for p in vr.parameters()]
    assert all(g is not None and torch.isfinite(g).all() for g in grads)
    assert sum(g.abs().sum() for g in grads) > 0


def test_systematic_resampling_follows_the_weights():
    w = torch.tensor([0.7, 0.2, 0.1, 0.0], dtype=torch.float64)
    log_w = w.log()[:, None].expand(4, 5000).contiguous()
    anc = systematic_resample(log_w, gen(0))  # (B, K)
    counts = torch.stack([(anc == k).sum(1) for k in range(4)], 1).double()  # (B, 4)
    assert (counts[:, 3] == 0).all()  # a zero weight is never chosen
    assert ((counts - 4 * w).abs() <= 1).all()  # systematic: each count within one of K·w
    assert math.isclose(counts.mean(0)[0].item(), 2.8, abs_tol=0.3)


def test_a_continuation_starts_from_the_filtered_state():
    """LGSSM: the mean of x_{T+1} over many continuations is the Kalman filter's one-step prediction
    C A m_T (m_T the filtered mean of z_T), not the prior's C A^{T+1}·0 = 0."""
    from vrnn.inference.smc import continue_sequences

    x = sample_sequences(1, seed=3)[0][None]  # (1, T, 3)
    Am, Qm, Rm = torch.diag(A), torch.diag(Q), torch.diag(R)
    mean, cov = torch.zeros(2, dtype=torch.float64), torch.zeros(2, 2, dtype=torch.float64)
    for x_t in x[0]:
        mean, cov = Am @ mean, Am @ cov @ Am.T + Qm
        S = C @ cov @ C.T + Rm
        K = cov @ C.T @ torch.linalg.inv(S)
        mean, cov = mean + K @ (x_t - C @ mean), (torch.eye(2, dtype=torch.float64) - K @ C) @ cov
    predicted = C @ (Am @ mean)
    cont = continue_sequences(LinearGaussianSSM("filter"), x, steps=2, n=20000, particles=2000, generator=gen(0))
    assert cont.shape == (1, 20000, 2, 3)
    first = cont[0, :, 0].mean(0)
    se = cont[0, :, 0].std(0) / math.sqrt(20000)
    assert ((first - predicted).abs() < 4 * se + 0.02).all(), (first, predicted)
    assert predicted.abs().max() > 10 * se.max()  # the test can tell the filtered state from the prior's


@pytest.mark.parametrize("objective", ["elbo", "iwae", "fivo"])
def test_training_with_each_objective_logs_its_bound_and_resumes_exactly(tmp_path, binary_npz, objective):
    from vrnn.checkpoint import load_checkpoint
    from vrnn.training.trainer import fit

    cfg = tiny_config("vrnn", "conditional", "bernoulli", x_dim=5, source=str(binary_npz), max_steps=8, eval_every=4,
                      objective=objective, particles=3, lr=1e-2)
    whole = fit(cfg, tmp_path / "whole", progress=False)
    import dataclasses

    fit(cfg.replace(train=dataclasses.replace(cfg.train, max_steps=4)), tmp_path / "split", progress=False)
    fit(cfg, tmp_path / "split", resume=True, progress=False)
    a, b = (load_checkpoint(tmp_path / d / "last.pt")["model"] for d in ("whole", "split"))
    assert all(torch.equal(a[k], b[k]) for k in a)
    import json

    log = [json.loads(line) for line in (tmp_path / "whole" / "log.jsonl").read_text().splitlines()]
    key = "train_elbo_per_step" if objective == "elbo" else "train_bound_per_step"
    assert [r["step"] for r in log] == [4, 8] and all(key in r for r in log)
    assert whole.steps == 8


@pytest.mark.parametrize("objective", ["iwae", "fivo"])
def test_a_bound_objective_refuses_truncated_bptt(binary_npz, objective):
    from vrnn.errors import VrnnError

    # refused when the config is read, before any data is loaded
    with pytest.raises(VrnnError, match=f"config: train.objective={objective} .*tbptt_steps=0"):
        tiny_config("vrnn", "conditional", "bernoulli", x_dim=5, source=str(binary_npz), objective=objective,
                    particles=2, tbptt_steps=3)


@pytest.mark.parametrize("objective, stop_on, watched", [("elbo", "objective", "elbo"), ("iwae", "objective", "iwae (K = 3)"),
                                                         ("fivo", "objective", "fivo (K = 3)"), ("fivo", "elbo", "elbo")])
def test_early_stopping_follows_the_trained_bound(tmp_path, binary_npz, objective, stop_on, watched):
    """A bound's run is validated, stopped and checkpointed on that bound (train.stop_on = "objective"),
    or on the ELBO when asked; best.pt is the evaluation with the best watched score."""
    import json

    from vrnn.checkpoint import load_checkpoint
    from vrnn.training.trainer import fit

    cfg = tiny_config("vrnn", "conditional", "bernoulli", x_dim=5, source=str(binary_npz), max_steps=12, eval_every=2,
                      objective=objective, particles=3, lr=3e-2, stop_on=stop_on, patience=100)
    result = fit(cfg, tmp_path / "r", progress=False)
    log = [json.loads(line) for line in (tmp_path / "r" / "log.jsonl").read_text().splitlines()]
    assert result.watched == watched and all(r["watched"] == watched for r in log)
    scores = [r["valid_score_per_step"] for r in log]
    assert result.best_valid == max(scores) == log[-1]["best_valid_score_per_step"]
    assert load_checkpoint(tmp_path / "r" / "best.pt")["step"] == log[scores.index(max(scores))]["step"]
    if watched == "elbo":
        assert scores == [r["valid_elbo_per_step"] for r in log]
    else:  # a bound's own score, not the ELBO under another name
        assert all(abs(r["valid_score_per_step"] - r["valid_elbo_per_step"]) > 1e-6 for r in log)


def test_particle_filter_at_several_k_in_one_evaluation_matches_one_evaluation_per_k(monkeypatch):
    """``evaluate(particles=...)`` gives each K the numbers an ``estimator="smc"`` evaluation with ``iw_samples=K``
    gives, runs the importance-sampling pass once (at ``iw_samples``) and the filter once per K."""
    import numpy as np

    from vrnn.data import Normalizer
    from vrnn.inference import evaluate as ev

    model = build_kind("vrnn").eval()
    rng = np.random.default_rng(0)
    seqs = [rng.normal(size=(n, 3)).astype(np.float32) for n in (4, 7, 5)]
    norm = Normalizer()  # mean 0, std 1: the identity
    one = {k: ev.evaluate(model, seqs, norm, iw_samples=k, batch_size=2, estimator="smc", per_sequence=True)
           for k in (3, 6)}
    calls = {"is": 0, "smc": 0}
    forward, filt = type(model).forward, ev.particle_filter

    def count_is(self, *a, **kw):
        calls["is"] += 1
        return forward(self, *a, **kw)

    def count_smc(*a, **kw):
        calls["smc"] += 1
        return filt(*a, **kw)

    monkeypatch.setattr(type(model), "forward", count_is)
    monkeypatch.setattr(ev, "particle_filter", count_smc)
    both = ev.evaluate(model, seqs, norm, iw_samples=3, batch_size=8, estimator="smc", per_sequence=True,
                       particles=(3, 6))
    assert calls == {"is": 1, "smc": 2}  # one batch: IS once at K = 3, the filter at K = 3 (shared) and at K = 6
    for k in (3, 6):
        assert both["smc_particles"][str(k)]["sequences"] == one[k]["sequences"]["log_likelihood_smc"]
        assert both["smc_particles"][str(k)]["log_likelihood"] == one[k]["log_likelihood_smc"]
    assert both["log_likelihood"] == one[3]["log_likelihood"]
    rnn = ev.evaluate(build_kind("rnn").eval(), seqs, norm, iw_samples=3, particles=(3, 6))
    assert "smc_particles" not in rnn  # no latent variables: nothing to filter
