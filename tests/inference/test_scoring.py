"""Per-step scores and continuations of a user's file, through trained checkpoints."""
from __future__ import annotations

import csv

import numpy as np
import pytest
import torch

from conftest import tiny_config
from vrnn.checkpoint import load_model
from vrnn.data import pad_batch
from vrnn.errors import VrnnError
from vrnn.inference.scoring import continue_file, score_file
from vrnn.training.trainer import fit


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    from conftest import write_boulanger_pickle

    base = tmp_path_factory.mktemp("scoring")
    rolls = write_boulanger_pickle(base / "rolls.pickle")
    ckpts = {}
    for kind, prior in (("rnn", None), ("vrnn", "conditional")):
        cfg = tiny_config(kind, prior, "bernoulli", x_dim=88, source=str(rolls), max_steps=4, eval_every=2)
        fit(cfg, base / kind, progress=False)
        ckpts[kind] = base / kind / "best.pt"
    return base, ckpts


def test_rnn_scores_are_its_exact_per_step_likelihoods(trained, tmp_path):
    base, ckpts = trained
    seqs = (np.random.default_rng(0).random((3, 9, 88)) < 0.1).astype(np.float32)
    np.save(tmp_path / "x.npy", seqs)
    res = score_file(ckpts["rnn"], tmp_path / "x.npy", tmp_path / "scores.csv", particles=3)
    assert res["proposal"] == "none" and res["sequences"] == 3  # no latent variables: nothing to propose
    model, _, _ = load_model(ckpts["rnn"])
    x, mask = pad_batch(list(seqs))
    with torch.no_grad():
        exact = model(x, mask).log_px[0].double().numpy()
    np.testing.assert_allclose(np.load(tmp_path / "scores.npy"), exact, rtol=1e-6)
    rows = list(csv.DictReader(open(tmp_path / "scores.csv")))
    assert len(rows) == 27 and {r["sequence"] for r in rows} == {"0", "1", "2"}
    assert (tmp_path / "scores.png").stat().st_size > 0


def test_vrnn_scores_sum_to_a_likelihood_estimate_near_the_is_one(trained, tmp_path):
    base, ckpts = trained
    seqs = (np.random.default_rng(1).random((2, 12, 88)) < 0.1).astype(np.float32)
    np.savez(tmp_path / "x.npz", a=seqs[0], b=seqs[1])  # two (T, D) arrays
    score_file(ckpts["vrnn"], tmp_path / "x.npz", tmp_path / "s.npy", particles=200)
    from vrnn.inference.evaluate import score_sequences

    model, _, _ = load_model(ckpts["vrnn"])
    iw = score_sequences(model, list(seqs), iw_samples=200)["log_likelihood"].numpy()
    smc = np.load(tmp_path / "s.npy").sum(1)
    np.testing.assert_allclose(smc, iw, atol=0.5)  # two estimates of the same log p(x)
    with pytest.raises(VrnnError, match="already exists"):
        score_file(ckpts["vrnn"], tmp_path / "x.npz", tmp_path / "s.npy")


def test_a_continuation_keeps_the_prefix_and_marks_the_join(trained, tmp_path):
    base, ckpts = trained
    prime = (np.random.default_rng(2).random((10, 88)) < 0.1).astype(np.float32)
    np.save(tmp_path / "prime.npy", prime)
    for kind, path in ckpts.items():
        out = tmp_path / f"{kind}.mid"
        paths = continue_file(path, tmp_path / "prime.npy", steps=5, out=out, prime_steps=6, n=2, seed=0)
        x = np.load(out.with_suffix(".npy"))
        assert x.shape == (2, 11, 88)
        assert (x[:, :6] == prime[:6]).all()  # the prefix, as given
        assert set(np.unique(x[:, 6:])) <= {0.0, 1.0}
        assert {p.suffix for p in paths} == {".npy", ".mid", ".png"}


def test_the_commands(trained, tmp_path, capsys):
    from vrnn.cli import main

    base, ckpts = trained
    assert main(["eval", str(ckpts["vrnn"]), "--estimator", "smc", "--particles", "8", "--json"]) == 0
    import json

    r = json.loads(capsys.readouterr().out)
    assert r["iw_samples"] == 8 and r["smc"]["particles"] == 8
    assert abs(r["log_likelihood_smc"]["per_step_total"] - r["log_likelihood"]["per_step_total"]) < 0.5
    assert main(["eval", str(ckpts["vrnn"]), "--iw-samples", "4"]) == 0 and "IS, K=4" in capsys.readouterr().out
    np.save(tmp_path / "x.npy", (np.random.default_rng(0).random((5, 88)) < 0.1).astype(np.float32))
    assert main(["score", str(ckpts["vrnn"]), "--data", str(tmp_path / "x.npy"), "--out", str(tmp_path / "s.csv"),
                 "--particles", "10"]) == 0
    assert "1 sequences scored (posterior proposal" in capsys.readouterr().out
    assert main(["sample", str(ckpts["rnn"]), "--prime", str(tmp_path / "x.npy"), "--steps", "3",
                 "--out", str(tmp_path / "c.npy")]) == 0
    assert np.load(tmp_path / "c.npy").shape == (1, 8, 88)
    assert main(["sample", str(ckpts["rnn"]), "--prime-steps", "2", "--steps", "3", "--out", str(tmp_path / "d.npy")]) == 2
    assert "--prime-steps needs --prime" in capsys.readouterr().err


def test_prime_errors_name_prime_and_never_data(trained, tmp_path, capsys):
    from conftest import one_error_line
    from vrnn.cli import main

    base, ckpts = trained
    np.save(tmp_path / "x.npy", (np.random.default_rng(0).random((5, 88)) < 0.1).astype(np.float32))
    np.save(tmp_path / "half.npy", np.full((5, 88), 0.5, np.float32))
    x, half = tmp_path / "x.npy", tmp_path / "half.npy"
    for args, needles in ((["--prime", "in-memory", "--steps", "3"], ["--prime 'in-memory'"]),
                          (["--prime", half, "--steps", "3"], [f"--prime {half}", "binary"]),
                          (["--prime", tmp_path / "none.npy", "--steps", "3"], ["--prime", "none.npy", "not found"]),
                          (["--prime", x, "--steps", "0"], ["--steps", ">= 1"]),
                          (["--prime", x, "--steps", "3", "--num", "0"], ["--num", ">= 1"])):
        code = main(["sample", str(ckpts["vrnn"]), *map(str, args), "--out", str(tmp_path / "c.npy")])
        line = one_error_line(code, capsys.readouterr().err, *needles)
        assert "--data" not in line and "data.source" not in line, line
    assert not (tmp_path / "c.npy").exists()


def test_prime_steps_beyond_the_primed_file_is_an_error_naming_its_length(trained, tmp_path, capsys):
    from conftest import one_error_line
    from vrnn.cli import main

    base, ckpts = trained
    np.save(tmp_path / "x.npy", (np.random.default_rng(0).random((5, 88)) < 0.1).astype(np.float32))
    code = main(["sample", str(ckpts["rnn"]), "--prime", str(tmp_path / "x.npy"), "--prime-steps", "9", "--steps", "3",
                 "--out", str(tmp_path / "c.npy")])
    one_error_line(code, capsys.readouterr().err, "--prime-steps 9", f"{tmp_path / 'x.npy'} has 5 steps")
    assert not (tmp_path / "c.npy").exists()
    assert main(["sample", str(ckpts["rnn"]), "--prime", str(tmp_path / "x.npy"), "--prime-steps", "5", "--steps", "3",
                 "--out", str(tmp_path / "c.npy")]) == 0  # all of it is fine


def test_injected_segments_and_the_roc_auc():
    from vrnn.lab.experiments.anomaly import inject, roc_auc

    rng = np.random.default_rng(0)
    seqs = [(rng.random((20, 88)) < 0.05).astype(np.float32) for _ in range(6)]
    bad, labels, kinds = inject(seqs, seed=1)
    assert kinds[:2] == ["pitch shift", "burst"] and all(lab.sum() == 4 for lab in labels)
    for x, y, lab in zip(seqs, bad, labels):
        assert (x[~lab] == y[~lab]).all()  # only the injected steps change
    shifted = [(x, y, lab) for x, y, lab, k in zip(seqs, bad, labels, kinds) if k == "pitch shift"]
    x, y, lab = shifted[0]
    assert y[lab].sum() <= x[lab].sum()  # transposed: no note added, some may leave the keyboard
    labels = np.array([0, 0, 1, 1, 0, 1], bool)
    assert roc_auc(np.array([0.1, 0.2, 0.9, 0.8, 0.3, 0.7]), labels) == 1.0
    assert roc_auc(np.array([0.9, 0.8, 0.1, 0.2, 0.7, 0.3]), labels) == 0.0
    assert roc_auc(np.ones(6), labels) == 0.5  # ties count half


def test_injected_audio_anomalies_are_a_noise_burst_or_a_dropped_frame():
    from vrnn.lab.experiments.anomaly import inject_audio

    t = np.arange(10 * 200) / 8000
    seqs = [(0.3 * np.sin(2 * np.pi * (200 + 50 * i) * t)).reshape(10, 200).astype(np.float32) for i in range(4)]
    bad, labels, kinds = inject_audio(seqs, seed=2)
    assert kinds == ["noise burst", "dropped frame"] * 2 and all(lab.sum() == 1 for lab in labels)
    for x, y, lab, kind in zip(seqs, bad, labels, kinds):
        t0 = int(np.flatnonzero(lab)[0])
        if kind == "noise burst":
            assert y.shape == x.shape and (x[~lab] == y[~lab]).all() and not np.allclose(x[t0], y[t0])
            assert np.sqrt((y[t0] ** 2).mean()) == pytest.approx(np.sqrt((x ** 2).mean()), rel=0.2)  # same level
        else:  # frame t0 is gone: the sequence is one frame shorter and continues with frame t0 + 1
            assert len(y) == len(x) - 1 and (y[:t0] == x[:t0]).all() and (y[t0:] == x[t0 + 1:]).all()
