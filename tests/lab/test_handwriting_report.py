"""The handwriting report (VRNN Table 1's IAM-OnDB column) with several seeds per model, dequantised offsets and a
search: one row per model with mean ± sd over its seeds, every seed's own row, the dequantised units stated, and
the search table."""
from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np

from vrnn.lab.experiments.results import read_results
from vrnn.lab.experiments.runner import run_experiment

CONFIG = """
[model]
kind = "{kind}"
hidden = 8
width = 8
layers = 1
emission = {{ name = "strokes", components = {k} }}
{extra}
[train]
batch_size = 8
max_steps = 4
eval_every = 2
patience = 100
lr = 3e-3
"""

EXPERIMENT = """
title = "Tiny handwriting"
report = "handwriting"

[eval]
iw_samples = 3
batch_size = 4

[data.strokes]
source = "{data_dir}/strokes.npz"
about = "random pen strokes on an integer grid"

[runs.rnn-gmm]
label = "RNN-GMM"
config = "configs/rnn.toml"
data = ["strokes"]
set = ["data.dequantize=1.0"]
seeds = [0, 1]

[runs.vrnn-gmm]
label = "VRNN-GMM"
config = "configs/vrnn.toml"
data = ["strokes"]
set = ["data.dequantize=1.0"]
seeds = [0, 1]
search = { "train.free_bits" = [0.0, 0.5] }
search_data = "strokes"
search_metric = "log_likelihood"

[report_options]
published = { rnn-gmm = [0, 1358], vrnn-gmm = [1384, 1384] }
figure = { rows = 2, seed = 0, steps = 5 }
"""


def _strokes(path: Path, sizes=(24, 8, 8)) -> None:
    rng, arrays = np.random.default_rng(0), {}
    for split, n in zip(("train", "valid", "test"), sizes):
        seqs = []
        for _ in range(n):
            t = int(rng.integers(5, 12))
            pen = (rng.random(t) < 0.2).astype(np.float32)
            seqs.append(np.column_stack([rng.integers(-20, 21, (t, 2)).astype(np.float32), pen]))
        arrays[split] = np.concatenate(seqs)
        arrays[f"{split}_lengths"] = np.array([len(s) for s in seqs])
    np.savez(path, **arrays)


def test_seeds_are_summarised_and_listed_and_the_dequantised_units_stated(tmp_path):
    root = tmp_path / "repo"
    (root / "configs").mkdir(parents=True)
    (root / "configs" / "rnn.toml").write_text(CONFIG.format(kind="rnn", k=2, extra=""))
    (root / "configs" / "vrnn.toml").write_text(CONFIG.format(kind="vrnn", k=2, extra="z_dim = 3"))
    (root / "benchmarks" / "hw").mkdir(parents=True)
    (root / "benchmarks" / "hw" / "experiment.toml").write_text(EXPERIMENT)
    (tmp_path / "data").mkdir()
    _strokes(tmp_path / "data" / "strokes.npz")
    out = run_experiment(root / "benchmarks" / "hw" / "experiment.toml", data_dir=tmp_path / "data",
                         work=root / "runs", quiet=True)
    table, results = out.read_text(), read_results(out.parent)
    evals = results["evaluations"]["strokes"]
    ll = {k: evals[k]["log_likelihood"]["per_sequence"] for k in evals}
    mean, sd = np.mean([ll["rnn-gmm-seed0"], ll["rnn-gmm-seed1"]]), np.std([ll["rnn-gmm-seed0"], ll["rnn-gmm-seed1"]],
                                                                             ddof=1)
    row = next(line for line in table.splitlines() if line.startswith("| RNN-GMM | pen strokes"))
    assert f"| 2 | 4 | = LL | {mean:.1f} ± {sd:.1f} |" in row  # two seeds, their mean ± sd
    for seed in (0, 1):  # and every seed's own row, with its own number
        assert re.search(rf"^\| VRNN-GMM \| {seed} \| 4 \| ≥ \S+ \| {ll[f'vrnn-gmm-seed{seed}']:.1f} \|", table, re.M)
    assert evals["rnn-gmm-seed0"]["dequantized"]["width"] == 1.0
    assert "**Dequantised offsets.** The 2 offsets of every step" in table
    assert "2 × log 1 per step" in table
    assert "### Settings of VRNN-GMM, chosen on validation" in table and "**chosen**" in table
    chosen = json.loads((out.parent / "checkpoints" / "search" / "vrnn-gmm" / "search.json").read_text())["chosen"]
    assert chosen in (0, 1)
    assert (out.parent / "samples.png").stat().st_size > 0
