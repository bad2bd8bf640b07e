"""Properties of the models and the estimators (issue 2)."""
from pathlib import Path

import pytest
import torch

from vrnn.data import pad_batch
from vrnn.models import build_model
from vrnn.inference.objectives import sequence_elbo, sequence_iw_log_likelihood

from conftest import EMISSION_TABLE, KINDS, MODEL_TABLE, build_kind as _kind, random_sequences, tiny_config


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
def test_the_table_covers_every_model_kind():
    from vrnn.models import MODELS

    assert {v["kind"] for v in KINDS.values()} == set(MODELS) | {"examples.storn:STORN"}


@pytest.mark.parametrize("name", list(KINDS))
def test_every_model_is_one_step_with_the_same_contract(name):
    """encode gives (B, T, ·) inputs; the step maps a state to a state of the same structure and a Step
    whose score is (B,) per step; forward equals driving the step by hand and scoring step by step."""
    from vrnn.models.base import Step

    model = _kind(name).double()
    x, mask = _batch(n=3)
    x = x.double()
    B, T, _ = x.shape
    inputs, state = model.encode(x, None, mask)
    assert all(v.shape[:2] == (B, T) for v in inputs.values())
    proposal = "posterior" if model.has_latents else "none"
    noise = torch.randn(B, T, max(model.z_dim, 1), dtype=x.dtype, generator=torch.Generator().manual_seed(0))
    log_px, log_pz, log_qz, kl = [], [], [], []
    for t in range(T):
        inputs_t = {k: v[:, t] for k, v in inputs.items()}
        new, step = model.step(state, inputs_t, proposal, noise[:, t] if model.has_latents else None)
        assert isinstance(step, Step) and len(new) == len(state)
        assert (step.z is None) == (not model.has_latents)
        assert step.z is None or step.z.shape == (B, model.z_dim)
        sc = model.score(step, inputs_t, x[:, t])
        assert sc.log_px.shape == (B,)
        for acc, v in zip((log_px, log_pz, log_qz, kl), (sc.log_px, sc.log_pz, sc.log_qz, sc.kl)):
            acc.append(torch.where(mask[:, t], v, 0.0) if v.dim() else v.expand(B) * mask[:, t])
        state = new
    terms = model(x, mask, noise=noise if model.has_latents else None)
    for name_, acc in (("log_px", log_px), ("log_pz", log_pz), ("log_qz", log_qz), ("kl", kl)):
        torch.testing.assert_close(getattr(terms, name_)[0], torch.stack(acc, 1))
    with pytest.raises(ValueError, match="proposal"):
        model.step(model.initial_state(x, B), {k: v[:, 0] for k, v in inputs.items()}, "bogus")


@pytest.mark.parametrize("name", list(KINDS))
def test_the_generative_step_is_the_inference_step_given_the_same_x(name):
    """With x_t drawn by ``observe`` (generation's path: inputs=None) and fed the data, the step draws the
    same z_t from the prior and reads the same state as the inference step given encode's inputs."""
    model = _kind(name).double()
    x, _ = pad_batch(random_sequences(2, 3, seed=4, lo=8, hi=9))
    x = x.double()
    B, T, _ = x.shape
    inputs, s_inf = model.encode(x, None, None)
    s_gen = model.initial_state(x, B)
    proposal = "prior" if model.has_latents else "none"
    noise = torch.randn(B, T, max(model.z_dim, 1), dtype=x.dtype, generator=torch.Generator().manual_seed(1))
    for t in range(T):
        eps = noise[:, t] if model.has_latents else None
        s_inf, a = model.step(s_inf, {k: v[:, t] for k, v in inputs.items()}, proposal, eps)
        s_gen, b = model.step(s_gen, None, proposal, eps, observe=lambda dist, t=t: x[:, t])
        torch.testing.assert_close(a.read["s"], b.read["s"])
        assert (a.z is None and b.z is None) or torch.allclose(a.z, b.z)
        assert torch.equal(b.x, x[:, t])


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


def test_the_drivers_call_only_the_step():
    """STORN (examples/storn.py) is written as its step alone: it has none of the hooks the default step
    composes (posterior, transition, embed_z, step_prior, pre_step, embed_x raise or do nothing), so forward,
    the particle filter with either proposal, generation and continuation working for it show that no
    driver reaches past the step."""
    from vrnn.models import SequenceModel
    from vrnn.inference.smc import continue_sequences, particle_filter

    model = _kind("storn").double()
    for hook in ("posterior", "transition", "step_prior", "pre_step", "embed_x", "embed_z", "readout"):
        assert getattr(type(model), hook) is getattr(SequenceModel, hook), hook
    with pytest.raises(NotImplementedError):
        model.posterior(None, {}, None)
    x, mask = _batch(n=3)
    x = x.double()
    terms = model(x, mask, samples=2, generator=torch.Generator().manual_seed(0))
    assert torch.isfinite(terms.log_px).all() and (terms.kl[:, ~mask] == 0).all()
    for proposal in ("posterior", "prior"):
        f = particle_filter(model, x, mask, 4, torch.Generator().manual_seed(1), proposal=proposal)
        assert torch.isfinite(f.log_marginal).all()
    a, z = model.generate(5, n=2, generator=torch.Generator().manual_seed(2))
    assert a.shape == (2, 5, 3) and z.shape == (2, 5, model.z_dim)
    cont = continue_sequences(model, x[:1, :4], steps=3, n=2, particles=4, generator=torch.Generator().manual_seed(3))
    assert cont.shape == (1, 2, 3, 3)


# ---- the speech benchmark's capacity controls (configs/speech/small/) ---------------------------------------
SPEECH = Path(__file__).resolve().parents[2] / "configs" / "speech" / "small"
FRAME = 200  # samples per frame: the x_dim of FSDD and Fillets alike


def _speech_model(name: str, seed: int = 0):
    import dataclasses

    from vrnn.training.config import load_config

    torch.manual_seed(seed)
    return build_model(dataclasses.replace(load_config(SPEECH / f"{name}.toml", []).model, x_dim=FRAME))


def _count(module) -> int:
    return sum(p.numel() for p in module.parameters())


@pytest.mark.parametrize("emission", ["gauss", "gmm"])
def test_the_speech_rnn_is_the_vrnn_with_its_latent_path_removed(emission):
    """RNN-X is VRNN-X less φz, the encoder and the prior, and less the columns that read φz in the decoder's
    first layer and the LSTM's input: its parameters are exactly the rest, and with those columns zeroed the
    VRNN's emission at every step is the RNN's given the same weights."""
    vrnn, rnn = _speech_model(f"vrnn-{emission}"), _speech_model(f"rnn-{emission}", seed=1)
    W, H = vrnn.cfg.width, vrnn.cfg.hidden
    assert (rnn.cfg.width, rnn.cfg.hidden, rnn.cfg.layers, rnn.cfg.emission) == (W, H, vrnn.cfg.layers,
                                                                               vrnn.cfg.emission)
    latent_path = sum(_count(getattr(vrnn, m)) for m in ("phi_z", "enc", "enc_head", "prior_net", "prior_head"))
    assert _count(rnn) == _count(vrnn) - latent_path - W * W - 4 * H * W  # decoder and LSTM columns for φz
    v = dict(vrnn.state_dict())
    v["dec.0.weight"][:, :W] = 0  # φz's columns of the decoder's first layer (it reads [φz(z_t), h_{t-1}])
    v["cell.weight_ih_parts.1"][:] = 0  # φz's columns of the LSTM's input weights
    vrnn.load_state_dict(v)
    shared = {k: v[k] for k in rnn.state_dict() if k in v and not k.startswith("dec.0.weight")}
    shared |= {"dec.0.weight": v["dec.0.weight"][:, W:], "rnn.weight_ih_l0": v["cell.weight_ih_parts.0"],
               "rnn.bias_ih_l0": v["cell.bias_ih"], "rnn.weight_hh_l0": v["cell.weight_hh"],
               "rnn.bias_hh_l0": v["cell.bias_hh"]}
    assert shared.keys() == rnn.state_dict().keys()
    rnn.load_state_dict(shared)
    x = torch.randn(2, 5, FRAME)
    with torch.no_grad():
        a, b = vrnn(x, generator=torch.Generator().manual_seed(0)).log_px, rnn(x).log_px
    torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-3)


@pytest.mark.parametrize("wide, latent, count", [("rnn-gauss-wide", "vrnn-gauss", 448_848),
                                                 ("rnn-gmm-wide", "vrnn-gmm", 1_444_368),
                                                 ("rnn-argmm-wide", "vrnn-argmm", 1_726_196)])
def test_the_wide_speech_rnns_have_their_vrnns_parameter_count_within_two_percent(wide, latent, count):
    n, target = _count(_speech_model(wide)), _count(_speech_model(latent))
    assert n == count and abs(n - target) <= 0.02 * target
    # the numbers the configs state
    assert target == {"vrnn-gauss": 450_256, "vrnn-gmm": 1_433_236, "vrnn-argmm": 1_723_216}[latent]
