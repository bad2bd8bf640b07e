"""SRNN (Fraccaro et al. 2016), the Deep Markov Model (Krishnan et al. 2017) and truncated BPTT (issue 3)."""
import dataclasses
import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from torch.distributions import kl_divergence

from vrnn.checkpoint import load_checkpoint
from vrnn.training.config import config_from_dict, load_config
from vrnn.data import SequenceData, pad_batch
from vrnn.emissions import diag_gaussian
from vrnn.errors import VrnnError
from vrnn.models import build_model
from vrnn.training.trainer import fit

from conftest import random_sequences, tiny_config

ROOT = Path(__file__).resolve().parents[2]

# (kind, model settings) for every variant of this issue
VARIANTS = {
    "srnn-smooth-resq": ("srnn", {"posterior": "smooth", "res_q": True}),
    "srnn-smooth": ("srnn", {"posterior": "smooth", "res_q": False}),
    "srnn-filter-resq": ("srnn", {"posterior": "filter", "res_q": True}),
    "srnn-filter": ("srnn", {"posterior": "filter", "res_q": False}),
    "srnn-smooth-resq-embed": ("srnn", {"posterior": "smooth", "res_q": True, "embed_layers": 2}),
    "dmm-smooth": ("dmm", {"posterior": "smooth"}),
    "dmm-filter": ("dmm", {"posterior": "filter"}),
    "dmm-filter-lstm": ("dmm", {"posterior": "filter", "rnn": "lstm"}),
}
SIZES = {
    "srnn": {"hidden": 12, "a_hidden": 10, "z_dim": 4, "width": 16, "layers": 2},
    "dmm": {"z_dim": 4, "transition_hidden": 12, "emission_hidden": 10, "rnn_hidden": 14},
}


def make(variant, emission="gauss", x_dim=3, seed=0, dtype=torch.float64):
    kind, extra = VARIANTS[variant]
    raw = {"kind": kind, "x_dim": x_dim, "emission": {"name": emission, "components": 3}} | SIZES[kind] | extra
    torch.manual_seed(seed)
    return build_model(config_from_dict({"model": raw}).model).to(dtype)


def batch(n=4, seed=3, lo=2, hi=15, dim=3):
    seqs = random_sequences(n, dim, seed=seed, lo=lo, hi=hi)
    x, mask = pad_batch(seqs)
    return seqs, x.double(), mask


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_shapes_and_what_the_posterior_sees(variant):
    """Terms are (K, B, T); a filter's q(z_t | ·) ignores x_{>t}, a smoother's does not."""
    model = make(variant)
    _, x, mask = batch()
    K, (B, T, _) = 3, x.shape
    Z = model.z_dim
    noise = torch.randn(K * B, T, Z, dtype=x.dtype)
    terms = model(x, mask, samples=K, noise=noise)
    for name in ("log_px", "kl", "log_pz", "log_qz"):
        assert getattr(terms, name).shape == (K, B, T)
    for name in ("q_loc", "q_scale", "p_loc", "p_scale"):
        assert getattr(terms, name).shape == (K, B, T, Z)
    assert (terms.kl[:, mask] >= 0).all() and (terms.q_scale > 0).all()
    t0 = 3
    future = x.clone()
    future[:, t0 + 1:] += 1.0  # change the data after step t0 only
    other = model(future, mask, samples=K, noise=noise)
    same = torch.allclose(other.q_loc[:, :, : t0 + 1], terms.q_loc[:, :, : t0 + 1])
    assert same == VARIANTS[variant][1]["posterior"].startswith("filter")


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_sequence_alone_equals_sequence_in_padded_batch(variant):
    """The backward RNN runs within each sequence's own length, so padding changes nothing."""
    model = make(variant)
    seqs, x, mask = batch()
    noise = torch.randn(len(seqs), x.shape[1], model.z_dim, dtype=x.dtype)
    together = model(x, mask, noise=noise)
    for i, s in enumerate(seqs):
        alone = model(torch.from_numpy(s).double()[None], noise=noise[i:i + 1, : len(s)])
        for name in ("log_px", "kl", "log_pz", "log_qz"):
            torch.testing.assert_close(getattr(together, name)[0, i, : len(s)], getattr(alone, name)[0, 0])
            assert getattr(together, name)[0, i, len(s):].eq(0).all()


@pytest.mark.parametrize("variant,emission", [(v, "gauss") for v in VARIANTS] + [("srnn-smooth-resq", "bernoulli"),
                                                                                  ("dmm-smooth", "gmm")])
def test_every_parameter_receives_a_gradient(variant, emission):
    model = make(variant, emission, dtype=torch.float32)
    seqs = random_sequences(5, 3, seed=1, binary=emission == "bernoulli")
    x, mask = pad_batch(seqs)
    terms = model(x, mask, generator=torch.Generator().manual_seed(0))
    (-(terms.log_px - terms.kl).sum()).backward()
    missing = [n for n, p in model.named_parameters() if p.grad is None or not p.grad.abs().sum() > 0]
    assert not missing, f"no gradient reaches {missing}"


@pytest.mark.parametrize("res_q", [True, False])
def test_res_q_kl_does_not_depend_on_the_predicted_prior_mean(res_q):
    """Eq. 12: with Res_q, μ_q = μ_p + r, so KL(q ‖ p) at any z_{t-1} is the same whatever the
    prior-mean network outputs; without Res_q it is not (the test can fail)."""
    model = make("srnn-smooth-resq" if res_q else "srnn-smooth")
    _, x, mask = batch()
    B, T, _ = x.shape
    ctx, _ = model.encode(x, None, mask)
    z_prev = torch.randn(B, T, model.z_dim, dtype=x.dtype, generator=torch.Generator().manual_seed(0))

    def kl_per_step():
        kls = []
        for t in range(T):  # the hooks the loop calls at step t, at arbitrary z_{t-1}
            ctx_t = {k: v[:, t] for k, v in ctx.items()}
            state = (z_prev[:, t], None, None)
            prior_t = model.step_prior(state, ctx_t)
            q_loc, q_scale = model.posterior(state, ctx_t, prior_t)
            p_loc, p_scale = model.prior(model.readout(state), ctx_t)
            assert (prior_t is not None) == res_q  # Res_q forms the prior in the loop, once per step
            if prior_t is not None:  # the prior the loop uses is the prior hook's
                torch.testing.assert_close(tuple(prior_t), (p_loc, p_scale))
            q, p = diag_gaussian(q_loc, q_scale), diag_gaussian(p_loc, p_scale)
            kls.append(kl_divergence(q, p))
        return torch.stack(kls, 1)

    before = kl_per_step()
    with torch.no_grad():  # a different prior-mean network: new output weights and bias
        model.prior_loc.weight.add_(torch.randn_like(model.prior_loc.weight))
        model.prior_loc.bias.add_(torch.randn_like(model.prior_loc.bias))
    after = kl_per_step()
    assert torch.allclose(before, after) == res_q


@pytest.mark.parametrize("variant", ["srnn-filter-resq", "srnn-filter", "dmm-filter", "dmm-filter-lstm",
                                     "vrnn", "rnn"])
def test_truncated_bptt_carry_equals_one_run_over_the_whole_sequence(variant):
    """Two chunks, the second started from the first's carry, give the terms of one run with the
    same noise. (A smoother cannot be split like this: its q looks past the chunk's end.)"""
    if variant in ("vrnn", "rnn"):
        torch.manual_seed(0)
        model = build_model(tiny_config(variant, "conditional" if variant == "vrnn" else None).model).double()
    else:
        model = make(variant)
    _, x, _ = batch(n=3, lo=11, hi=12)
    whole = model(x, generator=torch.Generator().manual_seed(7))
    gen = torch.Generator().manual_seed(7)
    first = model(x[:, :4], generator=gen)
    second = model(x[:, 4:], generator=gen, carry=first.carry)
    for name in ("log_px", "kl", "log_pz", "log_qz"):
        torch.testing.assert_close(torch.cat([getattr(first, name), getattr(second, name)], -1), getattr(whole, name))
    assert any(not torch.equal(a, b) for a, b in zip(first.carry, model.initial_state(x, 3)))


@pytest.mark.parametrize("variant", ["srnn-smooth", "srnn-filter", "srnn-smooth-resq-embed"])
def test_srnn_generation_step_matches_the_fused_deterministic_layer(variant):
    """The generative step's d_t (one GRU step from x_{t-1}, inside the prior it draws z_t from) equals
    encode's fused nn.GRU over the sequence: on the same x and noise both draw the same z_t."""
    model = make(variant, "bernoulli", x_dim=5)
    seqs = random_sequences(2, 5, seed=0, binary=True, lo=8, hi=9)
    x, mask = pad_batch(seqs)
    x = x.double()
    inputs, s_inf = model.encode(x, None, mask)
    s_gen = model.initial_state(x, 2)
    for t in range(x.shape[1]):
        eps = torch.randn(2, model.z_dim, dtype=x.dtype, generator=torch.Generator().manual_seed(t))
        s_inf, a = model.step(s_inf, {k: v[:, t] for k, v in inputs.items()}, "prior", eps)
        s_gen, b = model.step(s_gen, None, "prior", eps, observe=lambda dist, t=t: x[:, t])
        torch.testing.assert_close(a.z, b.z)
        torch.testing.assert_close(s_gen[1], inputs["d"][:, t])  # d_t
    torch.manual_seed(0)  # every draw comes from the generator: the global RNG's state does not matter
    a, za = model.generate(6, n=2, generator=torch.Generator().manual_seed(1))
    torch.manual_seed(1)
    b, zb = model.generate(6, n=2, generator=torch.Generator().manual_seed(1))
    assert a.shape == (2, 6, 5) and za.shape == (2, 6, model.z_dim) and set(a.unique().tolist()) <= {0.0, 1.0}
    assert torch.equal(a, b)


def test_bad_settings_name_the_field():
    with pytest.raises(VrnnError, match="model.posterior"):
        build_model(config_from_dict({"model": {"kind": "srnn", "x_dim": 3, "posterior": "both"}}).model)
    with pytest.raises(VrnnError, match="model.rnn"):
        build_model(config_from_dict({"model": {"kind": "dmm", "x_dim": 3, "rnn": "transformer"}}).model)
    with pytest.raises(VrnnError, match="activation"):
        build_model(config_from_dict({"model": {"kind": "srnn", "x_dim": 3, "activation": "gelu"}}).model)
    with pytest.raises(VrnnError, match="train.tbptt_steps"):
        config_from_dict({"train": {"tbptt_steps": -1}})


# ---- the trainer's truncated BPTT -----------------------------------------------------------------------


def _fixed_length_data(T=10):
    seqs = {s: random_sequences(n, 3, seed=i, lo=T, hi=T + 1) for i, (s, n) in
            enumerate((("train", 8), ("valid", 4), ("test", 4)))}
    return SequenceData(seqs, {"name": "waves", "kind": "real"})


def _srnn_cfg(**train):
    raw = {"model": {"kind": "srnn", "posterior": "filter", **SIZES["srnn"]},
           "train": {"batch_size": 4, "max_steps": 3, "eval_every": 3, "device": "cpu", **train}}
    return config_from_dict(raw)


def test_trainer_makes_one_update_per_chunk(tmp_path):
    data = _fixed_length_data(T=10)
    fit(_srnn_cfg(tbptt_steps=4), tmp_path / "tbptt", progress=False, data=data)
    fit(_srnn_cfg(), tmp_path / "full", progress=False, data=data)
    updates = {}
    for run in ("tbptt", "full"):
        opt = load_checkpoint(tmp_path / run / "last.pt")["optimizer"]
        updates[run] = {int(s["step"]) for s in opt["state"].values()}
    assert updates == {"tbptt": {3 * 3}, "full": {3}}  # 3 batches × ⌈10 / 4⌉ chunks, vs 3 batches


def test_trainer_with_chunks_as_long_as_the_batch_equals_no_truncation(tmp_path):
    data = _fixed_length_data(T=10)
    a = fit(_srnn_cfg(tbptt_steps=10), tmp_path / "a", progress=False, data=data).model
    b = fit(_srnn_cfg(), tmp_path / "b", progress=False, data=data).model
    c = fit(_srnn_cfg(tbptt_steps=5), tmp_path / "c", progress=False, data=data).model
    for (name, pa), pb in zip(a.state_dict().items(), b.state_dict().values()):
        torch.testing.assert_close(pa, pb, msg=name)
    assert any(not torch.equal(pa, pc) for pa, pc in zip(a.state_dict().values(), c.state_dict().values()))


def test_dropout_acts_in_training_only_and_a_resumed_run_draws_the_same_masks(tmp_path):
    model = make("srnn-smooth-resq")
    model = build_model(dataclasses.replace(model.cfg, dropout=0.5, input_dropout=0.3)).double()
    _, x, mask = batch()
    noise = torch.randn(x.shape[0], x.shape[1], model.z_dim, dtype=x.dtype)
    model.eval()
    a, b = model(x, mask, noise=noise), model(x, mask, noise=noise)
    assert torch.equal(a.log_px, b.log_px)
    model.train()
    c = model(x, mask, noise=noise)
    assert not torch.allclose(a.log_px, c.log_px)  # masks were drawn
    data = _fixed_length_data(T=10)
    cfg = dataclasses.replace(_srnn_cfg(max_steps=4, eval_every=2), model=dataclasses.replace(
        _srnn_cfg().model, dropout=0.3, input_dropout=0.2))
    straight = fit(cfg, tmp_path / "a", progress=False, data=data).model
    fit(dataclasses.replace(cfg, train=dataclasses.replace(cfg.train, max_steps=2)), tmp_path / "b", progress=False,
        data=data)
    torch.manual_seed(1234)  # whatever the global generator holds now, resume restores the run's own state
    resumed = fit(cfg, tmp_path / "b", resume=True, progress=False, data=data).model
    for (name, p), q in zip(straight.state_dict().items(), resumed.state_dict().values()):
        assert torch.equal(p, q), f"{name} differs after resume"


# ---- configs and the command line ----------------------------------------------------------------------

CONFIGS = ["srnn-smooth-resq", "srnn-smooth", "srnn-filter-resq", "srnn-filter", "srnn-polyphonic", "dmm-bernoulli"]


@pytest.mark.parametrize("name", CONFIGS)
def test_config_files_build_their_model(name):
    cfg = load_config(ROOT / "configs" / f"{name}.toml")
    model = build_model(dataclasses.replace(cfg.model, x_dim=88))
    assert model.cfg.kind in ("srnn", "dmm") and model.z_dim > 0


def test_srnn_trains_with_tbptt_and_evaluates_through_the_cli(tmp_path, binary_npz):
    def run(*args):
        p = subprocess.run([sys.executable, "-m", "vrnn", *map(str, args)], capture_output=True, text=True,
                           timeout=300, cwd=ROOT)
        assert p.returncode == 0, p.stderr
        return p.stdout

    small = [f"--set=model.{k}={v}" for k, v in SIZES["srnn"].items()]
    run("train", "--config", "configs/srnn-polyphonic.toml", "--set", f"data.source={binary_npz}", *small,
        "--set", "train.max_steps=2", "--set", "train.eval_every=1", "--set", "train.tbptt_steps=4", "--quiet",
        "--out", tmp_path / "run")
    report = json.loads(run("eval", tmp_path / "run" / "best.pt", "--iw-samples", "3", "--json"))
    assert report["kind"] == "srnn" and report["log_likelihood_method"] == "importance_sampling"
    assert report["model"].startswith("SRNN(smooth+Res_q)")
