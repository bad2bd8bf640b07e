"""The estimators against an exact answer: a linear-Gaussian state-space model and its Kalman filter.

The model is written through the library's hooks (a test-only subclass of SequenceModel), so
``forward`` — the one time loop, masking, the per-step terms — and
``vrnn.inference.objectives`` compute its ELBO and importance-sampled log-likelihood exactly as they do
for SRNN, DMM and VRNN. The exact log p(x) comes from a Kalman filter in float64.

    z_t = A z_{t-1} + w_t,  w_t ~ N(0, Q),  z_0 = 0
    x_t = C z_t + v_t,      v_t ~ N(0, R)

A and Q are diagonal and the columns of R^{-1/2} C orthogonal, so every exact conditional
p(z_t | z_{t-1}, x_{t:T}) has a diagonal covariance and the library's diagonal-Gaussian
posterior can represent it exactly.
"""
import math

import pytest
import torch

from vrnn.training.config import ModelConfig
from vrnn.data import pad_batch
from vrnn.emissions import diag_gaussian
from vrnn.models import SequenceModel
from vrnn.inference.objectives import sequence_elbo, sequence_iw_log_likelihood

A = torch.tensor([0.9, 0.6], dtype=torch.float64)  # diagonal transition
Q = torch.tensor([0.5, 0.3], dtype=torch.float64)  # diagonal transition noise variance
C = torch.tensor([[1.0, 1.0], [1.0, -1.0], [0.5, 0.0]], dtype=torch.float64)  # orthogonal columns
R = torch.full((3,), 0.4, dtype=torch.float64)  # observation noise variance


class LinearGaussianSSM(SequenceModel):
    """The LGSSM through the library's hooks. ``posterior``:

    * ``"exact"``  q(z_t | z_{t-1}, x) = p(z_t | z_{t-1}, x_{t:T}), by a backward information filter
    * ``"filter"`` q(z_t | z_{t-1}, x_t) ∝ p(z_t | z_{t-1}) p(x_t | z_t): right locally, blind to the future
    """

    def __init__(self, posterior: str):
        super().__init__(ModelConfig(kind="lgssm-test", x_dim=C.shape[0]))
        self.z_dim = C.shape[1]
        self.posterior_kind = posterior
        for name, v in (("A", A), ("Q", Q), ("C", C), ("R", R)):
            self.register_buffer(name, v.clone())

    def initial_state(self, ref, batch):
        return (ref.new_zeros(batch, self.z_dim),)

    def encode(self, x, carry, mask=None):
        B, T, _ = x.shape
        lengths = mask.sum(1, keepdim=True) if mask is not None else torch.full((B, 1), T)
        crc = (self.C ** 2 / self.R[:, None]).sum(0)  # diag of C' R⁻¹ C (off-diagonal is 0 by construction)
        eta_x = x @ (self.C / self.R[:, None])  # C' R⁻¹ x_t  (B, T, Z)
        J = h = x.new_zeros(B, self.z_dim)  # β_t(z) ∝ exp(-½ z'Jz + h'z) = p(x_{t+1:L} | z_t)
        M, m, s = [], [], []
        for t in reversed(range(T)):
            after_end = t + 1 >= lengths  # the message from step t+1 is padding: β_{L-1} = 1 at each own end
            J, h = torch.where(after_end, 0.0, J), torch.where(after_end, 0.0, h)
            if self.posterior_kind == "filter":
                J, h = torch.zeros_like(J), torch.zeros_like(h)
            eta = eta_x[:, t] + h
            P = 1 / self.Q + crc + J  # precision of z_t given z_{t-1}, x_{t:L}
            M.append(self.A / (self.Q * P)), m.append(eta / P), s.append(P.rsqrt())
            J = self.A ** 2 * (1 / self.Q - 1 / (self.Q ** 2 * P))  # message to step t-1
            h = self.A * eta / (self.Q * P)
        ctx = {k: torch.stack(v[::-1], 1) for k, v in (("M", M), ("m", m), ("s", s))}
        return ctx, carry if carry is not None else self.initial_state(x, B)

    def posterior(self, state, ctx_t, prior_t):
        return ctx_t["M"] * state[0] + ctx_t["m"], ctx_t["s"]

    def transition(self, state, ez, ctx_t):
        return (ez["z"],)

    def prior(self, s, ctx):
        return self.A * s, self.Q.sqrt().expand_as(s)

    def emission(self, s, ez, ctx):
        return diag_gaussian(ez["z"] @ self.C.T, self.R.sqrt().expand(*ez["z"].shape[:-1], -1))


def kalman_log_likelihood(x: torch.Tensor) -> float:
    """Exact log p(x_{1:T}) of one sequence (T, D) by the Kalman filter, full matrices, float64."""
    Am, Qm, Rm = torch.diag(A), torch.diag(Q), torch.diag(R)
    mean, cov = torch.zeros(2, dtype=torch.float64), torch.zeros(2, 2, dtype=torch.float64)
    ll = 0.0
    for x_t in x:
        mean, cov = Am @ mean, Am @ cov @ Am.T + Qm  # predict z_t
        S = C @ cov @ C.T + Rm  # p(x_t | x_<t) = N(C mean, S)
        ll += torch.distributions.MultivariateNormal(C @ mean, S).log_prob(x_t).item()
        K = cov @ C.T @ torch.linalg.inv(S)
        mean, cov = mean + K @ (x_t - C @ mean), (torch.eye(2, dtype=torch.float64) - K @ C) @ cov
    return ll


def sample_sequences(n: int, seed: int) -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    seqs = []
    for i in range(n):
        T = 6 + 5 * i  # different lengths: the batch is padded
        z, xs = torch.zeros(2, dtype=torch.float64), []
        for _ in range(T):
            z = A * z + Q.sqrt() * torch.randn(2, generator=g, dtype=torch.float64)
            xs.append(C @ z + R.sqrt() * torch.randn(3, generator=g, dtype=torch.float64))
        seqs.append(torch.stack(xs))
    return seqs


@pytest.fixture(scope="module")
def data():
    seqs = sample_sequences(4, seed=0)
    _, mask = pad_batch([s.numpy() for s in seqs])  # the library's mask; the data stay float64
    x = torch.zeros(*mask.shape, 3, dtype=torch.float64)
    for i, s in enumerate(seqs):
        x[i, : len(s)] = s
    exact = torch.tensor([kalman_log_likelihood(s) for s in seqs], dtype=torch.float64)
    return x, mask, exact


def test_kalman_filter_agrees_with_the_dense_gaussian():
    """The reference itself: log p(x) of the stacked Gaussian (x_1..x_T) computed directly."""
    x = sample_sequences(1, seed=5)[0]
    T = len(x)
    # z = L w with L[t, s] = A^{t-s} for s <= t; x = (I ⊗ C) z + v
    L = torch.zeros(T * 2, T * 2, dtype=torch.float64)
    for t in range(T):
        for s_ in range(t + 1):
            L[2 * t:2 * t + 2, 2 * s_:2 * s_ + 2] = torch.diag(A ** (t - s_))
    Cb = torch.block_diag(*[C] * T)
    cov = Cb @ L @ torch.block_diag(*[torch.diag(Q)] * T) @ L.T @ Cb.T + torch.diag(R.repeat(T))
    dense = torch.distributions.MultivariateNormal(torch.zeros(3 * T, dtype=torch.float64), cov).log_prob(x.flatten())
    assert math.isclose(kalman_log_likelihood(x), dense.item(), rel_tol=1e-10)


def test_exact_posterior_makes_every_importance_weight_the_exact_likelihood(data):
    """With q the true posterior, p(x, z) / q(z | x) = p(x) for every sample z: the bookkeeping of
    log p(x_t | ·) + log p(z_t | ·) − log q(z_t | ·) over real steps of a padded batch is exact."""
    x, mask, exact = data
    model = LinearGaussianSSM("exact")
    with torch.no_grad():
        terms = model(x, mask, samples=16, generator=torch.Generator().manual_seed(0))
    log_w = (terms.log_px + terms.log_pz - terms.log_qz).sum(-1)  # (K, B)
    torch.testing.assert_close(log_w, exact.expand_as(log_w), rtol=1e-9, atol=1e-9)
    torch.testing.assert_close(sequence_iw_log_likelihood(terms), exact, rtol=1e-9, atol=1e-9)


def test_importance_sampling_recovers_the_exact_likelihood_and_the_elbo_lies_below(data):
    """With a filtering posterior (blind to the future), the ELBO is strictly below log p(x) and the
    library's importance-sampled estimate with many samples agrees with the Kalman filter to 1 %."""
    x, mask, exact = data
    model = LinearGaussianSSM("filter")
    with torch.no_grad():
        terms = model(x, mask, samples=4000, generator=torch.Generator().manual_seed(0))
    iw, elbo = sequence_iw_log_likelihood(terms), sequence_elbo(terms)
    rel = ((iw - exact).abs() / exact.abs())
    assert (rel < 0.01).all(), f"IS {iw.tolist()} vs exact {exact.tolist()}"
    gap_iw, gap_elbo = (exact - iw).abs(), exact - elbo
    assert (elbo < exact).all() and (gap_elbo > 5 * gap_iw).all(), (elbo.tolist(), iw.tolist(), exact.tolist())
    one = sequence_iw_log_likelihood(LinearGaussianSSM("filter")(x, mask, samples=1,
                                                                  generator=torch.Generator().manual_seed(1)))
    assert ((exact - iw).abs() < (exact - one).abs()).sum() >= 3  # many samples beat one
