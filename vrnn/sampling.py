"""Unconditional samples in the data's original units."""
from __future__ import annotations

import numpy as np
import torch

from .data import Normalizer
from .models import SequenceModel


def sample(model: SequenceModel, steps: int, n: int = 1, normalizer: Normalizer | None = None,
           seed: int = 0) -> np.ndarray:
    """``n`` sequences of ``steps`` steps, (n, steps, D), de-normalised to original units."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        gen = torch.Generator(device=next(model.parameters()).device).manual_seed(seed)
        model.eval()
        x, _ = model.generate(steps, n, generator=gen)
    x = x.cpu().numpy()
    return normalizer.invert(x) if normalizer is not None else x
