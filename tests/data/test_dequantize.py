"""data.dequantize: uniform noise of one grid cell on the features an emission models with a density, new at
every training step, one fixed draw per sequence in validation and evaluation, and the bound in the data's units."""
from __future__ import annotations

import dataclasses
import json
import math

import numpy as np
import pytest
import torch

from conftest import tiny_config
from vrnn.api import evaluate_checkpoint
from vrnn.checkpoint import load_checkpoint
from vrnn.data import SequenceData
from vrnn.data.dequantize import Dequantizer
from vrnn.training.trainer import fit


def test_the_noise_covers_one_cell_of_the_gridded_features_only():
    a = np.zeros((2000, 3), dtype=np.float32)
    out = Dequantizer(2.0, (0, 1)).perturb(a, np.random.default_rng(0))
    assert out.dtype == np.float32 and (out[:, 2] == 0).all() and (a == 0).all()  # the pen column; no in-place
    assert np.abs(out[:, :2]).max() <= 1.0 and np.abs(out[:, :2]).max() > 0.99  # U(-w/2, w/2) fills its cell
    assert abs(out[:, :2].mean()) < 0.05 and abs(out[:, :2].var() - 4 / 12) < 0.03
    assert Dequantizer().perturb(a, np.random.default_rng(0)) is a and not Dequantizer()
    assert Dequantizer(2.0, (0, 1)).log_bin(3) == pytest.approx(2 * math.log(2.0))
    seqs = [a[:5], a[:7]]
    once, again = Dequantizer(1.0).fixed(seqs, [11, 12]), Dequantizer(1.0).fixed(seqs[::-1], [12, 11])
    assert np.array_equal(once[0], again[1]) and not np.array_equal(once[0][:5], once[1][:5])  # by seed, not order


def integer_data(seed: int = 0) -> SequenceData:
    """Real-valued sequences rounded to integers (a quarter of them exactly 0, like pen offsets)."""
    rng = np.random.default_rng(seed)
    split = lambda n: [np.round(rng.normal(0, 2, size=(int(rng.integers(4, 9)), 3))).astype(np.float32)
                       for _ in range(n)]
    return SequenceData.from_arrays(split(24), split(8), split(8), name="integers", kind="real")


def test_dequantised_training_resumes_exactly_and_validates_on_the_evaluation_draw(tmp_path):
    data = integer_data()
    cfg = tiny_config("rnn", max_steps=6, eval_every=3)  # exact: validation and evaluation differ only by the data
    cfg = cfg.replace(data=dataclasses.replace(cfg.data, dequantize=1.0))
    whole = fit(cfg, tmp_path / "whole", data=data, progress=False)
    half = cfg.replace(train=dataclasses.replace(cfg.train, max_steps=3))
    fit(half, tmp_path / "split", data=data, progress=False)
    fit(cfg, tmp_path / "split", data=data, progress=False, resume=True)
    a, b = (load_checkpoint(tmp_path / run / "last.pt")["model"] for run in ("whole", "split"))
    assert all(torch.equal(a[k], b[k]) for k in a)  # the noise of step t does not depend on where the run began
    plain = fit(cfg.replace(data=dataclasses.replace(cfg.data, dequantize=0.0)), tmp_path / "plain", data=data,
                progress=False)
    p = load_checkpoint(tmp_path / "plain" / "last.pt")["model"]
    assert not all(torch.equal(a[k], p[k]) for k in a)  # the noise reached the gradients
    logged = [json.loads(line) for line in (tmp_path / "whole" / "log.jsonl").read_text().splitlines()][-1]
    valid = evaluate_checkpoint(tmp_path / "whole" / "last.pt", split="valid", data=data, iw_samples=1,
                                batch_size=16)
    assert valid["elbo"]["per_step_total"] == pytest.approx(logged["valid_elbo_per_step"], rel=1e-5)
    assert whole.steps == 6


def test_evaluation_of_a_dequantised_run_reports_the_bound_on_the_gridded_data(tmp_path):
    data = integer_data()
    cfg = tiny_config("rnn", max_steps=3, eval_every=3)
    cfg = cfg.replace(data=dataclasses.replace(cfg.data, dequantize=2.0))
    fit(cfg, tmp_path / "run", data=data, progress=False)
    r = evaluate_checkpoint(tmp_path / "run" / "best.pt", data=data)
    assert r["dequantized"]["width"] == 2.0 and r["dequantized"]["features"] == 3
    ckpt = load_checkpoint(tmp_path / "run" / "best.pt")
    std = ckpt["normalizer"]["std"]
    per_step = 3 * (math.log(2.0) - math.log(std))  # D log w + log|dx_norm/dx| of global normalisation
    assert r["original_units"]["log_likelihood"]["per_step_total"] == pytest.approx(
        r["log_likelihood"]["per_step_total"] + per_step, rel=1e-6)
    # the data a dequantised run is scored on are not the integers themselves: each sequence gets its draw
    again = evaluate_checkpoint(tmp_path / "run" / "best.pt", data=data)
    assert again["log_likelihood"] == r["log_likelihood"]  # one fixed draw: the same numbers every time
