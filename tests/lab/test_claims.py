"""The verdict rules of the claims tables (issue 23), on evaluations made up to test each rule: seed
counts in every verdict, "yes" only when every seed pair agrees, a bootstrap clustered by source file,
ties in orderings, and "latents unused" for a latent model whose KL is about zero."""
from __future__ import annotations

import json
import re
from types import SimpleNamespace

import numpy as np
import pytest

from vrnn.data import SequenceData
from vrnn.lab.experiments import claims
from vrnn.lab.experiments.runner import data_summary


def _run(name: str, seeds: int):
    return SimpleNamespace(label=name.upper(), seeds=list(range(seeds)), key=lambda s, n=name: f"{n}-seed{s}")


def _report(values, kl: float | None) -> dict:
    return {"sequences": {"log_likelihood": list(values)}, "checkpoint": "x.pt",
            "log_likelihood_method": "exact" if kl is None else "importance_sampling",
            "kl": {"per_step_total": 0.0 if kl is None else kl}}


def _setup(levels: dict[str, list[float]], kl: dict[str, float | None] | None = None, n: int = 60, noise=1.0):
    """Runs whose seed s scores ``levels[run][s]`` + the same per-sequence noise on every run (paired)."""
    rng = np.random.default_rng(0)
    base = rng.normal(0, 10, n)
    exp = SimpleNamespace(runs={r: _run(r, len(v)) for r, v in levels.items()}, root=".")
    evals = {f"{r}-seed{s}": _report(base + level + rng.normal(0, noise, n), (kl or {}).get(r))
             for r, v in levels.items() for s, level in enumerate(v)}
    return exp, {"evaluations": {"d": evals}, "data": {}}


def test_yes_needs_every_seed_pair_and_states_the_seed_counts():
    exp, res = _setup({"a": [5.0, 6.0, 7.0], "b": [0.0, 1.0, 2.0]})
    text, verdict = claims.likelihood(exp, res, {"data": "d", "a": "a", "b": "b"})
    assert verdict == "yes (3 vs 3 seeds)" and "ahead in 9 of 9 seed pairs" in text
    # the same mean gap, but one seed of a below one seed of b: not every seed agrees
    exp, res = _setup({"a": [0.5, 6.0, 11.5], "b": [0.0, 1.0, 2.0]})
    text, verdict = claims.likelihood(exp, res, {"data": "d", "a": "a", "b": "b"})
    assert verdict == "not resolved (3 vs 3 seeds)" and "ahead in 7 of 9 seed pairs" in text
    assert re.search(r"A 6\.\d ± 5\.\d \(3 seeds\)", text)  # the spread over seeds (levels 0.5, 6, 11.5), not sequences
    exp, res = _setup({"a": [0.0, 1.0], "b": [5.0, 6.0]})
    assert claims.likelihood(exp, res, {"data": "d", "a": "a", "b": "b"})[1] == "no: the opposite holds (2 vs 2 seeds)"


def test_a_latent_model_with_no_kl_never_gets_yes():
    exp, res = _setup({"a": [5.0, 6.0, 7.0], "b": [0.0, 1.0, 2.0]}, kl={"a": 0.002})
    _, verdict = claims.likelihood(exp, res, {"data": "d", "a": "a", "b": "b"})
    assert verdict.startswith("latents unused") and "0.002" in verdict
    exp, res = _setup({"a": [5.0, 6.0, 7.0], "b": [0.0, 1.0, 2.0]}, kl={"a": 0.5})
    assert claims.likelihood(exp, res, {"data": "d", "a": "a", "b": "b"})[1] == "yes (3 vs 3 seeds)"
    # the threshold is the claim's when it sets one
    assert claims.likelihood(exp, res, {"data": "d", "a": "a", "b": "b", "kl_threshold": 1.0})[1].startswith("latents")


def test_a_latent_models_bound_behind_an_exact_likelihood_is_not_resolved_but_ahead_of_it_is_yes():
    # a latent model (importance-sampled: a lower bound) behind an exact model: nothing is shown
    exp, res = _setup({"a": [0.0, 1.0, 2.0], "b": [5.0, 6.0, 7.0]}, kl={"a": 0.5})
    verdict = claims.likelihood(exp, res, {"data": "d", "a": "a", "b": "b"})[1]
    assert verdict == "not resolved: A's estimate is a lower bound, below B's exact likelihood (3 vs 3 seeds)"
    verdict = claims.likelihood(exp, res, {"data": "d", "a": "b", "b": "a"})[1]  # the exact one named first: same
    assert verdict == "not resolved: A's estimate is a lower bound, below B's exact likelihood (3 vs 3 seeds)"
    # ahead of the exact one: its bound already is, so the verdict stands
    exp, res = _setup({"a": [5.0, 6.0, 7.0], "b": [0.0, 1.0, 2.0]}, kl={"a": 0.5})
    assert claims.likelihood(exp, res, {"data": "d", "a": "a", "b": "b"})[1] == "yes (3 vs 3 seeds)"
    assert claims.likelihood(exp, res, {"data": "d", "a": "b", "b": "a"})[1] == "no: the opposite holds (3 vs 3 seeds)"


def test_an_alignment_claim_with_controls_says_yes_only_above_every_control_on_every_seed_pair(monkeypatch):
    from pathlib import Path

    from vrnn.errors import VrnnError
    from vrnn.lab import analysis

    rho = {"v0": 0.30, "v1": 0.22, "v2": 0.31, "r0": 0.23, "r1": 0.20, "r2": 0.18, "i0": 0.03, "i1": 0.09, "i2": 0.10}
    seen = []

    def measured(path, signal="delta", **kw):
        seen.append((Path(path).stem, signal))
        return {"spearman": rho[Path(path).stem], "raw_spearman": 0.5, "shuffled_mean": 0.0, "shuffled_sd": 0.01,
                "p_value": 0.001, "steps": 100, "sequences": 10}

    monkeypatch.setattr(analysis, "latent_alignment", measured)
    exp = SimpleNamespace(runs={r: _run(r, 3) for r in ("v", "r", "i")}, root=Path("."), path="experiment.toml")
    evals = {f"{r}-seed{s}": {"checkpoint": f"{r}{s}.pt", "kl": {"per_step_total": 0.5},
                             "log_likelihood_method": "importance_sampling"} for r in "vri" for s in range(3)}
    res = {"evaluations": {"d": evals}, "data": {}}
    claim = {"data": "d", "run": "v", "control": "loudness"}
    assert claims.alignment(exp, res, claim)[1] == "yes (3 seeds)"  # no controls named: the shuffle alone
    text, verdict = claims.alignment(exp, res, claim | {"than": [{"run": "i"}]})
    assert verdict == "yes (3 seeds; above every control on every seed pair)"
    assert "control I's δ_t: +0.030, +0.090, +0.100, below ours in 9 of 9 seed pairs" in text
    seen.clear()
    text, verdict = claims.alignment(exp, res, claim | {"than": [{"run": "i"}, {"run": "r", "signal": "hidden"}]})
    assert verdict == ("not resolved: aligned on every seed, but above R's ‖h_t − h_{t−1}‖ in only 8 of 9 seed "
                       "pairs (3 seeds)")  # seed 1's 0.22 is below the RNN's seed 0 (0.23)
    assert ("r0", "hidden") in seen and ("i0", "delta") in seen  # each control measured with its own signal
    for bad in ([{"run": "nope"}], [{"run": "r", "signal": "loud"}], {"run": "r"}):
        with pytest.raises(VrnnError, match=r"experiment.toml: report_options.claims\[0\].than = .*; give a list "
                                            r"of controls"):
            claims.check_claim(exp, {"kind": "alignment", "than": bad}, 0)


def test_the_bootstrap_is_clustered_by_source_file():
    """Sequences cut from one file move together: resampling files gives a wider standard error than
    resampling sequences, and as wide as the spread of the file means says."""
    rng = np.random.default_rng(1)
    files = np.repeat(np.arange(30), 10)
    values = rng.normal(0, 5, 30)[files] + rng.normal(0, 0.1, len(files))
    by_file, by_seq = claims.clustered_se(values, files), claims.clustered_se(values, np.arange(len(files)))
    assert by_file > 2.5 * by_seq
    assert by_file == pytest.approx(np.std(values.reshape(30, 10).mean(1), ddof=1) / np.sqrt(30), rel=0.2)
    assert by_seq == pytest.approx(values.std(ddof=1) / np.sqrt(len(values)), rel=0.2)


def test_the_clusters_come_from_results_json_not_from_the_data_on_this_machine():
    """A table is rendered from results.json alone: the record of each source file's test sequences is read
    there, whatever the prepared data on the rendering machine (missing here) holds."""
    results = {"data": {"d": {"source": "not-prepared-here", "test_file_sequences": [2, 3, 1]}}}
    groups, unit = claims.clusters(results, "d", 6)
    assert groups.tolist() == [0, 0, 1, 1, 1, 2] and unit == "3 source files"
    assert claims.clusters(results, "d", 5)[1] == "5 test sequences"  # a record that does not cover them: none
    del results["data"]["d"]["test_file_sequences"]
    assert claims.clusters(results, "d", 6)[1] == "6 test sequences"
    # the evaluation writes that record from the prepared data's file_sequences
    x = np.zeros((6, 4, 2), np.float32)
    data = SequenceData.from_arrays(x, x, x, kind="real", file_sequences={"train": [6], "valid": [6], "test": [2, 3, 1]})
    assert data_summary(data)["test_file_sequences"] == [2, 3, 1]


def test_an_ordering_shows_ties_and_does_not_say_yes_through_unused_latents():
    exp, res = _setup({"a": [10.0, 11.0], "b": [5.0, 6.0], "c": [5.05, 5.95]})
    text, verdict = claims.ordering(exp, res, {"data": "d", "runs": ["a", "b", "c"]})
    assert " > " in text and " = " in text and verdict == "not resolved: 1 tie (2/2/2 seeds)"
    exp, res = _setup({"a": [10.0, 11.0], "b": [5.0, 6.0], "c": [0.0, 1.0]})
    assert claims.ordering(exp, res, {"data": "d", "runs": ["a", "b", "c"]})[1] == "yes (2/2/2 seeds)"
    assert claims.ordering(exp, res, {"data": "d", "runs": ["c", "b", "a"]})[1] == "no (2/2/2 seeds)"
    exp, res = _setup({"a": [10.0, 11.0], "b": [5.0, 6.0], "c": [0.0, 1.0]}, kl={"a": 0.0})
    assert claims.ordering(exp, res, {"data": "d", "runs": ["a", "b", "c"]})[1].startswith("latents unused in A")


def _with_particles(res: dict, drift: dict[str, float], ks=(250, 1000)) -> dict:
    """Each latent report gets particle-filter estimates: its IS numbers at the largest K, and ``drift[run]``
    nats per sequence lower at the K before it."""
    for key, rep in res["evaluations"]["d"].items():
        if rep["log_likelihood_method"] == "exact":
            continue
        seq = np.asarray(rep["sequences"]["log_likelihood"])
        d = drift[key.rsplit("-seed", 1)[0]]
        rep["smc_particles"] = {str(k): {"sequences": list(seq - (d if k != ks[-1] else 0.0))} for k in ks}
    return res


def test_a_particle_filter_claim_ranks_only_when_the_estimate_has_settled():
    """estimator = "smc": the gap at the largest K, and "not rankable" when a model's estimate moved more from
    the second-largest K to the largest than the gap between the two models."""
    claim = {"data": "d", "a": "a", "b": "b", "estimator": "smc"}
    exp, res = _setup({"a": [5.0, 6.0, 7.0], "b": [0.0, 1.0, 2.0]}, kl={"a": 0.5, "b": 0.5})
    text, verdict = claims.likelihood(exp, _with_particles(res, {"a": 1.0, "b": 0.5}), claim)
    assert verdict == "yes (3 vs 3 seeds)" and "particle filter, K = 1000" in text and "A +1.0, B +0.5" in text
    exp, res = _setup({"a": [5.0, 6.0, 7.0], "b": [0.0, 1.0, 2.0]}, kl={"a": 0.5, "b": 0.5})
    verdict = claims.likelihood(exp, _with_particles(res, {"a": 0.5, "b": 8.0}), claim)[1]
    assert verdict == "not rankable: B's estimate moved +8.0 nats per sequence (K = 250 to 1000), more than the gap " \
                      "5.0 (3 vs 3 seeds)"
    exp, res = _setup({"a": [5.0, 6.0, 7.0], "b": [0.0, 1.0, 2.0]}, kl={"a": 0.5, "b": 0.5})
    verdict = claims.likelihood(exp, _with_particles(res, {"a": 0.0, "b": 0.0}, ks=(1000,)), claim)[1]
    assert verdict.startswith("not rankable: A has particle-filter estimates at K = 1000 only")
    exp, res = _setup({"a": [5.0, 6.0, 7.0], "b": [0.0, 1.0, 2.0]}, kl={"a": 0.5})  # b exact: its estimate is fixed
    text, verdict = claims.likelihood(exp, _with_particles(res, {"a": 1.0}), claim)
    assert verdict == "yes (3 vs 3 seeds)" and "A +1.0, B +0.0" in text
    exp, res = _setup({"a": [5.0, 6.0, 7.0], "b": [0.0, 1.0, 2.0]}, kl={"a": 0.5, "b": 0.5})
    assert claims.likelihood(exp, res, claim)[0].startswith("not measured")  # no particle-filter estimates


def test_an_unknown_estimator_is_a_one_line_error_naming_the_claim():
    from vrnn.errors import VrnnError

    exp, res = _setup({"a": [1.0], "b": [0.0]})
    exp.path, exp.report_options = "experiment.toml", {"claims": [{"kind": "likelihood", "data": "d", "a": "a",
                                                                   "b": "b", "estimator": "pf"}]}
    with pytest.raises(VrnnError, match=r"experiment.toml: report_options.claims\[0\].estimator = 'pf'; choose one of "
                                        r"is, smc"):
        claims.claims_table(exp, res)


def test_published_targets_every_seed_above_another_run_and_within_a_margin():
    from vrnn.lab.experiments.reports import polyphonic_targets
    from vrnn.lab.experiments.spec import RunSpec

    def found(name, values):
        run = RunSpec(name=name, label=name.upper(), config="c.toml", data=("d",))
        return [(run, None, f"{name} {i}", {"log_likelihood": {"per_step_total": v}}, {}) for i, v in enumerate(values)]

    base, overlap, clear = found("rnn", [-5.3, -5.1]), found("vrnn", [-5.2, -4.9]), found("srnn", [-5.05, -5.0])
    above = {"data": "d", "label": "above", "what": "log-likelihood", "above": "rnn", "every_seed": True,
             "targets": ["vrnn", "srnn"]}
    text = "\n".join(polyphonic_targets([above], "d", base + overlap + clear))
    # vrnn's mean is above rnn's, but its worst seed is below rnn's best: not above on every seed
    assert ("VRNN -5.050 ± 0.212 vs -5.200 ± 0.141 (worst seed -5.200, best of theirs -5.100; 2 vs 2 seeds): "
            "NOT above") in text
    assert "SRNN -5.025 ± 0.035 vs -5.200 ± 0.141 (worst seed -5.050, best of theirs -5.100; 2 vs 2 seeds): above" in text
    near = {"data": "d", "label": "published", "what": "log-likelihood", "value": -5.19, "margin": 0.1,
            "targets": ["rnn"]}
    assert "met at -5.29 or above (within 0.1)" in "\n".join(polyphonic_targets([near], "d", base))
    assert ": met." in "\n".join(polyphonic_targets([near], "d", base))  # mean -5.2 >= -5.29
    assert "NOT met" in "\n".join(polyphonic_targets([near | {"margin": 0.0}], "d", base))


def test_a_latent_target_behind_an_exact_run_is_not_shown_and_the_particle_filter_decides_where_evaluated():
    """``above`` with a log-likelihood: a latent model's lower bound below an exact run is "not shown", never
    "NOT above"; with particle-filter estimates at K on every seed, the largest such K is read (and named), per
    step as the normalisation asks; the particle-filter lines list every K beside IS."""
    from vrnn.lab.experiments.reports import polyphonic_particle_filter, polyphonic_targets
    from vrnn.lab.experiments.spec import RunSpec

    lengths = [10, 30]

    def found(name, seqs, method, pf=None):
        run = RunSpec(name=name, label=name.upper(), config="c.toml", data=("d",))
        rows = []
        for i, s in enumerate(seqs):
            r = {"log_likelihood": {"per_step_total": sum(s) / sum(lengths),
                                    "per_step_mean_of_sequences": float(np.mean(np.divide(s, lengths)))},
                 "log_likelihood_method": method, "iw_samples": 40, "sequences": {"lengths": lengths}}
            if pf is not None:
                r["smc_particles"] = {str(k): {"sequences": [v + k / 10 * (i + 1) for v in s]} for k in pf}
            rows.append((run, None, f"{name} {i}", r, {}))
        return rows

    base = found("rnn", [[-52.0, -150.0], [-51.0, -149.0]], "exact")  # -5.05, -5.00 per step
    behind = found("vrnn", [[-53.0, -151.0], [-52.5, -150.5]], "importance_sampling")  # -5.10, -5.075
    above = {"data": "d", "label": "above", "what": "log-likelihood", "above": "rnn", "every_seed": True,
             "targets": ["vrnn"]}
    text = "\n".join(polyphonic_targets([above], "d", base + behind))
    assert "NOT above" not in text and "(worst seed -5.100, best of theirs -5.000; 2 vs 2 seeds): not shown: a " \
        "lower bound below an exact likelihood" in text
    # the particle filter at K = 10 and 40 (+K/10 * seed number on each sequence): K = 40 lifts both seeds above
    lifted = found("vrnn", [[-53.0, -151.0], [-52.5, -150.5]], "importance_sampling", pf=[10, 40])
    text = "\n".join(polyphonic_targets([above], "d", base + lifted))
    k40, k10 = [(-204.0 + 8), (-203.0 + 16)], [(-204.0 + 2), (-203.0 + 4)]  # seeds' totals over 40 steps
    spread = lambda v: f"{np.mean(np.divide(v, 40)):.3f} ± {np.std(np.divide(v, 40), ddof=1):.3f}"  # noqa: E731
    assert f"VRNN by the particle filter, K = 40 {spread(k40)} vs -5.025 ± 0.035 (worst seed {min(k40) / 40:.3f}" in text
    assert text.rstrip().endswith("2 vs 2 seeds): above.")
    mean_of = "\n".join(polyphonic_targets([above | {"normalisation": "mean of pieces"}], "d", base + lifted))
    assert f"worst seed {np.mean([(-53.0 + 4) / 10, (-151.0 + 4) / 30]):.3f}" in mean_of
    lines = "\n".join(polyphonic_particle_filter(base + lifted))
    assert (f"- VRNN (2 seeds): IS, K = 40: -5.088 ± 0.018; particle filter, K = 10: {spread(k10)}; particle "
            f"filter, K = 40: {spread(k40)}.") in lines and "RNN (" not in lines.replace("VRNN (", "")


def test_the_output_table_sets_each_output_against_each_model_with_bits_where_discrete(tmp_path):
    """report_options.outputs (issue 24): a row per output, a column per model; mean ± sd over seeds in nats per
    sequence, bits per frame for a discrete output, the estimator and the seeds named; rows after the first
    leave the main table."""
    from vrnn.lab.experiments.reports import output_runs, output_table
    from vrnn.lab.experiments.spec import load_experiment

    runs = "".join(f'[runs.{r}]\nconfig = "c.toml"\ndata = ["d"]\nseeds = [0, 1]\n\n'
                   for r in ("rnn-gauss", "vrnn-gauss", "rnn-dlog", "vrnn-dlog"))
    path = tmp_path / "experiment.toml"
    path.write_text(f'[data.d]\nsource = "x.npz"\n\n{runs}[report_options.outputs]\ndata = "d"\n'
                    'models = ["RNN", "VRNN"]\nrows = [["(a) Gauss", "rnn-gauss", "vrnn-gauss"], '
                    '["(c) discretised", "rnn-dlog", "vrnn-dlog"]]\n')
    exp = load_experiment(path)

    def report(seqs, latent, bits=None):
        r = {"sequences": {"log_likelihood": seqs}, "log_likelihood_method": "importance_sampling" if latent
             else "exact", "iw_samples": 40 if latent else None}
        return r | ({"bits_per_frame": {"per_step_total": bits}} if bits is not None else {})

    ev = {"rnn-gauss-seed0": report([1.0, 3.0], False), "rnn-gauss-seed1": report([3.0, 5.0], False),
          "vrnn-gauss-seed0": report([10.0], True), "vrnn-gauss-seed1": report([12.0], True),
          "rnn-dlog-seed0": report([-100.0], False, 144.0), "rnn-dlog-seed1": report([-102.0], False, 146.0),
          "vrnn-dlog-seed0": report([-90.0], True, 130.0)}
    lines = output_table(exp, {"evaluations": {"d": ev}})
    assert "| (a) Gauss | 3.0 ± 1.4 (exact; 2 seeds) | 11.0 ± 1.4 (IS, K = 40; 2 seeds) |" in lines
    assert ("| (c) discretised | -101.0 ± 1.4; 145.0 ± 1.4 bits per frame (exact; 2 seeds) | -90.0; 130.0 bits per "
            "frame (IS, K = 40; 1 seed) |") in lines
    assert output_runs(exp.report_options) == {"rnn-dlog", "vrnn-dlog"}
    assert output_table(exp, {"evaluations": {}}) == []


def test_the_emission_cost_section_sets_nade_against_twice_the_bernoulli_step(tmp_path):
    from vrnn.lab.experiments.reports import emission_cost
    from vrnn.lab.experiments.spec import load_experiment

    path = tmp_path / "experiment.toml"
    path.write_text('[data.d]\nsource = "x.npz"\n[runs.r]\nconfig = "c.toml"\ndata = ["d"]\n'
                    '[report_options]\nemission_speed = "speed.json"\n')
    exp = load_experiment(path)
    assert emission_cost(exp) == []  # no measurement yet: no section
    m = {"command": "scripts/emission_speed.py --out speed.json", "hardware": "a CPU", "threads": 1, "repeats": 5,
         "hidden": 150, "date": "2026-12-05", "load_average": {"start": [2.5, 2, 2], "end": [2.0, 2, 2]},
         "emission_log_prob_fwd_bwd_ms": {"bernoulli": 6.0, "nade": 390.0},
         "srnn_training_step_ms": {"bernoulli": 250.0, "nade": 640.0}}
    (tmp_path / "speed.json").write_text(json.dumps(m))
    text = "\n".join(emission_cost(exp))
    assert "| whole SRNN training step | 250 ms | 640 ms (2.6×) |" in text and "1.56× — met." in text
    (tmp_path / "speed.json").write_text(json.dumps(m | {"emission_log_prob_fwd_bwd_ms": {"bernoulli": 6, "nade": 501}}))
    assert "2.00× — NOT met." in "\n".join(emission_cost(exp))


def test_a_claim_the_data_cannot_decide_keeps_its_measurement_and_says_not_testable(tmp_path, monkeypatch):
    from vrnn.lab.experiments import claims as mod
    from vrnn.lab.experiments.spec import load_experiment

    path = tmp_path / "experiment.toml"
    path.write_text('[data.d]\nsource = "x.npz"\n[runs.r]\nconfig = "c.toml"\ndata = ["d"]\n'
                    '[[report_options.claims]]\nclaim = "style persists"\nkind = "style"\ndata = "d"\na = "r"\nb = "r"\n'
                    'not_testable = "drawings too short"\n')
    monkeypatch.setitem(mod.MEASURES, "style", lambda exp, results, c: ("drift 1.2 vs 1.1", "yes (3 vs 3 seeds)"))
    row = mod.claims_table(load_experiment(path), {"evaluations": {"d": {}}})[-2]
    assert row.endswith("| drift 1.2 vs 1.1 | not testable on this data: drawings too short |")
