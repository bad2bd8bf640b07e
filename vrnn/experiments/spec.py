"""An experiment file: a small TOML that lists what to train and how to report it.

::

    title = "Polyphonic music: SRNN Table 2"
    report = "polyphonic"                     # the table layout (vrnn.experiments.reports)

    [eval]                                    # how every checkpoint is evaluated
    split = "test"
    iw_samples = 40
    batch_size = 3                            # sequences per batch, each tiled iw_samples times

    [data.jsb-pickle]                         # a data set: a file (under --data-dir) or a prepared name
    source = "{data_dir}/polyphonic/jsb_chorales.pickle"
    about = "JSB Chorales, canonical pickle: quarter-note steps"
    # prepare = { recipe = "fsdd", source = "{data_dir}/speech/fsdd/recordings" }   (for prepared sets)

    [runs.rnn]                                # a model trained on each of its data sets, once per seed
    label = "RNN (Bernoulli output)"
    config = "configs/rnn-bernoulli.toml"     # relative to the repository root
    data = ["jsb-pickle"]
    set = ["train.max_minutes=5"]             # config overrides, as `vrnn train --set`
    seeds = [0]                               # train.seed of each repeat; or per data set:
                                              # seeds = { jsb-pickle = [0, 1, 2], nottingham = [0] }
    segment_steps = 0                         # train in resumable segments of this many steps (0: one call)

Anything else a report needs (published numbers, notes) lives in ``[report_options]``. Paths
in ``source`` may use ``{data_dir}`` (the ``--data-dir`` flag); every other path is relative
to the repository root that holds the experiment's folder.
"""
from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import VrnnError


@dataclass(frozen=True)
class DataSpec:
    name: str
    source: str  # a data file (with {data_dir}) or a prepared data set's name
    about: str = ""
    prepare: dict = field(default_factory=dict)  # recipe and its options, when ``source`` is a prepared name


@dataclass(frozen=True)
class RunSpec:
    name: str
    label: str
    config: str
    data: tuple[str, ...]
    overrides: tuple[str, ...] = ()
    seeds: tuple[int, ...] = (0,)
    segment_steps: int = 0
    curve_split: str = ""  # evaluate last.pt on this split after every segment (a time-to-quality curve)
    per_data: tuple[tuple[str, tuple[int, ...]], ...] = ()  # (data set, its seeds) where they differ by data set

    def seeds_on(self, data: str) -> tuple[int, ...]:
        """The seeds trained on ``data``: the run's ``seeds``, or that data set's entry of a seeds table."""
        return dict(self.per_data).get(data, self.seeds)

    def key(self, seed: int) -> str:
        """The run's file name: ``name``, or ``name-seedN`` when the run has several seeds or a non-zero one."""
        return self.name if self.seeds == (0,) else f"{self.name}-seed{seed}"


@dataclass(frozen=True)
class EvalSpec:
    split: str = "test"
    iw_samples: int = 40
    batch_size: int = 64
    estimator: str = "is"  # is | smc: smc also reports the particle filter's log p(x) with K = iw_samples


@dataclass(frozen=True)
class Experiment:
    path: Path  # the experiment file
    title: str
    report: str
    data: dict[str, DataSpec]
    runs: dict[str, RunSpec]
    eval: EvalSpec
    report_options: dict

    @property
    def folder(self) -> Path:
        return self.path.parent

    @property
    def root(self) -> Path:
        """The repository root: config paths are relative to it (the experiment lives in benchmarks/NAME/)."""
        return self.path.resolve().parents[2]

    def checkpoint(self, run: RunSpec, data: str, seed: int) -> Path:
        return self.folder / "checkpoints" / data / f"{run.key(seed)}.pt"

    def cells(self):
        """Every (run, data set, seed) the experiment trains and evaluates, in file order."""
        for run in self.runs.values():
            for d in run.data:
                for seed in run.seeds_on(d):
                    yield run, d, seed


def _table(raw, where: str, known: set[str], required: set[str] = frozenset()) -> dict:
    if not isinstance(raw, dict):
        raise VrnnError(f"{where}: expected a table, got {raw!r}")
    unknown = sorted(set(raw) - known)
    if unknown:
        raise VrnnError(f"{where}: unknown setting {unknown[0]!r}; choose from {sorted(known)}")
    missing = sorted(required - set(raw))
    if missing:
        raise VrnnError(f"{where}: missing setting {missing[0]!r}")
    return raw


def load_experiment(path: str | Path) -> Experiment:
    """Read and check an experiment file; every mistake is one VrnnError naming the file and the field."""
    path = Path(path)
    if not path.is_file():
        raise VrnnError(f"{path}: experiment file not found; give a benchmarks/*/experiment.toml")
    try:
        raw = tomllib.loads(path.read_text())
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as e:
        raise VrnnError(f"{path}: not a valid TOML file ({e}); fix the syntax") from None
    _table(raw, str(path), {"title", "report", "eval", "data", "runs", "report_options"}, {"title", "report", "runs"})
    data = {}
    for name, d in raw.get("data", {}).items():
        d = _table(d, f"{path}: [data.{name}]", {"source", "about", "prepare"}, {"source"})
        data[name] = DataSpec(name, d["source"], d.get("about", ""), d.get("prepare", {}))
    runs = {}
    for name, r in raw["runs"].items():
        r = _table(r, f"{path}: [runs.{name}]", {"label", "config", "data", "set", "seeds", "segment_steps",
                                                  "curve_split"}, {"config", "data"})
        for d in r["data"]:
            if d not in data:
                raise VrnnError(f"{path}: [runs.{name}] data {d!r} is not a [data.*] table; choose from {sorted(data)}")
        raw_seeds = r.get("seeds", [0])
        table = raw_seeds if isinstance(raw_seeds, dict) else {d: raw_seeds for d in r["data"]}
        extra = sorted(set(table) - set(r["data"]))
        if extra:
            raise VrnnError(f"{path}: [runs.{name}] seeds names data set {extra[0]!r}, which is not in its data")
        per_data = {}
        for d in r["data"]:
            seeds = tuple(int(s) for s in table.get(d, [0]))
            if not seeds:
                raise VrnnError(f"{path}: [runs.{name}] seeds is empty{' for ' + d if isinstance(raw_seeds, dict) else ''}"
                                "; give at least one seed")
            per_data[d] = seeds
        union = tuple(dict.fromkeys(s for d in r["data"] for s in per_data[d]))
        runs[name] = RunSpec(name, r.get("label", name), r["config"], tuple(r["data"]), tuple(r.get("set", [])),
                             union, int(r.get("segment_steps", 0)), r.get("curve_split", ""),
                             tuple(per_data.items()) if isinstance(raw_seeds, dict) else ())
    ev = _table(raw.get("eval", {}), f"{path}: [eval]", {"split", "iw_samples", "batch_size", "estimator"})
    spec = EvalSpec(**ev)
    if spec.iw_samples < 1 or spec.batch_size < 1:
        raise VrnnError(f"{path}: [eval] iw_samples and batch_size must be >= 1")
    if spec.estimator not in ("is", "smc"):
        raise VrnnError(f"{path}: [eval] estimator must be is or smc, not {spec.estimator!r}")
    from .reports import REPORTS

    if raw["report"] not in REPORTS:
        raise VrnnError(f"{path}: unknown report {raw['report']!r}; choose one of {sorted(REPORTS)}")
    return Experiment(path.resolve(), raw["title"], raw["report"], data, runs, spec, raw.get("report_options", {}))
