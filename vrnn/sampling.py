"""Unconditional samples in the data's original units."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from .data import Normalizer
from .models import SequenceModel
from .outputs import SAMPLE_WRITERS, check_writable, output_paths, save_npy


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


def write_samples(x: np.ndarray, out: Path, meta: dict, overwrite: bool = False, title: str = "") -> list[Path]:
    """Write samples (n, T, D) in original units: the array, plus the files of the data's kind
    (piano rolls: the first sample as MIDI and PNG)."""
    kind = meta.get("kind")
    paths = output_paths(Path(out), kind)
    check_writable(list(paths.values()), overwrite)
    paths[".npy"].parent.mkdir(parents=True, exist_ok=True)
    save_npy(paths[".npy"], x.astype(np.float32))
    if kind in SAMPLE_WRITERS:
        SAMPLE_WRITERS[kind][1](paths, x, meta, title)
    return list(paths.values())
