"""The weight average (``train.ema``) that validation, checkpoints and everything downstream use."""
from __future__ import annotations

import torch
from torch.optim.swa_utils import AveragedModel

from ..models import SequenceModel


class WeightAverage(AveragedModel):
    """An exponential moving average of a model's weights (Polyak averaging, with exponential weights).

    After each optimiser step at training step ``step`` every averaged parameter moves
    towards the trained one, a ← a + (1 − d)(p − a) with d = min(decay, (1 + step) / (10 + step)),
    so early on, when the weights change fast, the average follows them closely (the
    ``num_updates`` warm-up of TensorFlow's ExponentialMovingAverage). With truncated BPTT
    the updates of one batch share its ``step``. The average starts as a copy of the
    initial model.

    torch's :class:`AveragedModel` holds the copy (:attr:`module`, a plain model whose
    ``state_dict`` checkpoints store) and runs the update; the rule lives in
    :meth:`_lerp`, its ``multi_avg_fn``. AveragedModel passes that function the number of
    updates, not the step, so :meth:`update` sets the step's weight first. Buffers are
    copied, not averaged (AveragedModel's ``use_buffers=False``); the models here have none.
    """

    def __init__(self, model: SequenceModel, decay: float):
        super().__init__(model, multi_avg_fn=self._lerp)
        self.module.requires_grad_(False)
        self.decay = decay
        self.weight = 0.0  # 1 − d of the update being made
        # AveragedModel's first update copies the weights; this average is already that copy
        # (of the initial model), so every update, the first included, averages
        self.n_averaged.fill_(1)

    def update(self, model: SequenceModel, step: int) -> None:
        """Move the average towards ``model``'s weights after an optimiser step at training step ``step``."""
        self.weight = 1.0 - min(self.decay, (1 + step) / (10 + step))
        self.update_parameters(model)

    @torch.no_grad()
    def _lerp(self, averaged: list[torch.Tensor], trained: list[torch.Tensor], n_averaged: torch.Tensor) -> None:
        for a, p in zip(averaged, trained):
            a.lerp_(p, self.weight)
