"""Unconditional samples in the data's original units."""
from __future__ import annotations

import numpy as np
import torch

from ..data import Normalizer
from ..models import SequenceModel


def sample(model: SequenceModel, steps: int, n: int = 1, normalizer: Normalizer | None = None,
           seed: int = 0, bias: float = 0.0, temperature: float = 1.0) -> np.ndarray:
    """``n`` sequences of ``steps`` steps, (n, steps, D), de-normalised to original units.

    Every draw comes from a generator seeded with ``seed``. ``bias``/``temperature``: biased or
    tempered sampling of pen-stroke models (:meth:`vrnn.models.SequenceModel.generate`).
    """
    gen = torch.Generator(device=next(model.parameters()).device).manual_seed(seed)
    model.eval()
    x, _ = model.generate(steps, n, generator=gen, bias=bias, temperature=temperature)
    x = x.cpu().numpy()
    return normalizer.invert(x) if normalizer is not None else x
