"""Unconditional samples in the data's original units."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from .data import Normalizer
from .models import SequenceModel
from .outputs import check_writable, output_paths, pianoroll_png, save_npy, write_midi


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


def write_samples(x: np.ndarray, out: Path, pianoroll: bool, overwrite: bool = False, title: str = "") -> list[Path]:
    """Write samples (n, T, D): the array, and for piano rolls the first sample as MIDI and PNG."""
    paths = output_paths(Path(out), pianoroll)
    check_writable(paths, overwrite)
    paths[0].parent.mkdir(parents=True, exist_ok=True)
    save_npy(paths[0], x.astype(np.float32))
    if pianoroll:
        write_midi(paths[1], x[0])
        pianoroll_png(paths[2], x[0], title)
    return paths
