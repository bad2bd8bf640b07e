"""The within-frame autoregressive and discretised emissions (issue 24): normalised, sampled as scored,
autoregressive by construction, and usable by every model and estimator."""
import itertools
import math

import numpy as np
import pytest
import torch
from scipy.stats import chi2

from vrnn.emissions import EMISSIONS, DiscretisedLogisticMixture, EmissionConfig, build_emission, to_grid
from vrnn.emissions.discretised import HIGH, LEVELS, LOW
from vrnn.emissions.made import MADE
from vrnn.errors import VrnnError
from vrnn.inference.objectives import training_loss
from vrnn.inference.smc import particle_filter

from conftest import KINDS, build_kind

NEW = ["nade", "ar-gmm", "dlogistic"]


def emission(name, d, features=6, hidden=7, components=3, sharpen=1.0):
    """A seeded emission with its weights scaled by ``sharpen`` (larger: stronger dependence on x_<i)."""
    torch.manual_seed(0)
    em = build_emission(EmissionConfig(name, components=components, hidden=hidden), features, d)
    with torch.no_grad():
        for p in em.parameters():
            p.mul_(sharpen)
    return em


def all_frames(d):
    return torch.tensor(list(itertools.product([0.0, 1.0], repeat=d)))  # (2^D, D)


@pytest.mark.parametrize("d", [1, 3, 8])
def test_nade_probabilities_of_all_frames_sum_to_one(d):
    dist = emission("nade", d, sharpen=3.0)(torch.randn(4, 6))  # batch of 4 contexts
    log_p = dist.log_prob(all_frames(d).unsqueeze(1))  # (2^D, 4): every frame under every context
    torch.testing.assert_close(log_p.logsumexp(0), torch.zeros(4), atol=1e-5, rtol=0)


def test_ar_gmm_density_integrates_to_one_on_a_grid():
    dist = emission("ar-gmm", 2, sharpen=1.5)(torch.randn(2, 6))
    g = torch.linspace(-12, 12, 1201)
    grid = torch.cartesian_prod(g, g)  # (G², 2)
    mass = dist.log_prob(grid.unsqueeze(1)).exp().sum(0) * (g[1] - g[0]) ** 2
    torch.testing.assert_close(mass, torch.ones(2), atol=2e-3, rtol=0)


def test_ar_gmm_second_element_depends_on_the_first():
    dist = emission("ar-gmm", 2, sharpen=1.5)(torch.randn(6))
    _, loc_a, _ = dist.conditionals(torch.tensor([0.0, 0.0]))
    _, loc_b, _ = dist.conditionals(torch.tensor([3.0, 0.0]))
    torch.testing.assert_close(loc_a[0], loc_b[0])  # x_1's mixture ignores x_1
    assert (loc_a[1] - loc_b[1]).abs().max() > 1e-2  # x_2's reads x_1


def test_discretised_masses_over_all_bins_sum_to_one():
    # wide, narrow (below a bin), and components beyond both edges: the edge bins take the tails
    logits = torch.tensor([[[0.0, 1.0, -1.0]], [[2.0, 0.0, 0.5]]])  # (S=2, D=1, K=3)
    loc = torch.tensor([[[0.1, -1.3, 1.2]], [[0.37, 0.999, -0.5]]])
    scale = torch.tensor([[[0.3, 0.05, 0.01]], [[1e-6, 1e-3, 2.0]]])
    dist = DiscretisedLogisticMixture(logits, loc, scale)
    bins = torch.arange(LEVELS, dtype=torch.float64).mul(2.0 / LEVELS).sub(1.0).float()
    log_p = dist.log_prob(bins.view(-1, 1, 1))  # (65536, 2)
    assert (log_p <= 1e-6).all()  # probabilities: bounded likelihoods
    torch.testing.assert_close(log_p.double().logsumexp(0), torch.zeros(2, dtype=torch.float64), atol=1e-4, rtol=0)


def chi2_p(counts, probs):
    """p-value of Pearson's χ² test of ``counts`` against ``probs`` (cells with expected count ≥ 5)."""
    n = counts.sum()
    expected = probs * n
    keep = expected >= 5
    stat = (((counts - expected) ** 2) / expected)[keep].sum().item()
    return chi2.sf(float(stat), int(keep.sum()) - 1)


def test_nade_samples_match_log_prob():
    torch.manual_seed(1)
    dist = emission("nade", 4, sharpen=3.0)(torch.randn(6))
    x = dist.sample((40_000,))  # (N, 4)
    index = (x * torch.tensor([8.0, 4.0, 2.0, 1.0])).sum(-1).long()
    counts = torch.bincount(index, minlength=16).double()
    probs = dist.log_prob(all_frames(4)).exp().double()
    assert chi2_p(counts, probs) > 1e-3


def test_ar_gmm_samples_match_log_prob():
    torch.manual_seed(2)
    dist = emission("ar-gmm", 2, sharpen=1.5)(torch.randn(6))
    edges = torch.tensor([-1.0, 0.0, 1.0])  # 4 x 4 cells
    x = dist.sample((40_000,)).contiguous()
    cell = torch.bucketize(x[:, 0].contiguous(), edges) * 4 + torch.bucketize(x[:, 1].contiguous(), edges)
    counts = torch.bincount(cell, minlength=16).double()
    g = torch.arange(-12, 12, 0.02) + 0.01  # cell midpoints: no point on a cell's edge
    grid = torch.cartesian_prod(g, g)
    with torch.no_grad():
        mass = dist.log_prob(grid).exp() * 0.02 ** 2
    gcell = torch.bucketize(grid[:, 0].contiguous(), edges) * 4 + torch.bucketize(grid[:, 1].contiguous(), edges)
    probs = torch.zeros(16).index_add_(0, gcell, mass).double()
    assert chi2_p(counts, probs / probs.sum()) > 1e-3


def test_dlogistic_samples_match_log_prob_and_lie_on_the_grid():
    torch.manual_seed(3)
    dist = DiscretisedLogisticMixture(torch.tensor([[0.0, 0.7]]), torch.tensor([[-0.2, 0.3]]),
                                      torch.tensor([[0.1, 0.05]]))  # one sample (D = 1), K = 2
    x = dist.sample((40_000,))  # (N, 1)
    EMISSIONS["dlogistic"].check_data(x.numpy(), "samples")
    groups = 16  # 65536 bins in 16 ranges of 4096
    k = ((x[:, 0] - LOW) * (LEVELS // 2)).round().long()
    counts = torch.bincount(k // (LEVELS // groups), minlength=groups).double()
    bins = torch.arange(LEVELS).float().mul(2.0 / LEVELS).sub(1.0)
    probs = dist.log_prob(bins.view(-1, 1)).exp().double().view(groups, -1).sum(1)
    assert chi2_p(counts, probs) > 1e-3


def jacobian(fn, d):
    return torch.autograd.functional.jacobian(fn, torch.randn(d))  # (outputs..., D)


@pytest.mark.parametrize("d", [1, 2, 5])
def test_made_outputs_read_only_earlier_elements(d):
    torch.manual_seed(0)
    made = MADE(d, 64, 3)  # enough units that some ReLU is active for every output
    hb, ob = torch.randn(64), torch.randn(d * 3)
    jac = jacobian(lambda x: made(x, hb, ob), d)  # (D, P, D)
    for i in range(d):
        assert jac[i, :, i:].abs().max() == 0  # output i ignores x_i, x_{i+1}, ...
        if i > 0:
            assert jac[i, :, :i].abs().max() > 0  # and reads the earlier elements


@pytest.mark.parametrize("name", ["nade", "ar-gmm"])
def test_conditionals_read_only_earlier_elements(name):
    d = 6
    dist = emission(name, d, hidden=64)(torch.randn(6))  # enough units that a ReLU is active for each output
    fn = (dist.conditional_logits if name == "nade" else lambda x: torch.cat(dist.conditionals(x), -1))
    jac = jacobian(fn, d)  # (D, [P,] D)
    jac = jac.reshape(d, -1, d)
    for i in range(d):
        assert jac[i, :, i:].abs().max() == 0
        if i > 0:
            assert jac[i, :, :i].abs().max() > 0


def test_nade_log_prob_equals_the_product_of_its_conditionals_key_by_key():
    em = emission("nade", 5, sharpen=2.0)
    h, x = torch.randn(3, 6), (torch.rand(3, 5) < 0.4).float()
    hb, lb = em.hidden_bias(h), em.logit_bias(h)
    direct = torch.zeros(3)
    for i in range(5):  # Larochelle & Murray eqs. 2-3, one key at a time
        a = hb + x[:, :i] @ em.w[:i]
        p = torch.sigmoid(lb[:, i] + torch.sigmoid(a) @ em.v[i])
        direct += torch.where(x[:, i] > 0, p.log(), (1 - p).log())
    torch.testing.assert_close(em(h).log_prob(x), direct, atol=1e-5, rtol=1e-5)


def test_nade_segments_equal_the_dense_form_in_value_and_gradient():
    """The binary fast path (one hidden vector per run of keys between keys that are on) gives the
    dense form's logits and the same gradients for every parameter, on frames with no key on, every
    key on, and in between; and key i's logit moves when an earlier key flips, not when a key at or after i does."""
    em = emission("nade", 9, hidden=11, sharpen=2.0)
    torch.manual_seed(1)
    h = torch.randn(7, 6)
    x = (torch.rand(7, 9) < torch.linspace(0, 1, 7).unsqueeze(-1)).float()
    x[0], x[-1] = 0, 1
    grads = []
    for dense in (False, True):
        em.zero_grad()
        dist = em(h)
        logits = dist.conditional_logits(x.clone().requires_grad_(dense))  # a grad on x forces the dense form
        (logits * torch.linspace(-1, 1, 9)).sum().backward()
        grads.append([p.grad.clone() for p in em.parameters()])
        if not dense:
            fast = logits.detach()
    torch.testing.assert_close(fast, logits.detach(), atol=1e-5, rtol=1e-5)
    for a, b in zip(*grads):
        torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-5)
    with torch.no_grad():
        dist = em(h)
        for i, j in itertools.product(range(9), range(9)):
            y = x.clone()
            y[:, j] = 1 - y[:, j]
            moved = (dist.conditional_logits(y)[:, i] - fast[:, i]).abs().max()
            # beyond rounding (the products' blocking changes with the number of segments): only
            # the earlier keys move key i
            assert moved < 1e-5 if j >= i else moved > 1e-3


def test_expand_keeps_the_density():
    for name in NEW:
        dist = emission(name, 3)(torch.randn(1, 6))
        x = dist.sample((4,))  # (4, 1, 3)
        torch.testing.assert_close(dist.expand((4, 1)).log_prob(x), dist.log_prob(x))


def test_dlogistic_refuses_data_off_the_16_bit_grid():
    check = EMISSIONS["dlogistic"].check_data
    check(to_grid(np.array([[-32768, 0, 32767]], dtype=np.int16)), "ok")
    for bad in (0.5 / 32768, 1.0, -1.5, float("nan")):
        with pytest.raises(VrnnError, match="16-bit") as e:
            check(np.array([[0.0, bad]], dtype=np.float32), "speech.npz [train]")
        assert "\n" not in str(e.value) and "speech.npz [train]" in str(e.value)
    assert to_grid(np.array([-32768, 32767])).tolist() == [LOW, HIGH]


def test_nade_refuses_non_binary_data():
    with pytest.raises(VrnnError, match="nade emission needs binary"):
        EMISSIONS["nade"].check_data(np.array([[0.0, 0.5]]), "rolls.npz [train]")


def data_for(name, b=2, t=4, d=3):
    g = torch.Generator().manual_seed(0)
    if name == "nade":
        return (torch.rand(b, t, d, generator=g) < 0.4).float()
    if name == "dlogistic":
        return torch.from_numpy(to_grid(torch.randint(-3000, 3000, (b, t, d), generator=g).numpy()))
    return torch.randn(b, t, d, generator=g)


@pytest.mark.parametrize("kind", sorted(KINDS))
@pytest.mark.parametrize("name", NEW)
def test_every_model_trains_filters_and_generates_with_the_emission(kind, name, monkeypatch):
    monkeypatch.chdir(__import__("pathlib").Path(__file__).resolve().parents[2])  # examples' kinds import
    model = build_kind(kind, name)
    x = data_for(name)
    loss, _ = training_loss(model(x, samples=2), 1.0)
    assert torch.isfinite(loss)
    loss.backward()
    assert all(p.grad is not None for p in model.out.parameters())
    with torch.no_grad():
        res = particle_filter(model, x, None, 3, torch.Generator().manual_seed(0),
                              proposal="posterior" if model.has_latents else "none")
        assert torch.isfinite(res.log_marginal).all()
        gen, _ = model.generate(5, n=2, generator=torch.Generator().manual_seed(0))
    assert gen.shape == (2, 5, 3)
    EMISSIONS[name].check_data(gen.reshape(-1, 3).numpy(), "generated")
    if name == "dlogistic":
        assert (res.log_marginal <= 0).all()  # probabilities of the quantised data


def test_the_evaluation_reports_bits_per_frame_for_discrete_emissions():
    from vrnn.data import Normalizer
    from vrnn.inference.evaluate import evaluate

    seqs = [a.numpy() for a in data_for("dlogistic", b=3, t=5)]
    for name, x in (("dlogistic", seqs), ("gauss", seqs)):
        r = evaluate(build_kind("vrnn", name), x, Normalizer(), iw_samples=2)
        if name == "gauss":  # a density: no bits
            assert "bits_per_frame" not in r
            continue
        ll = r["log_likelihood"]["per_step_total"]
        assert r["bits_per_frame"]["per_step_total"] == pytest.approx(-ll / math.log(2)) and ll < 0
