"""What the step, its drivers and the models share: the model config's common fields, the state and
context types, and the per-step terms a forward pass returns."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar

import torch

from ..emissions import EMISSIONS, EmissionConfig
from ..settings import Check, Checked, at_least, one_of


@dataclass(frozen=True)
class ModelConfig(Checked):
    """Fields every model has; each model kind extends this with its own (beside its model),
    and its ``CHECKS`` with ``{**ModelConfig.CHECKS, ...}``."""

    kind: str = "vrnn"
    x_dim: int = 0  # filled in from the data when 0
    emission: EmissionConfig = field(default_factory=EmissionConfig)

    SECTION: ClassVar[str] = "model"
    CHECKS: ClassVar[dict[str, Check]] = {
        "x_dim": at_least(0, " (0 = from the data)"),
        "emission.name": one_of(sorted(EMISSIONS)),
    }


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
