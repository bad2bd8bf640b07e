"""The run folder: its files, lock and log, and what a resumed run continues from.

A run's folder holds ``last.pt``, ``best.pt`` and ``log.jsonl`` (:data:`RUN_FILES`) and, while a run
trains in it, rank 0's lock ``.lock``. :class:`RunState` is where a run stands (the counters a
checkpoint stores); :func:`open_run` checks that a folder may take a run and, for ``--resume``,
reads and completes the checkpoint it continues from, refusing a changed config unless allowed.
"""
from __future__ import annotations

import dataclasses
import json
import math
import os
import signal
import threading
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import torch

from ..checkpoint import copy_checkpoint, load_checkpoint
from ..data import SequenceData
from ..data.resolve import resumed_source
from ..errors import VrnnError
from ..io import RunLock, atomic_write, remove_stale_tmp, writing
from ..models import build_model
from .config import Config, config_from_dict
from .distributed import Distributed
from .options import TrainConfig

RUN_FILES = ("last.pt", "best.pt", "log.jsonl")
CURVE_KEYS = ("step", "epoch", "elapsed_s", "valid_elbo_per_step", "valid_score_per_step", "train_elbo_per_step",
              "kl_weight", "lr")  # what a learning curve keeps of each evaluation's log line


@dataclass
class RunState:
    """Where a run stands: the counters a checkpoint stores beside the weights and generators.

    With them (and :meth:`Learner.load`) a resumed run continues exactly where it stopped:
    the batch order, the schedules and the stopping rules are functions of these numbers.
    """

    step: int = 0  # training steps (batches) done
    epoch: int = 0
    pos: int = 0  # the next batch of this epoch
    best: float = -math.inf  # best validation score (train.stop_on) per step so far
    bad_evals: int = 0  # evaluations since the best one (or since the last learning-rate drop)
    drops: int = 0  # learning-rate drops at plateaus so far (train.lr_drops)
    elapsed: float = 0.0  # seconds of training, over every process that ran this run
    best_step: int = 0  # the step of the best evaluation (shown while training)

    @classmethod
    def from_checkpoint(cls, ckpt: dict) -> RunState:
        return cls(ckpt["step"], ckpt["epoch"], ckpt["pos"], ckpt.get("best_valid", ckpt.get("best_valid_elbo")),
                   ckpt["bad_evals"], ckpt.get("lr_drops", 0), ckpt["elapsed"], ckpt.get("best_step", 0))

    def payload(self) -> dict:
        return {"step": self.step, "epoch": self.epoch, "pos": self.pos, "best_valid": self.best,
                "bad_evals": self.bad_evals, "lr_drops": self.drops, "elapsed": self.elapsed,
                "best_step": self.best_step}

    def observe(self, score: float, warming: bool = False) -> bool:
        """Count an evaluation; True when it is the best so far. During the KL warm-up (``warming``) a
        worse score does not spend patience: the bound validated is the full one, and it may fall while
        the KL weight rises, which is the schedule, not a plateau."""
        improved = score > self.best
        if improved:
            self.best, self.bad_evals, self.best_step = score, 0, self.step
        elif not warming:
            self.bad_evals += 1
        return improved

    def drop_at_plateau(self, tc: TrainConfig) -> bool:
        """Patience spent with a learning-rate drop left: drop the rate (from the next step on), start
        patience again and return True. Called before the evaluation's checkpoint, so a resumed run
        continues at the new rate."""
        if self.bad_evals >= tc.patience and self.drops < tc.lr_drops:
            self.drops, self.bad_evals = self.drops + 1, 0
            return True
        return False

    def stop_reason(self, tc: TrainConfig) -> str | None:
        """Why a run at this state stops, if its rules say so: patience spent (with every learning-rate drop used,
        :meth:`drop_at_plateau`) or the wall-clock budget spent; None otherwise."""
        if self.bad_evals >= tc.patience:
            return "early_stopping"
        if tc.max_minutes > 0 and self.elapsed >= 60 * tc.max_minutes:
            return "time_budget"
        return None

    def lr_scale(self, tc: TrainConfig) -> float:
        """What the step schedule's learning rate is multiplied by after the drops so far."""
        return tc.lr_drop_factor ** self.drops


@contextmanager
def holding(out: Path, dd: Distributed, device: torch.device):
    """Rank 0 holds ``out``'s lock (:class:`vrnn.io.RunLock`) for the ``with`` block, having removed the
    temporary files of a killed write; every rank learns whether it could, and the lock goes on every
    way out."""
    lock = error = None
    if dd.main:
        try:
            lock = RunLock.acquire(out)
            remove_stale_tmp([out / name for name in RUN_FILES])
        except VrnnError as e:
            error = e
    if dd.broadcast(float(error is None), device) == 0:
        if lock is not None:
            lock.release()
        raise error or VrnnError(f"{out}: rank 0 could not take the run's folder; see its error")
    try:
        yield
    finally:
        if lock is not None:
            lock.release()


def open_run(out: Path, cfg: Config, resume: bool, overwrite: bool, allow_changes: bool, main: bool,
             data: SequenceData | None = None) -> dict | None:
    """Check that ``out`` may take this run; with ``resume``, the checkpoint it continues from
    (:func:`_resume_checkpoint`), the folder first completed by rank 0 (:func:`_complete`); else None."""
    existing = [name for name in RUN_FILES if (out / name).exists()]
    if existing and not (resume or overwrite):
        raise VrnnError(f"{out}: already holds {', '.join(existing)}; pass --resume to continue that run, "
                        f"--overwrite to replace it, or choose another --out")
    if resume and not (out / "last.pt").exists():
        raise VrnnError(f"{out}/last.pt: nothing to resume; start without --resume")
    if not resume:
        return None
    ckpt = _resume_checkpoint(out, cfg, allow_changes, data)
    if main:
        _complete(out, ckpt)
    return ckpt


def _resume_checkpoint(out: Path, cfg: Config, allow_changes: bool = False, data: SequenceData | None = None) -> dict:
    """``out/last.pt``, checked to hold the run ``cfg`` describes: any difference but in the stopping
    rules is refused, or with ``allow_changes`` logged (and the weights checked to fit a changed model)."""
    last = out / "last.pt"
    ckpt = load_checkpoint(last)
    stored = config_from_dict(ckpt["config"], where=str(last))
    if cfg.model.x_dim == 0:  # not given: filled in from the data, as it was for the stored run
        cfg = cfg.replace(model=dataclasses.replace(cfg.model, x_dim=stored.model.x_dim))
    source = resumed_source(stored.data.source, cfg.data.source, out, data)  # the same data, stored portably
    changes = config_changes(stored, cfg.replace(data=dataclasses.replace(cfg.data, source=source)))
    if changes and not allow_changes:
        listed = "; ".join(f"{k}: {a!r} (stored) -> {b!r} (given)" for k, (a, b) in changes.items())
        raise VrnnError(f"{last}: --resume would change the stored run: {listed}; resume with the stored settings "
                        f"(--resume without --config; --set may change "
                        f"train.{', train.'.join(TrainConfig.STOPPING + TrainConfig.WATCHING)}), "
                        f"pass --allow-changes to continue with the new ones, or start a new --out")
    if any(k.startswith("model.") for k in changes):
        _check_weights_fit(last, cfg, ckpt)
    if changes:
        _log_config_changes(out, ckpt["step"], changes)
    return ckpt


def _check_weights_fit(last: Path, cfg: Config, ckpt: dict) -> None:
    """Refuse a changed ``[model]`` whose weights' names or shapes differ from those stored."""
    with torch.random.fork_rng(devices=[]):  # building the model draws initial weights: not the run's draws
        new = {k: tuple(v.shape) for k, v in build_model(cfg.model).state_dict().items()}
    old = {k: tuple(v.shape) for k, v in ckpt.get("train_model", ckpt["model"]).items()}
    misfits = sorted(k for k in new.keys() | old.keys() if new.get(k) != old.get(k))
    if misfits:
        k = misfits[0]
        raise VrnnError(f"{last}: the stored weights do not fit the changed [model] ({len(misfits)} differ, e.g. "
                        f"{k}: {old.get(k, 'none')} stored, {new.get(k, 'none')} now); only changes that keep "
                        f"every weight's shape can continue a run; start a new --out")


def config_changes(stored: Config, given: Config) -> dict[str, tuple]:
    """``{"train.lr": (stored, given), ...}``: every setting that differs, but the stopping rules and what
    only changes what is logged (``TrainConfig.WATCHING``)."""
    flat = [_flatten(c.to_dict()) for c in (stored, given)]
    free = {f"train.{k}" for k in TrainConfig.STOPPING + TrainConfig.WATCHING}
    return {k: (flat[0].get(k), flat[1].get(k)) for k in sorted(flat[0].keys() | flat[1].keys())
            if k not in free and flat[0].get(k) != flat[1].get(k)}


def _flatten(d: dict, prefix: str = "") -> dict:
    flat = {}
    for k, v in d.items():
        flat.update(_flatten(v, f"{prefix}{k}.") if isinstance(v, dict) else {f"{prefix}{k}": v})
    return flat


def _log_config_changes(out: Path, step: int, changes: dict[str, tuple]) -> None:
    """One ``log.jsonl`` record of the settings a resumed run changed (``--allow-changes``), by rank 0."""
    if os.environ.get("RANK", "0") != "0":
        return
    record = {"step": step, "config_changes": {k: {"stored": a, "given": b} for k, (a, b) in changes.items()}}
    with open(out / "log.jsonl", "a") as log:
        log.write(json.dumps(record) + "\n")


class Interrupt:
    """Ctrl-C during training: the first SIGINT lets the step under way finish, then the loop saves ``last.pt``
    and stops (:class:`vrnn.errors.TrainingInterrupted`); a second one interrupts at once. Only for a run in one
    process, from the main thread, where SIGINT still raises ``KeyboardInterrupt`` (under torchrun every rank
    would see the signal at its own step); elsewhere ``requested`` stays False."""

    def __init__(self, enabled: bool):
        self.requested, self.previous = False, None
        if (enabled and threading.current_thread() is threading.main_thread()
                and signal.getsignal(signal.SIGINT) is signal.default_int_handler):
            self.previous = signal.signal(signal.SIGINT, self._request)

    def _request(self, signum, frame) -> None:
        self.requested = True
        signal.signal(signal.SIGINT, self.previous)  # a second Ctrl-C stops at once

    def close(self) -> None:
        """Give SIGINT back to the handler it had."""
        if self.previous is not None and signal.getsignal(signal.SIGINT) == self._request:
            signal.signal(signal.SIGINT, self.previous)
        self.previous = None


def kept(out: Path, saved: bool) -> str:
    """What a diverged run leaves, and what to do next."""
    lower = "lower train.lr or train.clip_norm"
    if saved:
        return f"{out / 'last.pt'} keeps the last good state; {lower} and resume (--resume) or restart (--overwrite)"
    return f"no checkpoint was written and {out} is as it was before the run; {lower} and run the same command again"


class RunLog:
    """Rank 0's ``log.jsonl``: one line per evaluation, written after that evaluation's checkpoints
    (other ranks write nothing). Nothing is created before the first line; ``clear`` (``--overwrite``)
    removes the earlier run's log just before this run's first checkpoint replaces its checkpoints.

    A resumed run's log is first made to end at its checkpoint (:func:`_complete`).
    """

    def __init__(self, path: Path, enabled: bool, clear: bool):
        self.path, self.enabled, self.clear, self.file = path, enabled, clear, None

    def clear_earlier(self) -> None:
        if self.enabled and self.clear:
            for name in RUN_FILES:
                (self.path.parent / name).unlink(missing_ok=True)
            self.clear = False

    def write(self, record: dict) -> None:
        """One line, on disk at once."""
        if not self.enabled:
            return
        with writing(self.path):
            if self.file is None:
                self.file = open(self.path, "a")
            self.file.write(json.dumps(record) + "\n")
            self.file.flush()

    def close(self) -> None:
        if self.file is not None:
            self.file.close()


def _complete(out: Path, ckpt: dict) -> None:
    """Finish what a run killed after writing ``last.pt`` (``ckpt``) left undone, so that resuming it gives
    the files an uninterrupted run writes: ``best.pt`` is ``last.pt`` when that evaluation was the best,
    and ``log.jsonl`` ends with the checkpoint's line (restored from its copy, ``log_record``); a torn
    last line, and lines past the checkpoint's step (a log written before its checkpoint), are dropped."""
    last, best, log = (out / name for name in RUN_FILES)
    if ckpt.get("improved", ckpt["bad_evals"] == 0) and (not best.is_file() or best.read_bytes() != last.read_bytes()):
        copy_checkpoint(last, best)
    lines = log.read_text().splitlines() if log.is_file() else []
    kept = [line for line, r in zip(lines, map(_parse, lines)) if r is not None and r.get("step", 0) <= ckpt["step"]]
    if "log_record" in ckpt and (not kept or _parse(kept[-1])["step"] < ckpt["step"]):
        kept.append(json.dumps(ckpt["log_record"]))
    if kept != lines:
        with atomic_write(log) as tmp:
            tmp.write_text("".join(line + "\n" for line in kept))


def learning_curve(log: Path) -> list[dict]:
    """The evaluations of a run's ``log.jsonl`` (:data:`CURVE_KEYS` of each), in step order, without duplicates
    from resumes; a torn last line (a run killed, or still writing) is left out."""
    if not log.is_file():
        return []
    records: dict[int, dict] = {}
    for r in map(_parse, log.read_text().splitlines()):
        if r is not None and "valid_elbo_per_step" in r:  # evaluations only (--allow-changes logs its changes too)
            records[r["step"]] = {k: r[k] for k in CURVE_KEYS if k in r}
    return [records[s] for s in sorted(records)]


def _parse(line: str) -> dict | None:
    try:
        return json.loads(line)
    except ValueError:  # torn by a kill mid-write
        return None
