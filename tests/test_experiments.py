"""The experiment harness: an experiment file trains, resumes in segments, exports, evaluates and renders;
``--eval-only`` re-creates the committed table byte for byte."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from conftest import write_arrays
from vrnn.cli import main
from vrnn.errors import VrnnError
from vrnn.experiments.runner import run_experiment
from vrnn.experiments.spec import load_experiment

CONFIG = """
[model]
kind = "{kind}"
hidden = 8
width = 8
layers = 1
emission = {{ name = "bernoulli" }}
{extra}
[train]
batch_size = 8
max_steps = 6
eval_every = 2
patience = 100
lr = 3e-3
"""

EXPERIMENT = """
title = "Tiny"
report = "polyphonic"

[eval]
iw_samples = 3
batch_size = 4

[data.rolls]
source = "{data_dir}/rolls.npz"
about = "random piano rolls"

[runs.rnn]
label = "RNN"
config = "configs/rnn.toml"
data = ["rolls"]
segment_steps = 2

[runs.vrnn]
label = "VRNN"
config = "configs/vrnn.toml"
data = ["rolls"]
seeds = [0, 1]
segment_steps = 4
"""


@pytest.fixture
def repo(tmp_path) -> Path:
    """A repository-like folder: configs/, benchmarks/tiny/experiment.toml, and data outside it."""
    root = tmp_path / "repo"
    (root / "configs").mkdir(parents=True)
    (root / "configs" / "rnn.toml").write_text(CONFIG.format(kind="rnn", extra=""))
    (root / "configs" / "vrnn.toml").write_text(CONFIG.format(kind="vrnn", extra="z_dim = 3"))
    (root / "benchmarks" / "tiny").mkdir(parents=True)
    (root / "benchmarks" / "tiny" / "experiment.toml").write_text(EXPERIMENT)
    (tmp_path / "data").mkdir()
    write_arrays(tmp_path / "data" / "rolls.npz", dim=5, binary=True)
    return root


def _run(repo: Path, **kw) -> Path:
    return run_experiment(repo / "benchmarks" / "tiny" / "experiment.toml", data_dir=repo.parent / "data",
                          work=repo / "runs", quiet=True, **kw)


def test_train_export_evaluate_and_eval_only_reproduces_the_table(repo):
    out = _run(repo)
    folder = out.parent
    ckpts = sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*.pt"))
    assert ckpts == ["checkpoints/rolls/rnn.pt", "checkpoints/rolls/vrnn-seed0.pt", "checkpoints/rolls/vrnn-seed1.pt"]
    info = json.loads((folder / "checkpoints" / "rolls" / "rnn.json").read_text())
    assert info["steps"] == 6 and info["stopped"] == "max_steps"
    assert [c["step"] for c in info["curve"]] == [2, 4, 6]  # one record per evaluation, none duplicated by resumes
    results = json.loads((folder / "results.json").read_text())
    report = results["evaluations"]["rolls"]["vrnn-seed1"]
    assert report["iw_samples"] == 3 and len(report["sequences"]["elbo"]) == report["num_sequences"]
    table = out.read_text()
    assert "| VRNN (seed 1) |" in table and "| RNN |" in table and "curves-rolls.png" in table
    assert (folder / "curves-rolls.png").stat().st_size > 0
    seed0 = torch.load(folder / "checkpoints/rolls/vrnn-seed0.pt", weights_only=True)["model"]
    seed1 = torch.load(folder / "checkpoints/rolls/vrnn-seed1.pt", weights_only=True)["model"]
    assert any(not torch.equal(seed0[k], seed1[k]) for k in seed0)  # the seeds are different runs
    assert main(["experiment", str(folder / "experiment.toml"), "--eval-only", "--data-dir",
                 str(repo.parent / "data")]) == 0
    assert out.read_text() == table


def test_a_run_stopped_by_the_session_budget_resumes_to_the_same_weights(repo, tmp_path):
    whole = _run(repo).parent / "checkpoints"
    first = {p.name: torch.load(p, weights_only=True)["model"] for p in whole.rglob("*.pt")}
    for p in whole.rglob("*"):
        if p.is_file():
            p.unlink()
    with pytest.raises(VrnnError, match="no checkpoints"):  # every run stopped after its first segment
        run_experiment(repo / "benchmarks" / "tiny" / "experiment.toml", data_dir=repo.parent / "data",
                       work=tmp_path / "w2", quiet=True, minutes=1e-9)
    assert not list(whole.rglob("*.pt"))
    run_experiment(repo / "benchmarks" / "tiny" / "experiment.toml", data_dir=repo.parent / "data",
                   work=tmp_path / "w2", quiet=True, resume=True)
    again = {p.name: torch.load(p, weights_only=True)["model"] for p in whole.rglob("*.pt")}
    assert again.keys() == first.keys()
    for name in first:
        assert all(torch.equal(first[name][k], again[name][k]) for k in first[name]), name


@pytest.mark.parametrize("edit, message", [
    (("segment_steps = 2", "segment_steps = 3"), "not a multiple of train.eval_every"),
    (('data = ["rolls"]\nsegment_steps = 2', 'data = ["nope"]'), "is not a \\[data.\\*\\] table"),
    (('report = "polyphonic"', 'report = "nope"'), "unknown report"),
    (("iw_samples = 3", "iw_samples = 0"), "eval.iw_samples is 0; set it to a number >= 1"),
    (('label = "RNN"', 'label = "RNN"\ncolour = 1'), "unknown setting runs.rnn.colour"),
    (('title = "Tiny"\n', ''), "missing setting experiment.title"),
    (("iw_samples = 3", 'iw_samples = 3\nestimator = "both"'), "eval.estimator is 'both'; set it to one of is, smc"),
])
def test_mistakes_in_an_experiment_file_are_one_line_errors(repo, edit, message):
    path = repo / "benchmarks" / "tiny" / "experiment.toml"
    path.write_text(path.read_text().replace(*edit))
    with pytest.raises(VrnnError, match=message):
        if "segment" in message or "multiple" in message:
            _run(repo)
        else:
            load_experiment(path)


def test_missing_data_names_the_flag(repo, capsys):
    code = main(["experiment", str(repo / "benchmarks" / "tiny" / "experiment.toml"), "--data-dir",
                 str(repo / "nowhere")])
    assert code == 2 and "--data-dir" in capsys.readouterr().err


def test_exported_checkpoints_hold_float16_weights_that_load_into_the_model(repo):
    from vrnn.checkpoint import load_checkpoint, load_model

    folder = _run(repo).parent
    ckpt = load_checkpoint(folder / "checkpoints/rolls/vrnn-seed0.pt")
    assert all(v.dtype == torch.float16 for v in ckpt["model"].values() if v.is_floating_point())
    model, _, _ = load_model(folder / "checkpoints/rolls/vrnn-seed0.pt")
    weights = dict(model.state_dict())
    assert all(v.dtype == torch.float32 and torch.equal(v, ckpt["model"][k].float()) for k, v in weights.items())


def test_exported_checkpoints_and_results_hold_no_path_of_this_machine(repo):
    from vrnn.checkpoint import load_checkpoint

    folder = _run(repo).parent
    ckpt = load_checkpoint(folder / "checkpoints/rolls/vrnn-seed0.pt")
    assert ckpt["config"]["data"]["source"] == ckpt["data_ref"]["source"] == "{data_dir}/rolls.npz"
    assert ckpt["data_meta"]["source"] == "{data_dir}/rolls.npz" and len(ckpt["data_ref"]["sha256"]) == 64
    info = json.loads((folder / "checkpoints/rolls/vrnn-seed0.json").read_text())
    assert 'data.source="{data_dir}/rolls.npz"' in info["overrides"]
    results = (folder / "results.json").read_text()
    assert json.loads(results)["data"]["rolls"]["source"] == "{data_dir}/rolls.npz" and str(repo.parent) not in results


def test_committed_runs_are_not_trained_again_unless_asked(repo, capsys):
    folder = _run(repo).parent
    before = (folder / "checkpoints/rolls/rnn.pt").read_bytes()
    capsys.readouterr()
    _run(repo)
    assert "rolls / rnn: committed" in capsys.readouterr().out
    assert (folder / "checkpoints/rolls/rnn.pt").read_bytes() == before
    _run(repo, retrain=True, runs=["rnn"])
    assert "rolls / rnn: training" in capsys.readouterr().out


def test_train_only_trains_and_exports_and_eval_only_then_renders(repo):
    """--train-only (several trainings side by side) writes checkpoints but no results; --eval-only renders them."""
    assert _run(repo, runs=["rnn"], train_only=True) is None
    folder = repo / "benchmarks" / "tiny"
    assert [p.name for p in (folder / "checkpoints").rglob("*.pt")] == ["rnn.pt"]
    assert _run(repo, runs=["vrnn"], seeds=[1], train_only=True) is None  # --seeds: only seed 1 of the run
    assert sorted(p.name for p in (folder / "checkpoints").rglob("*.pt")) == ["rnn.pt", "vrnn-seed1.pt"]
    assert not (folder / "results.json").exists() and not (folder / "RESULTS.md").exists()
    out = _run(repo, eval_only=True)
    assert "| RNN |" in out.read_text() and "| VRNN (seed 1) |" in out.read_text() and "seed 0" not in out.read_text()
    with pytest.raises(VrnnError, match="exclude each other"):
        _run(repo, eval_only=True, train_only=True)


def test_seeds_may_differ_by_data_set(repo):
    path = repo / "benchmarks" / "tiny" / "experiment.toml"
    text = path.read_text().replace('[runs.rnn]', '[data.more]\nsource = "{data_dir}/rolls.npz"\n\n[runs.rnn]')
    text = text.replace('data = ["rolls"]\nseeds = [0, 1]', 'data = ["rolls", "more"]\nseeds = { rolls = [0, 1, 2], more = [1] }')
    path.write_text(text)
    exp = load_experiment(path)
    cells = [(run.name, d, seed, exp.checkpoint(run, d, seed).name) for run, d, seed in exp.cells()]
    assert cells == [("rnn", "rolls", 0, "rnn.pt"), ("vrnn", "rolls", 0, "vrnn-seed0.pt"),
                     ("vrnn", "rolls", 1, "vrnn-seed1.pt"), ("vrnn", "rolls", 2, "vrnn-seed2.pt"),
                     ("vrnn", "more", 1, "vrnn-seed1.pt")]
    path.write_text(text.replace("more = [1]", "mroe = [1]"))
    with pytest.raises(VrnnError, match="seeds names data set 'mroe'"):
        load_experiment(path)


def test_resumed_runs_may_change_their_config_only_when_allowed(repo, tmp_path):
    exp = repo / "benchmarks" / "tiny" / "experiment.toml"
    kw = dict(data_dir=repo.parent / "data", work=tmp_path / "w", quiet=True, train_only=True)
    run_experiment(exp, minutes=1e-9, **kw)  # every run stops after its first segment
    cfg = repo / "configs" / "vrnn.toml"
    cfg.write_text(cfg.read_text().replace("lr = 3e-3", "lr = 1e-3"))
    with pytest.raises(VrnnError, match="train.lr"):
        run_experiment(exp, resume=True, **kw)
    with pytest.raises(VrnnError, match="only with --resume"):
        run_experiment(exp, allow_changes=True, **kw)
    run_experiment(exp, resume=True, allow_changes=True, **kw)
    log = [json.loads(line) for line in (tmp_path / "w" / "rolls" / "vrnn-seed0" / "log.jsonl").read_text().splitlines()]
    assert {"step": 4, "config_changes": {"train.lr": {"stored": 3e-3, "given": 1e-3}}} in log
    assert log[-1]["step"] == 6 and log[-1]["lr"] == 1e-3
