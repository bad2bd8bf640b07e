"""A grid like VRNN Fig. 4: training drawings next to unconditional samples of each model.

    python benchmarks/handwriting/figure.py                       # committed checkpoints -> samples.png
    python benchmarks/handwriting/figure.py --checkpoints rnn-gmm=runs/handwriting/rnn-gmm/best.pt \\
        --out /tmp/fig.png --rows 6 --steps 60 --bias 0.5

Column 1 holds training drawings picked at random (seeded); each further column holds
``--rows`` samples of one model of ``--steps`` steps, drawn with ``vrnn.sampling.sample``
(pen lifts respected, see :mod:`vrnn.stroke_plots`). ``--bias`` is Graves' sampling bias
(0 = the model's own distribution, as in the paper's figure).
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
ORDER = ["rnn-gauss", "rnn-gmm", "vrnn-i-gauss", "vrnn-gauss", "vrnn-gmm"]
LABELS = {"rnn-gauss": "RNN-Gauss", "rnn-gmm": "RNN-GMM", "vrnn-i-gauss": "VRNN-I-Gauss",
          "vrnn-gauss": "VRNN-Gauss", "vrnn-gmm": "VRNN-GMM"}


def default_checkpoints(folder: Path) -> dict[str, Path]:
    found = {p.stem: p for p in sorted(folder.glob("*.pt"))}
    return {k: found[k] for k in sorted(found, key=lambda k: ORDER.index(k) if k in ORDER else len(ORDER))}


def make_figure(checkpoints: dict[str, Path], out: Path, rows: int = 8, steps: int | None = None, seed: int = 0,
                bias: float = 0.0, data_source: str | None = None) -> Path:
    """Write the grid to ``out``; ``steps`` defaults to the median training-drawing length."""
    from vrnn.checkpoint import load_model
    from vrnn.config import DataConfig
    from vrnn.data import load_dataset
    from vrnn.emissions.strokes import stroke_sampling
    from vrnn.errors import VrnnError
    from vrnn.sampling import sample
    from vrnn.outputs.strokes import strokes_grid_png

    if not checkpoints:
        raise VrnnError("no checkpoints: pass --checkpoints NAME=PATH ... or run benchmarks/handwriting/run.py first")
    models = {name: load_model(path) for name, path in checkpoints.items()}
    first = next(iter(models.values()))[2]
    source = data_source or first["config"]["data"]["source"]
    data = load_dataset(DataConfig(source=source))
    train = data.splits["train"]
    pick = np.random.default_rng(seed).choice(len(train), rows, replace=False)
    steps = steps or int(np.median([len(a) for a in train]))
    columns = [("training data", [train[i] for i in pick])]
    for name, (model, norm, ckpt) in models.items():
        if model.cfg.emission.name != "strokes":
            raise VrnnError(f"{checkpoints[name]}: not a pen-stroke model (emission {model.cfg.emission.name!r})")
        with stroke_sampling(model, bias=bias):
            x = sample(model, steps, rows, norm, seed)
        columns.append((LABELS.get(name, name), list(x)))
    out.parent.mkdir(parents=True, exist_ok=True)
    strokes_grid_png(out, columns)
    return out


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--checkpoints", nargs="*", metavar="NAME=PATH",
                   help="models to sample (default: every benchmarks/handwriting/checkpoints/*.pt)")
    p.add_argument("--out", type=Path, default=HERE / "samples.png")
    p.add_argument("--rows", type=int, default=8)
    p.add_argument("--steps", type=int, help="steps per sample (default: median training length)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--bias", type=float, default=0.0, help="Graves' sampling bias (0: unbiased)")
    p.add_argument("--data", help="data source of the training column (default: the first checkpoint's)")
    args = p.parse_args(argv)
    from vrnn.errors import VrnnError

    try:
        if args.checkpoints:
            ckpts = dict(c.split("=", 1) if "=" in c else (Path(c).stem, c) for c in args.checkpoints)
            ckpts = {k: Path(v) for k, v in ckpts.items()}
        else:
            ckpts = default_checkpoints(HERE / "checkpoints")
        out = make_figure(ckpts, args.out, args.rows, args.steps, args.seed, args.bias, args.data)
    except VrnnError as e:
        print(f"figure: error: {e}", file=sys.stderr)
        return 2
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
