"""Schedules and data order: pure functions of the step or the epoch (and the config).

Nothing here keeps state, so a run resumed at step s (epoch e, batch p) recomputes
exactly what a run that never stopped would have used there.
"""
from __future__ import annotations

import torch


def learning_rate(step: int, lr: float, decay_start: int, half_life: float) -> float:
    """Learning rate at ``step``: ``lr`` until ``decay_start``, then halving every ``half_life`` steps."""
    if half_life <= 0 or step <= decay_start:
        return lr
    return lr * 0.5 ** ((step - decay_start) / half_life)


def kl_weight(step: int, start: float, warmup_steps: int) -> float:
    """KL weight β(step): linear from ``start`` to 1 over ``warmup_steps``, then 1.

    The KL annealing of Bowman et al. 2016 ("Generating sentences from a continuous
    space", sec. 3.1); β multiplies the KL term of the ELBO in the training loss only.
    """
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
