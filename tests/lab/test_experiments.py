"""The experiment harness: an experiment file trains, resumes in segments, exports, evaluates and renders;
``--eval-only`` re-creates the committed table byte for byte."""
from __future__ import annotations

import dataclasses
import json
import math
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from conftest import one_error_line, write_arrays, write_midi_folder
from vrnn.api import evaluate_checkpoint
from vrnn.checkpoint import load_checkpoint
from vrnn.cli import main
from vrnn.errors import VrnnError
from vrnn.lab.experiments import reports
from vrnn.lab.experiments.results import read_results
from vrnn.lab.experiments.runner import run_experiment
from vrnn.lab.experiments.spec import load_experiment

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
    results = read_results(folder)
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
    # [eval] smc_particles: the particle filter at each K for the latent models, the numbers of a plain evaluation
    path = folder / "experiment.toml"
    path.write_text(path.read_text().replace("iw_samples = 3", "iw_samples = 3\nsmc_particles = [2, 5]"))
    _run(repo, eval_only=True)
    results = read_results(folder)["evaluations"]["rolls"]
    assert "smc_particles" not in results["rnn"]
    alone = evaluate_checkpoint(folder / "checkpoints/rolls/vrnn-seed1.pt", iw_samples=5, batch_size=4,
                                data_source=str(repo.parent / "data" / "rolls.npz"), estimator="smc", per_sequence=True)
    assert sorted(results["vrnn-seed1"]["smc_particles"]) == ["2", "5"]
    assert results["vrnn-seed1"]["smc_particles"]["5"]["sequences"] == alone["sequences"]["log_likelihood_smc"]


def test_only_new_evaluates_just_the_changed_checkpoints_and_keeps_the_others(repo, monkeypatch):
    from vrnn.checkpoint import export_checkpoint
    from vrnn.lab.experiments import runner

    folder = _run(repo).parent
    first = read_results(folder)
    seen = []
    real = runner.evaluate_checkpoint
    monkeypatch.setattr(runner, "evaluate_checkpoint", lambda path, **kw: seen.append(Path(path).name) or real(
        path, **kw))
    ckpt = folder / "checkpoints/rolls/vrnn-seed1.pt"
    export_checkpoint(ckpt, ckpt, weights="int8")  # the same run, other bytes: its evaluation is stale
    _run(repo, eval_only=True, only_new=True)
    again = read_results(folder)
    assert seen == ["vrnn-seed1.pt"]
    for key in ("rnn", "vrnn-seed0"):
        assert again["evaluations"]["rolls"][key] == first["evaluations"]["rolls"][key]
        assert again["eval_seconds"]["rolls"][key] == first["eval_seconds"]["rolls"][key]
    assert again["evaluations"]["rolls"]["vrnn-seed1"]["checkpoint_sha256"] != first["evaluations"]["rolls"][
        "vrnn-seed1"]["checkpoint_sha256"]
    path = folder / "experiment.toml"
    path.write_text(path.read_text().replace("iw_samples = 3", "iw_samples = 4"))
    _run(repo, eval_only=True, only_new=True)  # other [eval] settings: every checkpoint again
    assert sorted(seen[1:]) == ["rnn.pt", "vrnn-seed0.pt", "vrnn-seed1.pt"]
    with pytest.raises(VrnnError, match="--only-new chooses what to evaluate; --train-only evaluates nothing"):
        _run(repo, train_only=True, only_new=True)


def test_an_interrupted_evaluation_keeps_what_it_finished_for_only_new(repo, monkeypatch):
    from vrnn.lab.experiments import runner

    folder = _run(repo, train_only=True) or (repo / "benchmarks" / "tiny")
    real, seen = runner.evaluate_checkpoint, []

    def stop_at_the_third(path, **kw):
        seen.append(Path(path).name)
        if len(seen) == 3:
            raise KeyboardInterrupt  # the session ends while the third checkpoint is evaluated
        return real(path, **kw)

    monkeypatch.setattr(runner, "evaluate_checkpoint", stop_at_the_third)
    with pytest.raises(KeyboardInterrupt):
        _run(repo, eval_only=True)
    assert not (folder / "results.json").exists()
    cached = sorted(p.name for p in (repo / "runs" / "evaluations" / "rolls").glob("*.json"))
    assert cached == sorted(f"{Path(n).stem}.json" for n in seen[:2])
    _run(repo, eval_only=True, only_new=True)  # only the third is computed now
    assert len(seen) == 4 and seen[3] == seen[2]
    results = read_results(folder)
    again = evaluate_checkpoint(folder / "checkpoints/rolls" / seen[0], iw_samples=3, batch_size=4,
                                data_source=str(repo.parent / "data" / "rolls.npz"), per_sequence=True)
    assert results["evaluations"]["rolls"][Path(seen[0]).stem]["sequences"] == again["sequences"]


def test_results_json_holds_summaries_and_the_per_sequence_numbers_lie_beside_each_checkpoint(repo, monkeypatch):
    from vrnn.lab.experiments import runner
    from vrnn.lab.experiments.results import write_results

    path = repo / "benchmarks" / "tiny" / "experiment.toml"
    path.write_text(path.read_text().replace("iw_samples = 3", "iw_samples = 3\nsmc_particles = [2]"))
    folder = _run(repo).parent
    raw = json.loads((folder / "results.json").read_text())
    for key, report in raw["evaluations"]["rolls"].items():
        assert "sequences" not in report and all("sequences" not in v for v in report.get("smc_particles", {}).values())
        assert report["sequences_file"] == f"checkpoints/rolls/{key}.sequences.json"
    full = read_results(folder)
    report = full["evaluations"]["rolls"]["vrnn-seed1"]
    assert len(report["sequences"]["log_likelihood"]) == report["num_sequences"] == len(
        report["smc_particles"]["2"]["sequences"])
    again = evaluate_checkpoint(folder / "checkpoints/rolls/vrnn-seed1.pt", iw_samples=3, batch_size=4,
                                data_source=str(repo.parent / "data" / "rolls.npz"), per_sequence=True)
    assert report["sequences"] == again["sequences"]
    write_results(folder, full)  # the round trip is exact
    assert read_results(folder) == full
    stale = folder / "checkpoints/rolls/gone-seed0.sequences.json"
    stale.write_text("{}")
    (folder / "checkpoints/rolls/vrnn-seed0.sequences.json").unlink()  # lost: that report is not kept half
    assert sorted(read_results(folder)["evaluations"]["rolls"]) == ["rnn", "vrnn-seed1"]
    seen = []
    real = runner.evaluate_checkpoint
    monkeypatch.setattr(runner, "evaluate_checkpoint", lambda p, **kw: seen.append(Path(p).name) or real(p, **kw))
    shutil.rmtree(repo / "runs" / "evaluations")  # nor in the evaluation cache: computed again
    _run(repo, eval_only=True, only_new=True)
    assert seen == ["vrnn-seed0.pt"] and not stale.exists()
    assert read_results(folder)["evaluations"] == full["evaluations"]


def test_a_runs_own_particle_counts_replace_evals_and_are_recorded_and_compared(repo, monkeypatch):
    from vrnn.lab.experiments import runner
    from vrnn.lab.experiments.reports import particle_filter_table

    path = repo / "benchmarks" / "tiny" / "experiment.toml"
    text = path.read_text().replace("iw_samples = 3", "iw_samples = 3\nsmc_particles = [2, 5]")
    path.write_text(text.replace("seeds = [0, 1]\n", "seeds = [0, 1]\nsmc_particles = [2]\n"))
    folder = _run(repo).parent
    ev = read_results(folder)["evaluations"]["rolls"]
    for key in ("vrnn-seed0", "vrnn-seed1"):
        assert sorted(ev[key]["smc_particles"]) == ["2"] and ev[key]["eval_overrides"] == {"smc_particles": [2]}
    exp = load_experiment(path)
    table = "\n".join(particle_filter_table(exp, read_results(folder), ["rolls"]))
    assert "| model | seeds | IS, K = 3 | PF, K = 2 | PF, K = 5 |" in table
    assert re.search(r"\| VRNN \| 2 \| \S+ ± \S+ \| \S+ ± \S+ \| — \|", table), table
    seen = []
    real = runner.evaluate_checkpoint
    monkeypatch.setattr(runner, "evaluate_checkpoint", lambda p, **kw: seen.append((Path(p).name, kw["particles"]))
                        or real(p, **kw))
    _run(repo, eval_only=True, only_new=True)
    assert seen == []  # the same settings, the run's own included: every evaluation kept
    path.write_text(text.replace("seeds = [0, 1]\n", "seeds = [0, 1]\nsmc_particles = [5]\n"))
    _run(repo, eval_only=True, only_new=True)
    assert sorted(seen) == [("vrnn-seed0.pt", (5,)), ("vrnn-seed1.pt", (5,))]  # only the run whose counts changed


def test_results_json_keeps_each_list_of_numbers_on_one_line_with_its_values_unchanged():
    from vrnn.io import dumps_json

    data = {"sequences": {"elbo": [-2777.123456789012, 1e-05, float("inf"), -float("inf")], "keys": ["a", "b"]},
            "rows": [[1, 2], [3]]}
    text = dumps_json(data)
    assert '"elbo": [-2777.123456789012,1e-05,Infinity,-Infinity]' in text and '[1,2]' in text
    assert '"keys": [\n' in text  # lists of strings keep one item per line
    assert json.loads(text) == data and text.endswith("}\n")


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
    (("iw_samples = 3", 'iw_samples = 3\nestimator = "both"'), "eval.estimator is 'both'; set it to one of is, smc"),
    (("iw_samples = 3", "iw_samples = 3\nsmc_particles = [250, 40]"),
     r"eval.smc_particles is \(250, 40\); set it to a list of increasing particle counts"),
    (("iw_samples = 3", "iw_samples = 3\nsmc_particles = 40"), "eval.smc_particles: expected a tuple, got 40"),
    (('title = "Tiny"', 'title = "Tiny"\nweights = "int4"'), "weights is 'int4'; set it to one of float16, int8"),
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


@pytest.mark.parametrize("weights", ["float16", "int8"])
def test_exported_checkpoints_hold_the_experiments_weights_that_load_into_the_model(repo, weights):
    from vrnn.checkpoint import load_checkpoint, load_model

    path = repo / "benchmarks" / "tiny" / "experiment.toml"
    if weights == "int8":
        path.write_text(f'weights = "{weights}"\n' + path.read_text())
    folder = _run(repo).parent
    stored = torch.load(folder / "checkpoints/rolls/vrnn-seed0.pt", weights_only=True)["model"]
    assert {v.dtype for v in stored.values() if v.dim() >= 2} == {getattr(torch, weights)}
    ckpt = load_checkpoint(folder / "checkpoints/rolls/vrnn-seed0.pt")
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


def test_checkpoints_trained_on_other_data_are_refused_by_name_with_the_retrain_command(repo, capsys):
    """A committed checkpoint whose data file has changed (its sha256), or whose data set the experiment no
    longer names, is stale: evaluation and training stop with one line naming it and `--retrain`."""
    import shutil

    folder = _run(repo).parent
    capsys.readouterr()
    data = repo.parent / "data"
    shutil.copy(data / "rolls.npz", data / "rolls-copy.npz")
    write_arrays(data / "rolls.npz", dim=5, binary=True, sizes=(20, 8, 8))  # the same name, other sequences
    for kw in ({"eval_only": True}, {}):
        with pytest.raises(VrnnError, match=r"checkpoints/rolls/rnn\.pt: stale: trained on \{data_dir\}/rolls\.npz "
                                            r"with sha256 \w+…, but the file now has \w+….* --retrain --runs rnn "
                                            r"--data rolls --seeds 0$"):
            _run(repo, **kw)
    assert "training" not in capsys.readouterr().out  # refused before any training
    path = folder / "experiment.toml"
    path.write_text(path.read_text().replace("{data_dir}/rolls.npz", "{data_dir}/rolls-copy.npz"))
    with pytest.raises(VrnnError, match="trained on '{data_dir}/rolls.npz', but it names '{data_dir}/rolls-copy.npz'"):
        _run(repo, eval_only=True)
    _run(repo, retrain=True)  # trained again on the data named now: evaluated
    assert _run(repo, eval_only=True).is_file()


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


# ---- a user's own experiment: no layout, data by prepared name or a file beside it (issue 25) ----------
USER = """
# my study: no title and no report layout (the generic report), configs beside this file

[eval]
iw_samples = 2
batch_size = 8

[data.mine]
source = "mine"                  # a data set `vrnn prepare ... --as mine` cached
about = "my rolls, prepared"

[data.file]
source = "data/rolls.npz"        # a file, relative to this file's folder

[runs.rnn]
config = "rnn.toml"
data = ["mine", "file"]

[runs.vrnn]
label = "VRNN"
config = "vrnn.toml"
data = ["file"]
seeds = [0, 1]
"""


@pytest.fixture
def study(tmp_path, monkeypatch) -> Path:
    """A user's experiment file outside any repository layout, and the prepared data set it names."""
    from vrnn.data import DataConfig, load_dataset
    from vrnn.data.core import save_prepared

    folder = tmp_path / "home" / "study"
    (folder / "data").mkdir(parents=True)
    write_arrays(folder / "data" / "rolls.npz", dim=5, binary=True)
    monkeypatch.setenv("VRNN_DATA_DIR", str(tmp_path / "cache"))
    save_prepared(tmp_path / "cache" / "mine.npz", load_dataset(DataConfig(source=str(folder / "data" / "rolls.npz"))))
    for kind, extra in (("rnn", ""), ("vrnn", "z_dim = 3")):
        (folder / f"{kind}.toml").write_text(CONFIG.format(kind=kind, extra=extra))
    (folder / "my-study.toml").write_text(USER)
    return folder / "my-study.toml"


def test_an_experiment_without_a_layout_gets_the_generic_report(study, tmp_path):
    out = run_experiment(study, work=tmp_path / "work", quiet=True)
    text = out.read_text()
    for paper in ("SRNN", "Table", "paper", "Published", "published", "Fig."):
        assert paper not in text, paper
    lines = text.splitlines()
    assert lines[0] == "# my-study"  # no title: the file's name
    for i, line in enumerate(lines):  # every heading has content under it before the next heading
        if line.startswith("#"):
            following = [x for x in lines[i + 1:] if x.strip()]
            assert following and not following[0].startswith("#"), line
    assert [x for x in lines if x.startswith("## ")] == ["## mine", "## file"]
    assert "nats per time step" in text and "nats/step" in text and "nats/seq." in text
    results = json.loads((study.parent / "results.json").read_text())
    seeds = [results["evaluations"]["file"][f"vrnn-seed{s}"]["log_likelihood"]["per_step_total"] for s in (0, 1)]
    mean_row = next(x for x in lines if x.startswith("| **VRNN: mean ± sd, 2 seeds** |"))
    assert f"{np.mean(seeds):.3f} ± {np.std(seeds, ddof=1):.3f}" in mean_row
    assert sum(x.startswith("| rnn |") for x in lines) == 2 and "| VRNN (seed 1) |" in text
    kls = [results["evaluations"]["file"][f"vrnn-seed{s}"]["kl"]["per_step_total"] for s in (0, 1)]
    assert "| KL nats/step |" in text and f"{np.mean(kls):.3f} ± {np.std(kls, ddof=1):.3f}" in mean_row
    for data in ("mine", "file"):
        assert f"](curves-{data}.png)" in text and (study.parent / f"curves-{data}.png").stat().st_size > 0
    assert main(["experiment", str(study), "--eval-only"]) == 0
    assert out.read_text() == text


def test_the_generic_report_measures_the_experiments_claims(study, tmp_path):
    study.write_text(USER + '\n[[report_options.claims]]\nclaim = "latents help"\npaper = "yes"\nkind = "likelihood"\n'
                     'data = "file"\na = "vrnn"\nb = "rnn"\n')
    text = run_experiment(study, work=tmp_path / "work", quiet=True).read_text()
    row = next(x for x in text.splitlines() if x.startswith("| 1 | latents help (file) |"))
    assert "ahead in" in row and row.rstrip().endswith(("(2 vs 1 seed) |", "nats per step (< 0.01); its lead is the "
                                                        "architecture's |"))


def test_a_named_layout_still_renders_its_paper_table(repo):
    out = _run(repo)
    text = out.read_text()
    assert "Published numbers on this data (SRNN Table 2" in text  # the polyphonic layout, not the generic one
    # its KL column: each latent seed's test KL per step (— for the exact RNN), the seeds' range on the mean row
    evaluations = read_results(out.parent)["evaluations"]["rolls"]
    cells = {line.split(" | ")[0].lstrip("| "): line.split(" | ")[5] for line in text.splitlines()
             if line.startswith("| ") and "| KL per step |" not in line and "---" not in line}
    kls = [evaluations[f"vrnn-seed{s}"]["kl"]["per_step_total"] for s in (0, 1)]
    assert cells["RNN"] == "—" and all(kl > 0 for kl in kls)
    assert [float(cells[f"VRNN (seed {s})"]) for s in (0, 1)] == pytest.approx(kls, rel=0.01, abs=1e-3)
    assert cells["**VRNN: mean ± sd, 2 seeds**"] == " – ".join(reports._kl(v) for v in sorted(kls))


@pytest.mark.parametrize("source, needles", [
    ("nothing-here", ("[data.mine] source", "'nothing-here'", "vrnn prepare")),
    ("chorales", ("[data.mine] source", "not prepared yet", "vrnn prepare chorales")),
    ("data/nope.npz", ("[data.mine] source", "data/nope.npz", "not found", "relative to")),
    ("data", ("[data.mine] source", "a folder, not a data file", "prepare = { recipe")),
])
def test_a_missing_data_source_of_a_users_experiment_is_one_line_saying_what_to_do(study, capsys, source, needles):
    study.write_text(study.read_text().replace('source = "mine"', f'source = "{source}"'))
    code = main(["experiment", str(study), "--eval-only"])
    one_error_line(code, capsys.readouterr().err, str(study), *needles)


def test_a_recipes_source_is_relative_to_the_experiment_file_too(study, tmp_path, monkeypatch):
    from vrnn.lab.experiments.runner import resolve_source

    write_midi_folder(study.parent / "music", 5)
    study.write_text(study.read_text().replace('source = "mine"', 'source = "tunes"\n'
                                               'prepare = { recipe = "midi", source = "music" }'))
    monkeypatch.chdir(tmp_path)  # not the experiment's folder
    assert resolve_source(load_experiment(study), "mine", tmp_path / "unused") == "tunes"
    assert (tmp_path / "cache" / "tunes.npz").is_file()


# ---- a search: settings chosen on the validation split (issue 23) ------------------------------------
# no candidate is the config's own setting (lr = 3e-3, hidden = 8): seeds that ignored the choice would show
SEARCH = ('segment_steps = 2\n', 'segment_steps = 2\nseeds = [0, 1]\nsearch = { "train.lr" = [1e-5, 1e-2], '
          '"model.hidden" = [4, 6] }\nsearch_data = "rolls"\n')
FROM = ('segment_steps = 4\n', 'segment_steps = 4\nsettings_from = "rnn"\n')  # the VRNN takes the RNN's choice
GRID = [["train.lr=1e-05", "model.hidden=4"], ["train.lr=1e-05", "model.hidden=6"],
        ["train.lr=0.01", "model.hidden=4"], ["train.lr=0.01", "model.hidden=6"]]


@pytest.fixture(scope="module")
def searched(tmp_path_factory):
    """The tiny repository with a 2 x 2 search on its RNN (2 seeds), trained once; every evaluation it ran,
    as (checkpoint relative to the experiment folder, split, report)."""
    from vrnn.lab.experiments import runner, search

    root = tmp_path_factory.mktemp("search") / "repo"
    (root / "configs").mkdir(parents=True)
    (root / "configs" / "rnn.toml").write_text(CONFIG.format(kind="rnn", extra=""))
    (root / "configs" / "vrnn.toml").write_text(CONFIG.format(kind="vrnn", extra="z_dim = 3"))
    (root / "benchmarks" / "tiny").mkdir(parents=True)
    (root / "benchmarks" / "tiny" / "experiment.toml").write_text(EXPERIMENT.replace(*SEARCH).replace(*FROM))
    (root.parent / "data").mkdir()
    write_arrays(root.parent / "data" / "rolls.npz", dim=5, binary=True)
    calls = []

    def spy(path, split="test", **kw):
        report = runner_evaluate(path, split=split, **kw)
        calls.append((Path(path).relative_to(root / "benchmarks" / "tiny").as_posix(), split, report))
        return report

    runner_evaluate = runner.evaluate_checkpoint
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(runner, "evaluate_checkpoint", spy)
        mp.setattr(search, "evaluate_checkpoint", spy)
        out = _run(root)
    return root, out, calls


def test_a_search_trains_every_candidate_and_scores_it_on_validation_only(searched):
    root, out, calls = searched
    folder = out.parent
    table = json.loads((folder / "checkpoints/search/rnn/search.json").read_text())
    assert [c["set"] for c in table["candidates"]] == GRID  # the grid in order, the first setting slowest
    for i, c in enumerate(table["candidates"]):
        ckpt = load_checkpoint(folder / c["checkpoint"].split("benchmarks/tiny/")[1])
        assert (root / "runs/search/rolls" / f"rnn-c{i}" / "best.pt").is_file()  # trained like any run
        assert ckpt["config"]["train"]["lr"] == float(GRID[i][0].split("=")[1])
        assert ckpt["config"]["model"]["hidden"] == int(GRID[i][1].split("=")[1])
        scored = [(split, r) for path, split, r in calls if path == f"checkpoints/search/rnn/c{i}.pt"]
        assert [split for split, _ in scored] == ["valid"]  # scored once, on validation, never on test
        assert c["score"] == c["valid"]["log_likelihood"] == scored[0][1]["log_likelihood"]["per_step_total"]
    assert table["split"] == "valid" and table["data"] == "rolls" and table["seed"] == 0


def test_the_chosen_candidate_is_the_best_on_validation_and_the_seeds_train_with_it(searched):
    _, out, _ = searched
    folder = out.parent
    table = json.loads((folder / "checkpoints/search/rnn/search.json").read_text())
    scores = [c["score"] for c in table["candidates"]]
    assert table["chosen"] == scores.index(max(scores)) and table["chosen_set"] == GRID[table["chosen"]]
    lr, hidden = (float(v.split("=")[1]) for v in table["chosen_set"])
    for key in ("rnn-seed0", "rnn-seed1", "vrnn-seed0", "vrnn-seed1"):  # the VRNN: settings_from = "rnn"
        info = json.loads((folder / f"checkpoints/rolls/{key}.json").read_text())
        assert info["search_chosen"] == table["chosen_set"]
        cfg = load_checkpoint(folder / f"checkpoints/rolls/{key}.pt")["config"]
        assert (cfg["train"]["lr"], cfg["model"]["hidden"]) == (lr, hidden)


def test_the_seed_the_search_trained_already_is_its_chosen_candidate_not_a_second_training(searched, tmp_path):
    from vrnn.lab.experiments import runner

    root, out, _ = searched
    folder, exp = out.parent, load_experiment(out.parent / "experiment.toml")
    table = json.loads((folder / "checkpoints/search/rnn/search.json").read_text())
    chosen = folder / f"checkpoints/search/rnn/c{table['chosen']}.pt"
    seed0, seed1 = (json.loads((folder / f"checkpoints/rolls/rnn-seed{s}.json").read_text()) for s in (0, 1))
    assert (folder / "checkpoints/rolls/rnn-seed0.pt").read_bytes() == chosen.read_bytes()
    assert f"c{table['chosen']}" in seed0["reused"] and "reused" not in seed1 and "search" not in seed0
    assert not (root / "runs/rolls/rnn-seed0").exists() and (root / "runs/rolls/rnn-seed1/best.pt").is_file()
    # the copy stands for a run that training would reproduce exactly: train it and compare the weights
    run = exp.runs["rnn"]
    info = runner.train_run(exp, run, "rolls", 0, str(root.parent / "data" / "rolls.npz"), tmp_path, resume=False,
                            overrides=table["chosen_set"], deadline=float("inf"), quiet=True)
    fresh = runner.export(exp, run, "rolls", 0, tmp_path, info, root.parent / "data", dest=tmp_path / "fresh.pt")
    a, b = load_checkpoint(fresh)["model"], load_checkpoint(chosen)["model"]
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_ties_go_to_the_first_candidate_and_a_non_finite_score_never_wins():
    from vrnn.lab.experiments.search import choose

    assert choose([1.0, 2.0, 2.0]) == 1
    assert choose([float("nan"), -5.0]) == 1 and choose([float("inf"), 0.0]) == 1


def test_the_one_se_rule_takes_the_smallest_candidate_not_measurably_worse_than_the_best():
    from vrnn.lab.experiments.search import choose_one_se

    # c1 is best; c2 is 0.2 behind with a paired SE of 0.5 and smaller: chosen; c0 is 5 behind: out
    assert choose_one_se([-10.0, -5.0, -5.2], [1.0, 0.0, 0.5], [100, 300, 200]) == 2
    assert choose_one_se([-10.0, -5.0, -5.2], [1.0, 0.0, 0.1], [100, 300, 200]) == 1  # 0.2 > 0.1: measurably worse
    assert choose_one_se([-5.1, -5.0, -5.1], [0.5, 0.0, 0.5], [200, 300, 200]) == 0  # equal size: the higher, first
    assert choose_one_se([-math.inf, -5.0], [0.0, 0.0], [1, 300]) == 1  # an ineligible candidate never wins
    assert choose_one_se([-5.2, -5.0], [float("nan"), 0.0], [1, 300]) == 1  # no SE: not shown to be close


def test_the_paired_se_is_zero_for_a_constant_shift_and_grows_with_the_noise_of_the_difference():
    from vrnn.lab.experiments.search import paired_se

    rng = np.random.default_rng(0)
    base = rng.normal(-100.0, 30.0, 400)  # the sequences differ a lot; the candidates' difference does not
    lengths, groups = np.full(400, 10.0), np.repeat(np.arange(100), 4)
    best = {"log_likelihood": base.tolist(), "lengths": lengths.tolist()}

    def other(noise):
        return {"log_likelihood": (base - 2.0 + noise * rng.normal(size=400)).tolist(), "lengths": lengths.tolist()}

    assert paired_se(best, best, "log_likelihood", groups) == 0.0
    assert paired_se(best, other(0.0), "log_likelihood", groups) < 1e-9
    small, large = (paired_se(best, other(n), "log_likelihood", groups) for n in (1.0, 10.0))
    assert 0 < small < large < 30.0 / np.sqrt(100) / 10  # far below the unpaired SE of one score
    assert large == pytest.approx(10.0 / np.sqrt(400) / 10, rel=0.3)  # per-step SE of the mean difference


def test_a_search_with_the_one_se_rule_records_sizes_and_paired_ses_and_chooses_by_them(searched):
    from vrnn.lab.experiments.reports import search_section
    from vrnn.lab.experiments.search import choose_one_se, score_search

    root, out, _ = searched
    exp = load_experiment(out.parent / "experiment.toml")
    path = out.parent / "checkpoints/search/rnn/search.json"
    saved = path.read_text()
    try:
        run = dataclasses.replace(exp.runs["rnn"], search_rule="one_se")
        table = score_search(exp, run, str(root.parent / "data" / "rolls.npz"))
    finally:
        path.write_text(saved)
    rows = table["candidates"]
    assert table["rule"] == "one_se"
    assert rows[0]["parameters"] < rows[1]["parameters"] and rows[2]["parameters"] < rows[3]["parameters"]  # hidden 4 < 6
    best = max(range(4), key=lambda i: rows[i]["score"])
    assert rows[best]["difference_se"] == 0.0 and all(r["difference_se"] > 0 for r in rows if r is not rows[best])
    assert table["chosen"] == choose_one_se([r["score"] for r in rows], [r["difference_se"] for r in rows],
                                            [r["parameters"] for r in rows])
    assert rows[table["chosen"]]["score"] >= rows[best]["score"] - rows[table["chosen"]]["difference_se"]
    text = "\n".join(search_section(exp, {"searches": {"rnn": table}}))
    assert "the one with the fewest parameters is chosen (the one-standard-error rule)" in text
    assert "| valid KL | parameters | SE of the difference from the best | |" in text
    assert f"| {rows[0]['parameters']:,} | {rows[0]['difference_se']:.3f} |" in text


def test_the_test_split_is_evaluated_only_for_the_chosen_configurations_seeds(searched):
    _, _, calls = searched
    tested = sorted(path for path, split, _ in calls if split == "test")
    assert tested == ["checkpoints/rolls/rnn-seed0.pt", "checkpoints/rolls/rnn-seed1.pt",
                      "checkpoints/rolls/vrnn-seed0.pt", "checkpoints/rolls/vrnn-seed1.pt"]
    assert all(split == "valid" for path, split, _ in calls if "search" in path)


def test_the_report_shows_the_whole_search_table_with_the_choice(searched):
    _, out, _ = searched
    table = json.loads((out.parent / "checkpoints/search/rnn/search.json").read_text())
    text = out.read_text()
    assert "chosen on the validation split; the test split was scored once, for the chosen configuration" in text
    assert f"RNN and VRNN train every seed with `{' '.join(table['chosen_set'])}`" in text
    assert "| candidate | train.lr | model.hidden | valid ELBO | valid log-lik. | valid KL | |" in text
    for c in table["candidates"]:
        row = f"| c{c['candidate']} | {c['set'][0].split('=')[1]} | {c['set'][1].split('=')[1]} | "
        assert row in text
        assert (row in text.split("**chosen**")[0].splitlines()[-1]) == (c["candidate"] == table["chosen"])
    assert json.loads((out.parent / "results.json").read_text())["searches"]["rnn"] == table


def test_eval_only_reproduces_the_search_and_the_report_without_training(searched, monkeypatch):
    from vrnn.lab.experiments import runner

    root, out, _ = searched
    before = {p: (out.parent / p).read_text() for p in ("RESULTS.md", "checkpoints/search/rnn/search.json")}

    def no_training(*args, **kw):
        raise AssertionError("--eval-only trained")

    monkeypatch.setattr(runner, "train_run", no_training)
    assert _run(root, eval_only=True) == out
    assert {p: (out.parent / p).read_text() for p in before} == before


def test_committed_candidates_or_seeds_of_another_search_are_refused(searched):
    root, out, _ = searched
    path = out.parent / "experiment.toml"
    text = path.read_text()
    try:
        path.write_text(text.replace("[1e-5, 1e-2]", "[1e-5, 1e-3]"))
        with pytest.raises(VrnnError, match="candidate 2 of \\[runs.rnn\\] search is now .*--retrain --runs rnn"):
            _run(root, eval_only=True)
    finally:
        path.write_text(text)
    info = out.parent / "checkpoints/rolls/rnn-seed1.json"
    saved = info.read_text()
    try:
        info.write_text(json.dumps(json.loads(saved) | {"search_chosen": ["model.hidden=2"]}))
        with pytest.raises(VrnnError, match="rnn-seed1.json: trained with .*--retrain --runs rnn"):
            _run(root, eval_only=True)
    finally:
        info.write_text(saved)


@pytest.mark.parametrize("old, new, message", [
    ('"model.hidden" = [4, 6]', '"hidden" = [4, 6]', "search key 'hidden' is not a setting; name it section.key"),
    ('"model.hidden" = [4, 6]', '"model.hidden" = []', "search 'model.hidden' is \\[\\]; give a non-empty list"),
    ('search_data = "rolls"', 'search_data = "nope"', "search_data 'nope' is not a \\[data.\\*\\] table"),
    ('search_data = "rolls"', 'search_data = "rolls"\nsearch_metric = "test"',
     "search_metric is 'test'; set it to one of log_likelihood, elbo"),
    ('search_data = "rolls"', 'search_data = "rolls"\nsmc_particles = [250, 40]',
     "smc_particles is \\[250, 40\\]; set it to a list of increasing particle counts, e.g. \\[40, 250, 1000\\], or "
     "\\[\\] for none"),
    ('search_data = "rolls"', 'search_data = "rolls"\nsearch_rule = "smallest"',
     "search_rule is 'smallest'; set it to one of best, one_se"),
    ('search_data = "rolls"\n', '', "search_data '' is not a \\[data.\\*\\] table"),
    ('segment_steps = 4\n', 'segment_steps = 4\nsettings_from = "vrnn"\n',
     "\\[runs.vrnn\\] settings_from: 'vrnn' is not a run with a search; name one of: rnn"),
    ('search_data = "rolls"\n', 'search_data = "rolls"\nsettings_from = "rnn"\n',
     "\\[runs.rnn\\] settings_from: it has a search of its own"),
])
def test_mistakes_in_a_search_are_one_line_errors(repo, old, new, message):
    path = repo / "benchmarks" / "tiny" / "experiment.toml"
    path.write_text(path.read_text().replace(*SEARCH).replace(old, new))
    with pytest.raises(VrnnError, match=message):
        load_experiment(path)


def test_two_processes_share_a_search_with_candidates(repo):
    """``--candidates``: each process trains its share of the grid; the search is scored (and the seeds
    train) only once every candidate is committed, whichever process finishes last."""
    path = repo / "benchmarks" / "tiny" / "experiment.toml"
    path.write_text(path.read_text().replace(*SEARCH))
    folder = repo / "benchmarks" / "tiny" / "checkpoints"
    _run(repo, runs=["rnn"], candidates=[0, 2], train_only=True)
    assert sorted(p.name for p in (folder / "search" / "rnn").glob("c*.pt")) == ["c0.pt", "c2.pt"]
    assert not (folder / "search" / "rnn" / "search.json").exists() and not (folder / "rolls").exists()
    _run(repo, runs=["rnn"], candidates=[1, 3], train_only=True)
    table = json.loads((folder / "search" / "rnn" / "search.json").read_text())
    assert [c["candidate"] for c in table["candidates"]] == [0, 1, 2, 3]
    assert sorted(p.name for p in (folder / "rolls").glob("rnn-seed*.pt")) == ["rnn-seed0.pt", "rnn-seed1.pt"]
    assert main(["experiment", str(path), "--candidates", "one"]) == 2


def test_time_to_quality_reads_validation_and_scores_test_once(repo):
    """The time-to-quality report plots the trainer's validation curve; the test split appears once, for the
    checkpoint validation chose. An experiment asking for a curve on any split (``curve_split``) is refused. An
    ``intro`` list: its first line ends with the hardware, the others follow as they are."""
    path = repo / "benchmarks" / "tiny" / "experiment.toml"
    path.write_text(EXPERIMENT.replace('report = "polyphonic"', 'report = "time_to_quality"')
                    .split("[runs.vrnn]")[0] + '[report_options]\ntarget = -3.0\nnear = 0.05\n'
                    'intro = ["Tiny.", "**How each setting was chosen.** Fixed."]\n')
    out = _run(repo)
    text = out.read_text()
    assert "\nTiny. " in text and "\n**How each setting was chosen.** Fixed.\n" in text  # the hardware ends the first
    info = json.loads((out.parent / "checkpoints" / "rolls" / "rnn.json").read_text())
    best = max(info["curve"], key=lambda p: p["valid_elbo_per_step"])
    assert f"best ELBO {best['valid_elbo_per_step']:.3f} nats per step at step {best['step']}" in text
    assert text.count("Test split, scored once") == 1 and "test elbo" not in text.lower().replace("test split", "")
    assert "test_curve" not in info and (out.parent / "curve.png").read_bytes()[:4] == b"\x89PNG"
    path.write_text(path.read_text().replace("segment_steps = 2", 'segment_steps = 2\ncurve_split = "test"'))
    with pytest.raises(VrnnError, match="curve_split"):
        load_experiment(path)


def test_a_kl_bar_keeps_candidates_whose_latents_are_unused_from_being_chosen(repo):
    """``search_min_kl``: a candidate whose validation KL per step is below the bar is not eligible; with the
    bar between the candidates' KLs the best eligible one is chosen, and with none eligible the table says so."""
    path = repo / "benchmarks" / "tiny" / "experiment.toml"
    search = ('segment_steps = 4\n', 'segment_steps = 4\nsearch = { "train.lr" = [1e-4, 3e-2, 1e-2] }\n'
              'search_data = "rolls"\nsearch_metric = "elbo"\n')
    path.write_text(EXPERIMENT.replace(*search))
    _run(repo, runs=["vrnn"], train_only=True)
    table = json.loads((repo / "benchmarks/tiny/checkpoints/search/vrnn/search.json").read_text())
    kls = [c["valid"]["kl"] for c in table["candidates"]]
    best = table["chosen"]
    assert len(set(kls)) == 3 and all(c["eligible"] for c in table["candidates"])
    bar = kls[best] + 1e-6  # the best one's KL is now below the bar
    assert any(k >= bar for k in kls), kls  # (else the bar would exclude every candidate: the case below)
    path.write_text(path.read_text().replace('search_metric = "elbo"\n', f'search_metric = "elbo"\nsearch_min_kl '
                                             f'= {bar!r}\n'))
    with pytest.raises(VrnnError, match="--retrain"):  # the seeds were trained with the old choice
        _run(repo, eval_only=True)
    table = json.loads((repo / "benchmarks/tiny/checkpoints/search/vrnn/search.json").read_text())
    eligible = [i for i, k in enumerate(kls) if k >= bar]
    assert table["chosen"] != best and table["chosen"] in eligible and table["min_kl_met"]
    assert table["chosen"] == max(eligible, key=lambda i: table["candidates"][i]["score"])
    path.write_text(EXPERIMENT.replace(*search).replace('search_metric = "elbo"\n',
                                                         'search_metric = "elbo"\nsearch_min_kl = 1e6\n'))
    text = _run(repo, eval_only=True).read_text()  # the choice is the seeds' again
    assert "no candidate reached a validation KL of 1e+06 nats per step" in text
    table = json.loads((repo / "benchmarks/tiny/checkpoints/search/vrnn/search.json").read_text())
    assert table["chosen"] == best and not table["min_kl_met"]  # none eligible: the best of all, flagged
