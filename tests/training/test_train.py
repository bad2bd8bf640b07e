"""Training, checkpoints and evaluation (issue 2)."""
import json

import pytest
import torch

from vrnn.api import evaluate_checkpoint
from vrnn.checkpoint import load_checkpoint, load_model, save_checkpoint
from vrnn.errors import TrainingDiverged, VrnnError
from vrnn.models import StepTerms, build_model
from vrnn.inference.objectives import training_loss
from vrnn.training.averaging import WeightAverage
from vrnn.training.schedules import epoch_order, kl_weight, learning_rate
from vrnn.training.trainer import fit

from conftest import tiny_config


def test_kl_weight_is_a_pure_linear_warm_up():
    assert kl_weight(0, 0.2, 100) == pytest.approx(0.2)
    assert kl_weight(50, 0.2, 100) == pytest.approx(0.6)
    assert kl_weight(100, 0.2, 100) == kl_weight(10_000, 0.2, 100) == 1.0
    assert kl_weight(0, 0.0, 0) == 1.0


def test_learning_rate_is_constant_then_halves_every_half_life():
    assert learning_rate(0, 1e-3, 100, 50.0) == learning_rate(100, 1e-3, 100, 50.0) == 1e-3
    assert learning_rate(150, 1e-3, 100, 50.0) == pytest.approx(5e-4)
    assert learning_rate(200, 1e-3, 100, 50.0) == pytest.approx(2.5e-4)
    assert learning_rate(10_000, 1e-3, 0, 0.0) == 1e-3  # no half-life: constant


def test_epoch_order_is_a_permutation_fixed_by_seed_and_epoch():
    a, b, c = epoch_order(50, 1, 3), epoch_order(50, 1, 3), epoch_order(50, 1, 4)
    assert a == b and a != c and sorted(a) == list(range(50))


def test_weight_average_is_the_warm_up_ema_exactly_across_a_resume():
    """The AveragedModel-based average equals a ← lerp(a, p, 1 − min(decay, (1+step)/(10+step))), starting
    from the initial weights, bit for bit, with two updates sharing each step (truncated BPTT) and the
    average restored from its state_dict in the middle, as a resumed run restores checkpoint["model"]."""
    cfg = tiny_config("vrnn", "conditional")
    torch.manual_seed(0)
    model = build_model(cfg.model)
    expected = [p.detach().clone() for p in model.parameters()]
    avg = WeightAverage(model, 0.9)

    def train(avg, steps):
        for step in steps:
            for _ in range(2):
                with torch.no_grad():  # a stand-in for an optimiser update
                    for p in model.parameters():
                        p.add_(torch.randn_like(p))
                avg.update(model, step)
                for a, p in zip(expected, model.parameters()):
                    a.lerp_(p, 1.0 - min(0.9, (1 + step) / (10 + step)))

    train(avg, range(3))
    resumed = WeightAverage(build_model(cfg.model), 0.9)
    resumed.module.load_state_dict(avg.module.state_dict())
    train(resumed, range(3, 6))
    for a, b in zip(expected, resumed.module.parameters()):
        assert torch.equal(a, b)
    assert set(resumed.module.state_dict()) == set(model.state_dict())  # a plain model's keys
    assert not any(p.requires_grad for p in resumed.module.parameters())


def _terms(batch: int, seed: int) -> StepTerms:
    g = torch.Generator().manual_seed(seed)
    lengths = torch.randint(1, 9, (batch,), generator=g)
    mask = torch.arange(8)[None, :] < lengths[:, None]  # (B, T)
    log_px, kl = (torch.randn(2, batch, 8, generator=g) * mask for _ in range(2))  # (K, B, T), padding zero
    return StepTerms(log_px.requires_grad_(), kl.abs().requires_grad_(), log_px, log_px, mask)


def test_ranks_training_losses_add_up_to_the_global_batchs():
    """Normalised by the global batch's real steps (summed over ranks), the ranks' losses and their
    gradients add up to the one-process loss of the whole batch; every rank reports the global numbers."""
    whole = _terms(6, 0)
    loss, stats = training_loss(whole, 0.3)
    same, same_stats = training_loss(whole, 0.3, sum_ranks=lambda t: t)  # one rank: nothing to sum
    assert torch.equal(loss, same) and stats == same_stats
    loss.backward()
    shards = [StepTerms(*(t[:, sl].detach().requires_grad_() for t in (whole.log_px, whole.kl)), whole.log_pz,
                        whole.log_qz, whole.mask[sl]) for sl in (slice(0, 2), slice(2, 6))]
    totals = []  # what an all-reduce of the ranks' (Σ log p, Σ KL, steps) sees
    for shard in shards:
        training_loss(shard, 0.3, sum_ranks=lambda t: totals.append(t.clone()) or t)
    total = sum(totals)
    parts = [training_loss(shard, 0.3, sum_ranks=lambda t: t.copy_(total)) for shard in shards]
    torch.testing.assert_close(sum(part for part, _ in parts), loss)
    for _, part_stats in parts:
        assert part_stats == pytest.approx(stats)
    sum(part for part, _ in parts).backward()
    torch.testing.assert_close(torch.cat([s.log_px.grad for s in shards], 1), whole.log_px.grad)
    torch.testing.assert_close(torch.cat([s.kl.grad for s in shards], 1), whole.kl.grad)


def test_checkpoint_round_trip_reproduces_eval_exactly(tmp_path, real_npz):
    cfg = tiny_config("vrnn", "conditional", "gmm", source=str(real_npz))
    result = fit(cfg, tmp_path / "run", progress=False)
    path = tmp_path / "run" / "best.pt"
    a = evaluate_checkpoint(path, iw_samples=5)
    b = evaluate_checkpoint(path, iw_samples=5)
    assert a == b
    # the in-memory model and the reloaded one give identical numbers
    model, norm, ckpt = load_model(path)
    assert ckpt["step"] <= result.steps
    assert a["elbo"]["per_step_total"] <= a["log_likelihood"]["per_step_total"] + 1.0


def test_a_checkpoint_rebuilds_its_model_from_the_model_section_alone(tmp_path, real_npz):
    """Loading a model reads ``[model]`` only (not the run's Config of :mod:`vrnn.training`): a file whose
    ``[train]`` this vrnn could not read still loads, with the same weights and the same numbers."""
    cfg = tiny_config("vrnn", "conditional", "gauss", source=str(real_npz), max_steps=2, eval_every=2)
    fit(cfg, tmp_path / "run", progress=False)
    ckpt = load_checkpoint(tmp_path / "run" / "best.pt")
    ckpt["config"] = {"model": ckpt["config"]["model"], "train": {"a_setting_from_elsewhere": 1}}
    save_checkpoint(tmp_path / "model-only.pt", {k: v for k, v in ckpt.items() if k not in ("format", "path")})
    original, _, _ = load_model(tmp_path / "run" / "best.pt")
    rebuilt, _, _ = load_model(tmp_path / "model-only.pt")
    x = torch.randn(2, 5, 3)
    noise = torch.randn(2, 5, original.z_dim)
    a, b = (m(x, samples=1, noise=noise) for m in (original, rebuilt))
    torch.testing.assert_close(a.log_px, b.log_px, rtol=0, atol=0)
    torch.testing.assert_close(a.kl, b.kl, rtol=0, atol=0)


def test_stopped_and_resumed_run_reaches_the_same_parameters(tmp_path, real_npz):
    schedule = {"kl_start": 0.2, "kl_warmup_steps": 5, "lr_decay_start": 3, "lr_half_life": 2.0}
    cfg = tiny_config("vrnn", "conditional", source=str(real_npz), max_steps=8, eval_every=2, **schedule)
    straight = fit(cfg, tmp_path / "a", progress=False).model
    half = tiny_config("vrnn", "conditional", source=str(real_npz), max_steps=4, eval_every=2, **schedule)
    fit(half, tmp_path / "b", progress=False)
    resumed = fit(cfg, tmp_path / "b", resume=True, progress=False).model
    for (name, p), q in zip(straight.state_dict().items(), resumed.state_dict().values()):
        assert torch.equal(p, q), f"{name} differs after resume"
    # the log of the resumed run continues the first one
    steps = [json.loads(line)["step"] for line in open(tmp_path / "b" / "log.jsonl")]
    assert steps == [2, 4, 6, 8]


def test_weight_average_is_what_checkpoints_hold_and_resume_is_exact(tmp_path, real_npz):
    schedule = {"ema": 0.9, "lr_decay_start": 3, "lr_half_life": 2.0}
    cfg = tiny_config("vrnn", "conditional", source=str(real_npz), max_steps=8, eval_every=2, **schedule)
    straight = fit(cfg, tmp_path / "a", progress=False).model
    ckpt = load_checkpoint(tmp_path / "a" / "last.pt")
    for name, p in straight.state_dict().items():
        assert torch.equal(p, ckpt["model"][name])  # evaluation and sampling read the average
    assert any(not torch.equal(ckpt["model"][k], ckpt["train_model"][k]) for k in ckpt["model"])
    half = tiny_config("vrnn", "conditional", source=str(real_npz), max_steps=4, eval_every=2, **schedule)
    fit(half, tmp_path / "b", progress=False)
    resumed = load_checkpoint(fit(cfg, tmp_path / "b", resume=True, progress=False).out / "last.pt")
    for key in ("model", "train_model"):
        for name, p in ckpt[key].items():
            assert torch.equal(p, resumed[key][name]), f"{key}.{name} differs after resume"
    with pytest.raises(VrnnError, match="train.ema"):
        fit(tiny_config("vrnn", "conditional", source=str(real_npz), ema=1.0), tmp_path / "c", progress=False)


def test_early_stopping_stops_when_validation_elbo_does_not_improve(tmp_path, real_npz):
    # train.lr must be > 0; 1e-30 moves no float32 weight (every Adam step is far below one ulp), as 0 would
    cfg = tiny_config("vrnn", "conditional", source=str(real_npz), lr=1e-30, max_steps=50, eval_every=1, patience=2)
    result = fit(cfg, tmp_path / "run", progress=False)
    assert result.stopped == "early_stopping" and result.steps == 3  # one best, then two without improvement


def test_a_plateau_drops_the_learning_rate_before_patience_stops_the_run(tmp_path, real_npz):
    """train.lr_drops: each time patience is spent the rate is multiplied by lr_drop_factor and patience
    starts again; the run stops at the plateau after the last drop. lr = 1e-30 makes every evaluation a plateau."""
    cfg = tiny_config("vrnn", "conditional", source=str(real_npz), lr=1e-30, max_steps=50, eval_every=1, patience=2,
                      lr_drops=2, lr_drop_factor=0.1)
    result = fit(cfg, tmp_path / "run", progress=False)
    assert result.stopped == "early_stopping" and result.steps == 7  # 1 best + (2 bad) × 3 plateaus
    log = [json.loads(line) for line in open(tmp_path / "run" / "log.jsonl")]
    assert [r["lr_drops"] for r in log] == [0, 0, 0, 1, 1, 2, 2]
    assert [r["lr"] for r in log] == pytest.approx([1e-30] * 3 + [1e-31] * 2 + [1e-32] * 2, rel=1e-9)
    assert load_checkpoint(tmp_path / "run" / "best.pt")["step"] == 1


def test_evaluations_inside_the_kl_warm_up_do_not_spend_patience(tmp_path, real_npz):
    """The full bound is validated while the KL weight still rises, so it may fall by schedule: patience
    counts from the end of the warm-up. lr = 1e-30 makes every evaluation after the first a plateau."""
    cfg = tiny_config("vrnn", "conditional", source=str(real_npz), lr=1e-30, max_steps=50, eval_every=1, patience=2,
                      kl_start=0.2, kl_warmup_steps=5)
    result = fit(cfg, tmp_path / "run", progress=False)
    assert result.stopped == "early_stopping" and result.steps == 7  # 1-5 trained (partly) below weight 1; 6, 7 spend it
    log = [json.loads(line) for line in open(tmp_path / "run" / "log.jsonl")]
    assert [r["kl_weight"] < 1 for r in log] == [True] * 5 + [False] * 2


def test_lr_drop_restore_goes_back_to_the_best_weights_at_each_drop(tmp_path, real_npz):
    """train.lr_drop_restore: the evaluation that drops the rate also puts the best evaluation's weights,
    weight average and optimiser state back, so its last.pt holds best.pt's; without it, the weights go on."""
    kw = dict(source=str(real_npz), eval_every=1, patience=1, lr_drops=6, lr_drop_factor=0.5, lr=0.3, ema=0.5)
    fit(tiny_config("vrnn", "conditional", max_steps=12, **kw), tmp_path / "probe", progress=False)
    log = [json.loads(line) for line in open(tmp_path / "probe" / "log.jsonl")]
    first = next(a["step"] for a, b in zip(log, log[1:]) if b["lr_drops"] > a["lr_drops"])  # the drop's evaluation
    for restore in (True, False):
        out = tmp_path / f"restore-{restore}"
        fit(tiny_config("vrnn", "conditional", max_steps=first, lr_drop_restore=restore, **kw), out, progress=False)
        last, best = load_checkpoint(out / "last.pt"), load_checkpoint(out / "best.pt")
        assert last["step"] == first and best["step"] < first and last["lr_drops"] == 1
        same = [torch.equal(last[k][n], best[k][n]) for k in ("model", "train_model") for n in best[k]]
        assert all(same) if restore else not all(same)
        moments = [torch.equal(last["optimizer"]["state"][i]["exp_avg"], best["optimizer"]["state"][i]["exp_avg"])
                   for i in best["optimizer"]["state"]]
        assert all(moments) if restore else not all(moments)


@pytest.mark.parametrize("restore", [False, True])
def test_a_run_resumed_across_learning_rate_drops_is_exact(tmp_path, real_npz, restore):
    kw = dict(source=str(real_npz), eval_every=1, patience=1, lr_drops=6, lr_drop_factor=0.5, lr=0.3,
              lr_drop_restore=restore)
    straight = fit(tiny_config("vrnn", "conditional", max_steps=10, **kw), tmp_path / "a", progress=False)
    fit(tiny_config("vrnn", "conditional", max_steps=5, **kw), tmp_path / "b", progress=False)
    resumed = fit(tiny_config("vrnn", "conditional", max_steps=10, **kw), tmp_path / "b", resume=True, progress=False)
    for (name, p), q in zip(straight.model.state_dict().items(), resumed.model.state_dict().values()):
        assert torch.equal(p, q), f"{name} differs after resume"
    logs = [[json.loads(line) for line in open(tmp_path / d / "log.jsonl")] for d in "ab"]
    assert [(r["lr"], r["lr_drops"]) for r in logs[0]] == [(r["lr"], r["lr_drops"]) for r in logs[1]]
    assert logs[0][-1]["lr_drops"] > 0  # the run did drop its rate (else this test shows nothing)


def test_a_warm_up_in_epochs_lasts_as_many_passes_over_any_training_split(tmp_path):
    """train.kl_warmup_epochs: the same config anneals over the same number of epochs on a data set
    3 times larger (3 times the steps); giving both warm-ups is refused."""
    from conftest import write_arrays

    warmups = []
    for n in (16, 48):
        src = write_arrays(tmp_path / f"d{n}.npz", sizes=(n, 4, 4))
        cfg = tiny_config("vrnn", "conditional", source=str(src), batch_size=8, max_steps=8, eval_every=1,
                          kl_start=0.0, kl_warmup_epochs=2.0)
        fit(cfg, tmp_path / f"r{n}", progress=False)
        log = [json.loads(line) for line in open(tmp_path / f"r{n}" / "log.jsonl")]
        steps = 2 * n // 8  # 2 epochs of n / 8 batches
        assert [r["kl_weight"] for r in log] == pytest.approx([min(1.0, s / steps) for s in range(8)])
        warmups.append(steps)
    assert warmups == [4, 12]
    with pytest.raises(VrnnError, match="both set"):
        tiny_config("vrnn", "conditional", kl_warmup_steps=10, kl_warmup_epochs=1.0)


@pytest.mark.parametrize("flush", [True, False])
def test_subnormals_are_flushed_while_training_and_restored_after(tmp_path, real_npz, monkeypatch, flush):
    """train.flush_denormal: training runs with subnormal floats flushed to zero (the CPU's slow path
    otherwise), and the process is back to IEEE subnormals afterwards."""
    seen = []
    real = torch.set_flush_denormal
    monkeypatch.setattr(torch, "set_flush_denormal", lambda on: (seen.append(on), real(on))[1])
    original = fit.__globals__["_train"]

    def probe(*args, **kw):  # what a multiplication inside training sees
        seen.append(("tiny", (torch.tensor([1e-39]) * 1.0).item()))
        return original(*args, **kw)

    monkeypatch.setitem(fit.__globals__, "_train", probe)
    fit(tiny_config("rnn", None, source=str(real_npz), max_steps=2, eval_every=2, flush_denormal=flush),
        tmp_path / "r", progress=False)
    assert seen[0] is flush and seen[-1] is False
    assert seen[1] == ("tiny", 0.0 if flush else pytest.approx(1e-39, rel=1e-3))
    assert (torch.tensor([1e-39]) * 1.0).item() > 0


def test_time_budget_stops_at_the_first_evaluation_past_it(tmp_path, real_npz):
    cfg = tiny_config("vrnn", "conditional", source=str(real_npz), max_steps=50, eval_every=2, max_minutes=1e-9)
    result = fit(cfg, tmp_path / "run", progress=False)
    assert result.stopped == "time_budget" and result.steps == 2
    assert load_checkpoint(tmp_path / "run" / "last.pt")["elapsed"] >= 60 * 1e-9


def test_existing_run_is_not_overwritten_without_flag(tmp_path, real_npz):
    cfg = tiny_config("rnn", None, source=str(real_npz), max_steps=2, eval_every=1)
    fit(cfg, tmp_path / "run", progress=False)
    before = (tmp_path / "run" / "best.pt").read_bytes()
    with pytest.raises(VrnnError, match="--overwrite"):
        fit(cfg, tmp_path / "run", progress=False)
    assert (tmp_path / "run" / "best.pt").read_bytes() == before
    fit(cfg, tmp_path / "run", overwrite=True, progress=False)


def test_nan_loss_stops_training_and_keeps_the_last_good_checkpoint(tmp_path, real_npz):
    good = tiny_config("vrnn", "conditional", source=str(real_npz), max_steps=2, eval_every=1)
    fit(good, tmp_path / "run", progress=False)
    last = tmp_path / "run" / "last.pt"
    # an absurd learning rate without clipping drives the parameters to overflow
    bad = tiny_config("vrnn", "conditional", source=str(real_npz), lr=1e12, clip_norm=0.0, max_steps=200,
                      eval_every=1)
    with pytest.raises(TrainingDiverged, match="keeps the last good state"):
        fit(bad, tmp_path / "run", resume=True, allow_changes=True, progress=False)  # new lr and clipping
    model, _, ckpt = load_model(last)
    assert all(torch.isfinite(p).all() for p in model.parameters())
    assert ckpt["step"] >= 2


def test_normaliser_comes_from_the_training_split_only(tmp_path, real_npz):
    import numpy as np

    cfg = tiny_config("rnn", None, source=str(real_npz), max_steps=1, eval_every=1)
    fit(cfg, tmp_path / "run", progress=False)
    _, norm, _ = load_model(tmp_path / "run" / "last.pt")
    with np.load(real_npz) as f:
        assert norm.mean == pytest.approx(float(f["train"].astype(np.float64).mean()), rel=1e-6)
        assert norm.std == pytest.approx(float(f["train"].astype(np.float64).std()), rel=1e-6)


def test_eval_report_states_units_and_both_scales(tmp_path, real_npz):
    cfg = tiny_config("vrnn", "independent", source=str(real_npz), max_steps=2, eval_every=1)
    fit(cfg, tmp_path / "run", progress=False)
    r = evaluate_checkpoint(tmp_path / "run" / "best.pt", iw_samples=3)
    assert r["units"] == "nats" and r["data_scale"].startswith("normalised")
    # original units differ from model units by the per-step Jacobian D·log σ
    _, norm, _ = load_model(tmp_path / "run" / "best.pt")
    shift = r["original_units"]["elbo"]["per_step_total"] - r["elbo"]["per_step_total"]
    assert shift == pytest.approx(-3 * float(np.log(norm.std)), rel=1e-6)


import numpy as np  # noqa: E402  (used above)


@pytest.mark.parametrize("objective", ["elbo", "iwae", "fivo"])
def test_the_progress_bar_shows_each_objective(tmp_path, binary_npz, objective, capsys):
    """With progress on (the default of `vrnn train`), every objective trains: a bound has no KL term to
    show (once, FIVO under the bar raised KeyError: 'elbo'). Captured stderr is no terminal: plain lines."""
    cfg = tiny_config("vrnn", "conditional", "bernoulli", x_dim=5, source=str(binary_npz), max_steps=3, eval_every=3,
                      objective=objective, particles=2)
    fit(cfg, tmp_path / "run", progress=True)
    shown = capsys.readouterr().err
    assert ("train bound " in shown) == (objective != "elbo") and (" kl " in shown) == (objective == "elbo")
