"""The polyphonic-music benchmark of SRNN Table 2 (Fraccaro et al. 2016), through the library's
own trainer, checkpoints and evaluator.

Trains (or, with ``--eval-only``, only evaluates the committed checkpoints of) RNN-Bernoulli,
VRNN-I, VRNN, SRNN (smooth + Res_q), SRNN (filter) and DMM on

* JSB Chorales from the canonical pickle of Boulanger-Lewandowski et al. (2012), quarter-note steps;
* JSB Chorales and Nottingham from the arrays of the SRNN paper (twice the pickle's time resolution),

and writes RESULTS.md: test ELBO and log-likelihood (exact for the RNN, importance-sampled with
``--iw-samples`` for the latent-variable models), in nats per time step under both per-step
normalisations, beside the published numbers with their framing, train time and hardware.

    python benchmarks/polyphonic/run.py                      # train everything, then evaluate
    python benchmarks/polyphonic/run.py --eval-only          # evaluate checkpoints/ only
    python benchmarks/polyphonic/run.py --models srnn-smooth-resq --datasets jsb-srnn

Training runs (best.pt, last.pt, log.jsonl) go to ``--work`` (default runs/polyphonic, ignored by
git; ``--resume`` continues them); each best model is then copied without its optimiser state to
``--checkpoints`` (default benchmarks/polyphonic/checkpoints/<dataset>/<model>.pt, with a .json of
how it was trained). Sizes and schedules come from the config files in configs/; ``--set`` and
``--max-steps`` override them for every model.
"""
from __future__ import annotations

import argparse
import datetime
import json
import sys
import time
from pathlib import Path


HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]

from vrnn.api import evaluate_checkpoint  # noqa: E402
from vrnn.checkpoint import export_checkpoint, load_checkpoint  # noqa: E402
from vrnn.config import apply_overrides, config_from_dict, read_config_file  # noqa: E402
from vrnn.errors import VrnnError  # noqa: E402
from vrnn.training.trainer import fit  # noqa: E402
from vrnn.speed.bench import describe_hardware as hardware  # noqa: E402

# name -> (label, config file, overrides)
MODELS = {
    "rnn": ("RNN (Bernoulli output)", "rnn-bernoulli.toml", []),
    "vrnn-i": ("VRNN-I", "vrnn-i-bernoulli.toml", []),
    "vrnn": ("VRNN", "vrnn-bernoulli.toml", []),
    "srnn-smooth-resq": ("SRNN (smooth + Res_q)", "srnn-polyphonic.toml", []),
    "srnn-filter": ("SRNN (filter)", "srnn-polyphonic.toml", ["model.posterior=filter", "model.res_q=false"]),
    "dmm": ("DMM", "dmm-bernoulli.toml", []),
}
LATENT = [m for m in MODELS if m != "rnn"]

# name -> (file under --data-dir, framing)
DATASETS = {
    "jsb-pickle": ("polyphonic/jsb_chorales.pickle",
                   "JSB Chorales, canonical pickle of Boulanger-Lewandowski et al. (2012): quarter-note steps"),
    "jsb-srnn": ("polyphonic/srnn/jsb.npz",
                 "JSB Chorales, arrays of the SRNN paper: twice the pickle's time resolution; training and "
                 "validation data in 100-step chunks, test data whole pieces"),
    "nottingham-srnn": ("polyphonic/srnn/nottingham.npz",
                        "Nottingham, arrays of the SRNN paper (same framing conventions as its JSB arrays)"),
}

# Published test numbers, nats per time step (SRNN Table 2; ../shared/data/README.md). The SRNN row
# is on the SRNN arrays; the other rows were copied by that paper from earlier work on the pickle
# framing. (dataset, label, value, what it is, models it is a target for, comparable here?)
PUBLISHED = [
    ("jsb-pickle", "RNN (Bernoulli output)", -8.71, "log-likelihood", ["rnn"], True),
    ("jsb-pickle", "STORN", -6.91, "log-likelihood", LATENT, True),
    ("jsb-pickle", "RNN-NADE", -5.19, "log-likelihood", [], True),
    ("jsb-srnn", "SRNN (smooth + Res_q)", -4.74, "ELBO", ["srnn-smooth-resq"], True),
    ("jsb-srnn", "STORN / RNN-NADE / RNN on the pickle framing", None, "", [], False),
    ("nottingham-srnn", "SRNN (smooth + Res_q)", -2.94, "ELBO", ["srnn-smooth-resq"], True),
    ("nottingham-srnn", "STORN (-2.85), RNN-NADE (-2.31), RNN (-4.46)", None,
     "log-likelihood on the Nottingham pickle framing, which is not in ../shared/data", [], False),
]




def model_config(name: str, source: Path, overrides: list[str]):
    _, file, extra = MODELS[name]
    raw = read_config_file(ROOT / "configs" / file)
    raw = apply_overrides(raw, [f"data.source={json.dumps(str(source))}", *extra, *overrides])
    return config_from_dict(raw, where=f"configs/{file}")


def slim_copy(best: Path, dest: Path, info: dict) -> None:
    """best.pt without the optimiser state (it evaluates and samples, and stays under 10 MB), and a .json of its run."""
    size = export_checkpoint(best, dest) / 2 ** 20
    dest.with_suffix(".json").write_text(json.dumps(info, indent=1) + "\n")
    if size > 10:
        print(f"warning: {dest} is {size:.1f} MB, over the 10 MB limit for committed checkpoints", file=sys.stderr)


def train_one(model: str, dataset: str, source: Path, args) -> None:
    overrides = list(args.set) + ([f"train.max_steps={args.max_steps}"] if args.max_steps else [])
    cfg = model_config(model, source, overrides)
    run = args.work / dataset / model
    resume = args.resume and (run / "last.pt").exists()
    print(f"== training {model} on {dataset} -> {run}", flush=True)
    t0 = time.perf_counter()
    result = fit(cfg, run, resume=resume, overwrite=not resume, progress=not args.quiet)
    wall = time.perf_counter() - t0
    info = {"model": model, "dataset": dataset, "steps": result.steps, "stopped": result.stopped,
            "best_valid_elbo_per_step": result.best_valid_elbo,
            "train_seconds": load_checkpoint(run / "last.pt")["elapsed"], "wall_seconds_this_call": wall,
            "hardware": hardware(), "overrides": overrides, "resumed": resume,
            "date": datetime.date.today().isoformat()}
    slim_copy(run / "best.pt", args.checkpoints / dataset / f"{model}.pt", info)


def fmt(v, digits=3):
    return "—" if v is None else f"{v:.{digits}f}"


def duration(s):
    if s is None:
        return "—"
    return f"{s / 3600:.1f} h" if s >= 3600 else f"{s / 60:.1f} min" if s >= 60 else f"{s:.0f} s"


def write_results(reports: dict, args, eval_seconds: float) -> None:
    lines = [
        "# Polyphonic music: SRNN Table 2",
        "",
        "Written by `benchmarks/polyphonic/run.py`" + (" --eval-only" if args.eval_only else "") +
        f" on {datetime.date.today().isoformat()}. Test split; all numbers in **nats per time step** (higher is "
        "better). Two normalisations: **total/total** = total log-likelihood of the test set over its total number "
        "of steps; **mean of pieces** = mean over pieces of each piece's per-step average. Log-likelihoods are exact "
        f"for the RNN and importance-sampled with K = {args.iw_samples} posterior samples for the latent-variable "
        "models (a stochastic lower bound that tightens with K).",
        "",
        f"Evaluation hardware: {hardware()}; evaluation took {duration(eval_seconds)}.",
        "",
    ]
    for dataset, (_, framing) in DATASETS.items():
        rows = reports.get(dataset, {})
        if not rows:
            continue
        first = next(iter(rows.values()))[0]
        lines += [f"## {dataset}", "", f"Framing: {framing}. Test set: {first['num_sequences']} pieces, "
                  f"{first['num_steps']} steps.", "",
                  "| model | ELBO total/total | ELBO mean of pieces | log-lik. total/total | log-lik. mean of pieces "
                  "| log-lik. method | train steps | train time | trained on |",
                  "| --- | ---: | ---: | ---: | ---: | --- | ---: | ---: | --- |"]
        for model, (r, info) in rows.items():
            method = "exact" if r["log_likelihood_method"] == "exact" else f"IS, K={r['iw_samples']}"
            lines.append(
                f"| {MODELS[model][0]} | {fmt(r['elbo']['per_step_total'])} | {fmt(r['elbo']['per_step_mean_of_sequences'])} "
                f"| {fmt(r['log_likelihood']['per_step_total'])} | {fmt(r['log_likelihood']['per_step_mean_of_sequences'])} "
                f"| {method} | {info.get('steps', '—')} | {duration(info.get('train_seconds'))} "
                f"| {info.get('hardware', '—')} |")
        lines += ["", "Published numbers on this data (SRNN Table 2, as listed in ../shared/data/README.md; the "
                  "normalisation is the source paper's):", ""]
        for ds, label, value, what, targets, comparable in PUBLISHED:
            if ds != dataset:
                continue
            if not comparable:
                lines.append(f"- {label}: {what or 'different framing'} — not comparable with the rows above.")
                continue
            key = "elbo" if what == "ELBO" else "log_likelihood"
            gaps = [f"{MODELS[m][0]} {r[key]['per_step_total'] - value:+.3f}" for m, (r, _) in rows.items()
                    if m in targets]
            gap_text = f"; ours minus published ({what}, total/total): " + ", ".join(gaps) if gaps else ""
            lines.append(f"- {label}: {what} {value:.2f}{gap_text}")
        lines.append("")
    args.results.write_text("\n".join(lines))
    print(f"wrote {args.results}")


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--eval-only", action="store_true", help="evaluate the checkpoints in --checkpoints; no training")
    p.add_argument("--data-dir", type=Path, default=ROOT.parent / "shared" / "data",
                   help="folder holding polyphonic/ (default ../shared/data from the repository root)")
    p.add_argument("--models", default=",".join(MODELS), help=f"comma-separated subset of {','.join(MODELS)}")
    p.add_argument("--datasets", default=",".join(DATASETS), help=f"comma-separated subset of {','.join(DATASETS)}")
    p.add_argument("--work", type=Path, default=ROOT / "runs" / "polyphonic", help="training runs")
    p.add_argument("--checkpoints", type=Path, default=HERE / "checkpoints", help="slim best checkpoints")
    p.add_argument("--results", type=Path, default=HERE / "RESULTS.md")
    p.add_argument("--iw-samples", type=int, default=40, help="importance samples for the log-likelihood")
    p.add_argument("--eval-rows", type=int, default=128,
                   help="sequences x samples per evaluation batch (memory grows with rows x piece length)")
    p.add_argument("--max-steps", type=int, default=0, help="override train.max_steps of every model (0: config's)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override for every model")
    p.add_argument("--resume", action="store_true", help="continue training runs found in --work")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    args = p.parse_args(argv)
    try:
        models = [m for m in args.models.split(",") if m]
        datasets = [d for d in args.datasets.split(",") if d]
        for m in models:
            if m not in MODELS:
                raise VrnnError(f"--models: unknown model {m!r}; choose from {', '.join(MODELS)}")
        for d in datasets:
            if d not in DATASETS:
                raise VrnnError(f"--datasets: unknown data set {d!r}; choose from {', '.join(DATASETS)}")
        sources = {d: args.data_dir / DATASETS[d][0] for d in datasets}
        for d, path in sources.items():
            if not path.is_file():
                raise VrnnError(f"{path}: not found; pass --data-dir with the folder that holds polyphonic/")
        if not args.eval_only:
            for d in datasets:
                for m in models:
                    train_one(m, d, sources[d], args)
        reports: dict = {}
        t0 = time.perf_counter()
        for d in datasets:
            for m in models:
                ckpt = args.checkpoints / d / f"{m}.pt"
                if not ckpt.is_file():
                    raise VrnnError(f"{ckpt}: no checkpoint; train it first (run without --eval-only)")
                info_path = ckpt.with_suffix(".json")
                info = json.loads(info_path.read_text()) if info_path.is_file() else {}
                t1 = time.perf_counter()
                r = evaluate_checkpoint(ckpt, split="test", iw_samples=args.iw_samples, data_source=str(sources[d]),
                                        batch_size=max(1, args.eval_rows // args.iw_samples))
                info["eval_seconds"] = time.perf_counter() - t1
                print(f"{d:16s} {m:18s} ELBO {r['elbo']['per_step_total']:8.3f}  log-lik {r['log_likelihood']['per_step_total']:8.3f}"
                      f" nats/step (total/total); evaluated in {info['eval_seconds']:.0f} s", flush=True)
                reports.setdefault(d, {})[m] = (r, info)
        write_results(reports, args, time.perf_counter() - t0)
    except VrnnError as e:
        print(f"run.py: error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
