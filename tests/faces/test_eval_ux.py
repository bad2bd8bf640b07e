"""Evaluation and command-line usability: batch-size-independent numbers, `eval --whole`, `--device`,
per-feature normalisation, `--help` defaults and `--version`."""
import dataclasses
import json
import math

import numpy as np
import pytest
import torch
from torch.distributions import AffineTransform, TransformedDistribution

import vrnn
from vrnn.api import evaluate_checkpoint
from vrnn.checkpoint import load_checkpoint
from vrnn.cli import build_parser, format_report, main
from vrnn.training.config import config_from_dict
from vrnn.data import Normalizer, pad_batch
from vrnn.inference.evaluate import evaluate, score_sequences
from vrnn.models import build_model
from vrnn.training.trainer import fit

from conftest import random_sequences, tiny_config, write_arrays

MODELS = {  # tiny models with latents, one per loop variant (conditional prior, Res_q + smoothing, DMM)
    "vrnn": {"kind": "vrnn", "hidden": 12, "z_dim": 4, "width": 12, "layers": 1},
    "srnn": {"kind": "srnn", "hidden": 12, "a_hidden": 10, "z_dim": 4, "width": 12, "layers": 1,
             "posterior": "smooth", "res_q": True},
    "dmm": {"kind": "dmm", "z_dim": 4, "transition_hidden": 12, "emission_hidden": 10, "rnn_hidden": 12},
}


def tiny_model(name: str, x_dim: int = 3):
    torch.manual_seed(0)
    cfg = config_from_dict({"model": {**MODELS[name], "x_dim": x_dim, "emission": {"name": "gauss"}}})
    return build_model(cfg.model)


def user_error(capsys, argv, *needles):
    """`vrnn ARGV` fails as a user mistake: exit 2 and one line `vrnn: error: ...` naming ``needles``."""
    code = main([str(a) for a in argv])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and err[0].startswith("vrnn: error:"), err
    for n in needles:
        assert n in err[0], err[0]


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """A tiny VRNN-Gauss trained for two steps on a user's .npz (24/8/8 sequences)."""
    folder = tmp_path_factory.mktemp("evalux")
    source = write_arrays(folder / "waves.npz")
    fit(tiny_config("vrnn", "conditional", source=str(source), max_steps=2, eval_every=1), folder / "run",
        progress=False)
    return folder / "run" / "best.pt", source


# ---- 1. the numbers do not depend on the batching -------------------------------------------------

@pytest.mark.parametrize("name", sorted(MODELS))
def test_per_sequence_numbers_do_not_depend_on_the_batch_size(name):
    model = tiny_model(name)
    seqs = random_sequences(23, 3, seed=5, lo=2, hi=30)
    runs = {b: score_sequences(model, seqs, iw_samples=6, batch_size=b) for b in (1, 3, 7, 64)}
    for b, r in runs.items():
        for key in ("elbo", "log_likelihood", "kl"):
            np.testing.assert_allclose(r[key].numpy(), runs[64][key].numpy(), rtol=1e-5, err_msg=f"{key}, batch {b}")
    # the noise is drawn, not absent: another evaluation seed changes every IS estimate
    other = score_sequences(model, seqs, iw_samples=6, batch_size=7, seed=99)
    assert (other["log_likelihood"] != runs[7]["log_likelihood"]).all()


def test_a_sequences_numbers_do_not_depend_on_the_other_sequences():
    model = tiny_model("vrnn")
    seqs = random_sequences(12, 3, seed=1, lo=2, hi=25)
    keys = [(i,) for i in range(12)]
    ref = score_sequences(model, seqs, iw_samples=5, batch_size=4, keys=keys)
    order = list(reversed(range(12)))[::2]  # a subset, in another order, with its own keys
    sub = score_sequences(model, [seqs[i] for i in order], iw_samples=5, batch_size=2, keys=[keys[i] for i in order])
    np.testing.assert_allclose(sub["log_likelihood"].numpy(), ref["log_likelihood"][order].numpy(), rtol=1e-5)


def test_the_printed_report_is_the_same_for_every_batch_size():
    model = tiny_model("vrnn")
    seqs = random_sequences(30, 3, seed=2, lo=2, hi=40)
    texts = {b: format_report(evaluate(model, seqs, Normalizer(), iw_samples=8, batch_size=b)) for b in (1, 3, 7, 64)}
    assert len(set(texts.values())) == 1, texts


# ---- 2. eval --whole --------------------------------------------------------------------------------

def test_whole_scores_every_split_with_each_splits_own_numbers(run, capsys):
    ckpt, source = run
    assert main(["eval", str(ckpt), "--data", str(source), "--whole", "--iw-samples", "4", "--json"]) == 0
    r = json.loads(capsys.readouterr().out)
    assert r["split"] == "all" and r["num_sequences"] == 40 and r["splits"] == {"train": 24, "valid": 8, "test": 8}
    whole = evaluate_checkpoint(ckpt, iw_samples=4, whole=True, per_sequence=True)
    test = evaluate_checkpoint(ckpt, split="test", iw_samples=4, per_sequence=True, batch_size=3)
    assert whole["num_steps"] == sum(whole["sequences"]["lengths"]) and r["elbo"] == whole["elbo"]
    # the test split's sequences come last, with the numbers of a test-split evaluation
    np.testing.assert_allclose(whole["sequences"]["log_likelihood"][-8:], test["sequences"]["log_likelihood"],
                               rtol=1e-5)


def test_whole_scores_every_sequence_of_a_npy(run, tmp_path, capsys):
    ckpt, _ = run
    x = np.stack(random_sequences(20, 3, seed=7, lo=9, hi=10))  # (20, 9, 3)
    np.save(tmp_path / "mine.npy", x)
    assert main(["eval", str(ckpt), "--data", str(tmp_path / "mine.npy"), "--whole", "--iw-samples", "2"]) == 0
    out = capsys.readouterr().out
    assert "[all: 16 train, 2 valid, 2 test]: 20 sequences, 180 steps" in out, out


def test_whole_and_split_together_is_a_user_error(run, capsys):
    user_error(capsys, ["eval", run[0], "--whole", "--split", "valid"], "--whole", "--split")


# ---- 3. --device ------------------------------------------------------------------------------------

def test_eval_and_sample_on_cpu_equal_the_default(run, tmp_path, capsys):
    ckpt, _ = run
    reports = []
    for extra in ([], ["--device", "cpu"]):
        assert main(["eval", str(ckpt), "--iw-samples", "3", "--json", *extra]) == 0
        reports.append(json.loads(capsys.readouterr().out))
    assert reports[0] == reports[1]
    for name, extra in (("a", []), ("b", ["--device", "cpu"])):
        assert main(["sample", str(ckpt), "--steps", "5", "--num", "2", "--out", str(tmp_path / f"{name}.npy"), *extra]) == 0
    np.testing.assert_array_equal(np.load(tmp_path / "a.npy"), np.load(tmp_path / "b.npy"))


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
@pytest.mark.parametrize("argv", [
    ["eval", "run.pt"],
    ["sample", "run.pt", "--steps", "3", "--out", "s.npy"],
    ["analyze", "run.pt", "--input", "clip.wav", "--out", "f.png"],
    ["waveforms", "run.pt", "--out", "f.png"],
])
def test_cuda_without_cuda_is_one_line_naming_the_flag(argv, capsys, tmp_path):
    user_error(capsys, [*argv[:1], *[str(tmp_path / a) if "." in a else a for a in argv[1:]], "--device", "cuda"],
               "--device", "cpu")


def test_unknown_device_is_a_user_error(run, capsys):
    user_error(capsys, ["eval", run[0], "--device", "tpu"], "--device", "auto, cpu or cuda")


# ---- 4. per-feature normalisation ---------------------------------------------------------------------

def two_scales(n: int, seed: int) -> list[np.ndarray]:
    """Sequences of two features, the second 1000 times the scale of the first."""
    rng = np.random.default_rng(seed)
    return [(rng.standard_normal((int(rng.integers(5, 15)), 2)) * [1.0, 1000.0] + [3.0, -2000.0]).astype(np.float32)
            for _ in range(n)]


def test_per_feature_gives_each_feature_unit_variance_and_round_trips():
    train = two_scales(30, 0)
    norm = Normalizer.fit(train, per_feature=True)
    y = np.concatenate([norm(a) for a in train]).astype(np.float64)
    np.testing.assert_allclose(y.mean(0), 0.0, atol=1e-4)
    np.testing.assert_allclose(y.std(0), 1.0, rtol=1e-4)
    glob = np.concatenate([Normalizer.fit(train)(a) for a in train]).std(0)
    assert glob[0] < 0.01  # the global normaliser leaves the small feature nearly constant
    a = train[3]
    np.testing.assert_allclose(norm.invert(norm(a)), a, rtol=1e-5, atol=1e-3)
    np.testing.assert_allclose(norm.invert(torch.from_numpy(norm(a))).numpy(), a, rtol=1e-5, atol=1e-3)
    assert norm.log_jacobian(2) == pytest.approx(-math.log(norm.std[0]) - math.log(norm.std[1]))
    assert norm.log_jacobian(2) == pytest.approx(-math.log(1000.0), rel=0.05)  # σ ≈ (1, 1000)
    with pytest.raises(ValueError, match="per-feature"):
        norm.log_jacobian(3)
    # stored as a dict in checkpoints; scalar (old) dicts still give the global normaliser
    assert Normalizer(**{k: list(v) if isinstance(v, tuple) else v for k, v in vars(norm).items()}) == norm
    assert not Normalizer(mean=1.0, std=2.0).per_feature


def test_per_feature_report_in_original_units_is_the_direct_density(tmp_path):
    arrays = {s: two_scales(n, i) for i, (s, n) in enumerate((("train", 20), ("valid", 4), ("test", 6)))}
    np.savez(tmp_path / "two.npz", **{s: np.concatenate(v) for s, v in arrays.items()},
             **{f"{s}_lengths": [len(a) for a in v] for s, v in arrays.items()})
    cfg = tiny_config("rnn", None, x_dim=2, source=str(tmp_path / "two.npz"), max_steps=2, eval_every=1)
    # replace(): a config file says data.normalize = "per_feature" (accepted by the config checks)
    cfg = cfg.replace(data=dataclasses.replace(cfg.data, normalize="per_feature"))
    model = fit(cfg, tmp_path / "run", progress=False).model
    norm = Normalizer(**load_checkpoint(tmp_path / "run" / "last.pt")["normalizer"])  # as stored
    assert norm.per_feature and norm == Normalizer.fit(arrays["train"], per_feature=True)
    report = evaluate(model, arrays["test"], norm)
    assert "per feature" in report["data_scale"]
    # direct: the model's emission mapped back to original units, x = μ + σ ⊙ x_model, at the raw data
    affine = AffineTransform(torch.tensor(norm.mean), torch.tensor(norm.std), event_dim=1)
    direct = []
    with torch.no_grad():
        for a in arrays["test"]:
            x, mask = pad_batch([norm(a)])
            ctx, _ = model.encode(x, None, mask)
            dist = TransformedDistribution(model.emission(ctx["h_prev"], {}, ctx), [affine])
            direct.append(dist.log_prob(torch.from_numpy(a)[None].double()).sum().item())
    got = report["original_units"]["log_likelihood"]["per_sequence"]
    assert got == pytest.approx(float(np.mean(direct)), rel=1e-5)
    assert got != pytest.approx(report["log_likelihood"]["per_sequence"], rel=1e-2)  # the Jacobian is not 0


# ---- 5. --help and --version --------------------------------------------------------------------------

def test_version(capsys):
    with pytest.raises(SystemExit) as e:
        main(["--version"])
    assert e.value.code == 0 and capsys.readouterr().out.strip() == f"vrnn {vrnn.__version__}"


@pytest.mark.parametrize("command, shown", [
    ("eval", ["(default: 40)", "(default: 64)", "(default: 1234)", "(default: cpu)"]),
    ("sample", ["(default: 1)", "(default: 0)", "(default: 1.0)", "(default: cpu)"]),
    ("analyze", ["(default: 0)", "(default: cpu)"]),
    ("waveforms", ["(default: 2.0)", "(default: 0.05)", "(default: cpu)"]),
    ("prepare", ["(default: 0)"]),
    ("experiment", ["(default: 0.0)"]),
    ("bench", ["(default: auto)"]),
])
def test_help_shows_the_defaults(command, shown, capsys):
    with pytest.raises(SystemExit):
        build_parser().parse_args([command, "--help"])
    text = " ".join(capsys.readouterr().out.split())  # undo the line wrapping
    for s in shown:
        assert s in text, (s, text)
    assert "(default: None)" not in text and "(default: False)" not in text


# ---- 5. figures and their axes ------------------------------------------------------------------------

@pytest.fixture(scope="module")
def roll_run(tmp_path_factory):
    """A tiny VRNN-Bernoulli trained for two steps on 88-key piano rolls (MIDI 21..108), and a sample of it
    as `vrnn sample` writes it: (1, T, 88)."""
    from conftest import write_boulanger_pickle

    folder = tmp_path_factory.mktemp("rolls")
    cfg = tiny_config("vrnn", "conditional", "bernoulli", x_dim=88,
                      source=str(write_boulanger_pickle(folder / "rolls.pickle")), max_steps=2, eval_every=1)
    fit(cfg, folder / "run", progress=False)
    assert main(["sample", str(folder / "run" / "best.pt"), "--steps", "16", "--out", str(folder / "s.npy")]) == 0
    return folder / "run" / "best.pt", folder / "s.npy"


@pytest.fixture
def figures(monkeypatch):
    """Every matplotlib figure saved while the test runs, in order."""
    from matplotlib.figure import Figure

    saved, savefig = [], Figure.savefig
    monkeypatch.setattr(Figure, "savefig", lambda fig, *a, **k: (saved.append(fig), savefig(fig, *a, **k))[1])
    return saved


def test_analyze_draws_a_piano_roll_as_a_roll_of_midi_pitches_not_a_waveform(roll_run, tmp_path, figures, capsys):
    ckpt, sample = roll_run
    assert main(["analyze", str(ckpt), "--input", str(sample), "--out", str(tmp_path / "a.png")]) == 0
    (fig,) = figures
    labels = [ax.get_ylabel() for ax in fig.axes]
    assert not any("waveform" in label for label in labels), labels
    (roll,) = [ax for ax in fig.axes if "MIDI pitch" in ax.get_ylabel()]
    (image,) = roll.images
    lo, hi = roll.get_ylim()
    assert image.get_array().shape[1] == 16 and 20.5 <= lo < hi <= 108.5  # time across, keys up, in MIDI pitch


def test_analyze_draws_real_frames_that_are_not_audio_as_features_not_a_waveform(run, tmp_path, figures, capsys):
    ckpt, _ = run
    np.save(tmp_path / "x.npy", random_sequences(1, 3, seed=3, lo=9, hi=10)[0])
    assert main(["analyze", str(ckpt), "--input", str(tmp_path / "x.npy"), "--out", str(tmp_path / "a.png")]) == 0
    (fig,) = figures
    labels = [ax.get_ylabel() for ax in fig.axes]
    assert not any("waveform" in label for label in labels) and "feature" in labels, labels


def test_analyze_takes_what_sample_writes_and_names_the_shapes_it_takes(roll_run, tmp_path, capsys):
    """(1, T, D) as `vrnn sample` writes it and (T, D) are the same input; other shapes say what is taken."""
    ckpt, sample = roll_run
    x = np.load(sample)
    assert x.shape == (1, 16, 88)
    np.save(tmp_path / "one.npy", x[0])
    from vrnn.lab.analysis import analyze_checkpoint

    a, b = (analyze_checkpoint(ckpt, path, seed=1) for path in (sample, tmp_path / "one.npy"))
    np.testing.assert_array_equal(a["kl"], b["kl"])
    for name, bad in (("flat", x.reshape(-1)), ("four", x[None]), ("two", np.concatenate([x, x]))):
        np.save(tmp_path / f"{name}.npy", bad)
        user_error(capsys, ["analyze", ckpt, "--input", tmp_path / f"{name}.npy", "--out", tmp_path / "a.png"],
                   f"--input {tmp_path / name}.npy", str(bad.shape), "(T, D) or (1, T, D)")


def test_the_score_figure_labels_piano_roll_keys_with_midi_pitch(roll_run, tmp_path, figures, capsys):
    ckpt, sample = roll_run
    assert main(["score", str(ckpt), "--data", str(sample), "--out", str(tmp_path / "s.csv"), "--particles", "2"]) == 0
    (fig,) = figures
    (roll,) = [ax for ax in fig.axes if ax.images]
    lo, hi = roll.get_ylim()
    assert "MIDI pitch" in roll.get_ylabel() and 20.5 <= lo < hi <= 108.5, (roll.get_ylabel(), lo, hi)
