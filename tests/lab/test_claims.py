"""The verdict rules of the claims tables (issue 23), on evaluations made up to test each rule: seed
counts in every verdict, "yes" only when every seed pair agrees, a bootstrap clustered by source file,
ties in orderings, and "latents unused" for a latent model whose KL is about zero."""
from __future__ import annotations

import re
from types import SimpleNamespace

import numpy as np
import pytest

from vrnn.lab.experiments import claims


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


def test_an_ordering_shows_ties_and_does_not_say_yes_through_unused_latents():
    exp, res = _setup({"a": [10.0, 11.0], "b": [5.0, 6.0], "c": [5.05, 5.95]})
    text, verdict = claims.ordering(exp, res, {"data": "d", "runs": ["a", "b", "c"]})
    assert " > " in text and " = " in text and verdict == "not resolved: 1 tie (2/2/2 seeds)"
    exp, res = _setup({"a": [10.0, 11.0], "b": [5.0, 6.0], "c": [0.0, 1.0]})
    assert claims.ordering(exp, res, {"data": "d", "runs": ["a", "b", "c"]})[1] == "yes (2/2/2 seeds)"
    assert claims.ordering(exp, res, {"data": "d", "runs": ["c", "b", "a"]})[1] == "no (2/2/2 seeds)"
    exp, res = _setup({"a": [10.0, 11.0], "b": [5.0, 6.0], "c": [0.0, 1.0]}, kl={"a": 0.0})
    assert claims.ordering(exp, res, {"data": "d", "runs": ["a", "b", "c"]})[1].startswith("latents unused in A")
