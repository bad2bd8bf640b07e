"""Emissions and the latent Gaussians: densities against independent computations."""
import math

import numpy as np
import pytest
import torch
from torch.distributions import Normal, kl_divergence

from vrnn.training.config import EmissionConfig
from vrnn.emissions import EMISSIONS, FusedNormal, build_emission, diag_gaussian
from vrnn.errors import VrnnError


def test_one_component_mixture_equals_diagonal_gaussian():
    torch.manual_seed(0)
    h, x = torch.randn(5, 7, 12), torch.randn(5, 7, 4)
    gauss = build_emission(EmissionConfig("gauss"), 12, 4)
    gmm = build_emission(EmissionConfig("gmm", components=1), 12, 4)
    with torch.no_grad():  # the same location and scale maps
        gmm.loc.weight.copy_(gauss.loc.weight), gmm.loc.bias.copy_(gauss.loc.bias)
        gmm.scale.weight.copy_(gauss.scale.weight), gmm.scale.bias.copy_(gauss.scale.bias)
    a, b = gauss(h).log_prob(x), gmm(h).log_prob(x)
    assert a.shape == (5, 7)
    torch.testing.assert_close(a, b, rtol=1e-6, atol=1e-5)


def test_gmm_log_prob_matches_direct_mixture_sum():
    torch.manual_seed(1)
    K, D = 4, 3
    em = build_emission(EmissionConfig("gmm", components=K), 10, D)
    h, x = torch.randn(6, 10), torch.randn(6, D)
    dist = em(h)
    logits = em.logits(h).log_softmax(-1)  # (6, K)
    loc = em.loc(h).view(6, K, D)
    scale = (torch.nn.functional.softplus(em.scale(h)) + em.cfg.min_scale).view(6, K, D)
    # log Σ_k π_k Π_d N(x_d; μ_kd, σ_kd), written out
    log_norm = -0.5 * ((x[:, None] - loc) / scale) ** 2 - scale.log() - 0.5 * math.log(2 * math.pi)
    direct = torch.logsumexp(logits + log_norm.sum(-1), -1)
    torch.testing.assert_close(dist.log_prob(x), direct, rtol=1e-5, atol=1e-5)


# (value, loc, scale) shapes: a mixture's frame against its components, μ broadcast to σ's batch, one shape
BROADCASTS = [((6, 1, 5), (6, 3, 5), (6, 3, 5)), ((5,), (5,), (4, 5)), ((2, 5), (2, 5), (2, 5))]


@pytest.mark.parametrize("shapes", BROADCASTS)
def test_fused_normal_log_prob_is_torch_normal_bit_for_bit(shapes):
    g = torch.Generator().manual_seed(3)
    value, loc = torch.randn(shapes[0], generator=g), torch.randn(shapes[1], generator=g)
    scale = torch.rand(shapes[2], generator=g) * 2 + 1e-3
    fused, ref = FusedNormal(loc, scale).log_prob(value), Normal(loc, scale).log_prob(value)
    assert fused.shape == ref.shape and torch.equal(fused, ref)  # the evaluation's numbers cannot move


@pytest.mark.parametrize("shapes", BROADCASTS)
def test_fused_normal_gradients_match_autograd_through_torch_normal(shapes):
    g = torch.Generator().manual_seed(4)
    value = torch.randn(shapes[0], generator=g, dtype=torch.float64, requires_grad=True)
    loc = torch.randn(shapes[1], generator=g, dtype=torch.float64, requires_grad=True)
    scale = (torch.rand(shapes[2], generator=g, dtype=torch.float64) + 0.1).requires_grad_()
    assert torch.autograd.gradcheck(lambda v, m, s: FusedNormal(m, s).log_prob(v), (value, loc, scale))
    w = torch.randn(torch.broadcast_shapes(*shapes), generator=g, dtype=torch.float64)  # a non-uniform upstream
    fused = torch.autograd.grad((FusedNormal(loc, scale).log_prob(value) * w).sum(), (value, loc, scale))
    ref = torch.autograd.grad((Normal(loc, scale).log_prob(value) * w).sum(), (value, loc, scale))
    for a, b in zip(fused, ref):
        assert a.shape == b.shape
        torch.testing.assert_close(a, b)


def test_bernoulli_log_prob_is_sum_over_keys():
    em = build_emission(EmissionConfig("bernoulli"), 8, 5)
    h = torch.randn(3, 8)
    x = (torch.rand(3, 5) < 0.5).float()
    p = torch.sigmoid(em.logits(h))
    direct = (x * p.log() + (1 - x) * (1 - p).log()).sum(-1)
    torch.testing.assert_close(em(h).log_prob(x), direct, rtol=1e-5, atol=1e-5)


def test_analytic_kl_matches_monte_carlo():
    torch.manual_seed(2)
    q = diag_gaussian(torch.randn(3, 6), torch.rand(3, 6) + 0.3)
    p = diag_gaussian(torch.randn(3, 6), torch.rand(3, 6) + 0.3)
    z = q.sample((200_000,))
    mc = q.log_prob(z) - p.log_prob(z)  # (N, 3)
    err = mc.std(0) / math.sqrt(z.shape[0])
    assert (kl_divergence(q, p) - mc.mean(0)).abs().lt(5 * err).all()


@pytest.mark.parametrize("name", sorted(EMISSIONS))
def test_every_emission_samples_in_support_and_scores_one_value_per_step(name):
    em = build_emission(EmissionConfig(name, components=3), 8, 3)  # 3 features: every emission accepts it
    d = em(torch.randn(2, 5, 8))
    x = d.sample()
    assert x.shape[-1] >= 1 and d.log_prob(x).shape == (2, 5)
    assert torch.isfinite(d.log_prob(x)).all()


def test_bernoulli_rejects_non_binary_data():
    with pytest.raises(VrnnError, match="binary"):
        EMISSIONS["bernoulli"].check_data(np.array([[0.0, 0.5]]), "rolls.npz [train]")
    EMISSIONS["bernoulli"].check_data(np.array([[0.0, 1.0]]), "ok")
