"""Watching a run (issue 25): the progress line states the stopping rules (validation score, best and its
step, patience, learning-rate drops) with no ETA, one plain line per evaluation off a terminal; TensorBoard's
event files hold log.jsonl's numbers at the same steps, posterior-scale histograms and a sample."""
from __future__ import annotations

import dataclasses
import io
import json
import re
import sys

import pytest

from vrnn.cli import main
from vrnn.training.options import TrainConfig
from vrnn.training.run import RunState
from vrnn.training.trainer import fit
from vrnn.training.watch import Progress, evaluation_summary, scalar_tag

from conftest import one_error_line, tiny_config


def read_log(run) -> list[dict]:
    return [json.loads(line) for line in open(run / "log.jsonl")]


LINE = re.compile(r"step (\d+) \(at most (\d+)\) epoch (\d+) \[\d+ s, [\d.]+ steps/s\] \| train elbo (\S+) kl (\S+) \| "
                  r"valid elbo (\S+) \| best (\S+) at step (\d+) \| patience (\d+)/(\d+) \| lr ([-+.e\d]+)(.*)")


def test_off_a_terminal_each_evaluation_is_one_plain_line_that_matches_the_log(tmp_path, real_npz, capsys):
    """stderr captured (no terminal): no bar refreshes, one line per evaluation, its numbers those of log.jsonl;
    lr = 1e-30 makes every evaluation after the first a plateau, so patience runs down and the rate drops."""
    cfg = tiny_config("vrnn", "conditional", source=str(real_npz), lr=1e-30, max_steps=50, eval_every=2, patience=2,
                      lr_drops=1)
    result = fit(cfg, tmp_path / "run", progress=True)
    err = capsys.readouterr().err
    log = read_log(tmp_path / "run")
    assert "\r" not in err and "ETA" not in err and "<" not in err
    lines = err.strip().splitlines()
    assert len(lines) == len(log) == result.steps // 2 == 5  # best, 2 bad (drop), 2 bad (stop)
    for line, r in zip(lines, log):
        m = LINE.fullmatch(line)
        assert m, line
        step, cap, epoch, t_elbo, t_kl, valid, best, best_step, left, patience, lr, drops = m.groups()
        assert (int(step), int(cap), int(epoch)) == (r["step"], 50, r["epoch"])
        assert float(valid) == pytest.approx(r["valid_elbo_per_step"], abs=1e-4)
        assert float(best) == pytest.approx(r["best_valid_score_per_step"], abs=1e-4) and best_step == "2"
        assert float(t_elbo) == pytest.approx(r["train_elbo_per_step"], abs=1e-3)
        assert float(lr) == pytest.approx(r["lr"], rel=0.05) and int(patience) == 2
    assert [int(LINE.fullmatch(x).group(9)) for x in lines] == [2, 1, 2, 1, 0]  # patience left; it restarts at the drop
    assert [LINE.fullmatch(x).group(12) for x in lines] == [", drops 0/1"] * 2 + [" -> 1.0e-31 (drop 1/1)"] + [
        ", drops 1/1"] * 2


def test_a_bound_shows_its_score_beside_the_elbo():
    tc = TrainConfig(objective="fivo", particles=4, patience=5)
    state = RunState(step=30, best=-3.0, bad_evals=1, best_step=20)
    record = {"step": 30, "watched": "fivo (K = 4)", "valid_score_per_step": -3.25, "valid_elbo_per_step": -3.5,
              "lr": 1e-3}
    assert evaluation_summary(record, state, tc) == ("valid fivo (K = 4) -3.2500 (elbo -3.5000) | best -3.0000 at "
                                                     "step 20 | patience 4/5 | lr 1.0e-03")


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_on_a_terminal_the_bar_has_a_cap_but_no_total_or_eta_and_shows_the_last_evaluation():
    tc, state, stream = TrainConfig(max_steps=30000, patience=4), RunState(step=100), Terminal()
    bar = Progress(True, tc, state, stream=stream)
    bar.step({"elbo": -5.0, "kl": 1.5}, epoch=2)
    state.step, state.best, state.best_step = 101, -4.5, 101
    bar.evaluated({"step": 101, "watched": "elbo", "valid_score_per_step": -4.5, "valid_elbo_per_step": -4.5,
                   "lr": 3e-3}, state)
    bar.step({"elbo": -4.9, "kl": 1.4}, epoch=2)
    bar.bar.refresh()
    shown = stream.getvalue().split("\r")[-1]
    bar.close()
    assert shown.startswith("step 102 (at most 30000)") and "ETA" not in shown and "%" not in shown, shown
    assert "valid elbo -4.5000 | best -4.5000 at step 101 | patience 4/4 | lr 3.0e-03 | epoch 2 | train elbo -4.900 " \
           "kl 1.400" in shown, shown


def test_log_keys_become_grouped_tensorboard_tags():
    assert [scalar_tag(k) for k in ("valid_elbo_per_step", "best_valid_score_per_step", "train_kl_per_step", "lr")] \
        == ["valid/elbo", "valid/best_score", "train/kl", "train/lr"]


def events(folder):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(folder), size_guidance={"scalars": 0, "histograms": 0, "images": 0})
    acc.Reload()
    return acc


def test_tensorboard_event_files_hold_the_logs_numbers_at_its_steps(tmp_path, real_npz):
    pytest.importorskip("tensorboard")
    cfg = tiny_config("vrnn", "conditional", source=str(real_npz), max_steps=6, eval_every=2, tensorboard=True)
    fit(cfg, tmp_path / "run", progress=False)
    log, acc = read_log(tmp_path / "run"), events(tmp_path / "run" / "tensorboard")
    steps = [r["step"] for r in log]
    assert all(r["valid_kl_per_step"] > 0 for r in log)  # the validation KL is logged (a VRNN's is positive)
    for key in ("valid_elbo_per_step", "valid_kl_per_step", "valid_score_per_step", "best_valid_score_per_step", "train_elbo_per_step",
                "train_kl_per_step", "lr", "kl_weight", "lr_drops"):
        scalars = acc.Scalars(scalar_tag(key))
        assert [s.step for s in scalars] == steps, key
        assert [s.value for s in scalars] == pytest.approx([r[key] for r in log], rel=1e-6), key
    for tag in ("posterior/scale", "posterior/scale_mean"):
        hists = acc.Histograms(tag)
        assert [h.step for h in hists] == steps and all(h.histogram_value.min > 0 for h in hists)
    assert [i.step for i in acc.Images("sample")] == steps


@pytest.mark.parametrize("kind", ["rnn", "vrnn"])
def test_tensorboard_changes_nothing_of_the_run_and_the_flag_names_the_folder(tmp_path, real_npz, kind):
    """--tensorboard DIR writes there (and not into the run); the run's log is that of a run without it, with
    a weight average and plateaus that restore the best weights (as in test_train's lr_drop_restore test)."""
    pytest.importorskip("tensorboard")
    cfg = tiny_config(kind, "conditional" if kind == "vrnn" else None, source=str(real_npz), max_steps=8, eval_every=1,
                      lr=0.3, ema=0.5, patience=1, lr_drops=6, lr_drop_factor=0.5, lr_drop_restore=True)
    fit(cfg, tmp_path / "plain", progress=False)
    fit(cfg, tmp_path / "watched", progress=False, tensorboard=tmp_path / "tb")
    timing = ("elapsed_s", "steps_per_s")
    strip = lambda log: [{k: v for k, v in r.items() if k not in timing} for r in log]  # noqa: E731
    assert strip(read_log(tmp_path / "plain")) == strip(read_log(tmp_path / "watched"))
    assert max(r["lr_drops"] for r in read_log(tmp_path / "plain")) > 0
    assert all((r["valid_kl_per_step"] == 0) == (kind == "rnn") for r in read_log(tmp_path / "plain"))
    assert not (tmp_path / "watched" / "tensorboard").exists()
    acc = events(tmp_path / "tb")
    assert [s.step for s in acc.Scalars("valid/elbo")] == list(range(1, 9))
    assert bool(acc.Tags()["histograms"]) == (kind == "vrnn")  # posterior scales where there are latents


def test_without_tensorboard_installed_the_error_is_one_line_naming_the_extra(tmp_path, real_npz, capsys,
                                                                              monkeypatch):
    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", None)  # import fails as if not installed
    code = main(["train", "--config", "configs/rnn-gauss.toml", "--set", f"data.source={real_npz}",
                 "--set", "train.max_steps=2", "--out", str(tmp_path / "run"), "--tensorboard", str(tmp_path / "tb")])
    one_error_line(code, capsys.readouterr().err, "pip install 'vrnn[tensorboard]'")
    assert not (tmp_path / "run" / "last.pt").exists()


def test_a_resumed_run_may_turn_tensorboard_on(tmp_path, real_npz):
    """train.tensorboard changes only what is logged: --resume takes it like a stopping rule."""
    pytest.importorskip("tensorboard")
    fit(tiny_config("rnn", None, source=str(real_npz), max_steps=2, eval_every=2), tmp_path / "run", progress=False)
    cfg = tiny_config("rnn", None, source=str(real_npz), max_steps=4, eval_every=2, tensorboard=True)
    fit(cfg, tmp_path / "run", resume=True, progress=False)
    assert [s.step for s in events(tmp_path / "run" / "tensorboard").Scalars("valid/elbo")] == [4]


def test_a_resumed_run_replaces_the_events_a_killed_run_wrote_past_its_checkpoint(tmp_path, real_npz):
    """A run killed after TensorBoard saw steps 4 and 6 but whose last.pt holds step 2 (here: last.pt put back)
    resumes at 2; the curves then show each step once, with the resumed run's values."""
    pytest.importorskip("tensorboard")
    from vrnn.checkpoint import load_checkpoint, save_checkpoint

    cfg = tiny_config("rnn", None, source=str(real_npz), max_steps=6, eval_every=2, tensorboard=True, seed=1)
    fit(cfg.replace(train=dataclasses.replace(cfg.train, max_steps=2)), tmp_path / "run", progress=False)
    at_two = load_checkpoint(tmp_path / "run" / "last.pt")
    fit(cfg, tmp_path / "run", resume=True, progress=False)
    save_checkpoint(tmp_path / "run" / "last.pt", at_two)  # as if killed after step 6's events, before its files
    (tmp_path / "run" / "log.jsonl").write_text((tmp_path / "run" / "log.jsonl").read_text().splitlines()[0] + "\n")
    fit(cfg, tmp_path / "run", resume=True, progress=False)
    scalars = events(tmp_path / "run" / "tensorboard").Scalars("valid/elbo")
    assert [s.step for s in scalars] == [2, 4, 6]
    assert [s.value for s in scalars] == pytest.approx([r["valid_elbo_per_step"] for r in read_log(tmp_path / "run")])
