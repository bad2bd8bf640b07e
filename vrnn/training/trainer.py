"""Training: Adam, clipped gradients, KL warm-up, early stopping, atomic checkpoints, resume.

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
import json
import math
import os
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ..checkpoint import copy_checkpoint, load_checkpoint, save_checkpoint
from ..config import Config, config_from_dict
from ..data import Normalizer, SequenceData, load_dataset
from ..data.resolve import checkpoint_data, resumed_source
from ..device import resolve_device
from ..emissions import check_emission_data, emission_class
from ..errors import TrainingDiverged, VrnnError
from ..evaluate import score_sequences
from ..io import RunLock, atomic_write, remove_stale_tmp, writing
from ..models import ModelConfig, SequenceModel, build_model
from ..objectives import bound_loss, sequence_iw_log_likelihood, training_loss
from ..smc import particle_filter
from .averaging import WeightAverage
from .distributed import Distributed, init_distributed, noise_seed
from .options import TrainConfig
from .schedules import epoch_batches, kl_weight, learning_rate, tbptt_chunks


@dataclass
class FitResult:
    out: Path
    steps: int
    best_valid: float  # the best validation score, nats per step (total over total steps), model units
    watched: str  # which score: "elbo", or the trained bound, e.g. "fivo (K = 16)" (:func:`watched_score`)
    stopped: str  # max_steps | early_stopping | time_budget
    model: SequenceModel


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

    @classmethod
    def from_checkpoint(cls, ckpt: dict) -> RunState:
        return cls(ckpt["step"], ckpt["epoch"], ckpt["pos"], ckpt.get("best_valid", ckpt.get("best_valid_elbo")),
                   ckpt["bad_evals"], ckpt.get("lr_drops", 0), ckpt["elapsed"])

    def payload(self) -> dict:
        return {"step": self.step, "epoch": self.epoch, "pos": self.pos, "best_valid": self.best,
                "bad_evals": self.bad_evals, "lr_drops": self.drops, "elapsed": self.elapsed}

    def observe(self, score: float, warming: bool = False) -> bool:
        """Count an evaluation; True when it is the best so far. During the KL warm-up (``warming``) a
        worse score does not spend patience: the bound validated is the full one, and it may fall while
        the KL weight rises, which is the schedule, not a plateau."""
        improved = score > self.best
        if improved:
            self.best, self.bad_evals = score, 0
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

    def lr_scale(self, tc: TrainConfig) -> float:
        """What the step schedule's learning rate is multiplied by after the drops so far."""
        return tc.lr_drop_factor ** self.drops


class Learner:
    """What one rank trains: the model (wrapped in DistributedDataParallel on several ranks),
    its weight average, the Adam optimiser and this rank's posterior-noise generator."""

    def __init__(self, mc: ModelConfig, tc: TrainConfig, dd: Distributed, device: torch.device):
        if tc.objective != "elbo" and tc.tbptt_steps:
            raise VrnnError(f"train.objective={tc.objective} bounds whole sequences; set train.tbptt_steps=0")
        if tc.objective == "fivo" and dd.world > 1:
            raise VrnnError("train.objective=fivo runs in one process (its particle filter calls the model's hooks, "
                            "not the DistributedDataParallel wrapper); train without torchrun")
        self.tc, self.dd, self.device = tc, dd, device
        torch.manual_seed(tc.seed)  # parameter initialisation
        self.model = build_model(mc).to(device)
        self.net = self.model  # what the training step calls: the model, or its DistributedDataParallel wrapper
        if dd.world > 1:
            from torch.nn.parallel import DistributedDataParallel

            self.net = DistributedDataParallel(self.model, device_ids=[device] if device.type == "cuda" else None)
        self.avg = WeightAverage(self.model, tc.ema) if tc.ema > 0 else None
        # the weights validation, checkpoints' "model" and the result hold: the average, or the model itself
        self.scored = self.model if self.avg is None else self.avg.module
        self.opt = torch.optim.Adam(self.model.parameters(), lr=tc.lr)
        self.noise = torch.Generator(device=device).manual_seed(noise_seed(tc.seed, dd.rank))

    def load(self, ckpt: dict) -> None:
        """Continue from a checkpoint (also one written with another number of processes)."""
        self.model.load_state_dict(ckpt.get("train_model", ckpt["model"]))
        if self.avg is not None:
            self.avg.module.load_state_dict(ckpt["model"])
        self.opt.load_state_dict(ckpt["optimizer"])
        rngs = ckpt.get("rng_ranks")
        if rngs is not None and len(rngs) == self.dd.world:
            self.noise.set_state(rngs[self.dd.rank])
        elif self.dd.main:  # a run resumed with another number of processes: rank 0 keeps its stream
            self.noise.set_state(ckpt["rng"])
        if "torch_rng" in ckpt:  # the global generator draws the dropout masks
            torch.set_rng_state(ckpt["torch_rng"])
            if self.device.type == "cuda" and ckpt.get("cuda_rng") is not None:
                torch.cuda.set_rng_state(ckpt["cuda_rng"], self.device)

    def restore_weights(self, ckpt: dict) -> None:
        """Go back to a checkpoint's weights, weight average and optimiser state (``train.lr_drop_restore``);
        the generators and the batch order go on, so the steps after it see new batches and noise."""
        self.model.load_state_dict(ckpt.get("train_model", ckpt["model"]))
        if self.avg is not None:
            self.avg.module.load_state_dict(ckpt["model"])
        self.opt.load_state_dict(ckpt["optimizer"])

    def payload(self) -> dict:
        """The weights, optimiser and generator states of a checkpoint; collective: every rank calls it."""
        weights = {"model": self.scored.state_dict()}
        if self.avg is not None:
            weights["train_model"] = self.model.state_dict()
        cuda = self.device.type == "cuda"
        return {**weights, "optimizer": self.opt.state_dict(), "rng": self.noise.get_state(),
                "rng_ranks": self.dd.noise_states(self.noise), "world_size": self.dd.world,
                "torch_rng": torch.get_rng_state(), "cuda_rng": torch.cuda.get_rng_state(self.device) if cuda else None}

    def _loss(self, x: torch.Tensor, mask: torch.Tensor, beta: float, carry) -> tuple[torch.Tensor, dict, tuple]:
        """The loss of ``train.objective`` on one chunk, its statistics and the carried state.

        ``elbo``: the step-wise ELBO (KL weighted by β), averaged over ``train.particles`` samples.
        ``iwae``: the importance-weighted bound with K = ``train.particles`` (Burda et al. 2016).
        ``fivo``: the particle filter's bound (:func:`vrnn.smc.particle_filter`, Maddison et al. 2017);
        both are over whole sequences, so neither carries state (truncated BPTT is refused for them).
        """
        tc = self.tc
        if tc.objective == "fivo":
            res = particle_filter(self.model, x, mask, tc.particles, self.noise)
            return (*bound_loss(res.log_marginal, mask, self.dd.all_sum), None)
        terms = self.net(x, mask, samples=tc.particles, generator=self.noise, carry=carry)
        if tc.objective == "iwae":
            return (*bound_loss(sequence_iw_log_likelihood(terms), mask, self.dd.all_sum), None)
        return (*training_loss(terms, beta, self.dd.all_sum), tuple(c.detach() for c in terms.carry))

    def train_step(self, x: torch.Tensor, mask: torch.Tensor, step: int, lr_scale: float = 1.0) -> list[dict]:
        """Training step ``step`` on this rank's slice of a global batch; the statistics of each update.

        One Adam update per truncated-BPTT chunk, the model's final state carried (detached)
        into the next chunk; gradients clipped to ``train.clip_norm``; the weight average
        follows every update. A non-finite loss raises :class:`TrainingDiverged` (:func:`fit` adds what was kept).
        """
        tc = self.tc
        self.model.train()
        beta = kl_weight(step, tc.kl_start, tc.kl_warmup_steps)
        for group in self.opt.param_groups:  # a pure function of the step (and the config), so resume is exact
            group["lr"] = lr_scale * learning_rate(step, tc.lr, tc.lr_decay_start, tc.lr_half_life)
        stats, carry = [], None
        for span in tbptt_chunks(x.shape[1], tc.tbptt_steps):
            loss, chunk, carry = self._loss(x[:, span], mask[:, span], beta, carry)
            if not math.isfinite(chunk["loss"]):
                raise TrainingDiverged(f"loss became {chunk['loss']} at step {step + 1}; stopped")
            self.opt.zero_grad(set_to_none=True)
            (loss * self.dd.world).backward()  # DDP averages the ranks' gradients; their losses add up
            if tc.clip_norm > 0:
                torch.nn.utils.clip_grad_norm_(self.model.parameters(), tc.clip_norm)
            self.opt.step()
            if self.avg is not None:
                self.avg.update(self.model, step)
            stats.append(chunk)
        return stats


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


def _check_out(out: Path, resume: bool, overwrite: bool) -> None:
    existing = [p.name for p in (out / "last.pt", out / "best.pt", out / "log.jsonl") if p.exists()]
    if existing and not (resume or overwrite):
        raise VrnnError(f"{out}: already holds {', '.join(existing)}; pass --resume to continue that run, "
                        f"--overwrite to replace it, or choose another --out")
    if resume and not (out / "last.pt").exists():
        raise VrnnError(f"{out}/last.pt: nothing to resume; start without --resume")


def fit(cfg: Config, out: str | Path, resume: bool = False, overwrite: bool = False, progress: bool = True,
        data: SequenceData | None = None, allow_changes: bool = False) -> FitResult:
    """Train the model ``cfg`` describes; checkpoints and the log go to ``out``.

    ``resume`` continues the run stored in ``out/last.pt``: ``cfg`` must match its config except for
    the stopping rules (``TrainConfig.STOPPING``), unless ``allow_changes`` (the changes are logged).

    Each step trains on the next global batch; every ``train.eval_every`` steps (and at the
    last) the weights are validated, the checkpoints and then the log line written, and the run
    stops early when validation has stopped improving or the time budget is spent.
    Rank 0 holds ``out/.lock`` (:class:`vrnn.io.RunLock`) for the whole run, so a second run on
    ``out`` is refused; the lock goes on every way out, and a run that stops before its first
    checkpoint leaves ``out`` as it found it (``--overwrite`` replaces the earlier run's files only
    when this run writes its first checkpoint).
    """
    out = Path(out)
    dd, device = init_distributed(resolve_device(cfg.train.device))
    lock = None
    try:
        lock = _lock(out, dd, device)
        _check_out(out, resume, overwrite)
        ckpt = _resume_checkpoint(out, cfg, allow_changes, data) if resume else None
        if ckpt is not None and dd.main:
            _complete(out, ckpt)
        torch.set_flush_denormal(cfg.train.flush_denormal)  # CPU only; where unsupported it is a no-op
        return _train(cfg, out, ckpt, overwrite and not resume, progress, data, dd, device)
    finally:
        torch.set_flush_denormal(False)  # the default, for whatever runs after training in this process
        if lock is not None:
            lock.release()
        dd.close()


def _lock(out: Path, dd: Distributed, device: torch.device) -> RunLock | None:
    """Rank 0 takes ``out``'s lock and removes the temporary files of a killed write; every rank learns
    whether it could (the others return None)."""
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
    return lock


RUN_FILES = ("last.pt", "best.pt", "log.jsonl")


def _train(cfg: Config, out: Path, ckpt: dict | None, clear: bool, progress: bool, data: SequenceData | None,
           dd: Distributed, device: torch.device) -> FitResult:
    """The training loop of :func:`fit`, from ``ckpt`` if given; ``clear``: replace an earlier run in ``out``."""
    cfg, data, norm = prepare_data(cfg, data)
    tc = cfg.train.in_steps(math.ceil(len(data.splits["train"]) / cfg.train.batch_size))
    dd.barrier()  # every rank has checked --out before rank 0 writes to it
    learner, state = Learner(cfg.model, tc, dd, device), RunState()
    if ckpt is not None:
        learner.load(ckpt)
        norm, state = Normalizer(**ckpt["normalizer"]), RunState.from_checkpoint(ckpt)
    train, valid = ([norm(a) for a in data.splits[split]] for split in ("train", "valid"))
    lengths = [len(a) for a in train]
    batches = functools.lru_cache(maxsize=1)(
        lambda epoch: epoch_batches(lengths, tc.batch_size, tc.seed, epoch, tc.length_pool))
    log = RunLog(out / "log.jsonl", dd.main, clear)
    saved = ckpt is not None  # out holds a checkpoint of this run
    bar = _progress(progress and dd.main, tc.max_steps, state.step)
    stopped = None  # early_stopping | time_budget; the loop ends at max_steps otherwise
    t0 = window_t0 = time.perf_counter()
    window: list[dict] = []  # statistics of the updates since the last evaluation
    try:
        while stopped is None and state.step < tc.max_steps:
            idx = _next_batch(state, batches)
            window += learner.train_step(*dd.batch(train, idx, device), state.step, state.lr_scale(tc))
            state.step, state.pos = state.step + 1, state.pos + 1
            _show(bar, window[-1])
            if state.step % tc.eval_every == 0 or state.step == tc.max_steps:
                now = time.perf_counter()
                state.elapsed, t0 = state.elapsed + now - t0, now
                v_elbo, score = _validate(learner.scored, valid, tc, dd, device)
                improved = state.observe(score, warming=state.step <= tc.kl_warmup_steps)
                if not (math.isfinite(v_elbo) and math.isfinite(score)):
                    raise TrainingDiverged(f"validation ELBO became {v_elbo} ({watched_score(tc)}: {score}) at "
                                           f"step {state.step}; stopped")
                record = _record(state, tc, v_elbo, score, window, now - window_t0)
                if state.drop_at_plateau(tc) and tc.lr_drop_restore:  # every rank reads the best evaluation's
                    learner.restore_weights(load_checkpoint(out / "best.pt"))  # file, written evaluations ago
                payload = _payload(cfg, norm, data, learner, state, out) | {"improved": improved}
                _checkpoint(out, improved, dd, payload, log, record)
                saved, window, window_t0 = True, [], time.perf_counter()
                stopped = _stop_reason(state, tc, dd, device)
        dd.barrier()  # rank 0's checkpoints are on disk before any rank returns
    except TrainingDiverged as e:
        raise TrainingDiverged(f"{e}; {_kept(out, saved)}") from None
    finally:
        log.close()
        if bar is not None:
            bar.close()
    return FitResult(out, state.step, state.best, watched_score(tc), stopped or "max_steps", learner.scored)


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
                        f"(--resume without --config; --set may change train.{', train.'.join(TrainConfig.STOPPING)}), "
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
    """``{"train.lr": (stored, given), ...}``: every setting that differs, but the stopping rules."""
    flat = [_flatten(c.to_dict()) for c in (stored, given)]
    free = {f"train.{k}" for k in TrainConfig.STOPPING}
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


def _kept(out: Path, saved: bool) -> str:
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


def _parse(line: str) -> dict | None:
    try:
        return json.loads(line)
    except ValueError:  # torn by a kill mid-write
        return None


def _next_batch(state: RunState, batches) -> list[int]:
    """The global batch at the state's (epoch, pos), moving the state to the next epoch when this one is done."""
    if state.pos >= len(batches(state.epoch)):
        state.epoch, state.pos = state.epoch + 1, 0
    return batches(state.epoch)[state.pos]


def watched_score(tc: TrainConfig) -> str:
    """The validation score early stopping and ``best.pt`` follow: the ELBO, or with ``train.stop_on =
    "objective"`` the IWAE or FIVO bound that is trained, with as many particles. A tighter bound can
    be trained while the ELBO of its proposal falls (Rainforth et al. 2018), so stopping a bound's run
    on the ELBO stops it at the wrong place."""
    if tc.stop_on == "elbo" or tc.objective == "elbo":
        return "elbo"
    return f"{tc.objective} (K = {tc.particles})"


def _validate(scored: SequenceModel, valid: list[np.ndarray], tc: TrainConfig, dd: Distributed,
              device: torch.device) -> tuple[float, float]:
    """The validation ELBO and the watched score (:func:`watched_score`), per step (total over total
    steps); rank 0 computes them and every rank takes its numbers, so all make the same decisions.
    When a bound is watched, the ELBO is the mean over its K samples (the same expectation)."""
    elbo = score = 0.0
    if dd.main:
        bound = tc.objective if watched_score(tc) != "elbo" else "elbo"
        scores = score_sequences(scored, valid, 1 if bound == "elbo" else tc.particles, tc.eval_batch_size,
                                 device=device, smc=bound == "fivo")
        key = {"elbo": "elbo", "iwae": "log_likelihood", "fivo": "log_likelihood_smc"}[bound]
        steps = scores["lengths"].sum().item()
        elbo, score = (scores[name].sum().item() / steps for name in ("elbo", key))
    return dd.broadcast(elbo, device), dd.broadcast(score, device)


def _record(state: RunState, tc: TrainConfig, v_elbo: float, score: float, window: list[dict],
            seconds: float) -> dict:
    """The log line of an evaluation; the schedules' values are those of the step just taken."""
    return {
        "step": state.step, "epoch": state.epoch, "elapsed_s": round(state.elapsed, 3),
        "kl_weight": kl_weight(state.step - 1, tc.kl_start, tc.kl_warmup_steps),
        "lr": state.lr_scale(tc) * learning_rate(state.step - 1, tc.lr, tc.lr_decay_start, tc.lr_half_life),
        "lr_drops": state.drops,
        **{f"train_{k}_per_step": sum(s[k] for s in window) / len(window) for k in ("elbo", "kl", "bound")
           if k in window[0]},  # elbo and kl, or the iwae/fivo bound
        "valid_elbo_per_step": v_elbo, "watched": watched_score(tc), "valid_score_per_step": score,
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
    killed in between is completed on resume (:func:`_complete`): ``last.pt`` carries the line."""
    if dd.main:
        log.clear_earlier()
        save_checkpoint(out / "last.pt", {**payload, "log_record": record})
        if improved:
            copy_checkpoint(out / "last.pt", out / "best.pt")
        log.write(record)


def _stop_reason(state: RunState, tc: TrainConfig, dd: Distributed, device: torch.device) -> str | None:
    """Why the run stops after this evaluation, if it does: patience spent (with every learning-rate
    drop used, :meth:`RunState.drop_at_plateau`), or the wall-clock budget (rank 0's clock decides)."""
    if state.bad_evals >= tc.patience:
        return "early_stopping"
    if tc.max_minutes > 0 and dd.broadcast(float(state.elapsed >= 60 * tc.max_minutes), device) > 0:
        return "time_budget"
    return None


def _show(bar, stats: dict) -> None:
    if bar is not None:
        rate = bar.format_dict.get("rate") or 0.0
        bar.set_postfix(elbo=f"{stats['elbo']:.3f}", kl=f"{stats['kl']:.3f}", steps_s=f"{rate:.1f}")
        bar.update(1)


def _progress(enabled: bool, total: int, initial: int):
    if not enabled:
        return None
    from tqdm import tqdm

    return tqdm(total=total, initial=initial, unit="step", dynamic_ncols=True)
