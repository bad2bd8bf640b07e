"""The learner: what one rank trains, and one training step of it.

The objective comes from one table (:data:`.bounds.OBJECTIVES`); the model and its objective
are one module (:class:`.bounds.Bound`) that DistributedDataParallel wraps under ``torchrun``,
so the ELBO, IWAE and FIVO all train on several processes with their gradients all-reduced.
"""
from __future__ import annotations

import math

import torch

from ..errors import TrainingDiverged
from ..models import ModelConfig, build_model
from .averaging import WeightAverage
from .bounds import Bound, trained
from .distributed import Distributed, noise_seed
from .options import TrainConfig
from .schedules import kl_weight, learning_rate, tbptt_chunks


class Learner:
    """What one rank trains: the model and its objective (a :class:`~.bounds.Bound`, wrapped in
    DistributedDataParallel on several ranks), the weight average, the Adam optimiser and this
    rank's posterior-noise generator."""

    def __init__(self, mc: ModelConfig, tc: TrainConfig, dd: Distributed, device: torch.device):
        self.tc, self.dd, self.device = tc, dd, device
        self.objective = trained(tc)
        torch.manual_seed(tc.seed)  # parameter initialisation
        self.model = build_model(mc).to(device)
        # what the training step calls: the objective's module, or its DistributedDataParallel wrapper
        self.net = Bound(self.model, self.objective, tc.particles)
        if dd.world > 1:
            from torch.nn.parallel import DistributedDataParallel

            self.net = DistributedDataParallel(self.net, device_ids=[device] if device.type == "cuda" else None)
        self.avg = WeightAverage(self.model, tc.ema) if tc.ema > 0 else None
        # the weights validation, checkpoints' "model" and the result hold: the average, or the model itself
        self.scored = self.model if self.avg is None else self.avg.module
        self.opt = torch.optim.Adam(self.model.parameters(), lr=tc.lr)
        self.noise = torch.Generator(device=device).manual_seed(noise_seed(tc.seed, dd.rank))

    def load(self, ckpt: dict) -> None:
        """Continue from a checkpoint (also one written with another number of processes): its weights and
        optimiser (:meth:`restore_weights`) and its generators."""
        self.restore_weights(ckpt)
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

    def loss(self, x: torch.Tensor, mask: torch.Tensor, beta: float = 1.0, carry=None,
             **draws) -> tuple[torch.Tensor, dict, tuple | None]:
        """The loss of ``train.objective`` (:data:`~.bounds.OBJECTIVES`) on this rank's slice of one chunk,
        per real step of the global chunk; its statistics and the state carried into the next chunk.

        The random draws come from this rank's generator, or from ``draws`` (``noise``, and for FIVO
        ``uniforms``: :func:`vrnn.inference.smc.particle_filter`'s), so that ranks and one process can be
        compared on the same draws."""
        out = self.net(x, mask, self.noise, carry, **draws)
        return self.objective.reduce(out, mask, beta, self.dd.all_sum, self.tc.free_bits)

    def train_step(self, x: torch.Tensor, mask: torch.Tensor, step: int, lr_scale: float = 1.0) -> list[dict]:
        """Training step ``step`` on this rank's slice of a global batch; the statistics of each update.

        One Adam update per truncated-BPTT chunk, the model's final state carried (detached)
        into the next chunk; gradients clipped to ``train.clip_norm``; the weight average
        follows every update. A non-finite loss raises :class:`TrainingDiverged` (:func:`.trainer.fit`
        adds what was kept).
        """
        tc = self.tc
        self.model.train()
        beta = kl_weight(step, tc.kl_start, tc.kl_warmup_steps)
        for group in self.opt.param_groups:  # a pure function of the step (and the config), so resume is exact
            group["lr"] = lr_scale * learning_rate(step, tc.lr, tc.lr_decay_start, tc.lr_half_life)
        stats, carry = [], None
        for span in tbptt_chunks(x.shape[1], tc.tbptt_steps):
            loss, chunk, carry = self.loss(x[:, span], mask[:, span], beta, carry)
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
