"""An experiment file: a small TOML that lists what to train and how to report it.

::

    title = "Polyphonic music: SRNN Table 2"  # optional: the file's name (its folder's, for experiment.toml)
    report = "polyphonic"                     # optional: a paper's table layout (vrnn.lab.experiments.reports);
                                              # without it, the generic report of every run and seed

    [eval]                                    # how every checkpoint is evaluated
    split = "test"
    iw_samples = 40
    batch_size = 3                            # sequences per batch, each tiled iw_samples times
    smc_particles = [40, 250, 1000]           # optional: latent models also get the particle filter's
                                              # per-sequence log p(x) at each K (results.json: smc_particles)

    [data.jsb-pickle]                         # a data set: a file (under --data-dir, or relative to this
    source = "{data_dir}/polyphonic/jsb_chorales.pickle"   # file's folder) or a prepared name ("chorales")
    about = "JSB Chorales, canonical pickle: quarter-note steps"
    # prepare = { recipe = "fsdd", source = "{data_dir}/speech/fsdd/recordings" }   (prepared here if not yet)

    [runs.rnn]                                # a model trained on each of its data sets, once per seed
    label = "RNN (Bernoulli output)"
    config = "configs/rnn-bernoulli.toml"     # relative to the repository root
    data = ["jsb-pickle"]
    set = ["train.max_minutes=5"]             # config overrides, as `vrnn train --set`
    seeds = [0]                               # train.seed of each repeat; or per data set:
                                              # seeds = { jsb-pickle = [0, 1, 2], nottingham = [0] }
    segment_steps = 0                         # train in resumable segments of this many steps (0: one call)
    search = { "model.dropout" = [0.0, 0.2], "train.ema" = [0.0, 0.99] }   # optional: settings chosen on
    search_data = "jsb-pickle"                # validation (vrnn.lab.experiments.search) on this data set,
    search_seed = 0                           # with this seed, before the seeds above train with them
    search_metric = "log_likelihood"          # or "elbo": the validation score (the [eval] estimate) compared
    search_min_kl = 0.05                      # optional: only candidates whose validation KL per step is at
                                              # least this are eligible (latents in use); 0: any
    search_rule = "best"                      # or "one_se": the fewest parameters within one paired standard
                                              # error of the best (vrnn.lab.experiments.search)
    smc_particles = [40, 250]                 # optional: this run's particle counts instead of [eval]'s (a
                                              # costly model; [] for none): its reports record them
    # settings_from = "rnn"                   # instead of a search: train with the settings run "rnn"'s
                                              # search chose (recorded, and checked like its own seeds)

Anything else a report needs (published numbers, notes) lives in ``[report_options]``. Paths
in ``source`` may use ``{data_dir}`` (the ``--data-dir`` flag); other data paths are relative to the
experiment file's folder. A run's ``config`` is relative to the repository root that holds the
experiment's folder (``benchmarks/NAME/``), else to the experiment file's folder, or a preset's name.
"""
from __future__ import annotations

import dataclasses
import itertools
import json
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar

from ...errors import VrnnError
from ...settings import POSITIVE, Check, Checked, at_least, build_dataclass, matches, one_of

NONEMPTY = matches(r".*\S.*", "a non-empty string")
SEARCH_METRICS = ("log_likelihood", "elbo")  # keys of an evaluation report, per step total/total
SEARCH_RULES = ("best", "one_se")  # how a search chooses among its candidates (vrnn.lab.experiments.search)
SETTING = r"[A-Za-z_][\w-]*(\.[A-Za-z_][\w-]*)+"  # a --set key: section.key
INCREASING = Check(lambda v: all(isinstance(k, int) and not isinstance(k, bool) and k >= 1 for k in v)
                   and list(v) == sorted(set(v)), "a list of increasing particle counts, e.g. [40, 250, 1000]")


@dataclass(frozen=True)
class DataSpec(Checked):
    """``[data.NAME]``: a data set."""

    name: str = ""
    source: str = ""  # a data file (with {data_dir}) or a prepared data set's name
    about: str = ""
    prepare: dict = field(default_factory=dict)  # recipe and its options, when ``source`` is a prepared name

    REQUIRED: ClassVar[tuple[str, ...]] = ("source",)
    CHECKS: ClassVar[dict[str, Check]] = {"source": NONEMPTY}


@dataclass(frozen=True)
class RunTable(Checked):
    """``[runs.NAME]`` as written; :class:`RunSpec` is what it means (seeds per data set resolved)."""

    label: str = ""
    config: str = ""
    data: tuple = ()
    set: tuple = ()
    seeds: list | dict | None = None  # a list (default [0]), or a table of lists per data set
    segment_steps: int = 0
    search: dict = field(default_factory=dict)  # setting -> the values tried: a grid of --set overrides
    search_data: str = ""  # the data set whose validation split chooses among them
    search_seed: int = 0
    search_metric: str = "log_likelihood"
    search_min_kl: float = 0.0
    search_rule: str = "best"
    smc_particles: list | None = None  # this run's particle counts, instead of [eval] smc_particles
    settings_from: str = ""  # another run whose search's chosen settings this run trains with (no search of its own)

    REQUIRED: ClassVar[tuple[str, ...]] = ("config", "data")
    CHECKS: ClassVar[dict[str, Check]] = {"config": NONEMPTY, "segment_steps": at_least(0),
                                          "search_seed": at_least(0), "search_metric": one_of(SEARCH_METRICS),
                                          "search_min_kl": at_least(0, " (0: every candidate is eligible)"),
                                          "search_rule": one_of(SEARCH_RULES),
                                          "smc_particles": Check(lambda v: v is None or INCREASING.ok(v),
                                                                 INCREASING.need + ", or [] for none")}


@dataclass(frozen=True)
class RunSpec:
    name: str
    label: str
    config: str
    data: tuple[str, ...]
    overrides: tuple[str, ...] = ()
    seeds: tuple[int, ...] = (0,)
    segment_steps: int = 0
    per_data: tuple[tuple[str, tuple[int, ...]], ...] = ()  # (data set, its seeds) where they differ by data set
    search: tuple[tuple[str, tuple], ...] = ()  # (setting, the values tried): chosen on validation first
    search_data: str = ""
    search_seed: int = 0
    search_metric: str = "log_likelihood"
    search_min_kl: float = 0.0  # nats per step: candidates below it on validation are not eligible
    search_rule: str = "best"  # or "one_se" (vrnn.lab.experiments.search.choose_one_se)
    smc_particles: tuple[int, ...] | None = None  # the run's own particle counts (None: [eval] smc_particles)
    settings_from: str = ""  # the run whose search's choice this run trains with

    @property
    def chooser(self) -> str:
        """The run whose search chooses this run's settings: itself, ``settings_from``, or "" (none)."""
        return self.name if self.search else self.settings_from

    def candidates(self) -> list[tuple[str, ...]]:
        """The search's grid as ``--set`` overrides, in order (the first setting varies slowest)."""
        keys = [k for k, _ in self.search]
        grid = itertools.product(*(values for _, values in self.search)) if self.search else ()
        return [tuple(f"{k}={json.dumps(v)}" for k, v in zip(keys, combo)) for combo in grid]

    def seeds_on(self, data: str) -> tuple[int, ...]:
        """The seeds trained on ``data``: the run's ``seeds``, or that data set's entry of a seeds table."""
        return dict(self.per_data).get(data, self.seeds)

    def key(self, seed: int) -> str:
        """The run's file name: ``name``, or ``name-seedN`` when the run has several seeds or a non-zero one."""
        return self.name if self.seeds == (0,) else f"{self.name}-seed{seed}"


@dataclass(frozen=True)
class EvalSpec(Checked):
    """``[eval]``: how every checkpoint is evaluated."""

    split: str = "test"
    iw_samples: int = 40
    batch_size: int = 64
    estimator: str = "is"  # is | smc: smc also reports the particle filter's log p(x) with K = iw_samples
    smc_particles: tuple = ()  # latent models also get the particle filter's per-sequence log p(x) at each K

    SECTION: ClassVar[str] = "eval"
    CHECKS: ClassVar[dict[str, Check]] = {"split": one_of(("train", "valid", "test")), "iw_samples": POSITIVE,
                                          "batch_size": POSITIVE, "estimator": one_of(("is", "smc")),
                                          "smc_particles": INCREASING}


@dataclass(frozen=True)
class ExperimentTable(Checked):
    """The file's top level, as written."""

    title: str = ""
    report: str = ""
    eval: EvalSpec = field(default_factory=EvalSpec)
    data: dict = field(default_factory=dict)
    runs: dict = field(default_factory=dict)
    report_options: dict = field(default_factory=dict)
    weights: str = "float16"  # how committed checkpoints store their weights: float16 or int8

    REQUIRED: ClassVar[tuple[str, ...]] = ("runs",)
    CHECKS: ClassVar[dict[str, Check]] = {"weights": one_of(("float16", "int8"))}


@dataclass(frozen=True)
class Experiment:
    path: Path  # the experiment file
    title: str
    report: str  # a named layout of reports.REPORTS, or "" for the generic report
    data: dict[str, DataSpec]
    runs: dict[str, RunSpec]
    eval: EvalSpec
    report_options: dict
    weights: str = "float16"

    @property
    def folder(self) -> Path:
        return self.path.parent

    @property
    def root(self) -> Path:
        """The repository root: config paths are relative to it (the experiment lives in benchmarks/NAME/)."""
        parents = self.path.resolve().parents
        return parents[min(2, len(parents) - 1)]

    def checkpoint(self, run: RunSpec, data: str, seed: int) -> Path:
        return self.folder / "checkpoints" / data / f"{run.key(seed)}.pt"

    def search_folder(self, run: RunSpec) -> Path:
        """Where run ``run``'s search keeps its candidates' checkpoints (``c0.pt``, ...) and ``search.json``."""
        return self.folder / "checkpoints" / "search" / run.name

    def cells(self):
        """Every (run, data set, seed) the experiment trains and evaluates, in file order."""
        for run in self.runs.values():
            for d in run.data:
                for seed in run.seeds_on(d):
                    yield run, d, seed


def load_experiment(path: str | Path) -> Experiment:
    """Read and check an experiment file through :mod:`vrnn.settings` (the system that reads configs);
    every mistake is one VrnnError naming the file and the field."""
    path = Path(path)
    if not path.is_file():
        raise VrnnError(f"{path}: experiment file not found; give a benchmarks/*/experiment.toml")
    try:
        raw = tomllib.loads(path.read_text())
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as e:
        raise VrnnError(f"{path}: not a valid TOML file ({e}); fix the syntax") from None
    where = str(path)
    top = build_dataclass(ExperimentTable, raw, where, "experiment")
    top.check(where)
    from .reports import REPORTS

    if top.report and top.report not in REPORTS:
        raise VrnnError(f"{path}: unknown report {top.report!r}; choose one of {sorted(REPORTS)}, or leave report "
                        f"out for the generic report")
    data = {name: dataclasses.replace(build_dataclass(DataSpec, d, where, f"data.{name}"), name=name)
            for name, d in top.data.items()}
    for spec in data.values():
        spec.check(where)
    runs = {name: _run_spec(name, build_dataclass(RunTable, r, where, f"runs.{name}"),
                            data, where) for name, r in top.runs.items()}
    for run in runs.values():
        source = runs.get(run.settings_from)
        if run.settings_from and (run.search or source is None or not source.search):
            why = ("it has a search of its own; keep one of the two" if run.search else
                   f"{run.settings_from!r} is not a run with a search; name one of: "
                   f"{', '.join(r.name for r in runs.values() if r.search) or '(none: add a search to a run)'}")
            raise VrnnError(f"{where}: [runs.{run.name}] settings_from: {why}")
    title = top.title or (path.resolve().parent.name if path.stem == "experiment" else path.stem)
    return Experiment(path.resolve(), title, top.report, data, runs, top.eval, top.report_options, top.weights)


def _run_spec(name: str, r: RunTable, data: dict[str, DataSpec], where: str) -> RunSpec:
    """What ``[runs.NAME]`` means: its data sets checked, and its seeds per data set."""
    r.check(where)
    section = f"[runs.{name}]"
    for d in r.data:
        if d not in data:
            raise VrnnError(f"{where}: {section} data {d!r} is not a [data.*] table; choose from {sorted(data)}")
    table = r.seeds if isinstance(r.seeds, dict) else {d: [0] if r.seeds is None else r.seeds for d in r.data}
    extra = sorted(set(table) - set(r.data))
    if extra:
        raise VrnnError(f"{where}: {section} seeds names data set {extra[0]!r}, which is not in its data")
    per_data = {}
    for d in r.data:
        seeds = tuple(int(s) for s in table.get(d, [0]))
        if not seeds:
            raise VrnnError(f"{where}: {section} seeds is empty{' for ' + d if isinstance(r.seeds, dict) else ''}"
                            "; give at least one seed")
        per_data[d] = seeds
    union = tuple(dict.fromkeys(s for d in r.data for s in per_data[d]))
    return RunSpec(name, r.label or name, r.config, tuple(r.data), tuple(r.set), union, r.segment_steps,
                   tuple(per_data.items()) if isinstance(r.seeds, dict) else (),
                   _search(r, section, data, where), r.search_data, r.search_seed, r.search_metric,
                   r.search_min_kl, r.search_rule,
                   None if r.smc_particles is None else tuple(int(k) for k in r.smc_particles), r.settings_from)


def _search(r: RunTable, section: str, data: dict[str, DataSpec], where: str) -> tuple[tuple[str, tuple], ...]:
    """``search`` of ``[runs.NAME]`` checked: settings named ``section.key``, each with a non-empty list of
    values, chosen on a ``[data.*]`` set named by ``search_data``."""
    if not isinstance(r.search, dict):
        raise VrnnError(f"{where}: {section} search must be a table of settings and the values to try, "
                        f'e.g. {{ "model.dropout" = [0.0, 0.2] }}, not {r.search!r}')
    if not r.search:
        if r.search_data:
            raise VrnnError(f"{where}: {section} search_data is set but search is empty; add the settings to search")
        return ()
    for key, values in r.search.items():
        if not matches(SETTING, "").holds(key):
            raise VrnnError(f"{where}: {section} search key {key!r} is not a setting; name it section.key, "
                            "e.g. model.dropout")
        if not isinstance(values, list) or not values:
            raise VrnnError(f"{where}: {section} search {key!r} is {values!r}; give a non-empty list of values")
    if r.search_data not in data:
        raise VrnnError(f"{where}: {section} search_data {r.search_data!r} is not a [data.*] table; name the data "
                        f"set whose validation split chooses, one of {sorted(data)}")
    return tuple((key, tuple(values)) for key, values in r.search.items())
