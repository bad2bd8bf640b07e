"""Raw-waveform speech: the models of VRNN Table 1 (Chung et al. 2015) and SRNN, on real recordings.

Blizzard, TIMIT, Onomatopoeia and Accent cannot be had here; two real corpora can:

* ``fsdd``    — Free Spoken Digit Dataset: 6 English speakers, 8 kHz, 0.25 s sequences of
  10 frames of 200 samples (the multi-speaker set; ``vrnn prepare fsdd``);
* ``fillets`` — Czech voice-acted dialogue of Fish Fillets NG, main voice, 16 kHz, 0.5 s
  sequences of 40 frames (the single-speaker set; ``vrnn prepare fillets``).

For every corpus and model (configs/speech/<preset>/<model>.toml) this trains with the library's
trainer, keeps the best checkpoint without its optimiser state (checkpoints/<corpus>/<model>.pt,
at most 10 MB for the small preset), evaluates the test split — ELBO and log-likelihood (exact for
the RNNs, importance-sampled with K = 40 for the latent-variable models) in nats per sequence on
the normalised data, as the paper reports them — and writes RESULTS.md in the layout of Table 1
with the published Blizzard and TIMIT numbers beside ours.

    python benchmarks/speech/run.py                       # small preset: train (<= 20 min each), evaluate
    python benchmarks/speech/run.py --eval-only           # evaluate the committed checkpoints only
    python benchmarks/speech/run.py --corpora fsdd --models rnn-gmm vrnn-gauss --minutes 5

Training runs go to ``--work`` (default runs/speech, ignored by git). A model trains in chunks
of ``train.eval_every`` steps until early stopping, ``train.max_steps`` or ``--minutes`` of wall
time, whichever comes first (the trainer resumes exactly, so chunks change nothing else).
"""
from __future__ import annotations

import argparse
import dataclasses
import datetime
import json
import math
import platform
import sys
import time
from pathlib import Path

import numpy as np
import torch

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]

from vrnn.checkpoint import export_checkpoint, load_model  # noqa: E402
from vrnn.config import DataConfig, load_config  # noqa: E402
from vrnn.data import load_dataset  # noqa: E402
from vrnn.data.recipes import prepare  # noqa: E402
from vrnn.errors import VrnnError  # noqa: E402
from vrnn.evaluate import EVAL_SEED, score_sequences  # noqa: E402
from vrnn.models import MODELS as MODEL_KINDS  # noqa: E402
from vrnn.training.trainer import fit  # noqa: E402

# name -> row label of Table 1; SRNN only where the library has it
MODELS = {"rnn-gauss": "RNN-Gauss", "rnn-gmm": "RNN-GMM", "vrnn-i-gauss": "VRNN-I-Gauss",
          "vrnn-gauss": "VRNN-Gauss", "vrnn-gmm": "VRNN-GMM"}
if "srnn" in MODEL_KINDS:
    MODELS["srnn"] = "SRNN (smooth + Res_q)"
CORPORA = {"fsdd": "FSDD (6 speakers, English digits)", "fillets": "Fillets (1 speaker, Czech dialogue)"}
MAX_CHECKPOINT_BYTES = 10 * 2**20

# Published average test log-likelihoods in nats per 0.5 s sequence of 200-sample frames at 16 kHz:
# Chung et al. (2015), Table 1 (">=" the ELBO, "~" the importance-sampled estimate), and SRNN of
# Fraccaro et al. (2016), Table 1 (ELBO). Blizzard: 300 h, one female speaker; TIMIT: 630 speakers.
PUBLISHED = {
    "rnn-gauss": {"blizzard": (3539, None), "timit": (-1900, None)},
    "rnn-gmm": {"blizzard": (7413, None), "timit": (26643, None)},
    "vrnn-i-gauss": {"blizzard": (8933, 9188), "timit": (28340, 29639)},
    "vrnn-gauss": {"blizzard": (9223, 9516), "timit": (28805, 30235)},
    "vrnn-gmm": {"blizzard": (9107, 9392), "timit": (28982, 29604)},
    "srnn": {"blizzard": (11991, None), "timit": (60550, None)},
}
LATENT = {m for m in MODELS if not m.startswith("rnn-")}


def ensure_corpus(corpus: str) -> Path:
    """The prepared corpus with the recipe's defaults (built once, then cached)."""
    return prepare(corpus)


def train_with_budget(cfg, data, out: Path, minutes: float, quiet: bool):
    """Train in chunks of eval_every steps until early stopping, max_steps or ``minutes`` of wall time."""
    tc = cfg.train
    start, target, resume, result = time.perf_counter(), 0, False, None
    while True:
        target = min(tc.max_steps, target + tc.eval_every)
        chunk = cfg.replace(train=dataclasses.replace(tc, max_steps=target))
        result = fit(chunk, out, resume=resume, overwrite=not resume, progress=not quiet, data=data)
        resume = True
        elapsed = time.perf_counter() - start
        if result.stopped != "max_steps" or target >= tc.max_steps:
            return result, elapsed, result.stopped  # early stopping, or train.max_steps reached
        if elapsed >= minutes * 60:
            return result, elapsed, "time budget"


def slim_copy(best: Path, dest: Path, info: dict) -> int:
    """The best checkpoint without optimiser and RNG state: what evaluation and sampling need."""
    return export_checkpoint(best, dest, {"benchmark": info})


def check_data_matches(ckpt_meta: dict, data_meta: dict, where: str) -> None:
    for key in ("rate", "frame_size", "sequence_frames", "split", "voice"):
        if key in ckpt_meta and ckpt_meta.get(key) != data_meta.get(key):
            raise VrnnError(f"{where}: trained on data with {key}={ckpt_meta[key]!r} but the prepared corpus has "
                            f"{data_meta.get(key)!r}; re-prepare it with the recipe's defaults (--overwrite)")


def evaluate(path: Path, corpus: str, iw_samples: int, batch_size: int) -> dict:
    """Per-sequence test ELBO and log-likelihood (nats, normalised data) and their means."""
    model, norm, ckpt = load_model(path)
    data = load_dataset(DataConfig(source=corpus))
    check_data_matches(ckpt.get("data_meta", {}), data.meta, str(path))
    test = [norm(a) for a in data.splits["test"]]
    t0 = time.perf_counter()
    s = score_sequences(model, test, iw_samples if model.z_dim else 1, batch_size, EVAL_SEED)
    jac = norm.log_jacobian(model.cfg.x_dim) * s["lengths"]  # to original amplitude units
    return {
        "model": model.display_name, "checkpoint": str(path.relative_to(ROOT) if path.is_relative_to(ROOT) else path),
        "step": ckpt.get("step"), "benchmark": ckpt.get("benchmark", {}),
        "num_sequences": len(test), "frames_per_sequence": int(s["lengths"][0]),
        "exact": model.z_dim == 0, "iw_samples": None if model.z_dim == 0 else iw_samples,
        "elbo": s["elbo"].tolist(), "log_likelihood": s["log_likelihood"].tolist(),
        "elbo_mean": s["elbo"].mean().item(), "log_likelihood_mean": s["log_likelihood"].mean().item(),
        "log_likelihood_mean_original_units": (s["log_likelihood"] + jac).mean().item(),
        "normalizer": {"mean": norm.mean, "std": norm.std}, "eval_seconds": time.perf_counter() - t0,
    }


def cell(r: dict | None) -> str:
    if r is None:
        return "—"
    if r["exact"]:
        return f"{r['log_likelihood_mean']:.0f}"
    return f"≥ {r['elbo_mean']:.0f} (≈ {r['log_likelihood_mean']:.0f})"


def published_cell(model: str, corpus: str) -> str:
    elbo, iw = PUBLISHED.get(model, {}).get(corpus, (None, None))
    if elbo is None:
        return "—"
    if model.startswith("rnn-"):
        return f"{elbo}"
    return f"≥ {elbo}" + (f" (≈ {iw})" if iw is not None else "")


def paired(a: dict, b: dict) -> tuple[float, float]:
    """Mean and standard error of (a − b) over the same test sequences (log-likelihood estimates)."""
    d = np.asarray(a["log_likelihood"]) - np.asarray(b["log_likelihood"])
    return float(d.mean()), float(d.std(ddof=1) / math.sqrt(len(d))) if len(d) > 1 else float("nan")


def compare(res: dict, a: str, b: str, question: str) -> str | None:
    if a not in res or b not in res:
        return None
    m, se = paired(res[a], res[b])
    verdict = ("higher" if m > 0 else "lower") + (" (more than two standard errors)" if abs(m) > 2 * se
                                                  else " (within two standard errors: not resolved)")
    return (f"{question} {MODELS[a]} − {MODELS[b]} = {m:+.1f} ± {se:.1f} nats per sequence: "
            f"{MODELS[a]} is {verdict}.")


def write_results(results: dict, path: Path, args, corpora_meta: dict) -> None:
    corpora = [c for c in CORPORA if c in results]
    lines = ["# Speech: VRNN Table 1 on real recorded speech", "",
             f"Generated by `python benchmarks/speech/run.py{' --eval-only' if args.eval_only else ''}` on "
             f"{datetime.date.today().isoformat()} ({platform.machine()}, torch {torch.__version__}, CPU).", "",
             "Average test log-likelihood in **nats per sequence** on data normalised with the training split's "
             "global mean and standard deviation (as in the paper). RNN rows: exact log-likelihood. Latent-variable "
             f"rows: `≥ ELBO (≈ importance-sampled estimate, K = {args.iw_samples})`. Higher is better.", "",
             "**The corpora differ.** Our columns are not comparable with the published ones, nor with each other: "
             "Blizzard (300 h, one speaker) and TIMIT (630 speakers) use 0.5 s sequences of 40 frames at 16 kHz; "
             "ours are a few minutes of other speakers, languages and recording conditions, and FSDD uses 0.25 s "
             "sequences of 10 frames at 8 kHz. A nats-per-sequence number scales with the sequence length and the "
             "normalisation. Compare rows within a column.", ""]
    head = "| Model | " + " | ".join(CORPORA[c] for c in corpora) + " | Blizzard (published) | TIMIT (published) |"
    lines += [head, "|" + " --- |" * (len(corpora) + 3)]
    for m in MODELS:
        row = [cell(results[c].get(m)) for c in corpora]
        lines.append(f"| {MODELS[m]} | " + " | ".join(row) + f" | {published_cell(m, 'blizzard')} | "
                     f"{published_cell(m, 'timit')} |")
    lines += ["", "Published: Chung et al. (2015) Table 1; SRNN: Fraccaro et al. (2016) Table 1 (smooth + Res_q).", ""]
    lines += ["## The paper's question, answered on our data", "",
              "Differences of the log-likelihood estimates on the same test sequences, with their standard error "
              "over sequences (the IS estimate is itself a stochastic lower bound).", ""]
    for c in corpora:
        res = results[c]
        lines.append(f"**{CORPORA[c]}**")
        lines.append("")
        for a, b, q in (("vrnn-gauss", "rnn-gmm", "Do latent variables beat a richer output distribution?"),
                        ("vrnn-gauss", "rnn-gauss", "Do latent variables help a Gaussian-output RNN?"),
                        ("vrnn-gauss", "vrnn-i-gauss", "Does the conditional prior help?"),
                        ("vrnn-gmm", "vrnn-gauss", "Does a GMM output help the VRNN?"),
                        ("srnn", "vrnn-gauss", "Does SRNN beat the VRNN?")):
            s = compare(res, a, b, q)
            if s:
                lines.append(f"- {s}")
        lines.append("")
    lines += ["## Data and training", "",
              "| corpus | rate | frames × samples | sequence | train / valid / test sequences | split |",
              "| --- | --- | --- | --- | --- | --- |"]
    for c in corpora:
        m = corpora_meta[c]
        lines.append(f"| {c} | {m['rate']} Hz | {m['sequence_frames']} × {m['frame_size']} | "
                     f"{m['sequence_seconds']:g} s | {m['counts']} | {m['split']} |")
    lines += ["", "| corpus | model | steps | train minutes | stopped | checkpoint MB | eval seconds |",
              "| --- | --- | --- | --- | --- | --- | --- |"]
    for c in corpora:
        for m, r in results[c].items():
            b = r["benchmark"]
            lines.append(f"| {c} | {MODELS[m]} | {r['step']} | {b.get('train_minutes', float('nan')):.1f} | "
                         f"{b.get('stopped', '?')} | {b.get('checkpoint_mb', float('nan')):.1f} | "
                         f"{r['eval_seconds']:.0f} |")
    lines += ["", f"Configs: configs/speech/{args.preset}/. Per-sequence numbers: results.json.", ""]
    path.write_text("\n".join(lines))


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--corpora", nargs="+", default=list(CORPORA), choices=list(CORPORA))
    p.add_argument("--models", nargs="+", default=list(MODELS), choices=list(MODELS))
    p.add_argument("--preset", default="small", choices=["small", "paper"], help="configs/speech/<preset>/")
    p.add_argument("--eval-only", action="store_true", help="evaluate the checkpoints in --checkpoints only")
    p.add_argument("--minutes", type=float, default=20.0, help="wall-clock training budget per model")
    p.add_argument("--max-steps", type=int, help="override train.max_steps of every model")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override a config setting")
    p.add_argument("--iw-samples", type=int, default=40, help="importance samples K (paper: 40)")
    p.add_argument("--eval-batch-size", type=int, default=32, help="test sequences per batch (each tiled K times)")
    p.add_argument("--work", type=Path, default=ROOT / "runs" / "speech", help="training runs")
    p.add_argument("--checkpoints", type=Path, default=HERE / "checkpoints", help="slim best checkpoints")
    p.add_argument("--results", type=Path, default=HERE, help="folder for RESULTS.md and results.json")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    args = p.parse_args(argv)
    try:
        results, corpora_meta = {}, {}
        for corpus in args.corpora:
            ensure_corpus(corpus)
            data = load_dataset(DataConfig(source=corpus))
            corpora_meta[corpus] = {k: data.meta[k] for k in ("rate", "frame_size", "sequence_frames",
                                                               "sequence_seconds", "split")}
            corpora_meta[corpus]["counts"] = " / ".join(str(len(data.splits[s])) for s in ("train", "valid", "test"))
            results[corpus] = {}
            for m in args.models:
                ckpt = args.checkpoints / corpus / f"{m}.pt"
                if not args.eval_only:
                    sets = [f"data.source={corpus}", *args.set]
                    if args.max_steps is not None:
                        sets.append(f"train.max_steps={args.max_steps}")
                    cfg = load_config(ROOT / "configs" / "speech" / args.preset / f"{m}.toml", sets)
                    print(f"== {corpus} / {MODELS[m]}: training (at most {args.minutes:g} min)", flush=True)
                    res, elapsed, stopped = train_with_budget(cfg, data, args.work / corpus / m, args.minutes,
                                                              args.quiet)
                    info = {"preset": args.preset, "train_minutes": elapsed / 60, "stopped": stopped,
                            "steps": res.steps, "overrides": sets}
                    size = slim_copy(args.work / corpus / m / "best.pt", ckpt, info)
                    info["checkpoint_mb"] = size / 2**20  # written again to record its own size
                    slim_copy(args.work / corpus / m / "best.pt", ckpt, info)
                    if args.preset == "small" and size > MAX_CHECKPOINT_BYTES:
                        print(f"warning: {ckpt} is {size / 2**20:.1f} MB, over the 10 MB limit for committed "
                              f"checkpoints", file=sys.stderr)
                elif not ckpt.is_file():
                    print(f"warning: {ckpt} missing; {MODELS[m]} on {corpus} left out", file=sys.stderr)
                    continue
                print(f"== {corpus} / {MODELS[m]}: evaluating the test split", flush=True)
                r = evaluate(ckpt, corpus, args.iw_samples, args.eval_batch_size)
                results[corpus][m] = r
                print(f"   {cell(r)} nats per sequence", flush=True)
        if not any(results.values()):
            raise VrnnError(f"no checkpoints under {args.checkpoints}; train first (drop --eval-only)")
        args.results.mkdir(parents=True, exist_ok=True)
        (args.results / "results.json").write_text(json.dumps(
            {"units": "nats per sequence, normalised data", "corpora": corpora_meta, "results": results}, indent=1))
        write_results(results, args.results / "RESULTS.md", args, corpora_meta)
        print(f"wrote {args.results / 'RESULTS.md'}")
    except VrnnError as e:
        print(f"run.py: error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
