"""``vrnn compare``: runs side by side — one table, and their learning curves in one figure.

Each run is given as a run folder (``vrnn train --out``: ``best.pt``, ``last.pt``, ``log.jsonl``) or a
checkpoint file: a run's ``best.pt`` or ``last.pt`` (the run is then its folder's), or a slim checkpoint
exported by ``vrnn experiment`` (how it trained, with its learning curve, is in the ``.json`` beside it).

A run's scores are those of its best checkpoint (of the file given, for a file): the best validation score
early stopping watched and its step, and with ``test`` the test split's log-likelihood
(:func:`vrnn.api.evaluate_checkpoint`). How long it trained and why it stopped are the run's: its folder's
``last.pt`` (the stopping rules of :meth:`.run.RunState.stop_reason`, else ``max_steps`` or ``unfinished``),
or the exported ``.json``. Runs that watch different validation scores (the ELBO against a FIVO bound, say)
are refused: neither the table nor the curves would compare like with like.
"""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

from ..checkpoint import load_checkpoint, model_from_checkpoint
from ..errors import VrnnError
from ..inference.evaluate import estimate_label
from ..outputs.figures import pyplot, save_figure
from .config import config_from_dict
from .run import RunState, learning_curve
from .trainer import watched_score

UNITS = "nats per time step (total over total steps), model units"
RUN_CHECKPOINTS = ("best.pt", "last.pt")  # a run folder's checkpoints, the one scored first
WHAT = "give a run folder (written by `vrnn train --out`) or a checkpoint (.pt)"


@dataclass
class Compared:
    """One run of the comparison; scores in :data:`UNITS`."""

    given: str  # the argument as given
    name: str
    checkpoint: str  # the file scored
    model: str
    data: str
    watched: str  # the validation score early stopping watched (:func:`.trainer.watched_score`)
    best_valid: float
    best_step: int
    steps: int | None
    stopped: str  # max_steps | early_stopping | time_budget | unfinished | unknown
    train_seconds: float | None
    parameters: int
    curve: list[dict] = field(default_factory=list)  # the validation records of log.jsonl
    test: dict | None = None  # with --test: the test split's scores (:func:`scores_on_test`)

    def to_dict(self) -> dict:
        return {k: v for k, v in asdict(self).items() if k != "given"}


def run_files(given: str) -> tuple[Path, Path | None, Path | None]:
    """(the checkpoint to score, the run folder it belongs to or None, the exported ``.json`` beside it or None)
    for an argument of ``vrnn compare``; one line naming the path and the fix when it is neither."""
    path = Path(given).expanduser()
    if path.is_dir():
        found = [path / name for name in RUN_CHECKPOINTS if (path / name).is_file()]
        if not found:
            raise VrnnError(f"{path}: not a run folder (no {' or '.join(RUN_CHECKPOINTS)}); {WHAT}")
        return found[0], path, None
    if not path.exists():
        raise VrnnError(f"{path}: not found; {WHAT}")
    if path.suffix != ".pt":
        raise VrnnError(f"{path}: neither a run folder nor a checkpoint (.pt); {WHAT}")
    folder = path.parent if path.name in RUN_CHECKPOINTS and (path.parent / "last.pt").is_file() else None
    info = path.with_suffix(".json")
    return path, folder, info if folder is None and info.is_file() else None


def load_run(given: str) -> Compared:
    """What ``vrnn compare`` shows of one run (:func:`run_files`), without its test scores."""
    path, folder, info = run_files(given)
    ckpt = load_checkpoint(path)
    model, _ = model_from_checkpoint(ckpt)
    tc = config_from_dict(ckpt["config"], where=str(path)).train
    meta, ref = ckpt.get("data_meta", {}), ckpt.get("data_ref", {})
    return Compared(
        given=given, name=given, checkpoint=str(path), model=model.display_name,
        data=str(meta.get("name") or ref.get("name") or ckpt["config"]["data"]["source"]), watched=watched_score(tc),
        best_valid=ckpt.get("best_valid", ckpt.get("best_valid_elbo")), best_step=ckpt.get("best_step") or ckpt["step"],
        parameters=sum(p.numel() for p in model.parameters()), **_training(ckpt, folder, info))


def _training(ckpt: dict, folder: Path | None, info: Path | None) -> dict:
    """How the run trained: its steps, why it stopped, its training seconds and learning curve, from the run
    folder (``last.pt``, ``log.jsonl``), else the exported ``.json``, else what the checkpoint alone says."""
    if folder is not None:
        last = load_checkpoint(folder / "last.pt")
        state, tc = RunState.from_checkpoint(last), config_from_dict(last["config"], where=last["path"]).train
        stopped = state.stop_reason(tc) or ("max_steps" if state.step >= tc.max_steps else "unfinished")
        return {"steps": state.step, "stopped": stopped, "train_seconds": state.elapsed,
                "curve": learning_curve(folder / "log.jsonl")}
    if info is not None:
        try:
            record = json.loads(info.read_text())
        except (ValueError, OSError) as e:
            raise VrnnError(f"{info}: not a readable record of the run ({e}); remove it or export the run again") from None
        return {"steps": record.get("steps"), "stopped": record.get("stopped", "unknown"),
                "train_seconds": record.get("train_seconds"), "curve": record.get("curve", [])}
    return {"steps": ckpt["step"], "stopped": "unknown", "train_seconds": None, "curve": []}


def scores_on_test(run: Compared, iw_samples: int, estimator: str, data: str | None, device: str) -> dict:
    """The test split's ELBO and log-likelihood of ``run``'s checkpoint, per step (total over total steps), and
    how the log-likelihood was estimated (``estimator``: is, or smc for the particle filter's estimate)."""
    from ..api import evaluate_checkpoint

    r = evaluate_checkpoint(run.checkpoint, split="test", iw_samples=iw_samples, data_source=data, device=device,
                            estimator=estimator)
    key = "log_likelihood_smc" if estimator == "smc" else "log_likelihood"
    return {"elbo": r["elbo"]["per_step_total"], "log_likelihood": r[key]["per_step_total"],
            "estimator": estimate_label(r, key), "sequences": r["num_sequences"], "steps": r["num_steps"]}


def compare_runs(given: list[str]) -> list[Compared]:
    """Every run of ``given`` (:func:`load_run`), named by its folder or file, checked to watch one validation
    score; their test scores come from :func:`scores_on_test`."""
    if not given:
        raise VrnnError(f"vrnn compare: no runs; {WHAT} for each run")
    runs = [load_run(g) for g in given]
    for run, name in zip(runs, _names(runs)):
        run.name = name
    first = runs[0]
    for run in runs[1:]:
        if run.watched != first.watched:
            raise VrnnError(f"{run.given}: validates {run.watched}, but {first.given} validates {first.watched}; "
                            f"compare runs that watch the same score (train.objective, train.particles, "
                            f"train.stop_on), each kind in its own `vrnn compare`")
    return runs


def _names(runs: list[Compared]) -> list[str]:
    """Short names: a run folder's name, ``RUN/best`` for a run's checkpoint, a file's stem; the paths as given
    when two short names are alike."""
    short = []
    for run in runs:
        path = Path(run.checkpoint).resolve()
        folder = Path(run.given).expanduser().is_dir()
        short.append(path.parent.name if folder else f"{path.parent.name}/{path.stem}"
                     if path.name in RUN_CHECKPOINTS else path.stem)
    return short if len(set(short)) == len(short) else [run.given for run in runs]


def duration(s: float | None) -> str:
    """Seconds as ``45 s``, ``12.5 min`` or ``3.2 h``; ``—`` when unknown."""
    if s is None:
        return "—"
    return f"{s / 3600:.1f} h" if s >= 3600 else f"{s / 60:.1f} min" if s >= 60 else f"{s:.0f} s"


def format_table(runs: list[Compared]) -> str:
    """The comparison as an aligned text table, its units and estimators said below it."""
    tested = any(run.test for run in runs)
    head = ["run", "model", "data", "steps", "stopped", f"best valid {runs[0].watched}", "at step",
            *(["test log-lik.", "estimator"] if tested else []), "train time", "parameters"]
    rows = [[run.name, run.model, run.data, "—" if run.steps is None else str(run.steps), run.stopped,
             f"{run.best_valid:.4f}", str(run.best_step),
             *([f"{run.test['log_likelihood']:.4f}", run.test["estimator"]] if tested else []),
             duration(run.train_seconds), f"{run.parameters:,}"] for run in runs]
    left = {"run", "model", "data", "stopped", "estimator"}
    widths = [max(len(c) for c in column) for column in zip(head, *rows)]
    lines = ["  ".join(c.ljust(w) if h in left else c.rjust(w) for h, c, w in zip(head, row, widths)).rstrip()
             for row in [head, *rows]]
    lines.insert(1, "  ".join("-" * w for w in widths))
    lines.append(f"scores: {UNITS}; higher is better. best valid: the validation score early stopping watched, "
                 f"of each run's best checkpoint, which is the one scored.")
    if tested:
        lines.append("test log-lik.: log p(x) of the test split by the estimator shown (exact; IS: importance "
                     "sampling with K posterior samples; SMC: a particle filter with K particles).")
    return "\n".join(lines)


def plot_curves(runs: list[Compared], out: Path) -> list[Compared]:
    """Every run's validation score against the training step in one figure at ``out`` (PNG), the best
    evaluation of each marked; the runs drawn (none: no figure is written)."""
    drawn = [run for run in runs if run.curve]
    if not drawn:
        return []
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(8, 4.5), dpi=100)
    for i, run in enumerate(drawn):
        scores = [c.get("valid_score_per_step", c["valid_elbo_per_step"]) for c in run.curve]
        ax.plot([c["step"] for c in run.curve], scores, color=f"C{i % 10}", lw=1.2, label=run.name)
        ax.plot([run.best_step], [run.best_valid], "o", color=f"C{i % 10}", ms=4)
    ax.set_xlabel("training step")
    ax.set_ylabel(f"validation {drawn[0].watched}\n(nats per step, total/total)")
    ax.set_title("learning curves (dots: each run's best checkpoint)", fontsize=10)
    ax.legend(fontsize=8)
    fig.tight_layout()
    save_figure(fig, out)
    return drawn
