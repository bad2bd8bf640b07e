"""The ``vrnn`` command line: prepare, train, eval, compare, score, sample, analyze, waveforms, bench, experiment.

Each command is a handler ``_cmd_NAME(args)`` and a builder ``_add_NAME(sub)`` of its options;
:func:`build_parser` adds every builder of :data:`COMMANDS`.

User mistakes (bad paths, names, data) print one line ``vrnn: error: ...`` and exit
with status 2; a diverged training run exits with status 3.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from .errors import TrainingDiverged, TrainingInterrupted, VrnnError


RECIPE_OPTIONS = ("source", "rate", "seconds", "frame_size", "speaker_split", "speaker_regex", "voice", "steps_per_beat")
DEVICE_HELP = "auto (CUDA if available) | cpu | cuda | cuda:N"


class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """``--help`` shows every option's default, except where there is none to show (None, a flag's False)."""

    def _get_help_string(self, action):
        if action.default is None or action.default is False or action.default in (argparse.SUPPRESS, []):
            return action.help
        return super()._get_help_string(action)


SHOW_DEFAULTS = {"formatter_class": HelpFormatter}


def _cmd_prepare(args) -> None:
    from .data import load_prepared
    from .data.progress import showing
    from .data.recipes import prepare, prepared_file

    # recipe options: only the flags given are passed, so each recipe keeps its own defaults
    opts = {k: getattr(args, k) for k in RECIPE_OPTIONS if getattr(args, k, None) not in (None, False)}
    reused = not args.overwrite and prepared_file(args.name, args.save_as).is_file()
    with showing(sys.stderr):  # the recipe's progress: a bar on a terminal, a line per tenth otherwise
        path = prepare(args.name, overwrite=args.overwrite, seed=args.seed, save_as=args.save_as, **opts)
    told = f"already prepared at {path} (reused); --overwrite rebuilds it" if reused else f"saved to {path}"
    print(f"{load_prepared(path).describe()}\n{told}")


def _cmd_train(args) -> None:
    from .checkpoint import stored_config
    from .training.config import config_from_dict, load_config
    from .settings import apply_overrides
    from .training.trainer import fit

    if args.allow_changes and not args.resume:
        raise VrnnError("--allow-changes applies only with --resume (it lets a resumed run change its settings)")
    if args.config is None:
        if not args.resume:
            raise VrnnError("--config is required (a file, or a preset: e.g. --config vrnn-bernoulli) unless --resume")
        raw = apply_overrides(stored_config(Path(args.out) / "last.pt"), args.set)
        cfg = config_from_dict(raw, where=str(Path(args.out) / "last.pt"))
    else:
        cfg = load_config(args.config, args.set)
    result = fit(cfg, args.out, resume=args.resume, overwrite=args.overwrite, progress=not args.quiet,
                 allow_changes=args.allow_changes, tensorboard=args.tensorboard)
    if os.environ.get("RANK", "0") != "0":  # torchrun: rank 0 reports for all
        return
    print(f"{result.model.display_name}: {result.steps} steps ({result.stopped}); best validation "
          f"{result.watched} {result.best_valid:.4f} nats per time step (total over total steps); checkpoints in {result.out}")


def _cmd_eval(args) -> None:
    from .api import evaluate_checkpoint

    if args.whole and args.split is not None:
        raise VrnnError(f"--whole scores every split; drop --split {args.split} (or drop --whole)")
    report = evaluate_checkpoint(args.checkpoint, split=args.split or "test", iw_samples=args.iw_samples,
                                 batch_size=args.batch_size, data_source=args.data, seed=args.seed,
                                 device=args.device, whole=args.whole, estimator=args.estimator)
    if args.json:
        print(json.dumps(report))
        return
    print(format_report(report))


def _cmd_compare(args) -> None:
    from .io import check_writable, make_folder
    from .training.compare import UNITS, compare_runs, format_table, plot_curves, scores_on_test

    plot = Path(args.plot)
    runs = compare_runs(args.runs)
    check_writable([plot], args.overwrite, "--plot")  # before the test evaluations: a refusal costs nothing
    for run in runs if args.test else []:
        run.test = scores_on_test(run, args.iw_samples, args.estimator, args.data, args.device)
    make_folder(plot.parent, "--plot")
    drawn = plot_curves(runs, plot)
    if args.json:
        print(json.dumps({"units": UNITS, "runs": [r.to_dict() for r in runs], "plot": str(plot) if drawn else None}))
        return
    print(format_table(runs))
    missing = [r.name for r in runs if r not in drawn]
    if drawn:
        print(f"learning curves: wrote {plot}" + (f" (no curve recorded for {', '.join(missing)})" if missing else ""))
    else:
        print(f"no learning curve recorded for any run (no log.jsonl beside them); {plot} not written")


def format_report(r: dict) -> str:
    split = r["split"] if "splits" not in r else (
        f"{r['split']}: " + ", ".join(f"{n} {s}" for s, n in r["splits"].items()))
    lines = [f"{r['model']} on {r['dataset']} [{split}]: {r['num_sequences']} sequences, {r['num_steps']} steps; "
             f"units: {r['units']}; data: {r['data_scale']}"]
    from .inference.evaluate import estimate_label

    rows = [("elbo", "ELBO"), *((key, f"log-likelihood ({estimate_label(r, key)})")
                                for key in ("log_likelihood", "log_likelihood_smc") if key in r)]
    for key, label in rows:
        v = r[key]
        lines.append(f"  {label:<28} {v['per_sequence']:>12.3f} nats/sequence   {v['per_step_total']:>9.4f} "
                     f"nats/step (total/total)   {v['per_step_mean_of_sequences']:>9.4f} nats/step (mean of sequences)")
    return "\n".join(lines)


def _cmd_sample(args) -> None:
    from .api import sample_checkpoint

    steps = args.steps
    if (steps is None) == (args.seconds is None):
        raise VrnnError("give exactly one of --steps N and --seconds S (--seconds: audio models only)")
    if args.seconds is not None:  # audio: steps = ceil(seconds * rate / frame_size), e.g. 2 s at 16 kHz = 160
        from .checkpoint import load_checkpoint
        from .data.audio import steps_for_seconds

        steps = steps_for_seconds(load_checkpoint(args.checkpoint).get("data_meta", {}), args.seconds)
    if args.prime is not None:  # filter the prefix, then continue it (prefix and continuation in one file)
        from .inference.scoring import continue_file

        paths = continue_file(args.checkpoint, args.prime, steps, args.out, prime_steps=args.prime_steps, n=args.num,
                              particles=args.particles, seed=args.seed, overwrite=args.overwrite, bias=args.bias,
                              temperature=args.temperature)
    elif args.prime_steps is not None:
        raise VrnnError("--prime-steps needs --prime FILE (the sequence to continue)")
    else:
        paths = sample_checkpoint(args.checkpoint, steps=steps, out=args.out, n=args.num, seed=args.seed,
                                  overwrite=args.overwrite, bias=args.bias, temperature=args.temperature,
                                  device=args.device)
    print("wrote " + ", ".join(str(p) for p in paths))


def _cmd_score(args) -> None:
    from .inference.scoring import score_file

    res = score_file(args.checkpoint, args.data, args.out, particles=args.particles, seed=args.seed,
                     device=args.device, overwrite=args.overwrite)
    print(f"{res['sequences']} sequences scored ({res['proposal']} proposal, K = {args.particles}); mean "
          f"{res['mean_per_step']:.4f} {res['units']}; wrote " + ", ".join(str(p) for p in res["paths"]))


def _cmd_analyze(args) -> None:
    from .lab.analysis import analyze_checkpoint

    res = analyze_checkpoint(args.checkpoint, args.input, out=args.out, seconds=args.seconds, seed=args.seed,
                             overwrite=args.overwrite, device=args.device)
    print(f"{res['steps']} steps, {res['kl'].shape[1]} latent dimensions; KL {res['kl'].sum():.2f} nats in all; "
          f"wrote {args.out}")


def _cmd_waveforms(args) -> None:
    from .lab.analysis import waveforms_figure

    waveforms_figure(args.checkpoints, args.out, seconds=args.seconds, zoom=args.zoom, seed=args.seed,
                     overwrite=args.overwrite, device=args.device)
    print(f"wrote {args.out}")


def _add_prepare(sub) -> None:
    s = sub.add_parser("prepare", help="build a named data set once and cache it",
                       description="Build a named data set and cache it under $VRNN_DATA_DIR (default ~/.cache/vrnn/data).",
                       **SHOW_DEFAULTS)
    from .data.recipes import RECIPES

    s.add_argument("name", help=f"one of: {', '.join(sorted(RECIPES))}")
    s.add_argument("--seed", type=int, default=0, help="seed of the train/valid/test split")
    s.add_argument("--overwrite", action="store_true", help="rebuild even if cached")
    s.add_argument("--as", dest="save_as", metavar="NAME", help="cache under this name (data.source=NAME)")
    s.add_argument("--source", help="folder to read (audio: WAV/FLAC/OGG files, searched recursively)")
    s.add_argument("--rate", type=int, help="audio: sampling rate in Hz (audio, fillets: 16000; fsdd: 8000)")
    s.add_argument("--seconds", type=float, help="audio: sequence length in seconds (paper: 0.5; fsdd: 0.25)")
    s.add_argument("--frame-size", type=int, help="audio: samples per frame, the model's x_dim (paper: 200)")
    s.add_argument("--speaker-split", action="store_true", help="audio: split speakers, not files")
    s.add_argument("--speaker-regex", help="audio: group 1 of this regex on the file name is the speaker")
    s.add_argument("--voice", help="fillets: v (main voice, default), m, ... or all")
    s.add_argument("--steps-per-beat", type=int, help="midi: grid steps per quarter note (2: eighth notes, as the "
                                                       "SRNN arrays; 1: quarter notes, as the JSB pickle)")
    s.set_defaults(func=_cmd_prepare)


def _add_train(sub) -> None:
    s = sub.add_parser("train", help="train a model from a config file",
                       description="Train a model; writes best.pt, last.pt and log.jsonl to --out.")
    s.add_argument("--config", help="a TOML config file, or a shipped preset by name, e.g. srnn-polyphonic, "
                                   "vrnn-bernoulli, speech/small/srnn (the files of configs/)")
    s.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override a setting, e.g. --set train.lr=3e-4 (repeatable)")
    s.add_argument("--out", required=True, help="output folder for checkpoints and the log")
    s.add_argument("--resume", action="store_true",
                   help="continue the run in --out from last.pt, with its stored config unless --config is given; "
                        "only the stopping rules (train.max_steps, train.max_minutes, train.patience, train.lr_drops) "
                        "and train.tensorboard may change")
    s.add_argument("--allow-changes", action="store_true",
                   help="with --resume: continue with other changed settings too (recorded in log.jsonl)")
    s.add_argument("--overwrite", action="store_true", help="replace an existing run in --out")
    s.add_argument("--quiet", action="store_true",
                   help="no progress (a live bar on a terminal, else one line per evaluation on stderr)")
    s.add_argument("--tensorboard", metavar="DIR", help="write TensorBoard event files to DIR (train.tensorboard = "
                                                        "true writes them to OUT/tensorboard); needs vrnn[tensorboard]")
    s.set_defaults(func=_cmd_train)


def _add_eval(sub) -> None:
    from .inference.evaluate import EVAL_SEED

    s = sub.add_parser("eval", help="ELBO and log-likelihood of a checkpoint on a split",
                       description="Evaluate ELBO and (importance-sampled or exact) log-likelihood.", **SHOW_DEFAULTS)
    s.add_argument("checkpoint")
    s.add_argument("--split", choices=["train", "valid", "test"], help="split to score (default: test)")
    s.add_argument("--whole", action="store_true",
                   help="score every sequence of the data (all splits: e.g. every sequence of a --data .npy)")
    s.add_argument("--iw-samples", type=int, default=40, help="importance samples K (paper: 40)")
    s.add_argument("--batch-size", type=int, default=64, help="sequences per batch (each tiled K times)")
    s.add_argument("--data", help="evaluate on this data source (a prepared name or a file) instead of the "
                                  "checkpoint's")
    s.add_argument("--seed", type=int, default=EVAL_SEED, help="seed of the evaluation noise (each sequence's "
                                                                "noise is keyed by this seed, its split and index)")
    s.add_argument("--device", default="cpu", help=DEVICE_HELP)
    s.add_argument("--estimator", choices=["is", "smc"], default="is",
                   help="smc: also the particle filter's estimate of log p(x), with K = --iw-samples particles")
    s.add_argument("--particles", dest="iw_samples", type=int, default=argparse.SUPPRESS, help="the same as --iw-samples")
    s.add_argument("--json", action="store_true", help="print one JSON object")
    s.set_defaults(func=_cmd_eval)


def _add_compare(sub) -> None:
    s = sub.add_parser("compare", help="runs side by side: one table and their learning curves in one figure",
                       description="Compare training runs: run folders (vrnn train --out) and/or checkpoints (.pt, "
                                   "e.g. the exported ones of benchmarks/*/checkpoints/). One table (model, data, "
                                   "steps, why it stopped, best validation score and its step, training time, "
                                   "parameters; the test score with --test) and a PNG of every run's validation "
                                   "score against the training step.", **SHOW_DEFAULTS)
    s.add_argument("runs", nargs="+", metavar="RUN_OR_CKPT", help="run folders and/or checkpoint files")
    s.add_argument("--test", action="store_true", help="also evaluate each run's best checkpoint on the test split "
                                                       "(log-likelihood by --estimator)")
    s.add_argument("--iw-samples", type=int, default=40, help="with --test: importance samples (or particles) K")
    s.add_argument("--estimator", choices=["is", "smc"], default="is",
                   help="with --test: is (importance sampling) or smc (a particle filter's estimate)")
    s.add_argument("--data", help="with --test: evaluate on this data source (a prepared name or a file) instead "
                                  "of each checkpoint's")
    s.add_argument("--device", default="cpu", help=DEVICE_HELP)
    s.add_argument("--plot", default="compare.png", help="where the learning curves' PNG goes")
    s.add_argument("--overwrite", action="store_true", help="replace an existing --plot")
    s.add_argument("--json", action="store_true", help="print one JSON object (the runs, their curves, the plot)")
    s.set_defaults(func=_cmd_compare)


def _add_score(sub) -> None:
    s = sub.add_parser("score", help="per-step scores log p(x_t | x_<t) of every sequence of a file", **SHOW_DEFAULTS,
                       description="A particle filter's estimate of log p(x_t | x_<t) at every step of every sequence "
                                   "(exact for the RNN baselines): the model's posterior as proposal when it is a "
                                   "filter, the prior (bootstrap filter) otherwise. Writes OUT's stem as .csv, .npy "
                                   "(sequences x steps, NaN after each end) and .png (signal above its score).")
    s.add_argument("checkpoint")
    s.add_argument("--data", required=True, help="a .npy (T, D) or (N, T, D), a .npz of such arrays, or a recording")
    s.add_argument("--out", required=True, help="output file; its stem gets .csv, .npy and .png")
    s.add_argument("--particles", type=int, default=100, help="particles K")
    s.add_argument("--seed", type=int, default=0, help="seed of the filter's noise")
    s.add_argument("--device", default="cpu", help=DEVICE_HELP)
    s.add_argument("--overwrite", action="store_true", help="replace existing outputs")
    s.set_defaults(func=_cmd_score)


def _add_sample(sub) -> None:
    s = sub.add_parser("sample", help="generate sequences from a checkpoint",
                       description="Ancestral samples, de-normalised; piano-roll models also write .mid and .png.",
                       **SHOW_DEFAULTS)
    s.add_argument("checkpoint")
    s.add_argument("--steps", type=int, help="time steps to generate (or --seconds)")
    s.add_argument("--seconds", type=float, help="audio models: seconds of audio (steps = ceil(s * rate / frame))")
    s.add_argument("--out", required=True, help="output file (.npy; .mid or .png for piano-roll models; "
                                                ".wav or .png for audio models; .png for pen-stroke models)")
    s.add_argument("--num", type=int, default=1, help="number of sequences")
    s.add_argument("--seed", type=int, default=0, help="seed of the samples")
    s.add_argument("--overwrite", action="store_true", help="replace existing output files")
    s.add_argument("--device", default="cpu", help=DEVICE_HELP)
    s.add_argument("--bias", type=float, default=0.0,
                   help="pen-stroke models: sampling bias b >= 0 (Graves 2013: sharper, neater drawings)")
    s.add_argument("--temperature", type=float, default=1.0, help="pen-stroke models: sampling temperature > 0")
    s.add_argument("--prime", metavar="FILE", help="continue the first sequence of FILE (.npy/.npz/recording): filter "
                                                    "it with particles, then sample --steps more; one file holds both")
    s.add_argument("--prime-steps", type=int, help="with --prime: use only the first N steps of it")
    s.add_argument("--particles", type=int, default=100, help="with --prime: particles that filter the prefix")
    s.set_defaults(func=_cmd_sample)


def _add_analyze(sub) -> None:
    s = sub.add_parser("analyze", help="latent dynamics of a sequence: δ_t, per-dimension KL, the input",
                       description="A figure like Chung et al. (2015) Fig. 2: the change of the posterior mean "
                                   "δ_t = Σ_j (μ_z,t,j − μ_z,t−1,j)², the per-step KL of every latent dimension "
                                   "and the input under them (a recording's waveform; a piano roll by MIDI pitch; "
                                   "other frames as an image).", **SHOW_DEFAULTS)
    s.add_argument("checkpoint")
    s.add_argument("--input", required=True, help="a recording (.wav/.flac/.ogg) or one sequence of frames (.npy: "
                                                   "(T, D), or (1, T, D) as `vrnn sample` writes it)")
    s.add_argument("--out", required=True, help="output .png")
    s.add_argument("--seconds", type=float, help="analyse only the first S seconds")
    s.add_argument("--seed", type=int, default=0, help="seed of the posterior sample")
    s.add_argument("--overwrite", action="store_true", help="replace an existing --out")
    s.add_argument("--device", default="cpu", help=DEVICE_HELP)
    s.set_defaults(func=_cmd_analyze)


def _add_waveforms(sub) -> None:
    s = sub.add_parser("waveforms", help="training audio and model samples, whole and zoomed",
                       description="A figure like Chung et al. (2015) Fig. 3: a stretch of training audio, then "
                                   "one sample of each checkpoint, whole (left) and zoomed (right).", **SHOW_DEFAULTS)
    s.add_argument("checkpoints", nargs="+", help="audio model checkpoints (e.g. RNN-GMM and VRNN-Gauss)")
    s.add_argument("--out", required=True, help="output .png")
    s.add_argument("--seconds", type=float, default=2.0, help="length of each waveform")
    s.add_argument("--zoom", type=float, default=0.05, help="length of the zoomed window in seconds")
    s.add_argument("--seed", type=int, default=0, help="seed of the samples")
    s.add_argument("--overwrite", action="store_true", help="replace an existing --out")
    s.add_argument("--device", default="cpu", help=DEVICE_HELP)
    s.set_defaults(func=_cmd_waveforms)


def _add_bench(sub) -> None:
    s = sub.add_parser("bench", help="training speed of the library against the textbook per-step implementation",
                       description="Alternating, in one process: steps/s, GFLOP/s, fraction of a large matmul's rate "
                                   "and peak memory of the library and of vrnn/lab/speed/reference.py; scaling with T and K.",
                       **SHOW_DEFAULTS)
    s.add_argument("--configs", nargs="+", metavar="NAME", help="configurations (default: all; small, paper, srnn-polyphonic)")
    s.add_argument("--quick", action="store_true", help="one short repeat of each measurement (checks that it runs)")
    s.add_argument("--device", default="auto", help=DEVICE_HELP)
    s.add_argument("--no-memory", action="store_true", help="skip the peak-memory probes (subprocesses on CPU)")
    s.add_argument("--json", action="store_true", help="print one JSON object")
    s.add_argument("--markdown", metavar="PATH", help="also write the figures as a markdown report (benchmarks/SPEED.md)")
    s.add_argument("--jsb", metavar="PATH", help="also time the K=40 evaluation of this JSB Chorales pickle's test set")
    s.set_defaults(func=_cmd_bench)


def _add_experiment(sub) -> None:
    s = sub.add_parser("experiment", help="train, evaluate and report the runs an experiment file lists",
                       description="Run an experiment (benchmarks/*/experiment.toml): train every run in resumable "
                                   "segments, export slim checkpoints with their learning curves, evaluate every "
                                   "committed checkpoint and write RESULTS.md from those evaluations.", **SHOW_DEFAULTS)
    s.add_argument("experiment", help="the experiment file, e.g. benchmarks/polyphonic/experiment.toml")
    s.add_argument("--eval-only", action="store_true", help="evaluate the committed checkpoints and render; no training")
    s.add_argument("--data-dir", help="folder the experiment's {data_dir} paths point into "
                                      "(default $VRNN_BENCHMARK_DATA, else shared/data beside the repository)")
    s.add_argument("--work", help="folder for the training runs (default runs/experiments/NAME)")
    s.add_argument("--runs", metavar="A,B", help="train only these runs (all are still evaluated)")
    s.add_argument("--seeds", metavar="0,1", help="train only these seeds of the runs")
    s.add_argument("--candidates", metavar="0,2", help="train only these candidates of each search (for several "
                                                        "processes sharing one search, with --train-only)")
    s.add_argument("--data", metavar="A,B", help="train only on these data sets of the experiment")
    s.add_argument("--resume", action="store_true", help="continue the runs found in --work")
    s.add_argument("--allow-changes", action="store_true",
                   help="with --resume: continue runs whose config changed (the change is logged in each run)")
    s.add_argument("--minutes", type=float, default=0.0,
                   help="stop starting new training segments after this many minutes (continue with --resume)")
    s.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override for every run")
    s.add_argument("--retrain", action="store_true", help="train runs whose checkpoint is committed again "
                                                         "(default: train only what has no checkpoint yet)")
    s.add_argument("--train-only", action="store_true", help="train and export; evaluate and render later with "
                                                            "--eval-only (for several trainings side by side)")
    s.add_argument("--only-new", action="store_true",
                   help="evaluate only checkpoints that results.json has no evaluation of, under these [eval] "
                        "settings, for the same file (sha256); keep the others' (default: evaluate every one)")
    s.add_argument("--quiet", action="store_true", help="no progress bars")
    s.set_defaults(func=_cmd_experiment)


# one builder per command (its subparser, options and handler), in the order `vrnn --help` lists them
COMMANDS = (_add_prepare, _add_train, _add_eval, _add_compare, _add_score, _add_sample, _add_analyze, _add_waveforms,
            _add_bench, _add_experiment)


def build_parser() -> argparse.ArgumentParser:
    from . import __version__

    p = argparse.ArgumentParser(prog="vrnn", description="Variational recurrent neural networks: train, evaluate, "
                                "sample. `vrnn COMMAND --help` lists a command's options and their defaults.")
    p.add_argument("--version", action="version", version=f"vrnn {__version__}")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for add in COMMANDS:
        add(sub)
    return p


def _integers(text: str | None, option: str) -> list[int] | None:
    try:
        return None if text is None else [int(s) for s in text.split(",") if s.strip()]
    except ValueError:
        raise VrnnError(f"{option} {text!r}: give integers separated by commas, e.g. {option} 0,1") from None


def _cmd_experiment(args) -> None:
    from .lab.experiments.runner import run_experiment

    run_experiment(args.experiment, eval_only=args.eval_only, data_dir=args.data_dir, work=args.work,
                   runs=[r for r in (args.runs or "").split(",") if r], seeds=_integers(args.seeds, "--seeds"),
                   candidates=_integers(args.candidates, "--candidates"),
                   datasets=[d for d in (args.data or "").split(",") if d], resume=args.resume,
                   allow_changes=args.allow_changes,
                   minutes=args.minutes, overrides=args.set, quiet=args.quiet, retrain=args.retrain,
                   train_only=args.train_only, only_new=args.only_new)


def _cmd_bench(args) -> None:
    from .device import resolve_device
    from .io import atomic_write
    from .lab.speed.bench import run_bench
    from .lab.speed.report import format_markdown, format_text

    progress = lambda m: print(m, file=sys.stderr, flush=True)  # noqa: E731 (stderr: --json output stays clean)
    r = run_bench(device=resolve_device(args.device, setting="--device"), quick=args.quick, configs=args.configs,
                  memory=not args.no_memory, progress=progress, jsb=args.jsb)
    if args.markdown:
        with atomic_write(args.markdown) as tmp:
            tmp.write_text(format_markdown(r))
    print(json.dumps(r) if args.json else format_text(r))


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        args.func(args)
        sys.stdout.flush()  # a closed pipe shows here, not in the interpreter's exit
    except TrainingDiverged as e:
        print(f"vrnn: training stopped: {e}", file=sys.stderr)
        return 3
    except VrnnError as e:
        print(f"vrnn: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt as e:  # a training run says where it stopped and how to resume (TrainingInterrupted)
        print(f"vrnn: {e}" if isinstance(e, TrainingInterrupted) else "vrnn: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # `vrnn eval ... | head -1`: the reader left; stop quietly, as a process killed by SIGPIPE
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # the exit's flush writes nowhere
        return 141
    except (MemoryError, RuntimeError) as e:  # out of memory: the setting to lower; anything else is a bug
        from .errors import memory_hint

        hint = memory_hint(e, args.command)
        if hint is None:
            raise
        print(f"vrnn: error: {hint}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
