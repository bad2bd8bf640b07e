"""Training: Adam, clipped gradients, KL warm-up, early stopping, atomic checkpoints, resume.

Every source of randomness is a function of the config's seed and the step:
the data order of epoch e is a permutation drawn from seed and e, and the posterior
noise comes from one generator whose state is saved in every checkpoint, as is the
global generator's (dropout masks; rank 0's under torchrun). A run
stopped and resumed therefore reaches the same parameters as one that never stopped.

``torchrun --nproc_per_node=N -m vrnn train ...`` trains on N processes with
DistributedDataParallel (see :class:`Distributed`): the same global batches, each rank
its slice, gradients weighted so that N ranks take the step one process would take.
"""
from __future__ import annotations

import copy
import dataclasses
import json
import math
import time
from dataclasses import dataclass
from pathlib import Path

import torch

from ..checkpoint import load_checkpoint, save_checkpoint
from ..config import Config, config_from_dict
from ..data import Normalizer, SequenceData, load_dataset, pad_batch
from ..device import resolve_device
from ..emissions import check_emission_data, emission_class
from ..errors import TrainingDiverged, VrnnError
from ..evaluate import score_sequences
from ..models import SequenceModel, build_model
from ..objectives import training_loss


def learning_rate(step: int, lr: float, decay_start: int, half_life: float) -> float:
    """Learning rate at ``step``: ``lr`` until ``decay_start``, then halving every ``half_life`` steps."""
    if half_life <= 0 or step <= decay_start:
        return lr
    return lr * 0.5 ** ((step - decay_start) / half_life)


def kl_weight(step: int, start: float, warmup_steps: int) -> float:
    """KL weight β(step): linear from ``start`` to 1 over ``warmup_steps``, then 1."""
    if warmup_steps <= 0:
        return 1.0
    return min(1.0, start + (1.0 - start) * step / warmup_steps)


def tbptt_chunks(steps: int, chunk: int) -> list[slice]:
    """Time slices of a batch for truncated BPTT: chunks of ``chunk`` steps (0: the whole batch)."""
    chunk = steps if chunk <= 0 else chunk
    return [slice(lo, lo + chunk) for lo in range(0, steps, chunk)]


def epoch_order(n: int, seed: int, epoch: int) -> list[int]:
    """The order of training sequences in ``epoch``: a pure function of (seed, epoch)."""
    g = torch.Generator().manual_seed(seed * 1_000_003 + epoch)
    return torch.randperm(n, generator=g).tolist()


def epoch_batches(lengths: list[int], batch_size: int, seed: int, epoch: int, pool: int = 4) -> list[list[int]]:
    """The batches of ``epoch``, a pure function of (seed, epoch).

    The epoch's permutation is cut into pools of ``pool`` batches; each pool is sorted by
    length before it is cut into batches, so a batch holds sequences of similar length and
    little padding; then the order of the batches is shuffled. ``pool <= 1`` gives plain
    random batches.
    """
    order = epoch_order(len(lengths), seed, epoch)
    size = batch_size * max(pool, 1)
    batches = []
    for s in range(0, len(order), size):
        chunk = order[s:s + size]
        if pool > 1:
            chunk = sorted(chunk, key=lambda i: lengths[i])
        batches += [chunk[i:i + batch_size] for i in range(0, len(chunk), batch_size)]
    shuffle = epoch_order(len(batches), seed + 1, epoch)
    return [batches[i] for i in shuffle]


@dataclass(frozen=True)
class Distributed:
    """This process's place in a multi-process run (``torchrun --nproc_per_node=N -m vrnn train``).

    Each rank trains on its slice of every global batch; DistributedDataParallel averages
    the gradients, and every rank's loss is weighted by its share of the global batch's real
    steps, so N ranks take the same step as one process with the whole batch. Rank 0 logs
    and writes checkpoints. The posterior noise of rank r comes from its own generator.
    """

    rank: int = 0
    world: int = 1
    owns_group: bool = False  # this fit() started the process group and ends it

    @property
    def main(self) -> bool:
        return self.rank == 0

    def shard(self, idx: list[int]) -> list[int]:
        """Rank's contiguous slice of a global batch (sizes differ by at most one)."""
        n, r, w = len(idx), self.rank, self.world
        return idx[r * n // w:(r + 1) * n // w]


def init_distributed(device: torch.device) -> tuple[Distributed, torch.device]:
    """Join the process group torchrun describes (WORLD_SIZE > 1) or one already started; gloo on CPU, nccl on GPU."""
    import os

    import torch.distributed as dist

    owns = False
    if not dist.is_initialized():
        if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
            return Distributed(), device
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
        owns = True
    if device.type == "cuda":  # one GPU per rank on each node
        device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", dist.get_rank() % torch.cuda.device_count())))
        torch.cuda.set_device(device)
    return Distributed(dist.get_rank(), dist.get_world_size(), owns), device


def _noise_seed(seed: int, rank: int) -> int:
    """Rank 0 draws the single-process noise; other ranks their own streams."""
    return seed + 1_000_003 * rank


def _weighted_loss(terms, beta: float, dd: Distributed) -> tuple[torch.Tensor, float, dict]:
    """The training loss of one rank, the global batch's loss value and its statistics.

    The loss is normalised per real step of the *global* batch: rank r's per-step loss is
    weighted by N · S_r / S (S_r its real steps, S = Σ S_r), so the average DDP takes of the
    rank gradients equals the gradient of the whole batch's per-step loss in one process.
    """
    if dd.world == 1:
        loss, stats = training_loss(terms, beta)
        return loss, loss.item(), stats
    import torch.distributed as dist

    steps = terms.mask.sum() * terms.log_px.shape[0]
    sums = torch.stack([terms.log_px.sum().detach(), terms.kl.sum().detach(), steps.to(terms.log_px.dtype)])
    dist.all_reduce(sums)
    total = sums[2].clamp(min=1)
    loss = -(terms.log_px.sum() - beta * terms.kl.sum()) / total * dd.world
    log_px, kl = (sums[0] / total).item(), (sums[1] / total).item()
    return loss, -(log_px - beta * kl), {"elbo": log_px - kl, "log_px": log_px, "kl": kl}


@dataclass
class FitResult:
    out: Path
    steps: int
    best_valid_elbo: float  # nats per step (total over total steps), model units
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
    norm = Normalizer.fit(data.splits["train"], emission.normalized_columns) if normalize == "global" else Normalizer()
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
        data: SequenceData | None = None) -> FitResult:
    """Train the model ``cfg`` describes; checkpoints and the log go to ``out``."""
    out = Path(out)
    _check_out(out, resume, overwrite)
    ckpt = None
    if resume:
        ckpt = load_checkpoint(out / "last.pt")
        stored = config_from_dict(ckpt["config"], where=str(out / "last.pt"))
        if dataclasses.replace(cfg.model, x_dim=stored.model.x_dim) != stored.model:
            raise VrnnError(f"{out}/last.pt: the [model] settings differ from the checkpoint's; "
                            f"resume with the same model or start a new --out")
    cfg, data, norm = prepare_data(cfg, data)
    tc = cfg.train
    device = resolve_device(tc.device)
    dd, device = init_distributed(device)
    if dd.world > 1:
        torch.distributed.barrier()  # every rank has checked --out before rank 0 writes to it
    torch.manual_seed(tc.seed)  # parameter initialisation
    model = build_model(cfg.model).to(device)
    net = model  # what the training step calls: the model, or its DistributedDataParallel wrapper
    if dd.world > 1:
        from torch.nn.parallel import DistributedDataParallel

        net = DistributedDataParallel(model, device_ids=[device] if device.type == "cuda" else None)
    if not 0.0 <= tc.ema < 1.0:
        raise VrnnError(f"train.ema is {tc.ema}; use a decay in [0, 1) (0 turns the weight average off)")
    # the weights validation and checkpoints use: an average of the trained ones, or the model itself
    avg = AveragedWeights(model, tc.ema) if tc.ema > 0 else None
    scored = model if avg is None else avg.model  # the weights validation, checkpoints and the result hold
    opt = torch.optim.Adam(model.parameters(), lr=tc.lr)
    noise = torch.Generator(device=device).manual_seed(_noise_seed(tc.seed, dd.rank))
    step, epoch, pos = 0, 0, 0
    best, bad_evals, elapsed = -math.inf, 0, 0.0
    if ckpt is not None:
        model.load_state_dict(ckpt.get("train_model", ckpt["model"]))
        if avg is not None:
            avg.model.load_state_dict(ckpt["model"])
        opt.load_state_dict(ckpt["optimizer"])
        rngs = ckpt.get("rng_ranks")
        if rngs is not None and len(rngs) == dd.world:
            noise.set_state(rngs[dd.rank])
        elif dd.main:  # a run resumed with another number of processes: rank 0 keeps its stream
            noise.set_state(ckpt["rng"])
        if "torch_rng" in ckpt:  # the global generator draws the dropout masks
            torch.set_rng_state(ckpt["torch_rng"])
            if device.type == "cuda" and ckpt.get("cuda_rng") is not None:
                torch.cuda.set_rng_state(ckpt["cuda_rng"], device)
        norm = Normalizer(**ckpt["normalizer"])
        step, epoch, pos = ckpt["step"], ckpt["epoch"], ckpt["pos"]
        best, bad_evals, elapsed = ckpt["best_valid_elbo"], ckpt["bad_evals"], ckpt["elapsed"]
    if dd.main:
        out.mkdir(parents=True, exist_ok=True)
    if overwrite and not resume and dd.main:
        for name in ("last.pt", "best.pt", "log.jsonl"):
            (out / name).unlink(missing_ok=True)

    train = [norm(a) for a in data.splits["train"]]
    valid = [norm(a) for a in data.splits["valid"]]
    lengths = [len(a) for a in train]
    batches = epoch_batches(lengths, tc.batch_size, tc.seed, epoch, tc.length_pool)
    log = open(out / "log.jsonl", "a") if dd.main else None
    bar = _progress(progress and dd.main, tc.max_steps, step)
    stopped = "max_steps"
    t0 = window_t0 = time.perf_counter()
    window: list[dict] = []

    def payload() -> dict:
        rngs = [noise.get_state()]
        if dd.world > 1:  # every rank's noise state, so a resumed run draws what it would have drawn
            rngs = [None] * dd.world
            torch.distributed.all_gather_object(rngs, noise.get_state().cpu())
        weights = {"model": scored.state_dict()} | ({} if avg is None else {"train_model": model.state_dict()})
        return {"config": cfg.to_dict(), **weights, "optimizer": opt.state_dict(),
                "normalizer": dataclasses.asdict(norm), "data_meta": _plain_meta(data.meta),
                "rng": noise.get_state(), "rng_ranks": rngs, "world_size": dd.world,
                "torch_rng": torch.get_rng_state(),
                "cuda_rng": torch.cuda.get_rng_state(device) if device.type == "cuda" else None,
                "step": step, "epoch": epoch, "pos": pos,
                "best_valid_elbo": best, "bad_evals": bad_evals, "elapsed": elapsed}

    try:
        while step < tc.max_steps:
            model.train()
            if pos >= len(batches):  # pos: the next batch of this epoch
                epoch, pos = epoch + 1, 0
                batches = epoch_batches(lengths, tc.batch_size, tc.seed, epoch, tc.length_pool)
            idx = batches[pos]
            x, mask = pad_batch([train[i] for i in dd.shard(idx)] or [train[idx[0]]], device)  # this rank's slice
            if dd.world > 1:  # every rank pads to the global batch's length, so chunks line up across ranks
                x, mask = _pad_to(x, mask, max(lengths[i] for i in idx), real=bool(dd.shard(idx)))
            beta = kl_weight(step, tc.kl_start, tc.kl_warmup_steps)
            for group in opt.param_groups:  # a pure function of the step (and the config), so resume is exact
                group["lr"] = learning_rate(step, tc.lr, tc.lr_decay_start, tc.lr_half_life)
            carry = None  # truncated BPTT: the detached final state of the previous chunk
            for span in tbptt_chunks(x.shape[1], tc.tbptt_steps):  # one optimiser update per chunk
                if span.start >= max(lengths[i] for i in idx):
                    break  # only padding is left (in every rank's slice)
                terms = net(x[:, span], mask[:, span], generator=noise, carry=carry)
                carry = tuple(c.detach() for c in terms.carry)
                loss, value, stats = _weighted_loss(terms, beta, dd)
                if not math.isfinite(value):
                    raise TrainingDiverged(
                        f"loss became {value} at step {step + 1}; stopped, {out / 'last.pt'} keeps the last good "
                        f"state; lower train.lr or train.clip_norm and resume or restart")
                opt.zero_grad(set_to_none=True)
                loss.backward()
                if tc.clip_norm > 0:
                    torch.nn.utils.clip_grad_norm_(model.parameters(), tc.clip_norm)
                opt.step()
                if avg is not None:
                    avg.update(model, step)
                window.append(stats)
            step, pos = step + 1, pos + 1
            if bar is not None:
                rate = bar.format_dict.get("rate") or 0.0
                bar.set_postfix(elbo=f"{stats['elbo']:.3f}", kl=f"{stats['kl']:.3f}", steps_s=f"{rate:.1f}")
                bar.update(1)
            if step % tc.eval_every == 0 or step == tc.max_steps:
                now = time.perf_counter()
                elapsed += now - t0
                t0 = now
                v_elbo = 0.0
                if dd.main:  # rank 0 validates; every rank takes its number, so all make the same decisions
                    scores = score_sequences(scored, valid, 1, tc.eval_batch_size, device=device)
                    v_elbo = (scores["elbo"].sum() / scores["lengths"].sum()).item()
                if dd.world > 1:
                    v_elbo = _broadcast_value(v_elbo, device)
                improved = v_elbo > best
                best, bad_evals = (v_elbo, 0) if improved else (best, bad_evals + 1)
                record = {
                    "step": step, "epoch": epoch, "elapsed_s": round(elapsed, 3), "kl_weight": beta,
                    "lr": opt.param_groups[0]["lr"],
                    "train_elbo_per_step": sum(s["elbo"] for s in window) / len(window),
                    "train_kl_per_step": sum(s["kl"] for s in window) / len(window),
                    "valid_elbo_per_step": v_elbo, "best_valid_elbo_per_step": best,
                    "steps_per_s": len(window) / max(now - window_t0, 1e-9),
                    "units": "nats per time step (total over total steps), model units",
                }
                if dd.main:
                    log.write(json.dumps(record) + "\n")
                    log.flush()
                if not math.isfinite(v_elbo):
                    raise TrainingDiverged(f"validation ELBO became {v_elbo} at step {step}; {out / 'last.pt'} "
                                           f"keeps the last good state; lower train.lr")
                state = payload()  # on every rank: it gathers the ranks' noise states
                if improved and dd.main:
                    save_checkpoint(out / "best.pt", state)
                if dd.main:
                    save_checkpoint(out / "last.pt", state)
                window, window_t0 = [], time.perf_counter()
                if bad_evals >= tc.patience:
                    stopped = "early_stopping"
                    break
                if tc.max_minutes > 0:  # a wall-clock budget, checked at evaluations (rank 0 decides)
                    over = float(elapsed >= 60 * tc.max_minutes)
                    if (_broadcast_value(over, device) if dd.world > 1 else over) > 0:
                        stopped = "time_budget"
                        break
        if dd.world > 1:
            torch.distributed.barrier()  # rank 0's checkpoints are on disk before any rank returns
    finally:
        if log is not None:
            log.close()
        if bar is not None:
            bar.close()
        if dd.owns_group:
            torch.distributed.destroy_process_group()
    return FitResult(out, step, best, stopped, scored)


class AveragedWeights:
    """An exponential moving average of a model's weights (Polyak averaging).

    After each optimiser step the average moves towards the weights by 1 − min(decay,
    (1 + step) / (10 + step)), so early on, when the weights change fast, it follows them
    closely. Buffers are copied, not averaged.
    """

    def __init__(self, model: SequenceModel, decay: float):
        self.decay = decay
        self.model = copy.deepcopy(model).requires_grad_(False)

    @torch.no_grad()
    def update(self, model: SequenceModel, step: int) -> None:
        d = min(self.decay, (1 + step) / (10 + step))
        for a, p in zip(self.model.parameters(), model.parameters()):
            a.lerp_(p, 1.0 - d)
        for a, b in zip(self.model.buffers(), model.buffers()):
            a.copy_(b)


def _broadcast_value(v: float, device: torch.device) -> float:
    t = torch.tensor([v], dtype=torch.float64, device=device)
    torch.distributed.broadcast(t, 0)
    return t.item()


def _pad_to(x: torch.Tensor, mask: torch.Tensor, steps: int, real: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """Pad a rank's slice to ``steps`` time steps; ``real=False`` (an empty slice) masks every step."""
    pad = steps - x.shape[1]
    x, mask = torch.nn.functional.pad(x, (0, 0, 0, pad)), torch.nn.functional.pad(mask, (0, pad))
    return x, (mask if real else torch.zeros_like(mask))


def _plain_meta(meta: dict) -> dict:
    """Metadata safe for a weights-only checkpoint (no per-piece lists)."""
    return {k: v for k, v in meta.items() if isinstance(v, (str, int, float, bool)) or v is None}


def _progress(enabled: bool, total: int, initial: int):
    if not enabled:
        return None
    from tqdm import tqdm

    return tqdm(total=total, initial=initial, unit="step", dynamic_ncols=True)
