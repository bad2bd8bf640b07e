"""One runner for every experiment: train each run (resumably), keep its slim checkpoint and learning
curve, evaluate every committed checkpoint with :func:`vrnn.api.evaluate_checkpoint`, render the report.

``vrnn experiment benchmarks/NAME/experiment.toml [--eval-only]``:

1. **train** (skipped with ``--eval-only``): every (run, data set, seed) trains with the library's
   trainer under ``--work`` (default ``runs/experiments/NAME``, ignored by git), in segments of
   ``segment_steps`` (each a ``--resume`` of the same run, which continues exactly). With
   ``--minutes M`` the invocation stops starting new segments after M minutes; ``--resume`` later
   continues every unfinished run where it stopped, so an experiment longer than one sitting is
   trained in several. A finished run's best checkpoint is exported without optimiser state to
   ``benchmarks/NAME/checkpoints/<data>/<run>.pt`` beside a ``.json`` of how it was trained (steps,
   why it stopped, time, hardware, overrides, and its learning curve from ``log.jsonl``).
   A run with a ``search`` (:mod:`.search`) first trains every candidate of its grid the same way, to
   ``benchmarks/NAME/checkpoints/search/<run>/c<i>.pt``, scores them on the validation split, and its seeds
   then train with the chosen settings.
2. **evaluate**: every committed checkpoint, with the experiment's ``[eval]`` settings (latent models also
   with the particle filter at each K of ``smc_particles``); the reports go to ``benchmarks/NAME/results.json``
   (each report's per-sequence numbers beside its checkpoint: :mod:`vrnn.lab.experiments.results`) (with the date, the hardware and the evaluation times), with each search's table (its candidates scored on
   the validation split only, also in ``search.json``). A committed checkpoint trained on other data than the
   experiment names now (another file or prepared name, a changed file, a prepared set rebuilt otherwise) is
   refused, in training and in evaluation, with the ``--retrain`` command that replaces it.
3. **render**: ``RESULTS.md`` (and the figures the report draws) from ``results.json`` only, so the
   same checkpoints always give the same file.
"""
from __future__ import annotations

import dataclasses
import datetime
import hashlib
import json
import os
import shutil
import time
from pathlib import Path

from ...api import evaluate_checkpoint
from ...checkpoint import export_checkpoint, load_checkpoint
from ...training.config import load_config
from ...data import DataConfig, SequenceData, load_dataset
from ...io import atomic_write
from ...data.recipes import RECIPES, prepare
from ...data.resolve import DATA_DIR, data_reference, locate, portable_meta
from ...errors import VrnnError
from ...hardware import describe_hardware
from ...training.run import learning_curve
from ...training.trainer import fit
from .reports import render
from .results import read_results, write_results
from .search import candidate_run, check_chosen, committed, score_search
from .spec import Experiment, RunSpec

MAX_CHECKPOINT_MB = 10  # what one committed checkpoint may weigh


def default_data_dir(exp: Experiment) -> Path:
    """$VRNN_BENCHMARK_DATA, else the ``shared/data`` folder beside the repository (the developers' layout)."""
    return Path(os.environ.get("VRNN_BENCHMARK_DATA", exp.root.parent / "shared" / "data"))


def resolve_source(exp: Experiment, name: str, data_dir: Path) -> str:
    """The ``data.source`` of data set ``name``: its file (under ``data_dir`` for ``{data_dir}/...``, else relative
    to the experiment file's folder), or its prepared name (prepared now with ``prepare``'s recipe and options if
    it is not cached yet; without ``prepare``, a name ``vrnn prepare`` has cached already)."""
    spec = exp.data[name]
    if spec.prepare:
        opts = {k: _data_path(exp, name, v, data_dir) if k == "source" else v for k, v in spec.prepare.items()
                if k != "recipe"}
        prepare(spec.prepare.get("recipe", spec.source), save_as=spec.source, **opts)
        return spec.source
    if DATA_DIR in spec.source:
        return _data_path(exp, name, spec.source, data_dir)
    return _own_source(exp, name, spec.source)


def _data_path(exp: Experiment, name: str, given: str, data_dir: Path) -> str:
    """A path of data set ``name`` that must exist: ``{data_dir}/...`` inside ``data_dir``, else relative to the
    experiment file's folder (or absolute)."""
    if DATA_DIR in given:
        path, fix = Path(given.replace(DATA_DIR, str(data_dir))), "pass --data-dir with the folder that holds it"
    else:
        path, fix = exp.folder / Path(given).expanduser(), f"give a path relative to {exp.folder} (or absolute)"
    if not path.exists():
        raise VrnnError(f"{path}: not found (data set {name!r} of {exp.path}); {fix}")
    return str(path)


def _own_source(exp: Experiment, name: str, source: str) -> str:
    """A ``source`` without ``{data_dir}``: a file or folder relative to the experiment file's folder (or
    absolute), else the name of a data set ``vrnn prepare`` has cached; one line saying what to do otherwise."""
    setting = f"{exp.path} [data.{name}] source"
    path = exp.folder / Path(source).expanduser()
    if path.is_dir():
        raise VrnnError(f"{setting} {path}: a folder, not a data file; build a data set from it with "
                        f'prepare = {{ recipe = "midi", source = "{source}" }} in [data.{name}] (recipes: '
                        f"{', '.join(sorted(RECIPES))})")
    if path.suffix or path.exists() or "/" in source:
        located, _ = locate(str(path), setting, f"give a data file relative to {exp.folder} (or absolute), "
                                                "or a prepared data set's name")
        return str(located)
    locate(source, setting, f'prepare it first (`vrnn prepare RECIPE --as {source}`, or add prepare = {{ recipe '
                            f'= "..." }} to [data.{name}]), or give a data file relative to {exp.folder}')
    return source


def run_config(exp: Experiment, run: RunSpec) -> Path | str:
    """``run``'s config file: relative to the repository root (an experiment in ``benchmarks/NAME/``), else to the
    experiment file's folder; a name without a suffix found in neither is a shipped preset's."""
    for base in (exp.root, exp.folder):
        if (base / run.config).is_file():
            return base / run.config
    if Path(run.config).suffix:
        raise VrnnError(f"{exp.path}: [runs.{run.name}] config {run.config!r} is neither in {exp.root} nor in "
                        f"{exp.folder}; give a path relative to one of them, or a preset's name (e.g. vrnn-bernoulli)")
    return run.config


def run_dir(work: Path, run: RunSpec, data: str, seed: int) -> Path:
    return work / data / run.key(seed)


def train_run(exp: Experiment, run: RunSpec, data: str, seed: int, source: str, work: Path, *, resume: bool,
              overrides: list[str], deadline: float, quiet: bool, allow_changes: bool = False) -> dict | None:
    """Train one (run, data set, seed) in segments; the info of the finished run, or None if ``deadline``
    (a ``time.monotonic()`` value) came first and the run is left to ``--resume``."""
    sets = [f"data.source={json.dumps(source)}", f"train.seed={seed}", *run.overrides, *overrides]
    cfg = load_config(run_config(exp, run), sets)
    total, seg = cfg.train.max_steps, run.segment_steps or cfg.train.max_steps
    if seg % cfg.train.eval_every and seg != total:
        raise VrnnError(f"{exp.path}: [runs.{run.name}] segment_steps={seg} is not a multiple of train.eval_every="
                        f"{cfg.train.eval_every}; a segment must end at an evaluation so segments change nothing")
    out = run_dir(work, run, data, seed)
    resuming = resume and (out / "last.pt").is_file()
    step = load_checkpoint(out / "last.pt")["step"] if resuming else 0
    print(f"== {data} / {run.key(seed)}: {'resuming at step ' + str(step) if resuming else 'training'} -> {out}",
          flush=True)
    while True:
        chunk = cfg.replace(train=dataclasses.replace(cfg.train, max_steps=min(total, step + seg)))
        result = fit(chunk, out, resume=resuming, overwrite=not resuming, progress=not quiet,
                     allow_changes=allow_changes and resuming)
        resuming, step = True, result.steps
        if result.stopped != "max_steps" or step >= total:
            break
        if time.monotonic() >= deadline:
            print(f"   stopped at step {step} (--minutes spent); continue with --resume", flush=True)
            return None
    last = load_checkpoint(out / "last.pt")
    info = {"run": run.name, "data": data, "seed": seed, "steps": step, "best_step": load_checkpoint(
        out / "best.pt")["step"], "stopped": result.stopped, "best_valid_per_step": result.best_valid,
            "watched": result.watched,
            "train_seconds": last["elapsed"], "seconds_per_step": last["elapsed"] / max(step, 1),
            "hardware": describe_hardware(), "overrides": [portable_override(exp, data), *sets[1:]],
            "date": datetime.date.today().isoformat(), "curve": learning_curve(out / "log.jsonl")}
    return info


def portable_override(exp: Experiment, data: str) -> str:
    """The ``data.source`` override of data set ``data`` as the experiment file writes it (``{data_dir}/...``
    or a prepared name): what a run's .json records, never a path of this machine."""
    return f"data.source={json.dumps(exp.data[data].source)}"


def export(exp: Experiment, run: RunSpec, data: str, seed: int, work: Path, info: dict, data_dir: Path,
           dest: Path | None = None) -> Path:
    """The run's ``best.pt``, slim, its weights stored as the experiment's ``weights`` says (float16 unless
    it says int8), at ``dest`` (default: its committed path), beside ``info``."""
    dest = dest or exp.checkpoint(run, data, seed)
    # the committed tables are computed from exactly the committed weights; the data source is
    # stored as {data_dir}/... (or its prepared name), never as a path of this machine
    size = export_checkpoint(run_dir(work, run, data, seed) / "best.pt", dest, weights=exp.weights,
                            bench_dir=data_dir) / 2 ** 20
    dest.with_suffix(".json").write_text(json.dumps(info, indent=1) + "\n")
    if size > MAX_CHECKPOINT_MB:
        print(f"warning: {dest} is {size:.1f} MB, over the {MAX_CHECKPOINT_MB} MB limit for committed checkpoints",
              flush=True)
    return dest


def train_search(exp: Experiment, run: RunSpec, source: str, work, data_dir: Path, *, retrain: bool,
                 candidates: list[int] | None = None, **how) -> bool:
    """Train and export every candidate of ``run``'s search not yet committed (all of them with ``retrain``;
    only those listed in ``candidates`` when given); True when every candidate is committed, False when one
    is missing or the session's deadline stopped one (``--resume`` continues it)."""
    for i, overrides in enumerate(run.candidates()):
        if candidates is not None and i not in candidates:
            continue
        if not retrain and committed(exp, run, i):
            print(f"== search {run.name} c{i}: committed; --retrain trains it again", flush=True)
            continue
        cand = candidate_run(run, i)
        info = train_run(exp, cand, run.search_data, run.search_seed, source, work / "search", **how)
        if info is None:
            return False
        export(exp, cand, run.search_data, run.search_seed, work / "search", info | {"search": list(overrides)},
               data_dir, dest=exp.search_folder(run) / f"c{i}.pt")
    return all(committed(exp, run, i) for i in range(len(run.candidates())))


def reuse_candidate(exp: Experiment, run: RunSpec, table: dict) -> Path:
    """The seed of ``run`` that trains on the search's data with the search's seed: the chosen candidate is that
    very run (same data, seed and settings; training is deterministic), so its committed checkpoint is copied
    rather than trained twice, and its .json says so."""
    i, dest = table["chosen"], exp.checkpoint(run, run.search_data, run.search_seed)
    src = exp.search_folder(run) / f"c{i}.pt"
    dest.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(src, dest)
    info = {k: v for k, v in json.loads(src.with_suffix(".json").read_text()).items() if k != "search"}
    info |= {"run": run.name, "search_chosen": table["chosen_set"],
             "reused": f"search candidate c{i}: the same data, seed and settings, trained once"}
    dest.with_suffix(".json").write_text(json.dumps(info, indent=1) + "\n")
    print(f"== {run.search_data} / {run.key(run.search_seed)}: the search's chosen candidate c{i} (same data, seed "
          f"and settings) -> {dest.relative_to(exp.root)}", flush=True)
    return dest


def search_tables(exp: Experiment, sources: dict[str, str], scored: dict[str, dict]) -> dict[str, dict]:
    """The search table of every run whose candidates are all committed (``scored``: those this invocation
    has scored already), each checked against the seeds trained with its choice; a run with committed
    seeds but no complete search is an error."""
    tables = {}
    for run in exp.runs.values():
        if not run.search:
            continue
        done = all((exp.search_folder(run) / f"c{i}.pt").is_file() for i in range(len(run.candidates())))
        seeds = any(exp.checkpoint(run, d, seed).is_file() for r, d, seed in exp.cells() if r is run)
        if done or seeds:  # (with seeds but candidates missing, score_search names the missing one)
            tables[run.name] = scored.get(run.name) or score_search(exp, run, sources[run.search_data])
            check_chosen(exp, run, tables[run.name])
    for run in exp.runs.values():  # the runs trained with another run's choice
        if run.settings_from in tables:
            check_chosen(exp, run, tables[run.settings_from])
    return tables


def data_summary(data: SequenceData) -> dict:
    """What a report says about a data set: its metadata (plain values), the split sizes, the speakers of
    each split where the data record them, and the test sequences cut from each source file (``file_sequences``:
    the claims' bootstrap clusters, kept here so that the table is rendered from results.json alone)."""
    meta = {k: v for k, v in data.meta.items() if isinstance(v, (str, int, float, bool)) or v is None}
    speakers, files = data.meta.get("speakers"), data.meta.get("file_sequences", {}).get("test")
    return meta | {"sequences": {s: len(v) for s, v in data.splits.items()},
                   "steps": {s: int(sum(len(a) for a in v)) for s, v in data.splits.items()}} | (
        {"speakers": {s: list(v) for s, v in speakers.items()}} if isinstance(speakers, dict) else {}) | (
        {"test_file_sequences": [int(c) for c in files]} if files is not None else {})


def portable_results(exp: Experiment, results: dict, data_dir: Path) -> dict:
    """``results`` as ``results.json`` holds them: each data set's source as the experiment file names it, other
    paths inside ``data_dir`` as ``{data_dir}/...``, and no other path of this machine."""
    data = {name: portable_meta(m, {"source": exp.data[name].source}, data_dir)
            | {k: m[k] for k in ("sequences", "steps", "speakers", "test_file_sequences") if k in m}
            for name, m in results["data"].items()}
    return results | {"data": data}


# what a prepared data set's metadata says of its content (compared where both the checkpoint and the data have it)
IDENTITY = ("kind", "rate", "frame_size", "sequence_frames", "split", "voice")


def other_data(path: Path, data: SequenceData, data_dir: Path | None) -> str | None:
    """Why checkpoint ``path`` was trained on other data than ``data`` (None when it was not):
    another file or prepared name than the reference this data would get (:func:`vrnn.data.resolve.data_reference`),
    a file whose sha256 changed, or a prepared set of the same name built otherwise (its split, framing, ...)."""
    ckpt = load_checkpoint(path)
    theirs, ours = ckpt.get("data_ref") or {}, data_reference(data, path.parent, data_dir)
    if (theirs.get("kind"), theirs.get("source")) != (ours["kind"], ours["source"]):
        return f"trained on {theirs.get('source', ckpt['config']['data']['source'])!r}, but it names {ours['source']!r}"
    if "sha256" in theirs and "sha256" in ours and theirs["sha256"] != ours["sha256"]:
        return (f"trained on {ours['source']} with sha256 {theirs['sha256'][:12]}…, but the file now has "
                f"{ours['sha256'][:12]}…")
    now, then = data.meta, ckpt.get("data_meta", {})
    changed = [k for k in IDENTITY if k in now and k in then and now[k] != then[k]]
    if changed:
        return f"trained on {ours['source']} with {changed[0]} {then[changed[0]]!r}, but it now has {now[changed[0]]!r}"
    return None


def check_trained_on(exp: Experiment, run: RunSpec, name: str, seed: int, data: SequenceData,
                     data_dir: Path | None) -> None:
    """Refuse a committed checkpoint trained on other data than the experiment names now (:func:`other_data`)."""
    path = exp.checkpoint(run, name, seed)
    why = other_data(path, data, data_dir)
    if why is not None:
        raise VrnnError(f"{path.relative_to(exp.root)}: stale: {why} ([data.{name}] of {exp.path.name}); train it "
                        f"again: vrnn experiment {exp.path.relative_to(exp.root)} --retrain --runs {run.name} "
                        f"--data {name} --seeds {seed}")


def evaluate_all(exp: Experiment, sources: dict[str, str], scored: dict[str, dict] | None = None,
                 data_dir: Path | None = None, previous: dict | None = None, cache: Path | None = None) -> dict:
    """Evaluate every committed checkpoint of the experiment on ``[eval] split`` (latent models also with the
    particle filter at each K of ``[eval] smc_particles``), and every search's candidates on the validation split
    (:func:`search_tables`); the content of ``results.json``. A checkpoint trained on other data than the
    experiment names now is an error (:func:`check_trained_on`).

    Each evaluation is also written, as soon as it is done, to ``cache/<data>/<key>.json`` (a results.json of one
    checkpoint), so that an interrupted evaluation loses at most the checkpoint it was on. With ``previous`` (an
    earlier results.json), an evaluation of the same checkpoint file (sha256) under the same ``[eval]``, found
    there or in ``cache``, is kept rather than computed again."""
    ev = exp.eval
    results = {"experiment": str(exp.path.relative_to(exp.root)), "date": datetime.date.today().isoformat(),
               "hardware": describe_hardware(), "eval": dataclasses.asdict(ev), "data": {}, "runs": {},
               "evaluations": {}, "eval_seconds": {}, "searches": search_tables(exp, sources, scored or {})}
    for name in exp.data:
        cells = [(run, seed) for run, d, seed in exp.cells() if d == name and exp.checkpoint(run, d, seed).is_file()]
        if not cells:
            continue
        data = load_dataset(DataConfig(source=sources[name]))
        results["data"][name] = data_summary(data)
        for run, seed in cells:
            check_trained_on(exp, run, name, seed, data, data_dir)
        for run, seed in cells:
            path, key = exp.checkpoint(run, name, seed), run.key(seed)
            report, seconds = _evaluate_cell(exp, run, path, data, results["eval"], name, key, previous, cache)
            info = path.with_suffix(".json")
            results["evaluations"].setdefault(name, {})[key] = report
            results["runs"].setdefault(name, {})[key] = json.loads(info.read_text()) if info.is_file() else {}
            results["eval_seconds"].setdefault(name, {})[key] = seconds
            print(f"{name:16s} {key:22s} ELBO {report['elbo']['per_step_total']:9.3f}  log-lik "
                  f"{report['log_likelihood']['per_step_total']:9.3f} nats/step (total/total)", flush=True)
    if not results["evaluations"]:
        raise VrnnError(f"{exp.folder / 'checkpoints'}: no checkpoints; train first (run without --eval-only)")
    return results


def _evaluate_cell(exp: Experiment, run: RunSpec, path: Path, data: SequenceData, settings: dict, name: str, key: str,
                   previous: dict | None, cache: Path | None) -> tuple[dict, float]:
    """One checkpoint's evaluation and its seconds: kept from ``previous`` or ``cache`` (:func:`kept_evaluation`)
    when ``previous`` is given, else computed and written to ``cache``. A run's own ``smc_particles`` replace
    ``[eval]``'s, and its report records them (``eval_overrides``)."""
    ev, t0 = exp.eval, time.perf_counter()
    sha = hashlib.sha256(path.read_bytes()).hexdigest()
    stored = cache / name / f"{key}.json" if cache is not None else None
    overrides = {} if run.smc_particles is None else {"smc_particles": list(run.smc_particles)}
    if previous is not None:
        cached = json.loads(stored.read_text()) if stored is not None and stored.is_file() else None
        for earlier in (previous, cached):
            report, seconds = kept_evaluation(earlier, settings | overrides, name, key, sha)
            if report is not None:
                return report, seconds
    report = evaluate_checkpoint(path, split=ev.split, iw_samples=ev.iw_samples, batch_size=ev.batch_size, data=data,
                                 per_sequence=True, estimator=ev.estimator,
                                 particles=tuple(overrides.get("smc_particles", ev.smc_particles)))
    report |= {"checkpoint": str(path.relative_to(exp.root)), "checkpoint_sha256": sha}
    if overrides:
        report["eval_overrides"] = overrides
    seconds = round(time.perf_counter() - t0, 1)
    if stored is not None:
        stored.parent.mkdir(parents=True, exist_ok=True)
        with atomic_write(stored) as tmp:
            tmp.write_text(json.dumps({"eval": settings, "evaluations": {name: {key: report}},
                                       "eval_seconds": {name: {key: seconds}}}) + "\n")
    return report, seconds


def kept_evaluation(previous: dict | None, settings: dict, name: str, key: str, sha: str):
    """(report, seconds) of ``previous`` results.json for checkpoint ``key`` on data set ``name`` when it was
    computed from the file with this ``sha`` under the same settings (``[eval]`` with the run's
    ``eval_overrides``); (None, None) otherwise."""
    report = ((previous or {}).get("evaluations") or {}).get(name, {}).get(key)
    if not previous or report is None or report.get("checkpoint_sha256") != sha:
        return None, None
    if json.loads(json.dumps(settings)) != (previous.get("eval") or {}) | report.get("eval_overrides", {}):
        return None, None
    return dict(report), previous.get("eval_seconds", {}).get(name, {}).get(key)


def run_experiment(path: str | Path, *, eval_only: bool = False, data_dir: str | Path | None = None,
                   work: str | Path | None = None, runs: list[str] | None = None,
                   seeds: list[int] | None = None, candidates: list[int] | None = None, datasets: list[str] | None = None, resume: bool = False,
                   allow_changes: bool = False,
                   minutes: float = 0.0, overrides: list[str] | None = None, quiet: bool = False,
                   retrain: bool = False, train_only: bool = False, only_new: bool = False) -> Path | None:
    """``vrnn experiment``: train (unless ``eval_only``), evaluate and render (unless ``train_only``); returns
    the RESULTS.md path.

    A (run, data set, seed) whose checkpoint is already committed is not trained again unless ``retrain``:
    adding a seed or a run to an experiment trains only what is new. A run with a ``search`` first trains
    and scores its candidates on validation (:mod:`.search`); its seeds then train with the chosen settings."""
    from .spec import load_experiment

    exp = load_experiment(path)
    _check_choices(exp, runs, datasets, eval_only, train_only, allow_changes, resume)
    if only_new and train_only:
        raise VrnnError("--only-new chooses what to evaluate; --train-only evaluates nothing: drop one")
    data_dir = Path(data_dir) if data_dir is not None else default_data_dir(exp)
    work = Path(work) if work is not None else exp.root / "runs" / "experiments" / exp.folder.name
    used = {d for run, d, _ in exp.cells()} | {run.search_data for run in exp.runs.values() if run.search}
    sources = {name: resolve_source(exp, name, data_dir) for name in exp.data if name in used}
    scored: dict[str, dict] = {}
    if not eval_only:
        how = dict(resume=resume, overrides=overrides or [], quiet=quiet, allow_changes=allow_changes,
                   deadline=time.monotonic() + 60 * minutes if minutes > 0 else float("inf"))
        for run in exp.runs.values():
            if run.search and not (runs and run.name not in runs) and train_search(
                    exp, run, sources[run.search_data], work, data_dir, retrain=retrain, candidates=candidates,
                    **how):
                scored[run.name] = score_search(exp, run, sources[run.search_data])
        for run in exp.runs.values():  # a selected run trained with another's choice: that search, if complete
            src = exp.runs.get(run.settings_from)
            if src and src.name not in scored and not (runs and run.name not in runs) and all(
                    committed(exp, src, i) for i in range(len(src.candidates()))):
                scored[src.name] = score_search(exp, src, sources[src.search_data])
        _train_cells(exp, sources, work, data_dir, scored, runs=runs, seeds=seeds, datasets=datasets, retrain=retrain,
                     **how)
    if train_only:
        print(f"trained; evaluate and render with vrnn experiment {path} --eval-only", flush=True)
        return None
    before = exp.folder / "results.json"
    previous = (read_results(exp.folder) if before.is_file() else {}) if only_new else None
    results = evaluate_all(exp, sources, scored, data_dir, previous, cache=work / "evaluations")
    write_results(exp.folder, portable_results(exp, results, data_dir))
    out = render(exp, results)  # the figures read the data where they are on this machine
    print(f"wrote {out}")
    return out


def _check_choices(exp: Experiment, runs, datasets, eval_only: bool, train_only: bool, allow_changes: bool,
                   resume: bool) -> None:
    """The command line's choices fit the experiment and each other."""
    unknown = [r for r in runs or [] if r not in exp.runs]
    if unknown:
        raise VrnnError(f"--runs: {unknown[0]!r} is not a run of {exp.path}; choose from {', '.join(exp.runs)}")
    unknown = [d for d in datasets or [] if d not in exp.data]
    if unknown:
        raise VrnnError(f"--data: {unknown[0]!r} is not a data set of {exp.path}; choose from {', '.join(exp.data)}")
    if eval_only and train_only:
        raise VrnnError("--eval-only and --train-only exclude each other: choose one")
    if allow_changes and not resume:
        raise VrnnError("--allow-changes applies only with --resume (it lets resumed runs change their settings)")


def _train_cells(exp: Experiment, sources: dict[str, str], work: Path, data_dir: Path, scored: dict[str, dict], *,
                 runs, seeds, datasets, retrain: bool, overrides: list[str], **how) -> None:
    """Train and export every selected (run, data set, seed) not committed yet; a run with a search trains
    with the settings its search chose (``scored``), and waits while the search is unfinished. A selected
    committed checkpoint trained on other data than the experiment names now stops it before any training."""
    cells = [(run, d, seed) for run, d, seed in exp.cells() if not ((runs and run.name not in runs) or (
        seeds is not None and seed not in seeds) or (datasets and d not in datasets))]
    kept = [(run, d, seed) for run, d, seed in cells if exp.checkpoint(run, d, seed).is_file() and not retrain]
    for d in dict.fromkeys(d for _, d, _ in kept):
        data = load_dataset(DataConfig(source=sources[d]))
        for run, _, seed in (c for c in kept if c[1] == d):
            check_trained_on(exp, run, d, seed, data, data_dir)
    for run, d, seed in cells:
        if (run, d, seed) in kept:
            print(f"== {d} / {run.key(seed)}: committed ({exp.checkpoint(run, d, seed).name}); --retrain trains it "
                  f"again", flush=True)
            continue
        if run.chooser and run.chooser not in scored:
            print(f"== {d} / {run.key(seed)}: waits for the search of [runs.{run.chooser}] to finish; continue "
                  f"with --resume", flush=True)
            continue
        chosen = scored[run.chooser]["chosen_set"] if run.chooser else []
        if run.search and (d, seed) == (run.search_data, run.search_seed) and not overrides:
            reuse_candidate(exp, run, scored[run.name])
            continue
        info = train_run(exp, run, d, seed, sources[d], work, overrides=[*chosen, *overrides], **how)
        if info is not None:
            export(exp, run, d, seed, work, info | ({"search_chosen": chosen} if run.chooser else {}), data_dir)
