"""The training loop (:func:`fit`): batch, step, validate, checkpoint, stop.

Its parts: the learner and the objectives it trains (:mod:`.learner`, :mod:`.bounds`), the run
folder, its lock and resume (:mod:`.run`), the schedules (:mod:`.schedules`). Adam, clipped
gradients, KL warm-up, early stopping, atomic checkpoints, resume.

Every source of randomness is a function of the config's seed and the step:
the data order of epoch e is a permutation drawn from seed and e, and the posterior
noise comes from one generator whose state is saved in every checkpoint, as is the
global generator's (dropout masks; rank 0's under torchrun). A run
stopped and resumed therefore reaches the same parameters as one that never stopped.

``torchrun --nproc_per_node=N -m vrnn train ...`` trains on N processes with
DistributedDataParallel (see :mod:`.distributed`): the same global batches, each rank
its slice, gradients weighted so that N ranks take the step one process would take.
"""
from __future__ import annotations

import dataclasses
import functools
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import NoReturn

import numpy as np
import torch

from ..checkpoint import copy_checkpoint, load_checkpoint, save_checkpoint
from ..data import Normalizer, SequenceData, load_dataset
from ..data.dequantize import Dequantizer
from ..data.resolve import checkpoint_data
from ..device import resolve_device
from ..emissions import check_emission_data, emission_class
from ..errors import TrainingDiverged, TrainingInterrupted, VrnnError
from ..inference.evaluate import dequantized, score_sequences, split_keys
from ..models import SequenceModel
from .bounds import watched
from .config import Config
from .distributed import Distributed, init_distributed
from .learner import Learner
from .options import TrainConfig
from .run import Interrupt, RunLog, RunState, holding, kept, open_run
from .schedules import epoch_batches, kl_weight, learning_rate
from .watch import Board, Progress, tensorboard_folder


@dataclass
class FitResult:
    out: Path
    steps: int
    best_valid: float  # the best validation score, nats per step (total over total steps), model units
    watched: str  # which score: "elbo", or the trained bound, e.g. "fivo (K = 16)" (:func:`watched_score`)
    stopped: str  # max_steps | early_stopping | time_budget
    model: SequenceModel


def prepare_data(cfg: Config, data: SequenceData | None = None) -> tuple[Config, SequenceData, Normalizer]:
    """Load and check the data, fill in ``model.x_dim`` and fit the normaliser on the training split."""
    data = load_dataset(cfg.data) if data is None else data
    emission = emission_class(cfg.model.emission.name)
    where = data.meta.get("source", data.meta.get("name", "data"))
    if cfg.model.x_dim and cfg.model.x_dim != data.x_dim:
        raise VrnnError(f"model.x_dim={cfg.model.x_dim} but {where} has {data.x_dim} features; "
                        f"drop model.x_dim to infer it")
    for split, seqs in data.splits.items():
        check_emission_data(cfg.model.emission.name, seqs, f"{where} [{split}]")
    normalize = cfg.data.normalize
    if normalize == "auto":
        normalize = "global" if emission.real_valued else "none"
    if normalize not in ("global", "per_feature", "none"):
        raise VrnnError(f"data.normalize={normalize!r}; choose auto, global, per_feature or none")
    norm = Normalizer() if normalize == "none" else Normalizer.fit(
        data.splits["train"], emission.normalized_columns, per_feature=normalize == "per_feature")
    cfg = cfg.replace(model=dataclasses.replace(cfg.model, x_dim=data.x_dim))
    return cfg, data, norm


def fit(cfg: Config, out: str | Path, resume: bool = False, overwrite: bool = False, progress: bool = True,
        data: SequenceData | None = None, allow_changes: bool = False,
        tensorboard: str | Path | None = None) -> FitResult:
    """Train the model ``cfg`` describes; checkpoints and the log go to ``out``.

    ``resume`` continues the run stored in ``out/last.pt``: ``cfg`` must match its config except for
    the stopping rules (``TrainConfig.STOPPING``), unless ``allow_changes`` (the changes are logged).

    Each step trains on the next global batch; every ``train.eval_every`` steps (and at the
    last) the weights are validated, the checkpoints and then the log line written, and the run
    stops early when validation has stopped improving or the time budget is spent.
    Rank 0 holds ``out/.lock`` (:class:`vrnn.io.RunLock`, :func:`.run.holding`) for the whole run, so a
    second run on ``out`` is refused; the lock goes on every way out, and a run that stops before its first
    checkpoint leaves ``out`` as it found it (``--overwrite`` replaces the earlier run's files only
    when this run writes its first checkpoint).

    ``progress`` shows the run on stderr (:class:`.watch.Progress`); TensorBoard event files go to
    ``tensorboard``, or to ``out/tensorboard`` with ``train.tensorboard`` (:class:`.watch.Board`).
    """
    out = Path(out)
    dd, device = init_distributed(resolve_device(cfg.train.device))
    try:
        with holding(out, dd, device):
            ckpt = open_run(out, cfg, resume, overwrite, allow_changes, dd.main, data)
            torch.set_flush_denormal(cfg.train.flush_denormal)  # CPU only; where unsupported it is a no-op
            board = tensorboard_folder(cfg.train, out, tensorboard)
            return _train(cfg, out, ckpt, overwrite and not resume, (progress, board), data, dd, device)
    finally:
        torch.set_flush_denormal(False)  # the default, for whatever runs after training in this process
        dd.close()


def _train(cfg: Config, out: Path, ckpt: dict | None, clear: bool, watch: tuple[bool, Path | None],
           data: SequenceData | None, dd: Distributed, device: torch.device) -> FitResult:
    """The training loop of :func:`fit`, from ``ckpt`` if given; ``clear``: replace an earlier run in ``out``;
    ``watch``: (show progress, TensorBoard's folder or None)."""
    cfg, data, norm = prepare_data(cfg, data)
    tc = cfg.train.in_steps(math.ceil(len(data.splits["train"]) / cfg.train.batch_size))
    dd.barrier()  # every rank has checked --out before rank 0 writes to it
    learner, state = Learner(cfg.model, tc, dd, device), RunState()
    if ckpt is not None:
        learner.load(ckpt)
        norm, state = Normalizer(**ckpt["normalizer"]), RunState.from_checkpoint(ckpt)
    raw, train, valid, deq = _splits(cfg, data, norm)
    lengths = [len(a) for a in raw]
    batches = functools.lru_cache(maxsize=1)(
        lambda epoch: epoch_batches(lengths, tc.batch_size, tc.seed, epoch, tc.length_pool))
    log = RunLog(out / "log.jsonl", dd.main, clear)
    saved = ckpt is not None  # out holds a checkpoint of this run
    board = Board(watch[1], dd.main, resumed_at=None if ckpt is None else state.step)
    bar = Progress(watch[0] and dd.main, tc, state)
    stopped = None  # early_stopping | time_budget; the loop ends at max_steps otherwise
    t0 = window_t0 = time.perf_counter()
    window: list[dict] = []  # statistics of the updates since the last evaluation
    interrupt = Interrupt(dd.world == 1)  # Ctrl-C: the step under way finishes, then the run is saved and stops
    try:
        while stopped is None and state.step < tc.max_steps and not interrupt.requested:
            idx = _next_batch(state, batches)
            seqs = train if train is not None else _dequantized_batch(raw, idx, deq, norm, (tc.seed, state.step))
            window += learner.train_step(*dd.batch(seqs, idx, device), state.step, state.lr_scale(tc))
            state.step, state.pos = state.step + 1, state.pos + 1
            bar.step(window[-1], state.epoch)
            if state.step % tc.eval_every == 0 or state.step == tc.max_steps:
                now = time.perf_counter()
                state.elapsed, t0 = state.elapsed + now - t0, now
                v_elbo, score, v_kl = _validate(learner.scored, valid, tc, dd, device)
                improved = state.observe(score, warming=state.step <= tc.kl_warmup_steps)
                if not (math.isfinite(v_elbo) and math.isfinite(score)):
                    raise TrainingDiverged(f"validation ELBO became {v_elbo} ({watched_score(tc)}: {score}) at "
                                           f"step {state.step}; stopped")
                record = _record(state, tc, (v_elbo, score, v_kl), window, now - window_t0)
                board.evaluated(record, learner.scored, valid, device)  # the weights validated, before a drop
                if state.drop_at_plateau(tc) and tc.lr_drop_restore:  # every rank reads the best evaluation's
                    learner.restore_weights(load_checkpoint(out / "best.pt"))  # file, written evaluations ago
                payload = _payload(cfg, norm, data, learner, state, out) | {"improved": improved}
                _checkpoint(out, improved, dd, payload, log, record)
                bar.evaluated(record, state)
                saved, window, window_t0 = True, [], time.perf_counter()
                stopped = _stop_reason(state, tc, dd, device)
        if interrupt.requested:
            _save_interrupted(out, state, t0, log, saved, window and functools.partial(
                _payload, cfg, norm, data, learner, state, out))
        dd.barrier()  # rank 0's checkpoints are on disk before any rank returns
    except TrainingDiverged as e:
        raise TrainingDiverged(f"{e}; {kept(out, saved)}") from None
    finally:
        interrupt.close()
        log.close()
        bar.close()
        board.close()
    return FitResult(out, state.step, state.best, watched_score(tc), stopped or "max_steps", learner.scored)


def _splits(cfg: Config, data: SequenceData, norm: Normalizer):
    """The training sequences as read, and normalised (None when dequantised: then each batch is normalised
    with its step's noise, :func:`_dequantized_batch`); the validation sequences normalised (with their
    evaluation draw when dequantised, as ``vrnn eval --split valid`` scores them); the dequantiser."""
    deq = Dequantizer(cfg.data.dequantize, emission_class(cfg.model.emission.name).normalized_columns)
    raw, held = data.splits["train"], data.splits["valid"]
    valid = [norm(a) for a in dequantized(deq, held, split_keys("valid", len(held)))]
    return raw, None if deq else [norm(a) for a in raw], valid, deq


def _dequantized_batch(raw: list[np.ndarray], idx: list[int], deq: Dequantizer, norm: Normalizer,
                       key: tuple[int, int]) -> dict[int, np.ndarray]:
    """The batch ``idx`` with this step's dequantisation noise (seeded by the run's seed and the step, the same
    on every rank and after ``--resume``), normalised."""
    rng = np.random.default_rng([*key, 3])
    return {i: norm(deq.perturb(raw[i], rng)) for i in idx}


def _next_batch(state: RunState, batches) -> list[int]:
    """The global batch at the state's (epoch, pos), moving the state to the next epoch when this one is done."""
    if state.pos >= len(batches(state.epoch)):
        state.epoch, state.pos = state.epoch + 1, 0
    return batches(state.epoch)[state.pos]


def watched_score(tc: TrainConfig) -> str:
    """The validation score early stopping and ``best.pt`` follow (:func:`.bounds.watched`): ``"elbo"``, or
    the IWAE or FIVO bound that is trained, with as many particles, e.g. ``"fivo (K = 16)"``."""
    return watched(tc).label(tc.particles)


def _validate(scored: SequenceModel, valid: list[np.ndarray], tc: TrainConfig, dd: Distributed,
              device: torch.device) -> tuple[float, float, float]:
    """The validation ELBO, the watched score (:func:`watched_score`) and the KL, per step (total over total
    steps); rank 0 computes them and every rank takes its numbers, so all make the same decisions.
    When a bound is watched, the ELBO and KL are means over its K samples (the same expectations)."""
    elbo = score = kl = 0.0
    if dd.main:
        bound = watched(tc)
        scores = score_sequences(scored, valid, bound.eval_particles(tc.particles), tc.eval_batch_size,
                                 device=device, smc=bound.smc)
        steps = scores["lengths"].sum().item()
        elbo, score, kl = (scores[name].sum().item() / steps for name in ("elbo", bound.score, "kl"))
    return dd.broadcast(elbo, device), dd.broadcast(score, device), dd.broadcast(kl, device)


def _record(state: RunState, tc: TrainConfig, valid: tuple[float, float, float], window: list[dict],
            seconds: float) -> dict:
    """The log line of an evaluation; ``valid``: :func:`_validate`'s numbers; the schedules' values are those
    of the step just taken."""
    v_elbo, score, v_kl = valid
    return {
        "step": state.step, "epoch": state.epoch, "elapsed_s": round(state.elapsed, 3),
        "kl_weight": kl_weight(state.step - 1, tc.kl_start, tc.kl_warmup_steps),
        "lr": state.lr_scale(tc) * learning_rate(state.step - 1, tc.lr, tc.lr_decay_start, tc.lr_half_life),
        "lr_drops": state.drops,
        **{f"train_{k}_per_step": sum(s[k] for s in window) / len(window) for k in ("elbo", "kl", "bound")
           if k in window[0]},  # elbo and kl, or the iwae/fivo bound
        "valid_elbo_per_step": v_elbo, "valid_kl_per_step": v_kl, "watched": watched_score(tc),
        "valid_score_per_step": score,
        "best_valid_score_per_step": state.best,
        "steps_per_s": len(window) / max(seconds, 1e-9),
        "units": "nats per time step (total over total steps), model units",
    }


def _payload(cfg: Config, norm: Normalizer, data: SequenceData, learner: Learner, state: RunState, out: Path) -> dict:
    """A checkpoint: the config (a file alone rebuilds its model), the normaliser, the data's metadata and
    portable reference (:func:`vrnn.data.resolve.checkpoint_data`), the learner's weights, optimiser and
    generators, and the run's counters."""
    return {**checkpoint_data(cfg.to_dict(), data, out), **learner.payload(), "normalizer": dataclasses.asdict(norm),
            **state.payload()}


def _checkpoint(out: Path, improved: bool, dd: Distributed, payload: dict, log: RunLog, record: dict) -> None:
    """Rank 0 writes ``last.pt``, its copy ``best.pt`` when validation improved, then the log line; a run
    killed in between is completed on resume (:func:`.run.open_run`): ``last.pt`` carries the line."""
    if dd.main:
        log.clear_earlier()
        save_checkpoint(out / "last.pt", {**payload, "log_record": record})
        if improved:
            copy_checkpoint(out / "last.pt", out / "best.pt")
        log.write(record)


def _save_interrupted(out: Path, state: RunState, t0: float, log: RunLog, saved: bool, payload) -> NoReturn:
    """Stop a run Ctrl-C interrupted (:class:`.run.Interrupt`) with one line naming its step and the command that
    resumes it. ``payload`` (a callable; None when no step was taken since the last checkpoint) gives what goes to
    ``last.pt``: the steps since the last checkpoint, saved without validating them (``best.pt`` and the log stay
    as the last evaluation left them, so the resumed run takes the steps an uninterrupted one takes)."""
    if payload:
        state.elapsed += time.perf_counter() - t0
        log.clear_earlier()  # --overwrite: this run's first file replaces the earlier run's
        save_checkpoint(out / "last.pt", {**payload(), "improved": False})
    elif not saved:  # nothing trained and nothing on disk: nothing to resume
        raise KeyboardInterrupt
    raise TrainingInterrupted(state.step, out)


def _stop_reason(state: RunState, tc: TrainConfig, dd: Distributed, device: torch.device) -> str | None:
    """Why the run stops after this evaluation, if it does (:meth:`RunState.stop_reason`); rank 0's clock
    decides whether the wall-clock budget is spent."""
    reason = state.stop_reason(tc)
    if reason == "early_stopping" or tc.max_minutes <= 0:
        return reason
    return "time_budget" if dd.broadcast(float(reason == "time_budget"), device) > 0 else None
