"""Time to quality: SRNN (smooth + Res_q) on the SRNN paper's JSB arrays against wall-clock time.

Trains configs/srnn-polyphonic.toml on ``jsb.npz`` through the library's trainer in
segments of ``--segment`` steps (each a ``--resume`` of the same run, which continues
exactly), and after every segment evaluates the test ELBO. The training clock counts
training, validation and checkpointing, not the test evaluations. Stops after
``--minutes`` of training. Writes the curve as PNG and JSON, and a markdown summary.

    python benchmarks/time_to_quality.py --minutes 15

Target (issue 6): test ELBO >= -4.74 nats per time step (SRNN Table 2; total over total steps,
SRNN-array framing) within 15 minutes on a 2-core CPU.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import torch

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))

from vrnn.api import evaluate_checkpoint  # noqa: E402
from vrnn.config import load_config  # noqa: E402
from vrnn.speed.bench import describe_hardware  # noqa: E402
from vrnn.training.trainer import fit  # noqa: E402

TARGET = -4.74  # SRNN Table 2, JSB, smooth + Res_q, ELBO in nats per time step


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data" / "polyphonic" / "srnn" / "jsb.npz")
    ap.add_argument("--config", type=Path, default=ROOT / "configs" / "srnn-polyphonic.toml")
    ap.add_argument("--set", action="append", default=[], help="extra config overrides")
    ap.add_argument("--minutes", type=float, default=15.0, help="training budget (wall clock)")
    ap.add_argument("--segment", type=int, default=250, help="training steps between test evaluations")
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    ap.add_argument("--work", type=Path, default=ROOT / "runs" / "time_to_quality")
    ap.add_argument("--out", type=Path, default=HERE / "time_to_quality")
    ap.add_argument("--replot", action="store_true", help="redraw the figure and summary from <--out>/curve.json")
    args = ap.parse_args()
    if args.replot:
        saved = json.loads((args.out / "curve.json").read_text())
        args.set, args.threads = saved.get("overrides", args.set), saved.get("threads", args.threads)
        report(saved["curve"], saved["hardware"], args)
        return 0
    if not args.data.is_file():
        print(f"time_to_quality: {args.data} not found; pass --data PATH/jsb.npz", file=sys.stderr)
        return 2
    if args.threads:
        torch.set_num_threads(args.threads)
    curve, trained, step = [], 0.0, 0
    load_start = os.getloadavg()[0]  # before this run's own threads count
    while trained < 60 * args.minutes:
        step += args.segment
        cfg = load_config(args.config, [f"data.source={args.data}", f"train.max_steps={step}",
                                        f"train.eval_every={args.segment}", "train.patience=1000000", *args.set])
        t0 = time.perf_counter()
        fit(cfg, args.work, resume=step > args.segment, overwrite=step == args.segment, progress=False)
        trained += time.perf_counter() - t0
        r = evaluate_checkpoint(args.work / "last.pt", split="test", iw_samples=1)
        point = {"train_seconds": trained, "step": step, "test_elbo_per_step_total": r["elbo"]["per_step_total"],
                 "test_elbo_per_step_mean_of_sequences": r["elbo"]["per_step_mean_of_sequences"]}
        curve.append(point)
        print(json.dumps(point), flush=True)
    hardware = (f"{describe_hardware()}; 1-minute load average {load_start:.1f} before the run and "
                f"{os.getloadavg()[0]:.1f} at its end (its own threads included)")
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "curve.json").write_text(json.dumps({"curve": curve, "target": TARGET, "hardware": hardware,
                                                     "config": str(args.config.relative_to(ROOT)),
                                                     "overrides": args.set, "threads": args.threads}, indent=2))
    report(curve, hardware, args)
    return 0


NORMALISATIONS = {  # curve key -> how the number is normalised
    "test_elbo_per_step_total": "total over total steps",
    "test_elbo_per_step_mean_of_sequences": "mean over pieces of each piece's per-step average, as the SRNN "
                                            "paper's released code computes its test ELBO",
}


def verdict(curve: list[dict], key: str, minutes: float) -> str:
    within = [p for p in curve if p["train_seconds"] <= 60 * minutes]
    reached = next((p for p in within if p[key] >= TARGET), None)
    if reached:
        return f"reached {TARGET} after {reached['train_seconds'] / 60:.1f} min (step {reached['step']}, {reached[key]:.3f})"
    best = max(within or curve, key=lambda p: p[key])
    return (f"did not reach {TARGET} in {minutes:g} min; best {best[key]:.3f} at step {best['step']} "
            f"(gap {TARGET - best[key]:.3f} nats per step)")


def report(curve: list[dict], hardware: str, args) -> None:
    """The learning curve as PNG and the markdown summary."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4), dpi=100)
    minutes = [p["train_seconds"] / 60 for p in curve]
    ax.plot(minutes, [p["test_elbo_per_step_total"] for p in curve], "o-", label="test ELBO, total / total steps")
    ax.plot(minutes, [p["test_elbo_per_step_mean_of_sequences"] for p in curve], "s--", ms=3,
            label="test ELBO, mean of pieces")
    ax.axhline(TARGET, color="grey", ls=":", label=f"SRNN paper: {TARGET}")
    ax.axvline(args.minutes, color="grey", lw=0.8)
    ax.set_ylim(max(min(p["test_elbo_per_step_total"] for p in curve), TARGET - 1.0), TARGET + 0.25)
    ax.set_xlabel("training wall-clock time (minutes)")
    ax.set_ylabel("test ELBO (nats per time step)")
    ax.set_title("SRNN (smooth + Res_q) on JSB (SRNN arrays)")
    ax.legend(loc="lower right")
    fig.tight_layout()
    fig.savefig(args.out / "curve.png")
    # the committed summary sits beside the default --out; a run elsewhere keeps its summary in its --out
    summary = HERE / "TIME_TO_QUALITY.md" if args.out.resolve() == (HERE / "time_to_quality").resolve() \
        else args.out / "TIME_TO_QUALITY.md"
    sets = "".join(f" --set {s}" for s in args.set)
    threads = f" --threads {args.threads}" if args.threads else ""
    md = (f"# Time to quality: SRNN on JSB (SRNN arrays)\n\nTest ELBO in nats per time step (SRNN-array framing, "
          f"77 test pieces, 9,396 steps, one posterior sample per piece from a fixed seed) against training wall-clock "
          f"time (training, validation, checkpoints; not the test evaluations). Config "
          f"`{args.config.relative_to(ROOT)}`{' with ' + ', '.join(args.set) if args.set else ''}; {hardware}.\n\n"
          + "".join(f"**{name}:** {verdict(curve, key, args.minutes)}.\n\n" for key, name in NORMALISATIONS.items())
          + "| minutes | step | test ELBO (total/total) | test ELBO (mean of pieces) |\n|---:|---:|---:|---:|\n"
          + "".join(f"| {p['train_seconds'] / 60:.1f} | {p['step']} | {p['test_elbo_per_step_total']:.3f} | "
                    f"{p['test_elbo_per_step_mean_of_sequences']:.3f} |\n" for p in curve)
          + f"\n![curve]({os.path.relpath(args.out / 'curve.png', summary.parent)})\n\nProduced by "
          "`python benchmarks/time_to_quality.py "
          f"--minutes {args.minutes:g}{threads}{sets}`.\n")
    summary.write_text(md)
    print(md)


if __name__ == "__main__":
    sys.exit(main())
