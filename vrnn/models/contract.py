"""What the time loop and the models share: the model config's common fields, the state and
context types, and the per-step terms a forward pass returns."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch

from ..emissions import EmissionConfig


@dataclass(frozen=True)
class ModelConfig:
    """Fields every model has; each model kind extends this with its own (beside its model)."""

    kind: str = "vrnn"
    x_dim: int = 0  # filled in from the data when 0
    emission: EmissionConfig = field(default_factory=EmissionConfig)


State = tuple[torch.Tensor, ...]
Context = dict[str, torch.Tensor]


@dataclass
class StepTerms:
    """Per-step terms of one forward pass; padded steps hold zeros.

    ``log_px``  log p(x_t | z_t, s_{t-1})                     (K, B, T)
    ``kl``      KL(q(z_t | ·) || p(z_t | ·)), analytic          (K, B, T)
    ``log_pz``  log p(z_t | s_{t-1}) at the sampled z_t         (K, B, T)
    ``log_qz``  log q(z_t | s_{t-1}, x) at the sampled z_t      (K, B, T)
    """

    log_px: torch.Tensor
    kl: torch.Tensor
    log_pz: torch.Tensor
    log_qz: torch.Tensor
    mask: torch.Tensor  # (B, T) bool
    carry: Any = None  # the state after the last step, for truncated BPTT
    q_loc: torch.Tensor | None = None
    q_scale: torch.Tensor | None = None
    p_loc: torch.Tensor | None = None
    p_scale: torch.Tensor | None = None
