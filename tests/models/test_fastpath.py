"""The library's VRNN (batched heads outside the loop) computes the same function as the
textbook per-step implementation of vrnn/lab/speed/reference.py: same ELBO, same gradients,
for the same parameters and the same noise."""
import pytest
import torch

from vrnn.lab.speed.reference import ReferenceVRNN
from vrnn.training.config import EmissionConfig
from vrnn.models.vrnn import VRNN, VRNNConfig
from vrnn.inference.objectives import sequence_elbo, training_loss


CASES = [  # rnn, prior, emission, K
    ("lstm", "conditional", "gauss", 1),
    ("lstm", "conditional", "gmm", 3),
    ("gru", "conditional", "bernoulli", 1),
    ("lstm", "independent", "gauss", 2),
]


def _setup(rnn, prior, emission):
    torch.manual_seed(0)
    cfg = VRNNConfig(x_dim=6, hidden=7, width=5, z_dim=3, layers=2, rnn=rnn, prior=prior,
                     emission=EmissionConfig(emission, components=3))
    model = VRNN(cfg).double()
    g = torch.Generator().manual_seed(1)
    x = torch.randn(3, 9, 6, generator=g, dtype=torch.float64)
    if emission == "bernoulli":
        x = (x > 0.5).double()
    mask = torch.arange(9) < torch.tensor([9, 6, 2])[:, None]  # padded batch
    return model, ReferenceVRNN(model), x * mask[..., None], mask


def _grads(loss, model):
    params = [p for p in model.parameters()]
    return torch.autograd.grad(loss, params, allow_unused=True)


@pytest.mark.parametrize("rnn,prior,emission,K", CASES)
def test_library_and_reference_compute_the_same_function(rnn, prior, emission, K):
    model, ref, x, mask = _setup(rnn, prior, emission)
    terms = model(x, mask, samples=K, generator=torch.Generator().manual_seed(7))
    log_px, kl = ref(x, mask, samples=K, generator=torch.Generator().manual_seed(7))
    torch.testing.assert_close(terms.log_px, log_px, rtol=1e-10, atol=1e-10)
    torch.testing.assert_close(terms.kl, kl, rtol=1e-10, atol=1e-10)

    elbo_lib = sequence_elbo(terms).sum()
    elbo_ref = (log_px - kl).sum(-1).mean(0).sum()
    assert abs(elbo_lib.item() - elbo_ref.item()) <= 1e-5 * abs(elbo_ref.item())

    g_lib, g_ref = _grads(-elbo_lib, model), _grads(-elbo_ref, model)
    names = [n for n, _ in model.named_parameters()]
    for name, a, b in zip(names, g_lib, g_ref):
        assert a is not None and b is not None, f"{name}: no gradient"
        assert a.abs().sum() > 0, f"{name}: zero gradient"  # the comparison is not vacuous
        torch.testing.assert_close(a, b, rtol=1e-7, atol=1e-12, msg=f"gradient of {name} differs")


def test_training_losses_agree_and_depend_on_the_noise():
    model, ref, x, mask = _setup("lstm", "conditional", "gauss")
    lib_loss = training_loss(model(x, mask, generator=torch.Generator().manual_seed(3)), 0.5)[0]
    ref_loss = ref.loss(x, mask, generator=torch.Generator().manual_seed(3), kl_weight=0.5)
    other = ref.loss(x, mask, generator=torch.Generator().manual_seed(4), kl_weight=0.5)
    torch.testing.assert_close(lib_loss, ref_loss, rtol=1e-10, atol=0)
    assert abs(other.item() - ref_loss.item()) > 1e-6  # the shared noise is what makes them equal


def test_library_and_reference_do_the_same_matrix_arithmetic():
    """The fast path batches the per-step products; it does not skip or add any (FLOPs of one
    training step, forward and backward, as counted by torch's FlopCounterMode)."""
    from vrnn.lab.speed.configs import BenchConfig, make_batches
    from vrnn.lab.speed.measure import count_flops, trainers

    bc = BenchConfig(dict(kind="vrnn", x_dim=6, hidden=8, width=8, layers=2, z_dim=3,
                          emission=EmissionConfig("gauss")), batch=4, steps=20)
    x = make_batches(bc, "cpu", 1)[0]
    ref, lib = trainers(bc, "cpu")
    f_ref, f_lib = count_flops(ref, x), count_flops(lib, x)
    # a small constant difference (independent of T: the batched backward forms a few gradient blocks
    # of the step-0 state that the per-step one skips); < 1 % at T = 20
    assert f_lib > 0 and abs(f_lib - f_ref) <= 0.01 * f_ref
