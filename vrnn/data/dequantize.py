"""Dequantisation: a density model of data that were rounded to a grid (``data.dequantize``).

Pen offsets in pixels, 16-bit audio, counts: values on a grid of width ``w`` have probabilities, not
densities, and a density fitted to them can put spikes on the grid points and report unbounded
likelihoods. Dequantising adds u ~ U(−w/2, w/2) to each gridded feature; for any density p,

    log P(x) = log ∫_bin p(x + u) du ≥ E_u[log p(x + u)] + D·log w          (Theis et al. 2016, eq. 9)

with P(x) the mass p gives the grid cell of x (width w in each of the D features). Training draws new
noise at every step (seeded by the run's seed and the step, so ``--resume`` is exact); validation and
evaluation use one fixed draw per sequence, so the reported log-likelihood in the data's own units, plus
D·log w per step, estimates a lower bound on the log-probability of the data as they were rounded.
Only the features the emission models with a density are dequantised (the strokes emission's offsets,
not its pen bit: :attr:`vrnn.emissions.base.Emission.normalized_columns`).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Dequantizer:
    """U(−width/2, width/2) noise on ``columns`` (None: every feature) of sequences (T, D) in the data's units."""

    width: float = 0.0  # 0: off
    columns: tuple[int, ...] | None = None

    def __bool__(self) -> bool:
        return self.width > 0

    def perturb(self, a: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """``a`` (T, D) with the noise added to its gridded features (a copy; ``a`` itself as given when off)."""
        if not self:
            return a
        out = np.array(a, dtype=a.dtype, copy=True)
        cols = slice(None) if self.columns is None else list(self.columns)
        shape = out[:, cols].shape
        out[:, cols] += ((rng.random(shape) - 0.5) * self.width).astype(out.dtype)
        return out

    def fixed(self, seqs: list[np.ndarray], seeds: list[int]) -> list[np.ndarray]:
        """One draw per sequence, sequence i's from its own seed: the same numbers in any batch or order."""
        return [self.perturb(a, np.random.default_rng(s)) for a, s in zip(seqs, seeds)]

    def features(self, x_dim: int) -> int:
        """D: how many of the ``x_dim`` features are dequantised."""
        return x_dim if self.columns is None else len(self.columns)

    def log_bin(self, x_dim: int) -> float:
        """D·log w: what turns a per-step density of x + u into the bound on the per-step log-probability."""
        return self.features(x_dim) * math.log(self.width) if self else 0.0

    def describe(self, x_dim: int) -> dict:
        """What an evaluation report says of it."""
        n = self.features(x_dim)
        return {"width": self.width, "features": n, "draws_per_sequence": 1,
                "bound": f"log P(x rounded to a grid of width {self.width:g}) >= E_u log p(x + u) + {n} log "
                         f"{self.width:g} per step; original_units includes the {n} log w term"}
