"""Multi-process training: ``torchrun --nproc_per_node=N -m vrnn train ...``.

Every rank walks the same global batches (:mod:`.schedules`) and trains on its slice of
each; DistributedDataParallel averages the ranks' gradients, and the training loss
(:func:`vrnn.inference.objectives.training_loss`) normalises by the real steps of the *global*
batch, so N ranks take the step one process with the whole batch would take. Rank 0
validates, logs and writes checkpoints; the others take its numbers, so every rank makes
the same decisions. In one process every method here is the identity or does nothing.
"""
from __future__ import annotations

import gc
import os
from dataclasses import dataclass

import numpy as np
import torch
import torch.distributed as dist

from ..data import pad_batch
from ..errors import VrnnError


@dataclass(frozen=True)
class Distributed:
    """This process's place in a run of ``world`` processes."""

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

    def batch(self, seqs: list[np.ndarray], idx: list[int], device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
        """This rank's slice of the global batch ``idx``, padded to the global batch's length.

        Equal lengths keep the truncated-BPTT chunks of all ranks in step. A rank whose slice
        is empty (fewer sequences than ranks) still runs the model, on a copy of the batch's
        first sequence with every step masked, so that it joins the gradient all-reduce.
        """
        mine = self.shard(idx)
        x, mask = pad_batch([seqs[i] for i in mine] or [seqs[idx[0]]], device)  # (B_r, T_r, D), (B_r, T_r)
        if self.world == 1:
            return x, mask
        pad = max(len(seqs[i]) for i in idx) - x.shape[1]
        x, mask = torch.nn.functional.pad(x, (0, 0, 0, pad)), torch.nn.functional.pad(mask, (0, pad))
        return x, (mask if mine else torch.zeros_like(mask))

    def all_sum(self, t: torch.Tensor) -> torch.Tensor:
        """``t`` summed over the ranks, in place."""
        if self.world > 1:
            dist.all_reduce(t)
        return t

    def broadcast(self, value: float, device: torch.device) -> float:
        """Rank 0's ``value`` on every rank."""
        if self.world == 1:
            return value
        t = torch.tensor([value], dtype=torch.float64, device=device)
        dist.broadcast(t, 0)
        return t.item()

    def noise_states(self, noise: torch.Generator) -> list[torch.Tensor]:
        """Every rank's noise-generator state (rank order), so a resumed run draws what it would have drawn."""
        if self.world == 1:
            return [noise.get_state()]
        states = [None] * self.world
        dist.all_gather_object(states, noise.get_state().cpu())
        return states

    def barrier(self) -> None:
        if self.world > 1:
            dist.barrier()

    def close(self) -> None:
        """End the process group if this run started it."""
        if self.owns_group:
            # objects in reference cycles that hold the group's pending work (tensors gloo still references) are
            # freed now: freed at interpreter exit instead, they aborted a rank now and then (SIGABRT,
            # "terminate called without an active exception"; 5 of 35 two-rank runs before, 0 of 40 after)
            gc.collect()
            dist.destroy_process_group()


def noise_seed(seed: int, rank: int) -> int:
    """Seed of rank ``rank``'s posterior noise: rank 0 draws the single-process noise, other ranks their own streams."""
    return seed + 1_000_003 * rank


def world_size() -> int:
    """The processes ``WORLD_SIZE`` says the run has (1 when unset); one line naming the variables when it is
    not a number, or is above 1 without the rest of what torchrun sets (the rendezvous needs them all)."""
    text = os.environ.get("WORLD_SIZE", "1")
    how = ("launch with `torchrun --nproc_per_node=N -m vrnn train ...` (it sets them all), set RANK, LOCAL_RANK, "
           "MASTER_ADDR and MASTER_PORT too, or unset WORLD_SIZE to train in one process")
    try:
        world = int(text)
    except ValueError:
        raise VrnnError(f"WORLD_SIZE={text} is not a number of processes; {how}") from None
    missing = [name for name in ("RANK", "MASTER_ADDR", "MASTER_PORT") if world > 1 and name not in os.environ]
    if missing:
        names = " and ".join([", ".join(missing[:-1]), missing[-1]] if len(missing) > 1 else missing)
        raise VrnnError(f"WORLD_SIZE={world} is set but {names} {'is' if len(missing) == 1 else 'are'} not; {how}")
    return world


def init_distributed(device: torch.device) -> tuple[Distributed, torch.device]:
    """Join the process group torchrun describes (WORLD_SIZE > 1, :func:`world_size`) or one already started;
    gloo on CPU, nccl on GPU."""
    owns = False
    if not dist.is_initialized():
        if world_size() <= 1:
            return Distributed(), device
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
        owns = True
    if device.type == "cuda":  # one GPU per rank on each node
        device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", dist.get_rank() % torch.cuda.device_count())))
        torch.cuda.set_device(device)
    return Distributed(dist.get_rank(), dist.get_world_size(), owns), device
