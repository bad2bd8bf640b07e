"""Properties of the models and the estimators (issue 2)."""
import pytest
import torch

from vrnn.data import pad_batch
from vrnn.models import build_model
from vrnn.objectives import sequence_elbo, sequence_iw_log_likelihood

from conftest import EMISSION_TABLE, MODEL_TABLE, random_sequences, tiny_config


def _model(kind, prior, emission="gauss", x_dim=3, seed=0):
    torch.manual_seed(seed)
    return build_model(tiny_config(kind, prior, emission, x_dim).model)


def _batch(n=6, dim=3, binary=False, seed=0):
    return pad_batch(random_sequences(n, dim, seed, binary=binary))


@pytest.mark.parametrize("kind,prior", MODEL_TABLE)
@pytest.mark.parametrize("emission", EMISSION_TABLE)
def test_every_parameter_receives_a_gradient(kind, prior, emission):
    model = _model(kind, prior, emission)
    x, mask = _batch(binary=emission == "bernoulli")
    terms = model(x, mask, generator=torch.Generator().manual_seed(0))
    (-(terms.log_px - terms.kl).sum()).backward()
    missing = [n for n, p in model.named_parameters() if p.grad is None or not p.grad.abs().sum() > 0]
    assert not missing, f"no gradient reaches {missing}"


@pytest.mark.parametrize("kind,prior", MODEL_TABLE)
def test_sequence_alone_equals_sequence_in_padded_batch(kind, prior):
    model = _model(kind, prior).double()
    seqs = random_sequences(4, 3, seed=3, lo=2, hi=15)
    x, mask = pad_batch(seqs)
    x = x.double()
    Z = getattr(model, "z_dim", 0) or 1
    noise = torch.randn(len(seqs), x.shape[1], Z, dtype=torch.float64)
    batch = model(x, mask, noise=noise)
    for i, s in enumerate(seqs):
        alone = model(torch.from_numpy(s).double()[None], noise=noise[i:i + 1, : len(s)])
        for name in ("log_px", "kl", "log_pz", "log_qz"):
            torch.testing.assert_close(getattr(batch, name)[0, i, : len(s)], getattr(alone, name)[0, 0])
            assert getattr(batch, name)[0, i, len(s):].eq(0).all(), f"padded steps of {name} are not masked"


@pytest.mark.parametrize("prior", ["conditional", "independent"])
def test_importance_sampled_estimate_bounds_elbo_and_grows_with_k(prior):
    model = _model("vrnn", prior).double()
    x, mask = _batch(n=16)
    x = x.double()
    gen = torch.Generator().manual_seed(0)
    means = {}
    with torch.no_grad():
        for k in (1, 10, 100):
            runs = [sequence_iw_log_likelihood(model(x, mask, samples=k, generator=gen)).mean() for _ in range(5)]
            means[k] = torch.stack(runs).mean().item()
        elbo = torch.stack([sequence_elbo(model(x, mask, samples=10, generator=gen)).mean() for _ in range(5)]).mean()
    assert elbo.item() <= means[10] and means[1] < means[10] < means[100]


def test_rnn_importance_sampling_path_equals_exact_log_likelihood():
    model = _model("rnn", None).double()
    x, mask = _batch()
    x = x.double()
    with torch.no_grad():
        terms = model(x, mask, samples=7)
        exact = (model(x, mask).log_px[0]).sum(-1)  # Σ_t log p(x_t | x_<t)
        torch.testing.assert_close(sequence_iw_log_likelihood(terms), exact)
        torch.testing.assert_close(sequence_elbo(terms), exact)


def test_vrnn_i_prior_is_standard_normal_and_has_no_parameters():
    model = _model("vrnn", "independent")
    x, mask = _batch()
    terms = model(x, mask)
    assert terms.p_loc.eq(0).all() and terms.p_scale.eq(1).all()
    assert not any(n.startswith("prior") for n, _ in model.named_parameters())
    conditional = _model("vrnn", "conditional")(x, mask)
    assert not conditional.p_loc.eq(0).all()


@pytest.mark.parametrize("kind,prior", MODEL_TABLE)
def test_generation_has_the_data_shape_and_is_reproducible(kind, prior):
    model = _model(kind, prior, "bernoulli", x_dim=5)
    torch.manual_seed(0)
    a, _ = model.generate(9, n=2, generator=torch.Generator().manual_seed(1))
    torch.manual_seed(0)
    b, _ = model.generate(9, n=2, generator=torch.Generator().manual_seed(1))
    assert a.shape == (2, 9, 5) and set(a.unique().tolist()) <= {0.0, 1.0}
    assert torch.equal(a, b)


def test_loop_carry_continues_a_sequence():
    """Running two halves with the carried state equals one run over the whole sequence."""
    model = _model("vrnn", "conditional").double()
    x, _ = pad_batch(random_sequences(3, 3, seed=5, lo=10, hi=11))
    x = x.double()
    noise = torch.randn(3, 10, model.z_dim, dtype=torch.float64)
    whole = model(x, noise=noise)
    first = model(x[:, :4], noise=noise[:, :4])
    second = model(x[:, 4:], noise=noise[:, 4:], carry=first.carry)
    torch.testing.assert_close(torch.cat([first.log_px, second.log_px], -1), whole.log_px)
    torch.testing.assert_close(torch.cat([first.kl, second.kl], -1), whole.kl)


# ---- the hook contract, for every model kind ------------------------------------------------
KINDS = {  # name -> model settings; every kind of vrnn.models.MODELS, with the variants that change hooks
    "rnn": {"kind": "rnn", "hidden": 8, "width": 8, "layers": 1},
    "vrnn": {"kind": "vrnn", "hidden": 8, "width": 8, "layers": 1, "z_dim": 2},
    "vrnn-i": {"kind": "vrnn", "hidden": 8, "width": 8, "layers": 1, "z_dim": 2, "prior": "independent"},
    "srnn": {"kind": "srnn", "hidden": 8, "a_hidden": 6, "z_dim": 2, "width": 8, "res_q": False},
    "srnn-resq": {"kind": "srnn", "hidden": 8, "a_hidden": 6, "z_dim": 2, "width": 8, "res_q": True},
    "dmm": {"kind": "dmm", "z_dim": 2, "transition_hidden": 8, "emission_hidden": 8, "rnn_hidden": 8},
    "dmm-filter-lstm": {"kind": "dmm", "z_dim": 2, "transition_hidden": 8, "emission_hidden": 8, "rnn_hidden": 8,
                        "posterior": "filter", "rnn": "lstm"},
}


def _kind(name, emission="gauss", x_dim=3):
    from vrnn.training.config import config_from_dict

    torch.manual_seed(0)
    raw = {"x_dim": x_dim, "emission": {"name": emission, "components": 2}} | KINDS[name]
    return build_model(config_from_dict({"model": raw}).model)


def test_the_table_covers_every_model_kind():
    from vrnn.models import MODELS

    assert {v["kind"] for v in KINDS.values()} == set(MODELS)


@pytest.mark.parametrize("name", list(KINDS))
def test_every_model_returns_the_same_things_from_the_same_hooks(name):
    from torch.distributions import Distribution

    model = _kind(name)
    x, mask = _batch(n=3)
    B, T, _ = x.shape
    ctx, state = model.encode(x, None, mask)
    assert all(v.shape[:2] == (B, T) for v in ctx.values())
    if model.z_dim == 0:  # no latent variables: the stacked readouts replace the loop
        reads = model.readouts(ctx)
        assert model.emission(reads, {}, ctx).batch_shape == (B, T)
        s = model.initial_state(x, B)
        for t in range(T):  # ... and equal the per-step readouts of generation's path
            torch.testing.assert_close(reads[:, t], model.readout(s))
            s = model.transition(s, {}, model.embed_x(x[:, t]))
        return
    ctx_t = {k: v[:, 0] for k, v in ctx.items()}
    s = model.readout(state)
    assert isinstance(s, torch.Tensor) and s.shape[0] == B
    prior_t = model.step_prior(state, ctx_t)
    q = model.posterior(state, ctx_t, prior_t)
    p = model.prior(s, ctx_t)
    for pair in (q, p) + (() if prior_t is None else (prior_t,)):
        assert isinstance(pair, tuple) and len(pair) == 2 and all(v.shape == (B, model.z_dim) for v in pair)
    if prior_t is not None:  # the loop's per-step prior is the prior hook's
        torch.testing.assert_close(prior_t, p)
    ez = model.embed_z(q[0])
    assert isinstance(model.emission(s, ez, ctx_t), Distribution)
    assert len(model.transition(state, ez, ctx_t)) == len(state)


@pytest.mark.parametrize("name,per_step", [("vrnn", False), ("srnn", False), ("srnn-resq", True), ("dmm", False)])
def test_prior_is_formed_once_batched_or_once_per_step(name, per_step, monkeypatch):
    """VRNN-like priors run once over the stacked readouts; SRNN's Res_q prior once per step, not twice."""
    model = _kind(name)
    x, mask = _batch(n=3)
    T = x.shape[1]
    calls = {"prior": 0, "step_prior": 0}
    for hook in calls:
        original = getattr(model, hook)

        def counted(*a, _original=original, _hook=hook):
            calls[_hook] += 1
            return _original(*a)
        monkeypatch.setattr(model, hook, counted)
    if name == "srnn-resq":  # the network evaluation behind both hooks
        net, n_net = model._prior, [0]
        monkeypatch.setattr(model, "_prior", lambda *a: (n_net.__setitem__(0, n_net[0] + 1), net(*a))[1])
    model(x, mask, generator=torch.Generator().manual_seed(0))
    assert calls == {"prior": 0 if per_step else 1, "step_prior": T}
    if name == "srnn-resq":
        assert n_net[0] == T


@pytest.mark.parametrize("name", list(KINDS))
@pytest.mark.parametrize("emission", ["gauss", "gmm", "bernoulli", "strokes"])
def test_generate_draws_every_random_number_from_the_generator(name, emission):
    model = _kind(name, emission)
    kw = {"bias": 0.3, "temperature": 0.7} if emission == "strokes" else {}
    torch.manual_seed(0)
    a, za = model.generate(7, n=3, generator=torch.Generator().manual_seed(11), **kw)
    torch.manual_seed(12345)  # another global RNG state: the same samples
    before = torch.get_rng_state()
    b, zb = model.generate(7, n=3, generator=torch.Generator().manual_seed(11), **kw)
    assert torch.equal(torch.get_rng_state(), before)  # and the global RNG is left as it was
    c, _ = model.generate(7, n=3, generator=torch.Generator().manual_seed(12), **kw)
    assert torch.equal(a, b) and (za is None) == (model.z_dim == 0) and (za is None or torch.equal(za, zb))
    assert not torch.equal(a, c)  # the generator's seed does matter
