"""Cost of the within-frame emissions at the ``srnn-polyphonic`` bench shapes (issue 24's target: the
``nade`` emission's log_prob at most 2x the factorised Bernoulli's training step).

    .venv/bin/python scripts/emission_speed.py [--threads 1] [--repeats 5] [--hidden 150] [--out FILE.json]

Prints, in milliseconds (median of ``repeats``): the emission alone (log_prob forward and backward on
features (16, 100, 500) and frames (16, 100, 88)) for ``bernoulli``, ``nade`` and a conditional MADE
with Bernoulli outputs (the alternative to NADE, timed here only), and a whole SRNN training step
(forward, backward, clipping, Adam) with each. ``--out`` also writes them, with the CPU and the load
average before and after, to a JSON file (benchmarks/polyphonic/emission_speed.json: the polyphonic
report renders it against the target).
"""
from __future__ import annotations

import argparse
import dataclasses
import datetime
import json
import os
import sys
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from vrnn.emissions import EmissionConfig, build_emission
from vrnn.hardware import describe_hardware
from vrnn.emissions.made import MADE
from vrnn.lab.speed.configs import CONFIGS, make_batches, make_model
from vrnn.lab.speed.measure import Trainer, median_seconds
from vrnn.inference.objectives import training_loss


class MadeBernoulli(nn.Module):
    """The MADE alternative: one masked hidden layer; the features give its hidden and output biases."""

    def __init__(self, in_features, x_dim, hidden):
        super().__init__()
        self.made = MADE(x_dim, hidden, 1)
        self.hb, self.ob = nn.Linear(in_features, hidden), nn.Linear(in_features, x_dim)

    def log_prob(self, h, x):
        logits = self.made(x, self.hb(h), self.ob(h))[..., 0]
        return -F.binary_cross_entropy_with_logits(logits, x, reduction="none").sum(-1)


def emission_ms(repeats: int, hidden: int) -> dict:
    torch.manual_seed(0)
    h = torch.randn(16, 100, 500, requires_grad=True)  # (B, T, features)
    x = (torch.rand(16, 100, 88) < 0.1).float()
    cands = {"bernoulli": build_emission(EmissionConfig("bernoulli"), 500, 88),
             "nade": build_emission(EmissionConfig("nade", hidden=hidden), 500, 88)}
    made = MadeBernoulli(500, 88, hidden)
    fns = {name: (lambda em=em: em(h).log_prob(x).sum().backward()) for name, em in cands.items()}
    fns["made"] = lambda: made.log_prob(h, x).sum().backward()
    return {name: 1e3 * median_seconds(fn, "cpu", repeats) for name, fn in fns.items()}


def training_ms(repeats: int, hidden: int) -> dict:
    bc = CONFIGS["srnn-polyphonic"]
    out = {}
    for name in ("bernoulli", "nade"):
        cfg = dataclasses.replace(bc, model=bc.model | {"emission": EmissionConfig(name, hidden=hidden)})
        model = make_model(cfg, "cpu")
        tr = Trainer(name, model, lambda x, g, m=model: training_loss(m(x, generator=g), 1.0)[0], "cpu")
        (x,) = make_batches(bc, "cpu", n=1)
        tr.step(x)  # warm-up
        out[name] = 1e3 * median_seconds(lambda: tr.step(x), "cpu", repeats)
    return out


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--hidden", type=int, default=150)
    p.add_argument("--out", help="also write the figures to this JSON file")
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    load = os.getloadavg()
    result = {"command": "scripts/emission_speed.py " + " ".join(sys.argv[1:]), "torch": torch.__version__, "threads": a.threads, "hidden": a.hidden, "repeats": a.repeats,
              "hardware": describe_hardware(), "date": datetime.date.today().isoformat(),
              "emission_log_prob_fwd_bwd_ms": emission_ms(a.repeats, a.hidden),
              "srnn_training_step_ms": training_ms(a.repeats, a.hidden)}
    result["load_average"] = {"start": [round(v, 2) for v in load], "end": [round(v, 2) for v in os.getloadavg()]}
    text = json.dumps(result, indent=1)
    print(text)
    if a.out:
        Path(a.out).write_text(text + "\n")


if __name__ == "__main__":
    main()
