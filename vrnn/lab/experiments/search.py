"""A run's settings chosen on the validation split (``search`` in ``[runs.NAME]``, issue 23).

::

    [runs.srnn]
    config = "configs/srnn-polyphonic.toml"
    data = ["jsb-srnn", "nottingham-srnn"]
    seeds = [0, 1, 2]
    search = { "model.dropout" = [0.0, 0.2, 0.4], "train.ema" = [0.0, 0.99] }
    search_data = "jsb-srnn"     # the data set whose validation split chooses
    search_seed = 0              # the seed every candidate trains with
    search_metric = "log_likelihood"   # or "elbo"
    search_min_kl = 0.05         # optional: eligible only with a validation KL of at least this per step

Every candidate of the grid (each a list of ``--set`` overrides, in order: the first setting varies
slowest) trains like any run — in resumable segments, under ``--work``/``search`` — and is exported to
``checkpoints/search/<run>/c<i>.pt``. Each is evaluated, with the experiment's ``[eval]`` settings
(importance sampling), on the **validation** split of ``search_data`` only; the best by
``search_metric`` is chosen (ties: the first) among the candidates whose validation KL per step is at least
``search_min_kl`` (latents in use; when none is, the best of all, and the table says the bar was not met).
With ``search_rule = "one_se"`` the choice is instead the eligible candidate with the fewest parameters whose
score is within one standard error of the best's — the SE of the paired per-sequence difference from the
best on the same validation sequences, from a bootstrap over source files (:func:`choose_one_se`; the
"one-standard-error rule" of Breiman et al. 1984, paired because every candidate reads the same sequences):
a candidate that is not measurably worse and is smaller wins. The whole table goes to
``checkpoints/search/<run>/search.json`` and into ``results.json``, and the report renders it
(:func:`vrnn.lab.experiments.reports.search_section`). Then the run's own seeds train with the chosen
overrides added, and only their checkpoints are evaluated on the test split: no test number feeds
the choice. ``--eval-only`` re-scores the committed candidates, so it re-creates the table without training.
"""
from __future__ import annotations

import dataclasses
import json
import math

import numpy as np

from ...api import evaluate_checkpoint
from ...checkpoint import load_model
from ...data import DataConfig, load_dataset
from ...errors import VrnnError
from .claims import clustered_se, file_groups
from .spec import Experiment, RunSpec

SENTENCE = "chosen on the validation split; the test split was scored once, for the chosen configuration"


def candidate_run(run: RunSpec, i: int) -> RunSpec:
    """Candidate ``i`` of ``run``'s search as a run of its own: the run's overrides and the candidate's, one
    seed and no search."""
    return dataclasses.replace(run, name=f"{run.name}-c{i}", overrides=(*run.overrides, *run.candidates()[i]),
                               seeds=(run.search_seed,), per_data=(), search=())


def committed(exp: Experiment, run: RunSpec, i: int) -> bool:
    """Whether candidate ``i``'s checkpoint is committed; an error when it was trained with other settings."""
    path = exp.search_folder(run) / f"c{i}.pt"
    if not path.is_file():
        return False
    info = path.with_suffix(".json")
    trained = json.loads(info.read_text()).get("search") if info.is_file() else None
    if trained != list(run.candidates()[i]):
        raise VrnnError(f"{path}: trained with {trained}, but candidate {i} of [runs.{run.name}] search is now "
                        f"{list(run.candidates()[i])}; pass --retrain --runs {run.name} to train the search again")
    return True


def score_search(exp: Experiment, run: RunSpec, source: str) -> dict:
    """Every committed candidate scored on the validation split of ``search_data``, the chosen one (by
    ``search_rule``) marked; written to ``search.json`` and returned (for results.json)."""
    ev, folder = exp.eval, exp.search_folder(run)
    data = load_dataset(DataConfig(source=source))
    rows, sequences = [], []
    for i, overrides in enumerate(run.candidates()):
        if not committed(exp, run, i):
            raise VrnnError(f"{folder / f'c{i}.pt'}: candidate {i} of [runs.{run.name}] search is not trained; "
                            "train first (run without --eval-only)")
        path = folder / f"c{i}.pt"
        r = evaluate_checkpoint(path, split="valid", iw_samples=ev.iw_samples, batch_size=ev.batch_size, data=data,
                                per_sequence=run.search_rule == "one_se")
        valid = {key: r[key]["per_step_total"] for key in ("elbo", "log_likelihood", "kl")}
        rows.append({"candidate": i, "set": list(overrides), "checkpoint": str(path.relative_to(exp.root)),
                     "step": r["step"], "valid": valid, "score": valid[run.search_metric],
                     "eligible": valid["kl"] >= run.search_min_kl})
        if run.search_rule == "one_se":
            rows[-1]["parameters"] = sum(p.numel() for p in load_model(path)[0].parameters())
            sequences.append(r["sequences"])
    met = any(row["eligible"] for row in rows)  # none eligible: the best of all, and the table says so
    scores = [row["score"] if row["eligible"] or not met else -math.inf for row in rows]
    chosen = choose(scores)
    if run.search_rule == "one_se":
        groups = _groups(data, len(sequences[0]["lengths"]))
        for row, seqs in zip(rows, sequences):
            row["difference_se"] = paired_se(sequences[chosen], seqs, run.search_metric, groups)
        chosen = choose_one_se(scores, [row["difference_se"] for row in rows], [row["parameters"] for row in rows])
    table = {"run": run.name, "data": run.search_data, "seed": run.search_seed, "split": "valid",
             "metric": run.search_metric, "units": "nats per time step (total over total steps), model units",
             "iw_samples": ev.iw_samples, "settings": [k for k, _ in run.search], "candidates": rows,
             "min_kl": run.search_min_kl, "min_kl_met": met, "rule": run.search_rule,
             "chosen": chosen, "chosen_set": rows[chosen]["set"], "protocol": SENTENCE}
    (folder / "search.json").write_text(json.dumps(table, indent=1) + "\n")
    return table


def _groups(data, n: int) -> np.ndarray:
    """The source file of each of the ``n`` validation sequences, else one group per sequence."""
    groups = file_groups(data.meta.get("file_sequences", {}).get("valid"), n)
    return np.arange(n) if groups is None else groups


def paired_se(best: dict, other: dict, metric: str, groups: np.ndarray) -> float:
    """Bootstrap SE (over ``groups``) of the per-step total/total difference ``best`` − ``other`` of two
    candidates' per-sequence ``metric`` on the same sequences; 0 for a candidate against itself."""
    diff = np.asarray(best[metric], dtype=np.float64) - np.asarray(other[metric], dtype=np.float64)
    if not diff.any():
        return 0.0
    return clustered_se(diff, groups, lengths=np.asarray(other["lengths"], dtype=np.float64))


def choose_one_se(scores: list[float], ses: list[float], parameters: list[int]) -> int:
    """The one-standard-error rule: among the candidates whose score is at least the best's minus the SE of
    their paired difference from it, the one with the fewest parameters (ties: the higher score, then the
    first). A non-finite score (ineligible) is never chosen."""
    best = choose(scores)
    near = [i for i, v in enumerate(scores) if math.isfinite(v) and v >= scores[best] - ses[i]]
    return min(near, key=lambda i: (parameters[i], -scores[i], i))


def choose(scores: list[float]) -> int:
    """The index of the highest score; ties go to the first, and a non-finite score never wins."""
    ranked = [v if math.isfinite(v) else -math.inf for v in scores]
    return max(range(len(ranked)), key=lambda i: (ranked[i], -i))


def check_chosen(exp: Experiment, run: RunSpec, table: dict) -> None:
    """The committed seeds of ``run`` were trained with the settings its search (or the search of the run it
    takes its settings from) chooses now."""
    for r, d, seed in exp.cells():
        info = exp.checkpoint(r, d, seed).with_suffix(".json")
        if r is run and info.is_file() and json.loads(info.read_text()).get("search_chosen") != table["chosen_set"]:
            raise VrnnError(f"{info}: trained with {json.loads(info.read_text()).get('search_chosen')}, but the "
                            f"search of [runs.{run.chooser}] chooses {table['chosen_set']}; pass --retrain --runs "
                            f"{run.name} to train its seeds with the chosen settings")
