"""Settings that keep a VRNN's latents in use (issue 23): free bits on the ELBO's KL term and dropout on
h_{t-1} where the decoder reads it."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from conftest import random_sequences, tiny_config
from vrnn.data import pad_batch
from vrnn.errors import VrnnError
from vrnn.inference.objectives import training_loss
from vrnn.models import build_model
from vrnn.training.config import config_from_dict


def _grads(free_bits: float):
    """Gradients of the training loss w.r.t. the prior network (which only the KL term reaches), and the
    loss's statistics, for the same VRNN, batch and noise."""
    torch.manual_seed(0)
    model = build_model(tiny_config("vrnn").model)
    x, mask = pad_batch(random_sequences(4, 3, seed=1), "cpu")
    terms = model(x, mask, generator=torch.Generator().manual_seed(0))
    loss, stats = training_loss(terms, 1.0, free_bits=free_bits)
    loss.backward()
    grad = model.prior_head.weight.grad
    return (0.0 if grad is None else grad.abs().sum().item()), model.phi_x[0].weight.grad.clone(), stats


def test_free_bits_stop_the_kl_gradient_below_the_threshold_and_report_the_true_elbo():
    prior0, enc0, stats0 = _grads(0.0)
    prior_free, enc_free, stats_free = _grads(1e6)  # far above any KL per step: the KL term is free
    prior_low, enc_low, stats_low = _grads(1e-9)  # below the KL per step: the ordinary loss
    assert prior0 > 0 and prior_free == 0.0
    assert not torch.allclose(enc0, enc_free)  # the encoder now learns from the likelihood alone
    assert stats_free["elbo"] == stats0["elbo"] and stats_free["kl"] == stats0["kl"]  # the true ELBO
    assert stats_free["loss"] == pytest.approx(-(stats0["log_px"] - 1e6))  # the KL counts as the free bits
    assert prior_low == prior0 and torch.equal(enc_low, enc0) and stats_low == stats0


def test_free_bits_need_the_elbo_objective():
    with pytest.raises(VrnnError, match="train.free_bits applies to the ELBO"):
        tiny_config("vrnn", objective="iwae", particles=2, free_bits=0.5).train.check()
    with pytest.raises(VrnnError, match="free_bits"):
        tiny_config("vrnn", free_bits=-1.0)


def test_decoder_dropout_acts_on_h_while_training_only():
    raw = tiny_config("vrnn").to_dict()["model"] | {"decoder_dropout": 0.5}
    torch.manual_seed(0)
    model = build_model(config_from_dict({"model": raw}).model)
    s, ez = torch.ones(2, 16), {"phi_z": torch.zeros(2, 16)}
    train = [model.emission(s, ez, {}).mean for _ in range(2)]
    assert not torch.equal(train[0], train[1])  # masks differ between calls
    model.eval()
    assert torch.equal(model.emission(s, ez, {}).mean, model.emission(s, ez, {}).mean)
    # only h_{t-1} is dropped: with no h there is nothing to drop
    model.train()
    assert torch.equal(model.emission(0 * s, ez, {}).mean, model.emission(0 * s, ez, {}).mean)
    with pytest.raises(VrnnError, match="decoder_dropout"):
        config_from_dict({"model": raw | {"decoder_dropout": 1.0}})
    assert np.isfinite(train[0].detach().numpy()).all()
