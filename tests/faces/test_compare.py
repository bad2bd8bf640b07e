"""`vrnn compare`: one table and one figure of several runs, whose numbers are the runs' own (the checkpoints',
their logs', the test evaluation's), and one line for every input that is not a run."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from conftest import one_error_line, tiny_config, write_arrays
from vrnn.api import evaluate_checkpoint
from vrnn.checkpoint import load_checkpoint, save_checkpoint
from vrnn.cli import main
from vrnn.training.compare import compare_runs
from vrnn.training.run import learning_curve
from vrnn.training.trainer import fit

REPO = Path(__file__).resolve().parents[2]
EXPORTED = REPO / "benchmarks" / "polyphonic" / "checkpoints" / "jsb-pickle" / "vrnn-i.pt"


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> dict:
    """Tiny runs on one data set: {name: (folder, FitResult)}; "patient" stops early, "iwae" watches another score."""
    root = tmp_path_factory.mktemp("compare")
    data = str(write_arrays(root / "rolls.npz", dim=5, binary=True))
    how = {"vrnn": tiny_config("vrnn", emission="bernoulli", x_dim=5, source=data, max_steps=8, eval_every=2),
           "rnn": tiny_config("rnn", None, "bernoulli", x_dim=5, source=data, max_steps=6, eval_every=2),
           "patient": tiny_config("vrnn", emission="bernoulli", x_dim=5, source=data, max_steps=400, eval_every=1,
                                  patience=1, lr=0.3),
           "iwae": tiny_config("vrnn", emission="bernoulli", x_dim=5, source=data, max_steps=2, eval_every=2,
                               objective="iwae", particles=2)}
    return {name: (root / name, fit(cfg, root / name, progress=False)) for name, cfg in how.items()}


def compare(capsys, *args) -> tuple[int, str, str]:
    code = main(["compare", *map(str, args)])
    out, err = capsys.readouterr()
    return code, out, err


def test_the_table_holds_each_runs_own_numbers_and_the_figure_is_written(runs, tmp_path, capsys):
    (vrnn, fv), (rnn, fr) = runs["vrnn"], runs["rnn"]
    plot = tmp_path / "curves.png"
    code, out, err = compare(capsys, vrnn, rnn / "best.pt", "--plot", plot)
    assert code == 0, err
    lines = out.splitlines()
    assert lines[0].split()[:5] == ["run", "model", "data", "steps", "stopped"] and "parameters" in lines[0]
    row = {line.split()[0]: line.split() for line in lines[2:4]}
    assert set(row) == {"vrnn", "rnn/best"}
    for name, folder, result in (("vrnn", vrnn, fv), ("rnn/best", rnn, fr)):
        best = load_checkpoint(folder / "best.pt")
        assert row[name][3:5] == [str(result.steps), result.stopped]
        assert row[name][5:7] == [f"{result.best_valid:.4f}", str(best["step"])]
        params = sum(p.numel() for p in result.model.parameters())
        assert row[name][-1] == f"{params:,}"
    assert "nats per time step" in out and f"wrote {plot}" in out
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_json_carries_the_curves_and_the_best_evaluation_lies_on_its_curve(runs, tmp_path, capsys):
    code, out, err = compare(capsys, runs["vrnn"][0], runs["rnn"][0], "--json", "--plot", tmp_path / "c.png")
    assert code == 0, err
    report = json.loads(out)
    assert report["plot"] == str(tmp_path / "c.png") and "nats per time step" in report["units"]
    for r, name in zip(report["runs"], ("vrnn", "rnn")):
        assert r["curve"] == learning_curve(runs[name][0] / "log.jsonl")
        top = max(r["curve"], key=lambda c: c["valid_score_per_step"])  # ties: the first, as the trainer keeps
        assert (r["best_step"], r["best_valid"]) == (top["step"], top["valid_score_per_step"])
        assert r["steps"] == r["curve"][-1]["step"] and r["test"] is None


def test_why_a_run_stopped_is_its_stopping_rule_or_unfinished(runs, tmp_path):
    folder, result = runs["patient"]
    assert result.stopped == "early_stopping"
    (run,) = compare_runs([str(folder)])
    assert (run.stopped, run.steps) == ("early_stopping", result.steps)
    killed = tmp_path / "killed"  # a run that stopped before its rules said so: killed, or still training
    killed.mkdir()
    for name in ("best.pt", "log.jsonl"):
        (killed / name).write_bytes((runs["vrnn"][0] / name).read_bytes())
    last = load_checkpoint(runs["vrnn"][0] / "last.pt")
    last["config"]["train"]["max_steps"] = 100
    save_checkpoint(killed / "last.pt", {k: v for k, v in last.items() if k not in ("format", "version", "path")})
    (run,) = compare_runs([str(killed)])
    assert run.stopped == "unfinished" and run.steps == runs["vrnn"][1].steps


def test_test_scores_are_the_evaluation_of_the_best_checkpoint_with_its_estimator(runs, tmp_path, capsys):
    code, out, err = compare(capsys, runs["vrnn"][0], runs["rnn"][0], "--test", "--iw-samples", "3",
                             "--plot", tmp_path / "c.png")
    assert code == 0, err
    assert "test log-lik." in out.splitlines()[0]
    for name, method in (("vrnn", "IS, K=3"), ("rnn", "exact")):
        expected = evaluate_checkpoint(runs[name][0] / "best.pt", split="test", iw_samples=3)
        row = next(line for line in out.splitlines() if line.startswith(name + " "))
        assert f"{expected['log_likelihood']['per_step_total']:.4f}  {method}" in row, row


def test_an_exported_checkpoint_brings_its_training_record_and_curve(tmp_path, capsys):
    info = json.loads(EXPORTED.with_suffix(".json").read_text())
    code, out, err = compare(capsys, EXPORTED, "--json", "--plot", tmp_path / "c.png")
    assert code == 0, err
    (r,) = json.loads(out)["runs"]
    assert (r["steps"], r["stopped"], r["train_seconds"]) == (info["steps"], info["stopped"], info["train_seconds"])
    assert (r["best_step"], r["best_valid"]) == (info["best_step"], pytest.approx(info["best_valid_per_step"]))
    assert r["curve"] == info["curve"] and r["name"] == "vrnn-i" and r["model"] == "VRNN-I-bernoulli"
    assert (tmp_path / "c.png").is_file()


def test_a_checkpoint_without_a_record_is_listed_without_a_curve(runs, tmp_path, capsys):
    lone = tmp_path / "lone.pt"
    lone.write_bytes((runs["rnn"][0] / "best.pt").read_bytes())
    code, out, err = compare(capsys, runs["vrnn"][0], lone, "--plot", tmp_path / "c.png")
    assert code == 0, err
    row = next(line for line in out.splitlines() if line.startswith("lone "))
    assert " unknown " in row and "—" in row  # no stopping record, no training time
    assert "no curve recorded for lone" in out


def bad_inputs(runs: dict, tmp: Path) -> list[tuple[list, tuple]]:
    (tmp / "empty").mkdir()
    (tmp / "notes.txt").write_text("hello")
    (tmp / "broken.pt").write_bytes(b"not a checkpoint")
    torch.save({"weights": torch.zeros(2)}, tmp / "foreign.pt")
    (tmp / "taken.png").write_bytes(b"x")
    vrnn = runs["vrnn"][0]
    return [([tmp / "missing"], ("missing", "not found", "vrnn train --out")),
            ([tmp / "empty"], ("empty", "not a run folder", "vrnn train --out")),
            ([tmp / "notes.txt"], ("notes.txt", "checkpoint (.pt)")),
            ([tmp / "broken.pt"], ("broken.pt", "not a vrnn checkpoint (a text file)")),
            ([tmp / "foreign.pt"], ("foreign.pt", "not a vrnn checkpoint")),
            ([vrnn, runs["iwae"][0]], ("iwae", "iwae (K = 2)", "elbo", "train.objective")),
            ([vrnn, "--plot", tmp / "taken.png"], ("taken.png", "--overwrite", "--plot"))]


def test_every_bad_input_is_one_line_naming_the_path_and_the_fix(runs, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)  # where the default --plot would go
    for args, needles in bad_inputs(runs, tmp_path):
        code, out, err = compare(capsys, *args)
        one_error_line(code, err, *needles)
        assert out == ""
    assert not (tmp_path / "compare.png").exists() and (tmp_path / "taken.png").read_bytes() == b"x"
